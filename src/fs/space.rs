//! Space admission: a write is refused with ENOSPC when the pool's disk could not hold what
//! it buffers, so that nothing which returned success ever fails to be stored later.
//!
//! Owns the count of pack bytes the write buffers may need at their flush (worst case: a
//! whole block per buffered block, before dedup and trimming) and the headroom kept free
//! for metadata, so that deletes, mkdir and commits keep working on a full disk.
//!
//! Invariants: a block enters a write buffer only after [`Space::admit`] charged a block
//! size for it; a flush or discard releases exactly what its blocks were charged. The
//! disk's free space is read with statvfs: cached while far from full, read afresh near it
//! and after every release (a flush appends to packs; a punch returns space).

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// How long a statvfs reading is trusted while the disk is far from full.
const FRESH: Duration = Duration::from_millis(100);
/// Below this much slack, every admission reads statvfs afresh.
const NEAR_FULL: u64 = 256 << 20;

pub(crate) struct Space {
    dir: Option<CString>,
    /// Bytes kept free for metadata commits (and the intent log), never given to data.
    headroom: u64,
    /// Worst-case pack bytes of every block in every write buffer.
    pending: AtomicU64,
    /// Last statvfs reading: when, and the bytes available to us.
    cache: Mutex<Option<(Instant, u64)>>,
}

/// (available bytes, filesystem size) of the filesystem holding `dir`.
fn statvfs(dir: &CString) -> Option<(u64, u64)> {
    let st = rustix::fs::statvfs(dir.as_c_str()).ok()?;
    Some((st.f_bavail * st.f_frsize, st.f_blocks * st.f_frsize))
}

/// Headroom for a filesystem of `size` bytes: 1/16 of it, from 4 MiB to 256 MiB.
pub(crate) fn headroom_for(size: u64) -> u64 {
    (size / 16).clamp(4 << 20, 256 << 20)
}

/// Size of the filesystem holding `dir` (0 when unknown).
pub(crate) fn fs_size(dir: &Path) -> u64 {
    CString::new(dir.as_os_str().as_bytes())
        .ok()
        .and_then(|c| statvfs(&c))
        .map_or(0, |(_, size)| size)
}

impl Space {
    pub(crate) fn new(dir: &Path) -> Space {
        let dir = CString::new(dir.as_os_str().as_bytes()).ok();
        let size = dir.as_ref().and_then(statvfs).map_or(0, |(_, s)| s);
        Space {
            dir,
            headroom: headroom_for(size),
            pending: AtomicU64::new(0),
            cache: Mutex::new(None),
        }
    }

    fn available(&self, fresh: bool) -> u64 {
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if !fresh
            && let Some((at, avail)) = *cache
            && at.elapsed() < FRESH
        {
            return avail;
        }
        match self.dir.as_ref().and_then(statvfs) {
            Some((avail, _)) => {
                *cache = Some((Instant::now(), avail));
                avail
            }
            // Unknown: never refuse on a guess.
            None => u64::MAX,
        }
    }

    /// Charges `need` bytes if the disk can hold them with everything already buffered and
    /// the headroom; false (nothing charged) otherwise.
    pub(crate) fn admit(&self, need: u64) -> bool {
        if need == 0 {
            return true;
        }
        let fits = |avail: u64| {
            let pending = self.pending.load(Ordering::Acquire);
            avail
                .checked_sub(pending + need + self.headroom)
                .map(|slack| slack >= NEAR_FULL)
        };
        let ok = match fits(self.available(false)) {
            Some(true) => true,
            // Near full or short: look at the disk now.
            _ => fits(self.available(true)).is_some(),
        };
        if ok {
            self.pending.fetch_add(need, Ordering::AcqRel);
        }
        ok
    }

    /// Far from full: a metadata commit surely finds room (twice the headroom left beyond
    /// what the buffers may need). From a cached reading; for operations that answer
    /// before they commit (see make.rs).
    pub(crate) fn roomy(&self) -> bool {
        let pending = self.pending.load(Ordering::Acquire);
        self.available(false)
            .checked_sub(pending)
            .is_some_and(|left| left >= 2 * self.headroom)
    }

    /// Gives back what blocks leaving the buffers were charged.
    pub(crate) fn release(&self, n: u64) {
        if n == 0 {
            return;
        }
        let _ = self
            .pending
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |p| {
                Some(p.saturating_sub(n))
            });
        *self.cache.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }
}
