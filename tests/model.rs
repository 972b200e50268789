//! Model-based property test of the storage engine: random operation sequences run against
//! `tandem::fs::Engine` and against a small in-memory reference filesystem written here, and
//! every result (errno included) and the whole tree are compared.
//!
//! Paths are 1..=3 components over a 4-name alphabet so collisions are frequent. Besides the
//! namespace operations the sequences write at random offsets (sparse, across 4 KiB block
//! boundaries), truncate both ways, hold files open across unlink (orphans), take snapshot
//! generations (each checked against a copy of the model taken at that time, again after
//! later changes and after reopening), release some of them, and reopen the pool from its
//! directory. Each case ends by removing everything and checking that no chunk is leaked.
//!
//! `TANDEM_MODEL_CASES=n` runs n cases (default 64); `TANDEM_MODEL_OPS=n` makes sequences up
//! to n operations long (default 100).

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use proptest::prelude::*;
use proptest::test_runner::TestCaseError;

use tandem::fs::{
    Attr, Ctx, Engine, EngineConfig, FileKind, FsError, MAX_FILE_SIZE, RenameFlags, SetAttr,
    XattrMode,
};
use tandem::store::rows::View;
use tandem::types::{Generation, InodeNo, VolumeId};

const BS: u64 = 4096;
const ROOT: u64 = 1;
const NAMES: [&[u8]; 4] = [b"a", b"b", b"c", b"d"];
const XATTRS: [&[u8]; 3] = [b"user.one", b"user.two", b""];
const CTX: Ctx = Ctx {
    uid: 1000,
    gid: 1000,
};
const MODES: [u32; 5] = [0o644, 0o600, 0o755, 0o2755, 0o1777];
const GIDS: [u32; 3] = [0, 5, 1000];

use libc::{
    E2BIG, EEXIST, EFBIG, EINVAL, EISDIR, ENAMETOOLONG, ENODATA, ENOENT, ENOTDIR, ENOTEMPTY, EPERM,
    ERANGE,
};

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
    HLink(usize, P),
    HGetattr(usize),
    Snapshot,
    ReleaseSnap(usize),
    Reopen,
    Check,
}

impl Op {
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
        3 => file().prop_map(Op::Open),
        2 => any::<usize>().prop_map(Op::Release),
        2 => any::<usize>().prop_map(Op::HRead),
        3 => (any::<usize>(), offset(), write_len(), any::<u8>()).prop_map(|(h, o, l, s)| Op::HWrite(h, o, l, s)),
        2 => (any::<usize>(), size()).prop_map(|(h, s)| Op::HTruncate(h, s)),
        1 => (any::<usize>(), fresh()).prop_map(|(h, p)| Op::HLink(h, p)),
        1 => any::<usize>().prop_map(Op::HGetattr),
        2 => Just(Op::Snapshot),
        1 => any::<usize>().prop_map(Op::ReleaseSnap),
        2 => Just(Op::Reopen),
        2 => Just(Op::Check),
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

// ---------------------------------------------------------------------------------------
// Results as compared
// ---------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stat {
    ino: u64,
    kind: FileKind,
    nlink: u32,
    size: u64,
    perm: u16,
    uid: u32,
    gid: u32,
}

fn stat_of(a: &Attr) -> Stat {
    Stat {
        ino: a.ino.0,
        kind: a.kind,
        nlink: a.nlink,
        // Directory sizes are not specified by POSIX; the model does not track them.
        size: if a.kind == FileKind::Dir { 0 } else { a.size },
        perm: a.perm,
        uid: a.uid,
        gid: a.gid,
    }
}

type Listing = Vec<(Vec<u8>, u64, FileKind)>;

#[derive(PartialEq, Eq)]
enum Out {
    Unit,
    Stat(Stat),
    Count(u32),
    Ino(u64),
    Data(Vec<u8>),
    Dir {
        dot: u64,
        dotdot: u64,
        entries: Listing,
    },
    Names(Vec<Vec<u8>>),
}

impl fmt::Debug for Out {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Out::Unit => write!(f, "()"),
            Out::Stat(s) => write!(f, "{s:?}"),
            Out::Count(n) => write!(f, "{n}"),
            Out::Ino(n) => write!(f, "ino {n}"),
            Out::Data(d) => {
                let nz = d.iter().filter(|&&b| b != 0).count();
                write!(
                    f,
                    "Data(len {}, {} non-zero, head {:?})",
                    d.len(),
                    nz,
                    &d[..d.len().min(16)]
                )
            }
            Out::Dir {
                dot,
                dotdot,
                entries,
            } => {
                let names: Vec<String> = entries
                    .iter()
                    .map(|(n, i, k)| format!("{}={i}:{k:?}", String::from_utf8_lossy(n)))
                    .collect();
                write!(f, "Dir(. {dot}, .. {dotdot}, [{}])", names.join(", "))
            }
            Out::Names(n) => {
                let names: Vec<String> = n
                    .iter()
                    .map(|n| String::from_utf8_lossy(n).into_owned())
                    .collect();
                write!(f, "{names:?}")
            }
        }
    }
}

type R = Result<Out, i32>;

fn describe_diff(got: &R, want: &R) -> String {
    if let (Ok(Out::Data(a)), Ok(Out::Data(b))) = (got, want) {
        let first = a.iter().zip(b.iter()).position(|(x, y)| x != y);
        return format!(
            " (first difference at byte {first:?}; lengths {} vs {})",
            a.len(),
            b.len()
        );
    }
    String::new()
}

