//! Model-based property test of the storage engine: random operation sequences run against
//! `tandem::fs::Engine` and against a small in-memory reference filesystem written here, and
//! every result (errno included) and the whole tree are compared.
//!
//! Paths are 1..=3 components over a 4-name alphabet so collisions are frequent. Besides the
//! namespace operations the sequences write at random offsets (sparse, across 4 KiB block
//! boundaries), truncate both ways, punch and zero ranges and copy ranges between files, hold files open across unlink (orphans), take snapshot
//! generations (each checked against a copy of the model taken at that time, again after
//! later changes and after reopening), release some of them, fsync, and reopen the pool
//! from its directory, cleanly or after a crash (which replays the intent log). They also
//! clone a snapshot into a layered clone and go on in the clone (or back in its origin, or
//! in another clone), and delete origins and clones: every volume and snapshot of the case
//! is checked against its own model, so a clone's writes, unlinks and renames never show
//! in its origin nor the origin's in it. Each case ends by removing everything and checking
//! that no chunk is leaked.
//!
//! `TANDEM_MODEL_CASES=n` runs n cases (default 64); `TANDEM_MODEL_OPS=n` makes sequences up
//! to n operations long (default 100).
//!
//! This file owns what a case is: the operations, their strategies, the per-case engine
//! parameters and the runner. The rest lives under `tests/model/`:
//! - `reference.rs`: the in-memory reference filesystem (its tree; its namespace operations in
//!   `ref_names.rs`, file bytes and xattrs in `ref_contents.rs`, and path selection over
//!   its tree in `ref_select.rs`);
//! - `world.rs`: the engine side of a case, which runs each operation on both and compares;
//! - `verify.rs`: whole-tree comparison of the engine with a model, counters and teardown;
//! - `ranges.rs`: fallocate punch/zero and copy_file_range;
//! - `crash.rs`: the crash operation, and what the durability contract lets the model assert
//!   after it;
//! - `fixed.rs`: fixed sequences for orders random ones rarely line up;
//! - `clones.rs`: the volumes of a case besides the current one, and the clone, switch and
//!   volume delete operations;
//! - `compare.rs`: the results as compared, and the failure that shows a mismatch.

#[path = "model/clones.rs"]
mod clones;
#[path = "model/compare.rs"]
mod compare;
#[path = "model/crash.rs"]
mod crash;
#[path = "model/fixed.rs"]
mod fixed;
#[path = "model/held.rs"]
mod held;
#[path = "model/ranges.rs"]
mod ranges;
#[path = "model/ref_contents.rs"]
mod ref_contents;
#[path = "model/ref_names.rs"]
mod ref_names;
#[path = "model/ref_select.rs"]
mod ref_select;
#[path = "model/reference.rs"]
mod reference;
#[path = "model/verify.rs"]
mod verify;
#[path = "model/world.rs"]
mod world;

use std::fmt;

use proptest::prelude::*;
use proptest::test_runner::{TestCaseError, TestRunner};

use tandem::fs::{Ctx, FsError, MAX_FILE_SIZE, SetAttr};

use compare::fail;
use crash::Tally;
use world::World;

const BS: u64 = 4096;
const ROOT: u64 = 1;
const NAMES: [&[u8]; 4] = [b"a", b"b", b"c", b"d"];
const XATTRS: [&[u8]; 3] = [b"user.one", b"user.two", b""];
const CTX: Ctx = Ctx {
    uid: 1000,
    gid: 1000,
    umask: 0,
};
const MODES: [u32; 5] = [0o644, 0o600, 0o755, 0o2755, 0o1777];
const GIDS: [u32; 3] = [0, 5, 1000];

fn errno(e: FsError) -> i32 {
    e.errno()
}

fn symlink_target(i: u8) -> Vec<u8> {
    match i % 4 {
        0 => b"t".to_vec(),
        1 => b"a/b/../c".to_vec(),
        2 => Vec::new(),
        _ => vec![b'x'; 4096],
    }
}

/// Deterministic write payloads: zeros (holes), dense bytes, or bytes with a zero tail (so
/// trailing-zero trimming of stored blocks matters).
fn payload(seed: u8, len: usize) -> Vec<u8> {
    match seed % 3 {
        0 => vec![0; len],
        1 => (0..len)
            .map(|i| ((i * 7 + seed as usize * 13) % 251 + 1) as u8)
            .collect(),
        _ => (0..len)
            .map(|i| {
                if i < len / 2 {
                    ((i + seed as usize) % 255 + 1) as u8
                } else {
                    0
                }
            })
            .collect(),
    }
}

