//! Fixed operation sequences, run like a random case (see `run_case`): orders that random
//! sequences rarely line up.

use super::*;

/// Runs one fixed sequence (no ticker, no small dirty limit: nothing commits behind its
/// back) and returns how it exercised fsync and crashes.
fn run_fixed(ops: &[Op]) -> Tally {
    let p = Params {
        small_dirty_limit: false,
        fast_ticker: false,
    };
    run_case(p, ops).unwrap_or_else(|e| panic!("{e}"))
}

/// Directories made while commits are held, with files and directories made inside them
/// (and inside those), read back from the overlay, then removed, renamed and moved into
/// by operations that commit first; a crash after fsyncing a file made in a pending
/// directory keeps the whole path.
#[test]
fn mkdir_while_commits_are_held() {
    let p = |c: &[u8]| P::Path(c.to_vec());
    let ops = [
        Op::Pause,
        Op::Mkdir(p(&[0])),
        Op::Mkdir(p(&[0, 1])),
        Op::Create(p(&[0, 1, 2])),
        Op::Symlink(p(&[0, 3]), 0),
        Op::Mkdir(p(&[1])),
        Op::Mkdir(p(&[1])),
        Op::Getattr(p(&[0])),
        Op::Getattr(p(&[0, 1])),
        Op::Readdir(p(&[0]), 1),
        Op::Readdir(p(&[0, 1]), 5),
        Op::Readlink(p(&[0, 3])),
        Op::Unlink(p(&[0, 3])),
        Op::Getattr(p(&[0, 3])),
        Op::Rmdir(p(&[0])),
        Op::Write(p(&[0, 1, 2]), 0, 100, 1),
        Op::Pause,
        Op::Mkdir(p(&[2])),
        Op::Rename(p(&[0, 1]), p(&[2, 1]), 0),
        Op::Pause,
        Op::Mkdir(p(&[3])),
        Op::Rmdir(p(&[3])),
        Op::Pause,
        Op::Mkdir(p(&[3])),
        Op::Create(p(&[3, 0])),
        Op::Crash(p(&[2, 1, 2])),
    ];
    run_fixed(&ops);
}

/// chmod and chown while commits are held (write-behind): read back from the overlay,
/// inherited by creates in a directory made setgid meanwhile, carried by a link, a
/// snapshot and a crash; a chmod of a file with buffered writes commits them first.
#[test]
fn chmod_and_chown_while_commits_are_held() {
    let p = |c: &[u8]| P::Path(c.to_vec());
    let ops = [
        Op::Mkdir(p(&[0])),
        Op::Create(p(&[1])),
        Op::Write(p(&[1]), 0, 100, 1),
        Op::Pause,
        Op::Chown(p(&[0]), 1),
        Op::Chmod(p(&[0]), 3),
        Op::Getattr(p(&[0])),
        Op::Create(p(&[0, 1])),
        Op::Mkdir(p(&[0, 2])),
        Op::Getattr(p(&[0, 1])),
        Op::Getattr(p(&[0, 2])),
        Op::Chmod(p(&[0, 1]), 1),
        Op::Getattr(p(&[0, 1])),
        Op::Readdir(p(&[0]), 5),
        // Buffered writes: committed first (the pause ends here).
        Op::Chmod(p(&[1]), 1),
        Op::Pause,
        Op::Chown(p(&[0, 2]), 0),
        Op::Chmod(p(&[0, 1]), 2),
        Op::Link(p(&[0, 1]), p(&[2])),
        Op::Getattr(p(&[2])),
        Op::Unlink(p(&[0, 1])),
        Op::Getattr(p(&[2])),
        Op::Snapshot,
        Op::Pause,
        Op::Chmod(p(&[0]), 0),
        Op::Chown(p(&[2]), 2),
        Op::Crash(p(&[2])),
        Op::Getattr(p(&[0])),
    ];
    run_fixed(&ops);
}

/// A crash right after a file's writes went to the log: only the replay brings them back.
#[test]
fn crash_replays_a_fsynced_write() {
    let a = || P::Path(vec![0]);
    let ops = [
        Op::Create(a()),
        Op::Write(a(), 5, 9000, 1),
        // The crash fsyncs the root (the create becomes durable), then the file: its write
        // goes to the log.
        Op::Crash(a()),
    ];
    let t = run_fixed(&ops);
    assert_eq!((t.crashes, t.replayed), (1, 1), "{t:?}");
}

/// A crash after a file's fsync went to the log and newer writes of that file were then
/// committed (by a truncate): the replay must skip the older record, not write it over the
/// newer bytes. Random sequences rarely line this up.
#[test]
fn crash_does_not_replay_a_record_older_than_the_rows() {
    let a = || P::Path(vec![0]);
    let ops = [
        Op::Create(a()),
        Op::Write(a(), 0, 100, 1),
        // Slow path: the create is not durable yet.
        Op::Fsync(a()),
        Op::Write(a(), 10, 100, 4),
        // Fast path: every commit durable, the write goes to the log.
        Op::Fsync(a()),
        Op::Write(a(), 20, 100, 7),
        // Flushes the file (newer bytes over the logged ones) and commits.
        Op::Truncate(a(), 300),
        Op::Crash(P::Path(vec![1])),
    ];
    let t = run_fixed(&ops);
    assert_eq!((t.crashes, t.replayed), (1, 0), "{t:?}");
}

/// Removes and creates in one directory while commits are held commit in one batch, where
/// the directory's row and the volume record are rewritten once for all of them (see the
/// store's deferred.rs): each snapshot, the counts, a reopen and a crash see every one.
#[test]
fn removes_and_creates_in_one_directory_commit_together() {
    let p = |c: &[u8]| P::Path(c.to_vec());
    let ops = [
        Op::Mkdir(p(&[0])),
        Op::Create(p(&[0, 0])),
        Op::Create(p(&[0, 1])),
        Op::Create(p(&[0, 2])),
        Op::Write(p(&[0, 2]), 0, 5000, 1),
        Op::Mkdir(p(&[0, 3])),
        Op::Fsync(p(&[0, 2])),
        Op::Pause,
        Op::Unlink(p(&[0, 0])),
        Op::Unlink(p(&[0, 1])),
        Op::Create(p(&[0, 0])),
        Op::Mkdir(p(&[0, 1])),
        Op::Unlink(p(&[0, 2])),
        Op::Create(p(&[1])),
        Op::Getattr(p(&[0])),
        Op::Snapshot,
        Op::Pause,
        Op::Unlink(p(&[0, 0])),
        Op::Symlink(p(&[0, 0]), 0),
        Op::Mkdir(p(&[0, 1, 0])),
        Op::Unlink(p(&[1])),
        Op::Getattr(p(&[0, 1])),
        Op::Snapshot,
        Op::Reopen,
        Op::Pause,
        Op::Unlink(p(&[0, 0])),
        Op::Create(p(&[0, 0])),
        Op::Write(p(&[0, 0]), 0, 100, 2),
        Op::Mknod(p(&[0, 2]), 1),
        Op::Crash(p(&[0, 0])),
        Op::Check,
    ];
    run_fixed(&ops);
}
