//! The reclaimer thread: punches the holes of freed chunks out of their packs, off the
//! writer's path (a punch can wait for a synchronous discard on ext4 mounted `discard`,
//! and the writer, with every caller queued behind it, must not).
//!
//! A punch in the pack being appended to takes that file's inode lock, which every append
//! (a flush, on the fsync path) waits for: a random-write load frees scattered patches
//! there as fast as it appends new ones, and the two contended. So chunks freed in the
//! current pack are held back and punched together once it is no longer the current one,
//! once the reclaimer has had nothing to do for [`IDLE`], once [`HOLD_LIMIT`] bytes wait,
//! at a barrier, or when the thread stops.
//!
//! Invariants: only chunks whose free is durable reach this thread (the writer's
//! `pending_punch`); a [`Reclaim::Barrier`] is answered only once everything given before
//! it is punched (a writer that found the disk full waits on one, see `fs::data`); chunks
//! are never punched twice nor left unpunched when the thread ends.

use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::{Receiver, RecvTimeoutError};
use tracing::error;

use super::pack::{Loc, PackStore, coalesce};

/// Held-back chunks are punched once the reclaimer has been idle this long.
const IDLE: Duration = Duration::from_secs(1);
/// Held-back bytes past which they are punched even while busy.
const HOLD_LIMIT: u64 = 256 << 20;

/// What the reclaimer thread is given.
pub(super) enum Reclaim {
    /// Freed chunks whose free is durable.
    Punch(Vec<Loc>),
    /// Answer once everything given before is punched.
    Barrier(crossbeam_channel::Sender<()>),
}

/// Punches `locs`, as few ranges as possible; an error is logged (the bytes stay in the
/// pack), never fatal.
pub(super) fn punch_all(packs: &PackStore, locs: Vec<Loc>) {
    for loc in coalesce(locs) {
        if let Err(e) = packs.punch(loc) {
            error!(
                "could not punch a freed chunk out of pack {}: {e}",
                loc.pack
            );
        }
    }
}

/// Chunks freed in the current pack, waiting to be punched.
#[derive(Default)]
struct Held {
    locs: Vec<Loc>,
    bytes: u64,
}

impl Held {
    fn release(&mut self, packs: &PackStore) {
        if !self.locs.is_empty() {
            punch_all(packs, std::mem::take(&mut self.locs));
        }
        self.bytes = 0;
    }
}

/// The thread's loop: runs until every sender is gone, then punches what it holds.
pub(super) fn run(packs: Arc<PackStore>, rx: Receiver<Reclaim>) {
    run_with(packs, rx, IDLE)
}

fn run_with(packs: Arc<PackStore>, rx: Receiver<Reclaim>, idle: Duration) {
    let mut held = Held::default();
    loop {
        let msg = if held.locs.is_empty() {
            rx.recv().map_err(|_| RecvTimeoutError::Disconnected)
        } else {
            rx.recv_timeout(idle)
        };
        match msg {
            Ok(Reclaim::Punch(locs)) => {
                let current = packs.current_pack();
                let (later, now): (Vec<Loc>, Vec<Loc>) =
                    locs.into_iter().partition(|l| Some(l.pack) == current);
                punch_all(&packs, now);
                if held.locs.first().is_some_and(|l| Some(l.pack) != current) {
                    // Appends have moved on to the next pack.
                    held.release(&packs);
                }
                held.bytes += later.iter().map(|l| u64::from(l.len)).sum::<u64>();
                held.locs.extend(later);
                if held.bytes >= HOLD_LIMIT {
                    held.release(&packs);
                }
            }
            Ok(Reclaim::Barrier(done)) => {
                held.release(&packs);
                let _ = done.send(());
            }
            Err(RecvTimeoutError::Timeout) => held.release(&packs),
            Err(RecvTimeoutError::Disconnected) => break,
        }
    }
    held.release(&packs);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allocated(dir: &std::path::Path, pack: u32) -> u64 {
        use std::os::unix::fs::MetadataExt;
        let path = super::super::pack::pack_path(dir, pack);
        std::fs::metadata(path).unwrap().blocks() * 512
    }

    #[test]
    fn chunks_freed_in_the_current_pack_wait_for_a_barrier_the_others_go_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let body = vec![7u8; 1 << 20];
        let old = PackStore::open(dir.path(), &[], 1).unwrap();
        let in_old = old.append(&body).unwrap();
        old.sync().unwrap();
        drop(old);
        let packs = Arc::new(PackStore::open(dir.path(), &[1], 2).unwrap());
        let in_current = packs.append(&body).unwrap();
        packs.sync().unwrap();
        assert_eq!(packs.current_pack(), Some(2));
        let (tx, rx) = crossbeam_channel::unbounded();
        let p = packs.clone();
        let thread = std::thread::spawn(move || run_with(p, rx, Duration::from_secs(3600)));
        tx.send(Reclaim::Punch(vec![in_old, in_current])).unwrap();
        let t0 = std::time::Instant::now();
        while allocated(dir.path(), 1) != 0 {
            assert!(
                t0.elapsed() < Duration::from_secs(30),
                "pack 1 never punched"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(
            allocated(dir.path(), 2) >= 1 << 20,
            "held back until a barrier"
        );
        let (done, heard) = crossbeam_channel::bounded(1);
        tx.send(Reclaim::Barrier(done)).unwrap();
        heard.recv().unwrap();
        assert_eq!(
            allocated(dir.path(), 2),
            0,
            "punched before the barrier's answer"
        );
        drop(tx);
        thread.join().unwrap();
    }
}