fn xattr_value(seed: u8) -> Vec<u8> {
    (0..(seed % 9) as usize)
        .map(|i| seed.wrapping_add(i as u8))
        .collect()
}

/// The setattr a chmod or chown operation makes.
pub(crate) fn setattr_of(op: &Op) -> Option<SetAttr> {
    match op {
        Op::Chmod(_, m) => Some(SetAttr {
            mode: Some(MODES[*m as usize % MODES.len()]),
            ..Default::default()
        }),
        Op::Chown(_, g) => Some(SetAttr {
            gid: Some(GIDS[*g as usize % GIDS.len()]),
            ..Default::default()
        }),
        _ => None,
    }
}

// ---------------------------------------------------------------------------------------
// Operations
// ---------------------------------------------------------------------------------------

/// Where an operation points. Generated as a selector and resolved against the model's
/// current tree just before the operation runs (so most operations meet existing files);
/// the resolved form is always `P::Path` (indices into NAMES), which is what a failure
/// report shows.
#[derive(Clone, PartialEq, Eq)]
enum P {
    Path(Vec<u8>),
    /// The i-th existing path (any kind).
    Existing(u16),
    /// The i-th existing regular file (else as `Existing`).
    File(u16),
    /// The i-th existing directory other than the root (else as `Existing`).
    Dir(u16),
    /// A path of the i-th inode with open handles (else as `File`): unlinking it makes an
    /// orphan.
    Opened(u16),
    /// The i-th path whose inode has extended attributes (else as `Existing`).
    Xattred(u16),
    /// The i-th path of a file written since its last fsync (else as `File`): what a crash
    /// may lose. Resolved by the world, which tracks that (see `crash.rs`).
    Written(u16),
    /// A name in the i-th existing directory (root included, at most 2 levels deep).
    Under(u16, u8),
}

impl fmt::Debug for P {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            P::Path(p) => {
                let parts: Vec<&str> = p
                    .iter()
                    .map(|&c| std::str::from_utf8(NAMES[c as usize]).unwrap_or("?"))
                    .collect();
                write!(f, "\"{}\"", parts.join("/"))
            }
            P::Existing(i) => write!(f, "Existing({i})"),
            P::File(i) => write!(f, "File({i})"),
            P::Dir(i) => write!(f, "Dir({i})"),
            P::Opened(i) => write!(f, "Opened({i})"),
            P::Xattred(i) => write!(f, "Xattred({i})"),
            P::Written(i) => write!(f, "Written({i})"),
            P::Under(i, n) => write!(f, "Under({i}, {n})"),
        }
    }
}

impl P {
    fn comps(&self) -> &[u8] {
        match self {
            P::Path(p) => p,
            other => panic!("unresolved path selector {other:?}"),
        }
    }
    fn last(&self) -> &'static [u8] {
        NAMES[*self.comps().last().expect("paths are never empty") as usize]
    }
    fn dirs(&self) -> impl Iterator<Item = &'static [u8]> + '_ {
        let c = self.comps();
        c[..c.len() - 1].iter().map(|&c| NAMES[c as usize])
    }
}