fn same(what: &str, got: R, want: R) -> Result<(), TestCaseError> {
    if got != want {
        let diff = describe_diff(&got, &want);
        return Err(TestCaseError::fail(format!(
            "{what}: engine {got:?} != model {want:?}{diff}"
        )));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// The reference model
// ---------------------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq, Eq)]
enum Body {
    Dir {
        entries: BTreeMap<Vec<u8>, u64>,
        parent: u64,
    },
    File(Vec<u8>),
    Symlink(Vec<u8>),
    Fifo,
}

#[derive(Debug, Clone)]
struct Node {
    body: Body,
    /// Links of a non-directory (directories count 2 + subdirectories, computed).
    nlink: u32,
    perm: u16,
    uid: u32,
    gid: u32,
    xattrs: BTreeMap<Vec<u8>, Vec<u8>>,
}

impl Node {
    fn kind(&self) -> FileKind {
        match self.body {
            Body::Dir { .. } => FileKind::Dir,
            Body::File(_) => FileKind::File,
            Body::Symlink(_) => FileKind::Symlink,
            Body::Fifo => FileKind::Fifo,
        }
    }
}

#[derive(Debug, Clone)]
struct Model {
    nodes: BTreeMap<u64, Node>,
    next_ino: u64,
    /// Open handles per inode.
    opens: BTreeMap<u64, u32>,
}

impl Model {
    fn new() -> Model {
        let root = Node {
            body: Body::Dir {
                entries: BTreeMap::new(),
                parent: ROOT,
            },
            nlink: 0,
            perm: 0o755,
            uid: 0,
            gid: 0,
            xattrs: BTreeMap::new(),
        };
        Model {
            nodes: BTreeMap::from([(ROOT, root)]),
            next_ino: 2,
            opens: BTreeMap::new(),
        }
    }

    fn node(&self, ino: u64) -> Result<&Node, i32> {
        self.nodes.get(&ino).ok_or(ENOENT)
    }

    fn node_mut(&mut self, ino: u64) -> Result<&mut Node, i32> {
        self.nodes.get_mut(&ino).ok_or(ENOENT)
    }

    fn entries(&self, ino: u64) -> Result<&BTreeMap<Vec<u8>, u64>, i32> {
        match &self.node(ino)?.body {
            Body::Dir { entries, .. } => Ok(entries),
            _ => Err(ENOTDIR),
        }
    }

    fn entries_mut(&mut self, ino: u64) -> &mut BTreeMap<Vec<u8>, u64> {
        match &mut self.nodes.get_mut(&ino).expect("checked directory").body {
            Body::Dir { entries, .. } => entries,
            _ => panic!("checked directory is not one"),
        }
    }

    fn is_dir(&self, ino: u64) -> bool {
        matches!(
            self.nodes.get(&ino).map(|n| &n.body),
            Some(Body::Dir { .. })
        )
    }

    fn parent_of(&self, dir: u64) -> u64 {
        match self.nodes[&dir].body {
            Body::Dir { parent, .. } => parent,
            _ => panic!("parent of a non-directory"),
        }
    }

    fn set_parent(&mut self, dir: u64, to: u64) {
        if let Some(Node {
            body: Body::Dir { parent, .. },
            ..
        }) = self.nodes.get_mut(&dir)
        {
            *parent = to;
        }
    }

    /// Is directory `ino` the directory `anc` or below it?
    fn within(&self, mut ino: u64, anc: u64) -> bool {
        loop {
            if ino == anc {
                return true;
            }
            if ino == ROOT {
                return false;
            }
            ino = self.parent_of(ino);
        }
    }

    fn lookup(&self, dir: u64, name: &[u8]) -> Result<u64, i32> {
        self.entries(dir)?.get(name).copied().ok_or(ENOENT)
    }

    /// The directory a path's last component is looked up in (not checked to be one) and
    /// the last component, as the test harness resolves it on the engine side.
    fn parent(&self, p: &P) -> Result<(u64, &'static [u8]), i32> {
        let mut cur = ROOT;
        for name in p.dirs() {
            cur = self.lookup(cur, name)?;
        }
        Ok((cur, p.last()))
    }

    fn resolve(&self, p: &P) -> Result<u64, i32> {
        let (d, n) = self.parent(p)?;
        self.lookup(d, n)
    }

    fn stat(&self, ino: u64) -> Result<Stat, i32> {
        let n = self.node(ino)?;
        let (nlink, size) = match &n.body {
            Body::Dir { entries, .. } => (
                2 + entries.values().filter(|&&c| self.is_dir(c)).count() as u32,
                0,
            ),
            Body::File(d) => (n.nlink, d.len() as u64),
            Body::Symlink(t) => (n.nlink, t.len() as u64),
            Body::Fifo => (n.nlink, 0),
        };
        Ok(Stat {
            ino,
            kind: n.kind(),
            nlink,
            size,
            perm: n.perm,
            uid: n.uid,
            gid: n.gid,
        })
    }

    fn make(&mut self, parent: u64, name: &[u8], body: Body, mode: u32) -> Result<Stat, i32> {
        let entries = self.entries(parent)?;
        if entries.contains_key(name) {
            return Err(EEXIST);
        }
        let pn = self.node(parent)?;
        let sgid = pn.perm & 0o2000 != 0;
        let mut perm = (mode & 0o7777) as u16;
        let is_dir = matches!(body, Body::Dir { .. });
        if is_dir && sgid {
            perm |= 0o2000;
        }
        let gid = if sgid { pn.gid } else { CTX.gid };
        let ino = self.next_ino;
        self.next_ino += 1;
        let body = match body {
            Body::Dir { entries, .. } => Body::Dir { entries, parent },
            b => b,
        };
        self.nodes.insert(
            ino,
            Node {
                body,
                nlink: 1,
                perm,
                uid: CTX.uid,
                gid,
                xattrs: BTreeMap::new(),
            },
        );
        self.entries_mut(parent).insert(name.to_vec(), ino);
        self.stat(ino)
    }

    fn symlink(&mut self, parent: u64, name: &[u8], target: Vec<u8>) -> Result<Stat, i32> {
        if target.len() > 4095 {
            return Err(ENAMETOOLONG);
        }
        if target.is_empty() {
            return Err(ENOENT);
        }
        self.make(parent, name, Body::Symlink(target), 0o777)
    }

    /// Drops one link of a non-directory; the last one frees it unless it is open.
    fn drop_link(&mut self, ino: u64) {
        let n = self.nodes.get_mut(&ino).expect("linked node");
        n.nlink -= 1;
        if n.nlink == 0 && !self.opens.contains_key(&ino) {
            self.nodes.remove(&ino);
        }
    }

    fn unlink(&mut self, parent: u64, name: &[u8]) -> Result<(), i32> {
        let ino = self.lookup(parent, name)?;
        if self.is_dir(ino) {
            return Err(EISDIR);
        }
        self.entries_mut(parent).remove(name);
        self.drop_link(ino);
        Ok(())
    }

    fn rmdir(&mut self, parent: u64, name: &[u8]) -> Result<(), i32> {
        let ino = self.lookup(parent, name)?;
        if !self.entries(ino)?.is_empty() {
            return Err(ENOTEMPTY);
        }
        self.entries_mut(parent).remove(name);
        self.nodes.remove(&ino);
        Ok(())
    }

    /// link(2) with Linux's order of checks: the target directory and name first, then the
    /// source's type and link count.
    fn link(&mut self, ino: u64, parent: u64, name: &[u8]) -> Result<Stat, i32> {
        self.node(ino)?;
        if self.entries(parent)?.contains_key(name) {
            return Err(EEXIST);
        }
        let n = self.node(ino)?;
        if n.kind() == FileKind::Dir {
            return Err(EPERM);
        }
        if n.nlink == 0 {
            return Err(ENOENT);
        }
        self.node_mut(ino)?.nlink += 1;
        self.entries_mut(parent).insert(name.to_vec(), ino);
        self.stat(ino)
    }

    /// renameat2(2) as Linux orders its checks.
    fn rename(&mut self, sp: u64, sn: &[u8], dp: u64, dn: &[u8], flags: u8) -> Result<(), i32> {
        let (noreplace, exchange) = (flags & 1 != 0, flags & 2 != 0);
        if noreplace && exchange {
            return Err(EINVAL);
        }
        self.entries(sp)?;
        self.entries(dp)?;
        let s = self.lookup(sp, sn)?;
        let d = self.entries(dp)?.get(dn).copied();
        let s_dir = self.is_dir(s);
        if exchange {
            let d = d.ok_or(ENOENT)?;
            if d == s {
                return Ok(());
            }
            let d_dir = self.is_dir(d);
            if (s_dir && self.within(dp, s)) || (d_dir && self.within(sp, d)) {
                return Err(EINVAL);
            }
            self.entries_mut(sp).insert(sn.to_vec(), d);
            self.entries_mut(dp).insert(dn.to_vec(), s);
            self.set_parent(s, dp);
            self.set_parent(d, sp);
            return Ok(());
        }
        if noreplace && d.is_some() {
            return Err(EEXIST);
        }
        // The source must not be an ancestor of the target, nor the target of the source.
        if s_dir && self.within(dp, s) {
            return Err(EINVAL);
        }
        if let Some(d) = d
            && self.is_dir(d)
            && self.within(sp, d)
        {
            return Err(ENOTEMPTY);
        }
        if d == Some(s) {
            return Ok(());
        }
        if let Some(d) = d {
            let d_dir = self.is_dir(d);
            if s_dir && !d_dir {
                return Err(ENOTDIR);
            }
            if !s_dir && d_dir {
                return Err(EISDIR);
            }
            if d_dir {
                if !self.entries(d)?.is_empty() {
                    return Err(ENOTEMPTY);
                }
                self.nodes.remove(&d);
            } else {
                self.drop_link(d);
            }
        }
        self.entries_mut(sp).remove(sn);
        self.entries_mut(dp).insert(dn.to_vec(), s);
        self.set_parent(s, dp);
        Ok(())
    }

    fn file_mut(&mut self, ino: u64) -> Result<&mut Vec<u8>, i32> {
        match &mut self.node_mut(ino)?.body {
            Body::File(d) => Ok(d),
            Body::Dir { .. } => Err(EISDIR),
            _ => Err(EINVAL),
        }
    }

    fn write(&mut self, ino: u64, off: u64, data: &[u8]) -> Result<u32, i32> {
        let end = off + data.len() as u64;
        if end > MAX_FILE_SIZE {
            return Err(EFBIG);
        }
        let f = self.file_mut(ino)?;
        let end = end as usize;
        if f.len() < end {
            f.resize(end, 0);
        }
        f[off as usize..end].copy_from_slice(data);
        Ok(data.len() as u32)
    }

    fn truncate(&mut self, ino: u64, size: u64) -> Result<Stat, i32> {
        let f = self.file_mut(ino)?;
        if size > MAX_FILE_SIZE {
            return Err(EFBIG);
        }
        f.resize(size as usize, 0);
        self.stat(ino)
    }

    fn read(&self, ino: u64, off: u64, len: u32) -> Result<Vec<u8>, i32> {
        match &self.node(ino)?.body {
            Body::File(d) => {
                let start = (off as usize).min(d.len());
                let end = (off as usize + len as usize).min(d.len());
                Ok(d[start..end].to_vec())
            }
            Body::Dir { .. } => Err(EISDIR),
            _ => Err(EINVAL),
        }
    }

    fn readdir(&self, ino: u64) -> Result<Out, i32> {
        let entries = self.entries(ino)?;
        let list = entries
            .iter()
            .map(|(n, &c)| (n.clone(), c, self.nodes[&c].kind()))
            .collect();
        Ok(Out::Dir {
            dot: ino,
            dotdot: self.parent_of(ino),
            entries: list,
        })
    }

    fn setxattr(
        &mut self,
        ino: u64,
        name: &[u8],
        value: Vec<u8>,
        mode: XattrMode,
    ) -> Result<(), i32> {
        if name.is_empty() {
            return Err(ERANGE);
        }
        if value.len() > 64 * 1024 {
            return Err(E2BIG);
        }
        let n = self.node_mut(ino)?;
        let exists = n.xattrs.contains_key(name);
        match mode {
            XattrMode::Create if exists => return Err(EEXIST),
            XattrMode::Replace if !exists => return Err(ENODATA),
            _ => {}
        }
        n.xattrs.insert(name.to_vec(), value);
        Ok(())
    }

    fn getxattr(&self, ino: u64, name: &[u8]) -> Result<Vec<u8>, i32> {
        if name.is_empty() {
            return Err(ERANGE);
        }
        self.node(ino)?.xattrs.get(name).cloned().ok_or(ENODATA)
    }

    fn removexattr(&mut self, ino: u64, name: &[u8]) -> Result<(), i32> {
        if name.is_empty() {
            return Err(ERANGE);
        }
        self.node_mut(ino)?
            .xattrs
            .remove(name)
            .map(|_| ())
            .ok_or(ENODATA)
    }

    fn open(&mut self, ino: u64) -> Result<Stat, i32> {
        let st = self.stat(ino)?;
        *self.opens.entry(ino).or_insert(0) += 1;
        Ok(st)
    }

    fn release(&mut self, ino: u64) {
        let n = self.opens.get_mut(&ino).expect("open handle");
        *n -= 1;
        if *n == 0 {
            self.opens.remove(&ino);
            if self
                .nodes
                .get(&ino)
                .is_some_and(|n| n.kind() != FileKind::Dir && n.nlink == 0)
            {
                self.nodes.remove(&ino);
            }
        }
    }

    /// What a reopen leaves: no handles, unlinked open files freed.
    fn reopened(&mut self) {
        self.opens.clear();
        self.nodes
            .retain(|_, n| n.kind() == FileKind::Dir || n.nlink > 0);
    }

    /// Every path of the tree (as NAMES indices) with its inode, depth-first in name order.
    fn paths(&self) -> Vec<(Vec<u8>, u64)> {
        let mut out = Vec::new();
        let mut stack = vec![(Vec::new(), ROOT)];
        while let Some((path, ino)) = stack.pop() {
            if let Body::Dir { entries, .. } = &self.nodes[&ino].body {
                for (name, &child) in entries.iter().rev() {
                    let mut p = path.clone();
                    let i = NAMES.iter().position(|n| *n == name.as_slice());
                    p.push(i.expect("model names come from NAMES") as u8);
                    stack.push((p, child));
                }
            }
            if ino != ROOT {
                out.push((path, ino));
            }
        }
        out
    }

    /// The i-th path (modulo their number) whose inode satisfies `pred`.
    fn nth_path(&self, i: u16, pred: impl Fn(u64, &Node) -> bool) -> Option<Vec<u8>> {
        let found: Vec<Vec<u8>> = self
            .paths()
            .into_iter()
            .filter(|(_, ino)| pred(*ino, &self.nodes[ino]))
            .map(|(p, _)| p)
            .collect();
        (!found.is_empty()).then(|| found[i as usize % found.len()].clone())
    }

    /// Resolves a path selector against the current tree.
    fn pick(&self, p: &P) -> P {
        let or_pick = |found: Option<Vec<u8>>, fallback: P| {
            found.map(P::Path).unwrap_or_else(|| self.pick(&fallback))
        };
        match *p {
            P::Path(_) => p.clone(),
            P::Existing(i) => P::Path(
                self.nth_path(i, |_, _| true)
                    .unwrap_or_else(|| vec![(i % 4) as u8]),
            ),
            P::File(i) => or_pick(
                self.nth_path(i, |_, n| n.kind() == FileKind::File),
                P::Existing(i),
            ),
            P::Dir(i) => or_pick(
                self.nth_path(i, |_, n| n.kind() == FileKind::Dir),
                P::Existing(i),
            ),
            P::Opened(i) => or_pick(
                self.nth_path(i, |ino, _| self.opens.contains_key(&ino)),
                P::File(i),
            ),
            P::Xattred(i) => or_pick(
                self.nth_path(i, |_, n| !n.xattrs.is_empty()),
                P::Existing(i),
            ),
            P::Under(i, n) => {
                let mut dirs = vec![Vec::new()];
                dirs.extend(
                    self.paths()
                        .into_iter()
                        .filter(|(p, ino)| p.len() <= 2 && self.nodes[ino].kind() == FileKind::Dir)
                        .map(|(p, _)| p),
                );
                let mut d = dirs[i as usize % dirs.len()].clone();
                d.push(n % 4);
                P::Path(d)
            }
        }
    }

    fn logical_bytes(&self) -> u64 {
        self.nodes
            .values()
            .map(|n| {
                if let Body::File(d) = &n.body {
                    d.len() as u64
                } else {
                    0
                }
            })
            .sum()
    }
}

// ---------------------------------------------------------------------------------------
// The engine side and the comparison
// ---------------------------------------------------------------------------------------

struct World {
    /// Declared before `dir`: fields drop in order, and the pool must close before its
    /// directory goes.
    engine: Option<Engine>,
    dir: tempfile::TempDir,
    cfg: EngineConfig,
    vol: VolumeId,
    model: Model,
    /// Open handles (inode numbers; engine and model agree on them).
    handles: Vec<u64>,
    snaps: Vec<(Generation, Model)>,
}

fn fail(msg: impl Into<String>) -> TestCaseError {
    TestCaseError::fail(msg.into())
}

impl World {
    fn new(p: Params) -> Result<World, TestCaseError> {
        let dir = tempfile::tempdir().map_err(|e| fail(format!("tempdir: {e}")))?;
        let cfg = EngineConfig {
            commit_interval: if p.fast_ticker {
                Duration::from_millis(15)
            } else {
                Duration::from_secs(600)
            },
            dirty_limit: if p.small_dirty_limit {
                3 * BS as usize + 1
            } else {
                64 << 20
            },
            log_capacity: tandem::fs::DEFAULT_LOG_CAPACITY,
        };
        let engine = Engine::open_with(dir.path(), cfg).map_err(|e| fail(format!("open: {e}")))?;
        let vol = engine
            .create_volume("v", Some(BS), Ctx::default())
            .map_err(|e| fail(format!("create_volume: {e}")))?
            .id;
        Ok(World {
            dir,
            cfg,
            engine: Some(engine),
            vol,
            model: Model::new(),
            handles: Vec::new(),
            snaps: Vec::new(),
        })
    }

    fn e(&self) -> &Engine {
        self.engine.as_ref().expect("engine is open")
    }

    fn e_parent(&self, p: &P) -> Result<(InodeNo, &'static [u8]), i32> {
        let mut cur = InodeNo::ROOT;
        for name in p.dirs() {
            cur = self
                .e()
                .lookup(self.vol, View::Live, cur, name)
                .map_err(errno)?
                .ino;
        }
        Ok((cur, p.last()))
    }

    fn e_resolve(&self, p: &P) -> Result<InodeNo, i32> {
        let (d, n) = self.e_parent(p)?;
        Ok(self
            .e()
            .lookup(self.vol, View::Live, d, n)
            .map_err(errno)?
            .ino)
    }

    fn handle(&self, h: usize) -> Option<u64> {
        (!self.handles.is_empty()).then(|| self.handles[h % self.handles.len()])
    }

    fn step(&mut self, op: &Op) -> Result<(), TestCaseError> {
        let v = self.vol;
        let op = &op.resolved(|p| self.model.pick(p));
        let what = format!("{op:?}");
        match op {
            Op::Create(p) => {
                let got = self
                    .e_parent(p)
                    .and_then(|(d, n)| self.e().create(v, d, n, 0o644, CTX).map_err(errno));
                let want = self
                    .model
                    .parent(p)
                    .and_then(|(d, n)| self.model.make(d, n, Body::File(Vec::new()), 0o644));
                same(
                    &what,
                    got.map(|a| Out::Stat(stat_of(&a))),
                    want.map(Out::Stat),
                )
            }
            Op::Mkdir(p) => {
                let got = self
                    .e_parent(p)
                    .and_then(|(d, n)| self.e().mkdir(v, d, n, 0o755, CTX).map_err(errno));
                let empty = Body::Dir {
                    entries: BTreeMap::new(),
                    parent: 0,
                };
                let want = self
                    .model
                    .parent(p)
                    .and_then(|(d, n)| self.model.make(d, n, empty, 0o755));
                same(
                    &what,
                    got.map(|a| Out::Stat(stat_of(&a))),
                    want.map(Out::Stat),
                )
            }
            Op::Mknod(p, k) => {
                let mode = [0o644, libc::S_IFIFO | 0o640, libc::S_IFDIR | 0o755][*k as usize % 3];
                let got = self
                    .e_parent(p)
                    .and_then(|(d, n)| self.e().mknod(v, d, n, mode, 0, CTX).map_err(errno));
                let want = self.model.parent(p).and_then(|(d, n)| match k % 3 {
                    0 => self.model.make(d, n, Body::File(Vec::new()), mode),
                    1 => self.model.make(d, n, Body::Fifo, mode),
                    _ => Err(EINVAL),
                });
                same(
                    &what,
                    got.map(|a| Out::Stat(stat_of(&a))),
                    want.map(Out::Stat),
                )
            }
            Op::Symlink(p, t) => {
                let target = symlink_target(*t);
                let got = self
                    .e_parent(p)
                    .and_then(|(d, n)| self.e().symlink(v, d, n, &target, CTX).map_err(errno));
                let want = self
                    .model
                    .parent(p)
                    .and_then(|(d, n)| self.model.symlink(d, n, target.clone()));
                same(
                    &what,
                    got.map(|a| Out::Stat(stat_of(&a))),
                    want.map(Out::Stat),
                )
            }
            Op::Unlink(p) => {
                let got = self
                    .e_parent(p)
                    .and_then(|(d, n)| self.e().unlink(v, d, n).map_err(errno));
                let want = self
                    .model
                    .parent(p)
                    .and_then(|(d, n)| self.model.unlink(d, n));
                same(&what, got.map(|_| Out::Unit), want.map(|_| Out::Unit))
            }
            Op::Rmdir(p) => {
                let got = self
                    .e_parent(p)
                    .and_then(|(d, n)| self.e().rmdir(v, d, n).map_err(errno));
                let want = self
                    .model
                    .parent(p)
                    .and_then(|(d, n)| self.model.rmdir(d, n));
                same(&what, got.map(|_| Out::Unit), want.map(|_| Out::Unit))
            }
            Op::Link(a, b) => {
                let got = self.e_resolve(a).and_then(|ino| {
                    let (d, n) = self.e_parent(b)?;
                    self.e().link(v, ino, d, n).map_err(errno)
                });
                let want = self.model.resolve(a).and_then(|ino| {
                    let (d, n) = self.model.parent(b)?;
                    self.model.link(ino, d, n)
                });
                same(
                    &what,
                    got.map(|a| Out::Stat(stat_of(&a))),
                    want.map(Out::Stat),
                )
            }
            Op::Rename(a, b, f) => {
                let flags = RenameFlags {
                    noreplace: f & 1 != 0,
                    exchange: f & 2 != 0,
                };
                let got = self.e_parent(a).and_then(|(sp, sn)| {
                    let (dp, dn) = self.e_parent(b)?;
                    self.e().rename(v, sp, sn, dp, dn, flags).map_err(errno)
                });
                let want = self.model.parent(a).and_then(|(sp, sn)| {
                    let (dp, dn) = self.model.parent(b)?;
                    self.model.rename(sp, sn, dp, dn, *f)
                });
                same(&what, got.map(|_| Out::Unit), want.map(|_| Out::Unit))
            }
            Op::Write(p, off, len, seed) => {
                let data = payload(*seed, *len);
                let got = self
                    .e_resolve(p)
                    .and_then(|ino| self.e().write(v, ino, *off, &data).map_err(errno));
                let want = self
                    .model
                    .resolve(p)
                    .and_then(|ino| self.model.write(ino, *off, &data));
                same(&what, got.map(Out::Count), want.map(Out::Count))
            }
            Op::Truncate(p, size) => {
                let set = SetAttr {
                    size: Some(*size),
                    ..Default::default()
                };
                let got = self
                    .e_resolve(p)
                    .and_then(|ino| self.e().setattr(v, ino, set).map_err(errno));
                let want = self
                    .model
                    .resolve(p)
                    .and_then(|ino| self.model.truncate(ino, *size));
                same(
                    &what,
                    got.map(|a| Out::Stat(stat_of(&a))),
                    want.map(Out::Stat),
                )
            }
            Op::Read(p, off, len) => {
                let got = self
                    .e_resolve(p)
                    .and_then(|ino| self.e().read(v, View::Live, ino, *off, *len).map_err(errno));
                let want = self
                    .model
                    .resolve(p)
                    .and_then(|ino| self.model.read(ino, *off, *len));
                same(&what, got.map(Out::Data), want.map(Out::Data))
            }
            Op::ReadAll(p) => {
                let got = self
                    .e_resolve(p)
                    .and_then(|ino| self.e_read_all(View::Live, ino.0));
                let want = self
                    .model
                    .resolve(p)
                    .and_then(|ino| self.model.read(ino, 0, u32::MAX));
                same(&what, got.map(Out::Data), want.map(Out::Data))
            }
            Op::Readdir(p, page) => {
                let got = self
                    .e_resolve(p)
                    .and_then(|ino| self.e_readdir(View::Live, ino.0, *page));
                let want = self
                    .model
                    .resolve(p)
                    .and_then(|ino| self.model.readdir(ino));
                same(&what, got, want)
            }
            Op::Readlink(p) => {
                let got = self
                    .e_resolve(p)
                    .and_then(|ino| self.e().readlink(v, View::Live, ino).map_err(errno));
                let want =
                    self.model
                        .resolve(p)
                        .and_then(|ino| match &self.model.node(ino)?.body {
                            Body::Symlink(t) => Ok(t.clone()),
                            _ => Err(EINVAL),
                        });
                same(&what, got.map(Out::Data), want.map(Out::Data))
            }
            Op::Getattr(p) => {
                let got = self
                    .e_resolve(p)
                    .and_then(|ino| self.e().getattr(v, View::Live, ino).map_err(errno));
                let want = self.model.resolve(p).and_then(|ino| self.model.stat(ino));
                same(
                    &what,
                    got.map(|a| Out::Stat(stat_of(&a))),
                    want.map(Out::Stat),
                )
            }
            Op::Chmod(p, m) => {
                let mode = MODES[*m as usize % MODES.len()];
                let set = SetAttr {
                    mode: Some(mode),
                    ..Default::default()
                };
                let got = self
                    .e_resolve(p)
                    .and_then(|ino| self.e().setattr(v, ino, set).map_err(errno));
                let want = self.model.resolve(p).and_then(|ino| {
                    self.model.node_mut(ino)?.perm = mode as u16;
                    self.model.stat(ino)
                });
                same(
                    &what,
                    got.map(|a| Out::Stat(stat_of(&a))),
                    want.map(Out::Stat),
                )
            }
            Op::Chown(p, g) => {
                let gid = GIDS[*g as usize % GIDS.len()];
                let set = SetAttr {
                    gid: Some(gid),
                    ..Default::default()
                };
                let got = self
                    .e_resolve(p)
                    .and_then(|ino| self.e().setattr(v, ino, set).map_err(errno));
                let want = self.model.resolve(p).and_then(|ino| {
                    self.model.node_mut(ino)?.gid = gid;
                    self.model.stat(ino)
                });
                same(
                    &what,
                    got.map(|a| Out::Stat(stat_of(&a))),
                    want.map(Out::Stat),
                )
            }
            Op::SetXattr(p, n, val, m) => {
                let name = XATTRS[*n as usize % XATTRS.len()];
                let value = xattr_value(*val);
                let mode = [XattrMode::Any, XattrMode::Create, XattrMode::Replace][*m as usize % 3];
                let got = self
                    .e_resolve(p)
                    .and_then(|ino| self.e().setxattr(v, ino, name, &value, mode).map_err(errno));
                let want = self
                    .model
                    .resolve(p)
                    .and_then(|ino| self.model.setxattr(ino, name, value.clone(), mode));
                same(&what, got.map(|_| Out::Unit), want.map(|_| Out::Unit))
            }
            Op::GetXattr(p, n) => {
                let name = XATTRS[*n as usize % XATTRS.len()];
                let got = self
                    .e_resolve(p)
                    .and_then(|ino| self.e().getxattr(v, View::Live, ino, name).map_err(errno));
                let want = self
                    .model
                    .resolve(p)
                    .and_then(|ino| self.model.getxattr(ino, name));
                same(&what, got.map(Out::Data), want.map(Out::Data))
            }
            Op::ListXattr(p) => {
                let got = self
                    .e_resolve(p)
                    .and_then(|ino| self.e_listxattr(View::Live, ino.0));
                let want = self
                    .model
                    .resolve(p)
                    .and_then(|ino| Ok(self.model.node(ino)?.xattrs.keys().cloned().collect()));
                same(&what, got.map(Out::Names), want.map(Out::Names))
            }
            Op::RemoveXattr(p, n) => {
                let name = XATTRS[*n as usize % XATTRS.len()];
                let got = self
                    .e_resolve(p)
                    .and_then(|ino| self.e().removexattr(v, ino, name).map_err(errno));
                let want = self
                    .model
                    .resolve(p)
                    .and_then(|ino| self.model.removexattr(ino, name));
                same(&what, got.map(|_| Out::Unit), want.map(|_| Out::Unit))
            }
            Op::Fsync(p) => {
                let got = self
                    .e_resolve(p)
                    .and_then(|ino| self.e().fsync(v, ino).map_err(errno));
                let want = self.model.resolve(p).map(|_| ());
                same(&what, got.map(|_| Out::Unit), want.map(|_| Out::Unit))
            }
            Op::Open(p) => {
                let got = self
                    .e_resolve(p)
                    .and_then(|ino| self.e().open(v, View::Live, ino).map_err(errno));
                let want = self.model.resolve(p).and_then(|ino| self.model.open(ino));
                if let Ok(st) = &want {
                    self.handles.push(st.ino);
                }
                same(
                    &what,
                    got.map(|a| Out::Stat(stat_of(&a))),
                    want.map(Out::Stat),
                )
            }
            Op::Release(h) => {
                let Some(ino) = self.handle(*h) else {
                    return Ok(());
                };
                let pos = self.handles.iter().position(|&i| i == ino).expect("handle");
                self.handles.remove(pos);
                self.model.release(ino);
                let got = self.e().release(v, View::Live, InodeNo(ino)).map_err(errno);
                same(&what, got.map(|_| Out::Unit), Ok(Out::Unit))
            }
            Op::HRead(h) => {
                let Some(ino) = self.handle(*h) else {
                    return Ok(());
                };
                let got = self.e_read_all(View::Live, ino);
                let want = self.model.read(ino, 0, u32::MAX);
                same(&what, got.map(Out::Data), want.map(Out::Data))
            }
            Op::HWrite(h, off, len, seed) => {
                let Some(ino) = self.handle(*h) else {
                    return Ok(());
                };
                let data = payload(*seed, *len);
                let got = self.e().write(v, InodeNo(ino), *off, &data).map_err(errno);
                let want = self.model.write(ino, *off, &data);
                same(&what, got.map(Out::Count), want.map(Out::Count))
            }
            Op::HTruncate(h, size) => {
                let Some(ino) = self.handle(*h) else {
                    return Ok(());
                };
                let set = SetAttr {
                    size: Some(*size),
                    ..Default::default()
                };
                let got = self.e().setattr(v, InodeNo(ino), set).map_err(errno);
                let want = self.model.truncate(ino, *size);
                same(
                    &what,
                    got.map(|a| Out::Stat(stat_of(&a))),
                    want.map(Out::Stat),
                )
            }
            Op::HLink(h, p) => {
                let Some(ino) = self.handle(*h) else {
                    return Ok(());
                };
                let got = self
                    .e_parent(p)
                    .and_then(|(d, n)| self.e().link(v, InodeNo(ino), d, n).map_err(errno));
                let want = self
                    .model
                    .parent(p)
                    .and_then(|(d, n)| self.model.link(ino, d, n));
                same(
                    &what,
                    got.map(|a| Out::Stat(stat_of(&a))),
                    want.map(Out::Stat),
                )
            }
            Op::HGetattr(h) => {
                let Some(ino) = self.handle(*h) else {
                    return Ok(());
                };
                let got = self.e().getattr(v, View::Live, InodeNo(ino)).map_err(errno);
                let want = self.model.stat(ino);
                same(
                    &what,
                    got.map(|a| Out::Stat(stat_of(&a))),
                    want.map(Out::Stat),
                )
            }
            Op::Snapshot => {
                let gens = self
                    .e()
                    .snapshot_generations(&[v])
                    .map_err(|e| fail(format!("snapshot: {e}")))?;
                prop_assert_eq!(gens.len(), 1);
                let g = gens[0].1;
                self.snaps.push((g, self.model.clone()));
                self.verify_view(View::At(g), &self.model, "new snapshot")
            }
            Op::ReleaseSnap(i) => {
                if self.snaps.is_empty() {
                    return Ok(());
                }
                let (g, _) = self.snaps.remove(i % self.snaps.len());
                self.e()
                    .release_generation(v, g)
                    .map_err(|e| fail(format!("release_generation: {e}")))?;
                self.verify_all("after releasing a snapshot")
            }
            Op::Reopen => self.reopen(),
            Op::Check => self.verify_view(View::Live, &self.model, "live"),
        }
    }

    fn reopen(&mut self) -> Result<(), TestCaseError> {
        drop(self.engine.take());
        let e = Engine::open_with(self.dir.path(), self.cfg)
            .map_err(|e| fail(format!("reopen: {e}")))?;
        prop_assert_eq!(e.volume_id("v").map_err(errno), Ok(self.vol));
        self.engine = Some(e);
        self.handles.clear();
        self.model.reopened();
        self.verify_all("after reopen")?;
        self.verify_counts()
    }

    fn e_read_all(&self, view: View, ino: u64) -> Result<Vec<u8>, i32> {
        // Reads in pieces that straddle block boundaries.
        let mut out = Vec::new();
        loop {
            let piece = self
                .e()
                .read(
                    self.vol,
                    view,
                    InodeNo(ino),
                    out.len() as u64,
                    3 * BS as u32 + 123,
                )
                .map_err(errno)?;
            if piece.is_empty() {
                return Ok(out);
            }
            out.extend_from_slice(&piece);
        }
    }

    fn e_readdir(&self, view: View, ino: u64, page: usize) -> Result<Out, i32> {
        let (mut dot, mut dotdot, mut entries) = (0, 0, Vec::new());
        let mut off = 0;
        for _ in 0..1000 {
            let batch = self
                .e()
                .readdir(self.vol, view, InodeNo(ino), off, page)
                .map_err(errno)?;
            if batch.is_empty() {
                break;
            }
            for d in batch {
                off = d.offset;
                match d.name.as_slice() {
                    b"." => dot = d.ino.0,
                    b".." => dotdot = d.ino.0,
                    _ => entries.push((d.name, d.ino.0, d.kind)),
                }
            }
        }
        entries.sort_by(|a, b| (&a.0, a.1, a.2.code()).cmp(&(&b.0, b.1, b.2.code())));
        Ok(Out::Dir {
            dot,
            dotdot,
            entries,
        })
    }

    fn e_listxattr(&self, view: View, ino: u64) -> Result<Vec<Vec<u8>>, i32> {
        let mut names = self
            .e()
            .listxattr(self.vol, view, InodeNo(ino))
            .map_err(errno)?;
        names.sort();
        Ok(names)
    }

    /// Compares the whole tree a view shows with a model, from the root.
    fn verify_view(&self, view: View, m: &Model, what: &str) -> Result<(), TestCaseError> {
        self.verify_node(view, m, ROOT, "", what)
    }

    fn verify_node(
        &self,
        view: View,
        m: &Model,
        ino: u64,
        path: &str,
        what: &str,
    ) -> Result<(), TestCaseError> {
        let (e, v) = (self.e(), self.vol);
        let at = |s: &str| format!("{what} ({view:?}) {s} of \"{path}/\" (ino {ino})");
        let node = &m.nodes[&ino];
        let got = e
            .getattr(v, view, InodeNo(ino))
            .map_err(errno)
            .map(|a| Out::Stat(stat_of(&a)));
        same(&at("getattr"), got, m.stat(ino).map(Out::Stat))?;
        let names: Vec<Vec<u8>> = node.xattrs.keys().cloned().collect();
        same(
            &at("listxattr"),
            self.e_listxattr(view, ino).map(Out::Names),
            Ok(Out::Names(names)),
        )?;
        for (k, val) in &node.xattrs {
            let got = e
                .getxattr(v, view, InodeNo(ino), k)
                .map_err(errno)
                .map(Out::Data);
            same(&at("getxattr"), got, Ok(Out::Data(val.clone())))?;
        }
        match &node.body {
            Body::Dir { entries, .. } => {
                same(
                    &at("readdir"),
                    self.e_readdir(view, ino, 64),
                    m.readdir(ino),
                )?;
                for (name, &child) in entries {
                    let got = e
                        .lookup(v, view, InodeNo(ino), name)
                        .map(|a| a.ino.0)
                        .map_err(errno);
                    same(&at("lookup"), got.map(Out::Ino), Ok(Out::Ino(child)))?;
                    let sub = format!("{path}/{}", String::from_utf8_lossy(name));
                    self.verify_node(view, m, child, &sub, what)?;
                }
                Ok(())
            }
            Body::File(d) => same(
                &at("read"),
                self.e_read_all(view, ino).map(Out::Data),
                Ok(Out::Data(d.clone())),
            ),
            Body::Symlink(t) => {
                let got = e
                    .readlink(v, view, InodeNo(ino))
                    .map_err(errno)
                    .map(Out::Data);
                same(&at("readlink"), got, Ok(Out::Data(t.clone())))
            }
            Body::Fifo => Ok(()),
        }
    }

    fn verify_all(&self, what: &str) -> Result<(), TestCaseError> {
        self.verify_view(View::Live, &self.model, what)?;
        for (g, m) in &self.snaps {
            self.verify_view(View::At(*g), m, what)?;
        }
        Ok(())
    }

    /// The volume's counters: files (inodes, orphans included) and logical bytes.
    fn verify_counts(&self) -> Result<(), TestCaseError> {
        let info = self
            .e()
            .volume_info("v")
            .map_err(|e| fail(format!("volume_info: {e}")))?;
        prop_assert_eq!(
            info.files,
            self.model.nodes.len() as u64,
            "files of the volume"
        );
        prop_assert_eq!(
            info.logical_bytes,
            self.model.logical_bytes(),
            "logical bytes of the volume"
        );
        Ok(())
    }

    /// Releases every snapshot and handle and removes the whole tree: nothing may remain
    /// referenced in the pool.
    fn teardown(&mut self) -> Result<(), TestCaseError> {
        let v = self.vol;
        for (g, _) in std::mem::take(&mut self.snaps) {
            self.e()
                .release_generation(v, g)
                .map_err(|e| fail(format!("release_generation: {e}")))?;
        }
        self.verify_view(View::Live, &self.model, "after releasing all snapshots")?;
        for ino in std::mem::take(&mut self.handles) {
            self.model.release(ino);
            self.e()
                .release(v, View::Live, InodeNo(ino))
                .map_err(|e| fail(format!("release: {e}")))?;
        }
        self.remove_tree(ROOT)?;
        self.verify_counts()?;
        let info = self
            .e()
            .volume_info("v")
            .map_err(|e| fail(format!("volume_info: {e}")))?;
        prop_assert_eq!(info.physical_bytes, 0, "stored bytes of an empty volume");
        let stats = self
            .e()
            .pool_stats()
            .map_err(|e| fail(format!("pool_stats: {e}")))?;
        prop_assert_eq!(
            (stats.physical_bytes, stats.referenced_bytes),
            (0, 0),
            "chunks left in an empty pool"
        );
        Ok(())
    }

    fn remove_tree(&mut self, dir: u64) -> Result<(), TestCaseError> {
        let entries = self
            .model
            .entries(dir)
            .map_err(|e| fail(format!("model dir {dir}: {e}")))?
            .clone();
        for (name, child) in entries {
            let r = if self.model.is_dir(child) {
                self.remove_tree(child)?;
                self.model
                    .rmdir(dir, &name)
                    .map_err(|e| fail(format!("model rmdir: {e}")))?;
                self.e().rmdir(self.vol, InodeNo(dir), &name)
            } else {
                self.model
                    .unlink(dir, &name)
                    .map_err(|e| fail(format!("model unlink: {e}")))?;
                self.e().unlink(self.vol, InodeNo(dir), &name)
            };
            r.map_err(|e| {
                fail(format!(
                    "teardown: removing {} in {dir}: {e}",
                    String::from_utf8_lossy(&name)
                ))
            })?;
        }
        Ok(())
    }
}

fn run_case(p: Params, ops: &[Op]) -> Result<(), TestCaseError> {
    let mut w = World::new(p)?;
    for (i, op) in ops.iter().enumerate() {
        w.step(op).map_err(|e| fail(format!("op #{i}: {e}")))?;
    }
    w.verify_all("at the end")?;
    w.verify_counts()?;
    w.teardown()
}

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: env_or("TANDEM_MODEL_CASES", 64) as u32, max_shrink_iters: 2000, ..ProptestConfig::default() })]

    #[test]
    fn engine_matches_model(p in params(), ops in prop::collection::vec(op(), 1..=env_or("TANDEM_MODEL_OPS", 100).max(1))) {
        run_case(p, &ops)?;
    }
}
