//! Unit tests of the intent log's ring: records come back in order, a torn tail ends replay, the
//! ring wraps without overwriting what is not covered, concurrent syncs share one fdatasync,
//! and the checkpoint that starts a new epoch drops the `log_applied` marks.

use super::*;

fn collect(log: &IntentLog, from: Lsn, epoch: u64) -> (Vec<(u16, Vec<u8>)>, Lsn) {
    let mut out = Vec::new();
    let end = log
        .replay(from, epoch, |_, k, p| out.push((k, p.to_vec())))
        .unwrap();
    (out, end)
}

#[test]
fn records_come_back_in_order_and_a_torn_tail_ends_replay() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("log");
    let log = IntentLog::open(&path, 1 << 20).unwrap();
    log.start(Lsn(0), 7);
    let a = vec![1u8; 5000];
    let b = vec![2u8; 10];
    let Appended::At(e1) = log.append(&[(1, &a), (2, &b)]).unwrap() else {
        panic!("full")
    };
    log.sync_to(e1).unwrap();
    let c = vec![3u8; 300];
    let Appended::At(e2) = log.append(&[(1, &c)]).unwrap() else {
        panic!("full")
    };
    assert_eq!(e1.0 % PAGE, 0);
    drop(log);
    let log = IntentLog::open(&path, 999).unwrap();
    assert_eq!(
        log.capacity(),
        1 << 20,
        "an existing log keeps its capacity"
    );
    let (recs, end) = collect(&log, Lsn(0), 7);
    assert_eq!(recs, vec![(1, a.clone()), (2, b.clone()), (1, c.clone())]);
    assert_eq!(end, e2);
    // Another epoch's records are stale.
    assert!(collect(&log, Lsn(0), 8).0.is_empty());
    // Damage one byte of the last batch's payload: replay stops after the first batch.
    let f = OpenOptions::new().write(true).open(&path).unwrap();
    f.write_all_at(&[9], log.file_offset(e1) + REC_HEADER as u64 + 100)
        .unwrap();
    let (recs, end) = collect(&log, Lsn(0), 7);
    assert_eq!(recs, vec![(1, a), (2, b)]);
    assert_eq!(end, e1);
}

#[test]
fn the_ring_wraps_and_never_overwrites_what_is_not_covered() {
    let dir = tempfile::tempdir().unwrap();
    let log = IntentLog::open(&dir.path().join("log"), 64 << 10).unwrap();
    log.start(Lsn(0), 1);
    // Three pages a batch: five fill 60 KiB, the sixth must wrap to the next lap.
    let p = vec![5u8; 10000];
    let mut ends = Vec::new();
    while let Appended::At(e) = log.append(&[(1, &p)]).unwrap() {
        ends.push(e);
    }
    assert_eq!(ends.len(), 5);
    assert!(log.used() <= 64 << 10);
    // Cover the first two batches: two more fit (the first pads the ring's end), then
    // the writer would reach what is not covered.
    log.set_covered(ends[1]);
    let mut after = Lsn(0);
    for _ in 0..2 {
        let Appended::At(e) = log.append(&[(1, &p)]).unwrap() else {
            panic!("room was made")
        };
        after = e;
    }
    assert_eq!(after, Lsn(88 << 10));
    assert_eq!(log.append(&[(1, &p)]).unwrap(), Appended::Full);
    // Replay from the covered position crosses the lap and finds every live record.
    let (recs, end) = collect(&log, ends[1], 1);
    assert_eq!(recs.len(), 3 + 2);
    assert_eq!(end, after);
}

#[test]
fn concurrent_syncs_share_one_fdatasync_and_all_return() {
    let dir = tempfile::tempdir().unwrap();
    let log = std::sync::Arc::new(IntentLog::open(&dir.path().join("log"), 1 << 20).unwrap());
    log.start(Lsn(0), 1);
    let handles: Vec<_> = (0..8)
        .map(|i| {
            let log = log.clone();
            std::thread::spawn(move || {
                let p = vec![i as u8; 100];
                let Appended::At(e) = log.append(&[(1, &p)]).unwrap() else {
                    panic!("full")
                };
                log.sync_to(e).unwrap();
                assert!(log.durable_end() >= e);
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    assert_eq!(collect(&log, Lsn(0), 1).0.len(), 8);
}

/// A flush's mark may lie past the log's durable part (its commit was made durable by a
/// later one; the records after the last log sync were lost). The checkpoint that ends the
/// replay starts a new epoch from where the chain stopped, below that mark: the mark must
/// go, or the next replay skips the new epoch's records of that file as already applied.
#[test]
fn a_new_epoch_drops_marks_past_where_replay_stopped() {
    let dir = tempfile::tempdir().unwrap();
    let store = super::super::Store::open(dir.path()).unwrap();
    let vol = crate::types::VolumeId(1);
    store
        .write(true, move |tx| {
            tx.log_applied(vol, 5, Lsn(64 << 10))?;
            tx.log_applied(vol, 6, Lsn(4 << 10))?;
            Ok::<_, super::super::StoreError>(())
        })
        .unwrap();
    // A plain checkpoint keeps what it does not cover.
    store
        .write(true, |tx| tx.log_checkpoint(Lsn(8 << 10), None))
        .unwrap();
    let marks = store.log_marks().unwrap();
    assert!(marks.applied(vol, 5, Lsn(16 << 10)));
    assert!(!marks.applied(vol, 6, Lsn(8 << 10)));
    // Replay stopped at 12 KiB (the rest of the lap was never synced): the new epoch's
    // records from there on are not applied, whatever the old marks said.
    store
        .write(true, |tx| tx.log_checkpoint(Lsn(12 << 10), Some(2)))
        .unwrap();
    let marks = store.log_marks().unwrap();
    assert_eq!(marks.epoch, 2);
    assert!(marks.applied.is_empty(), "{:?}", marks.applied);
    assert!(!marks.applied(vol, 5, Lsn(16 << 10)));
    assert!(marks.applied(vol, 5, Lsn(8 << 10)));
}