#[derive(Debug, Clone)]
enum Op {
    Create(P),
    Mkdir(P),
    /// 0: regular file via mknod, 1: fifo, 2: S_IFDIR (refused).
    Mknod(P, u8),
    Symlink(P, u8),
    Unlink(P),
    Rmdir(P),
    Link(P, P),
    /// flags: bit 0 noreplace, bit 1 exchange.
    Rename(P, P, u8),
    Write(P, u64, usize, u8),
    Truncate(P, u64),
    Read(P, u64, u32),
    ReadAll(P),
    Readdir(P, usize),
    Readlink(P),
    Getattr(P),
    Chmod(P, u8),
    Chown(P, u8),
    SetXattr(P, u8, u8, u8),
    GetXattr(P, u8),
    ListXattr(P),
    RemoveXattr(P, u8),
    Fsync(P),
    Open(P),
    Release(usize),
    HRead(usize),
    HWrite(usize, u64, usize, u8),
    HTruncate(usize, u64),
    /// fallocate: 0 PUNCH_HOLE|KEEP_SIZE, 1 ZERO_RANGE|KEEP_SIZE, 2 ZERO_RANGE (grows).
    Punch(P, u64, u64, u8),
    /// copy_file_range(src, off_in, dst, off_out, len) within the volume.
    Copy(P, u64, P, u64, u64),
    HLink(usize, P),
    HGetattr(usize),
    Snapshot,
    ReleaseSnap(usize),
    /// Clone the i-th snapshot of the current volume (a new one if it has none) into a
    /// layered clone, and go on in the clone.
    Clone(usize),
    /// Go on in the i-th other volume of the case.
    Switch(usize),
    /// Delete the i-th other volume of the case (its snapshots first).
    DropVolume(usize),
    Reopen,
    /// fsync of the root, then of the path, then a crash and a reopen with replay.
    Crash(P),
    Check,
    /// Holds the writer's commits: the operations that answer before their commit
    /// (create, mknod, symlink, mkdir, unlink, link, chmod, chown) and the reads that follow
    /// it meet them in the overlay only (creates inside a directory made meanwhile
    /// included); the first other operation (a snapshot, an fsync, an rmdir, a directory's
    /// rename, ...) lets it go. A rename the engine answers first runs held too
    /// (`World::renames_behind`).
    Pause,
}

impl Op {
    /// Can it run while commits are held (`Op::Pause`)? Write-behind operations and reads
    /// that never wait for the writer. A chmod or chown only when the engine says it goes
    /// behind (see `World::commits_first`).
    fn runs_paused(&self) -> bool {
        use Op::*;
        matches!(
            self,
            Pause
                | Chmod(..)
                | Chown(..)
                | Create(_)
                | Mknod(..)
                | Symlink(..)
                | Mkdir(_)
                | Unlink(_)
                | Link(..)
                | HLink(..)
                | Readdir(..)
                | Readlink(_)
                | GetXattr(..)
                | Getattr(_)
                | Read(..)
                | ReadAll(_)
                | HGetattr(_)
                | HRead(_)
        )
    }

    /// The same operation with every path resolved by `f`.
    fn resolved(&self, f: impl Fn(&P) -> P) -> Op {
        use Op::*;
        match self {
            Create(p) => Create(f(p)),
            Mkdir(p) => Mkdir(f(p)),
            Mknod(p, k) => Mknod(f(p), *k),
            Symlink(p, t) => Symlink(f(p), *t),
            Unlink(p) => Unlink(f(p)),
            Rmdir(p) => Rmdir(f(p)),
            Link(a, b) => Link(f(a), f(b)),
            Rename(a, b, fl) => Rename(f(a), f(b), *fl),
            Write(p, o, l, s) => Write(f(p), *o, *l, *s),
            Truncate(p, s) => Truncate(f(p), *s),
            Punch(p, o, l, m) => Punch(f(p), *o, *l, *m),
            Copy(a, oi, b, oo, l) => Copy(f(a), *oi, f(b), *oo, *l),
            Read(p, o, l) => Read(f(p), *o, *l),
            ReadAll(p) => ReadAll(f(p)),
            Readdir(p, n) => Readdir(f(p), *n),
            Readlink(p) => Readlink(f(p)),
            Getattr(p) => Getattr(f(p)),
            Chmod(p, m) => Chmod(f(p), *m),
            Chown(p, g) => Chown(f(p), *g),
            SetXattr(p, n, v, m) => SetXattr(f(p), *n, *v, *m),
            GetXattr(p, n) => GetXattr(f(p), *n),
            ListXattr(p) => ListXattr(f(p)),
            RemoveXattr(p, n) => RemoveXattr(f(p), *n),
            Fsync(p) => Fsync(f(p)),
            Open(p) => Open(f(p)),
            HLink(h, p) => HLink(*h, f(p)),
            Crash(p) => Crash(f(p)),
            other => other.clone(),
        }
    }
}

/// Any path of 1..=3 components.
fn raw() -> impl Strategy<Value = P> {
    prop_oneof![
        3 => prop::collection::vec(0u8..4, 1..=1),
        4 => prop::collection::vec(0u8..4, 2..=2),
        2 => prop::collection::vec(0u8..4, 3..=3),
    ]
    .prop_map(P::Path)
}

/// Mostly something that exists.
fn path() -> impl Strategy<Value = P> {
    prop_oneof![6 => any::<u16>().prop_map(P::Existing), 2 => (any::<u16>(), 0u8..4).prop_map(|(i, n)| P::Under(i, n)), 1 => raw()]
}

/// Mostly a name in an existing directory (new, or colliding).
fn fresh() -> impl Strategy<Value = P> {
    prop_oneof![6 => (any::<u16>(), 0u8..4).prop_map(|(i, n)| P::Under(i, n)), 2 => any::<u16>().prop_map(P::Existing), 1 => raw()]
}

/// Mostly a file that is open.
fn opened() -> impl Strategy<Value = P> {
    prop_oneof![3 => any::<u16>().prop_map(P::Opened), 1 => path()]
}

/// Mostly something with extended attributes.
fn xattred() -> impl Strategy<Value = P> {
    prop_oneof![3 => any::<u16>().prop_map(P::Xattred), 2 => path()]
}

/// Mostly a file written since its last fsync.
fn written() -> impl Strategy<Value = P> {
    prop_oneof![3 => any::<u16>().prop_map(P::Written), 1 => file()]
}

/// An index into XATTRS: rarely the empty name.
fn xattr_name() -> impl Strategy<Value = u8> {
    prop_oneof![4 => Just(0u8), 3 => Just(1u8), 1 => Just(2u8)]
}

/// Mostly a directory.
fn dir() -> impl Strategy<Value = P> {
    prop_oneof![6 => any::<u16>().prop_map(P::Dir), 2 => any::<u16>().prop_map(P::Existing), 1 => raw()]
}

/// Mostly a regular file.
fn file() -> impl Strategy<Value = P> {
    prop_oneof![6 => any::<u16>().prop_map(P::File), 2 => any::<u16>().prop_map(P::Existing), 1 => raw()]
}

fn offset() -> impl Strategy<Value = u64> {
    prop_oneof![
        4 => 0u64..3 * BS,
        4 => (0u64..9, -9i64..9).prop_map(|(k, d)| (k as i64 * BS as i64 + d).max(0) as u64),
        2 => 0u64..10 * BS,
        1 => Just(MAX_FILE_SIZE),
    ]
}

fn write_len() -> impl Strategy<Value = usize> {
    prop_oneof![3 => 1usize..16, 3 => 1usize..2 * BS as usize + 50, 1 => Just(BS as usize)]
}

fn size() -> impl Strategy<Value = u64> {
    prop_oneof![
        3 => 0u64..3 * BS,
        3 => (0u64..9, -9i64..9).prop_map(|(k, d)| (k as i64 * BS as i64 + d).max(0) as u64),
        2 => 0u64..10 * BS,
        1 => Just(0u64),
        1 => Just(MAX_FILE_SIZE + 1),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        10 => fresh().prop_map(Op::Create),
        7 => fresh().prop_map(Op::Mkdir),
        2 => (fresh(), 0u8..3).prop_map(|(p, k)| Op::Mknod(p, k)),
        2 => (fresh(), any::<u8>()).prop_map(|(p, t)| Op::Symlink(p, t)),
        5 => prop_oneof![3 => path(), 1 => opened()].prop_map(Op::Unlink),
        3 => dir().prop_map(Op::Rmdir),
        4 => (file(), fresh()).prop_map(|(a, b)| Op::Link(a, b)),
        10 => (path(), prop_oneof![3 => fresh(), 1 => path(), 1 => dir(), 1 => opened()], prop_oneof![6 => Just(0u8), 2 => Just(1u8), 3 => Just(2u8), 1 => Just(3u8)])
            .prop_map(|(a, b, f)| Op::Rename(a, b, f)),
        12 => (file(), offset(), write_len(), any::<u8>()).prop_map(|(p, o, l, s)| Op::Write(p, o, l, s)),
        5 => (file(), size()).prop_map(|(p, s)| Op::Truncate(p, s)),
        3 => (file(), offset(), 0u64..4 * BS + 50, 0u8..3).prop_map(|(p, o, l, m)| Op::Punch(p, o, l, m)),
        3 => (file(), 0u64..8 * BS, file(), offset(), 0u64..4 * BS + 50).prop_map(|(a, oi, b, oo, l)| Op::Copy(a, oi, b, oo, l)),
        3 => (file(), 0u64..8 * BS, 0u32..3 * BS as u32).prop_map(|(p, o, l)| Op::Read(p, o, l)),
        4 => file().prop_map(Op::ReadAll),
        3 => (dir(), 1usize..6).prop_map(|(p, n)| Op::Readdir(p, n)),
        1 => path().prop_map(Op::Readlink),
        2 => path().prop_map(Op::Getattr),
        1 => (path(), any::<u8>()).prop_map(|(p, m)| Op::Chmod(p, m)),
        1 => (path(), any::<u8>()).prop_map(|(p, g)| Op::Chown(p, g)),
        4 => (xattred(), xattr_name(), any::<u8>(), 0u8..3).prop_map(|(p, n, v, m)| Op::SetXattr(p, n, v, m)),
        2 => (xattred(), xattr_name()).prop_map(|(p, n)| Op::GetXattr(p, n)),
        1 => xattred().prop_map(Op::ListXattr),
        2 => (xattred(), xattr_name()).prop_map(|(p, n)| Op::RemoveXattr(p, n)),
        2 => path().prop_map(Op::Fsync),
        2 => written().prop_map(Op::Fsync),
        3 => file().prop_map(Op::Open),
        2 => any::<usize>().prop_map(Op::Release),
        2 => any::<usize>().prop_map(Op::HRead),
        3 => (any::<usize>(), offset(), write_len(), any::<u8>()).prop_map(|(h, o, l, s)| Op::HWrite(h, o, l, s)),
        2 => (any::<usize>(), size()).prop_map(|(h, s)| Op::HTruncate(h, s)),
        1 => (any::<usize>(), fresh()).prop_map(|(h, p)| Op::HLink(h, p)),
        1 => any::<usize>().prop_map(Op::HGetattr),
        2 => Just(Op::Snapshot),
        1 => any::<usize>().prop_map(Op::ReleaseSnap),
        2 => any::<usize>().prop_map(Op::Clone),
        2 => any::<usize>().prop_map(Op::Switch),
        1 => any::<usize>().prop_map(Op::DropVolume),
        2 => Just(Op::Reopen),
        2 => written().prop_map(Op::Crash),
        2 => Just(Op::Check),
        3 => Just(Op::Pause),
    ]
}

/// Per-case engine configuration: a tiny dirty limit makes writes flush the volume's buffer
/// mid-sequence; a short commit interval lets the ticker flush concurrently.
#[derive(Debug, Clone, Copy)]
struct Params {
    small_dirty_limit: bool,
    fast_ticker: bool,
}

fn params() -> impl Strategy<Value = Params> {
    (any::<bool>(), prop::bool::weighted(0.25)).prop_map(|(small_dirty_limit, fast_ticker)| {
        Params {
            small_dirty_limit,
            fast_ticker,
        }
    })
}

fn run_case(p: Params, ops: &[Op]) -> Result<Tally, TestCaseError> {
    let mut w = World::new(p)?;
    for (i, op) in ops.iter().enumerate() {
        w.step(op).map_err(|e| fail(format!("op #{i}: {e}")))?;
    }
    w.resume();
    w.verify_all("at the end")?;
    w.verify_counts()?;
    w.teardown()?;
    w.close_engine();
    Ok(w.tally)
}

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

/// The proptest runner, written out (not the `proptest!` macro) so that the run can check
/// afterwards that crashes really replayed the intent log.
#[test]
fn engine_matches_model() {
    let (cases, max_ops) = (
        env_or("TANDEM_MODEL_CASES", 64),
        env_or("TANDEM_MODEL_OPS", 100).max(1),
    );
    let config = ProptestConfig {
        cases: cases as u32,
        max_shrink_iters: 2000,
        // Where the `proptest!` macro keeps failing seeds: tests/model.proptest-regressions.
        source_file: Some(file!()),
        ..ProptestConfig::default()
    };
    let mut runner = TestRunner::new(config);
    let strategy = (params(), prop::collection::vec(op(), 1..=max_ops));
    let total = std::cell::Cell::new(Tally::default());
    let run = runner.run(&strategy, |(p, ops)| {
        total.set(total.get().add(run_case(p, &ops)?));
        Ok(())
    });
    if let Err(e) = run {
        panic!("{e}\n{runner}");
    }
    crash::check_exercised(total.get(), cases >= 64 && max_ops >= 100);
}
