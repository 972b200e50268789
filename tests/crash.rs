//! Crash test: a child process (this test binary, re-invoked) runs a deterministic random
//! workload on a pool and is killed with SIGKILL at a random moment; the parent then reopens
//! the pool and checks what survived. The same pool is reused for every kill, so from the
//! second round on the child starts from a pool that was itself recovered from a crash.
//!
//! The child keeps a journal outside the pool. Before each operation it appends the
//! operation (a plain write: it survives SIGKILL, which does not lose the page cache); after
//! each `Engine::fsync` it appends the file's length and blake3 hash and calls `sync_all`.
//! The parent replays the journal into a model and accepts the recovered pool only if it is
//! a state the workload really went through, no older than what fsync promised:
//!
//! - the namespace (names in both directories of both volumes) equals the model's namespace
//!   after some number k of namespace operations, with k covering every namespace operation
//!   issued before the last fsync (an fsync makes every earlier commit durable);
//! - every file's content is one of the contents that file had, no older than its last
//!   fsync (nor its last truncate, which commits, before a point known to be durable) and
//!   no newer than namespace operation k + 1 (commits are durable in order).
//!
//! A file fsynced and not changed afterwards therefore has exactly one accepted content.
//! The volume and pool space counters are checked against the recovered files as well.

use std::collections::{BTreeMap, HashMap};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod common;

use common::Rng;
use tandem::fs::{Ctx, Engine, EngineConfig, FileKind, RenameFlags, SetAttr};
use tandem::store::ReadView;
use tandem::store::rows::View;
use tandem::types::{InodeNo, VolumeId};

const ENV: &str = "TANDEM_CRASH_CHILD";
/// Kills per run (TANDEM_CRASH_ROUNDS overrides).
const ITERATIONS: u64 = 60;
/// Volumes of the pool and their block sizes: a small one and one where most writes are
/// read-modify-write of a partial block.
const VOLS: [(&str, u64); 2] = [("a", 4096), ("b", 65536)];
/// Directory 0 is the root, directory 1 is "d" in the root.
const SUBDIR: &[u8] = b"d";
const ROOT: InodeNo = InodeNo::ROOT;
const CTX: Ctx = Ctx { uid: 0, gid: 0 };
/// The intent log's ring: small, so that it wraps and fills up (fsync then checkpoints),
/// and records of large files do not fit (fsync then commits).
const LOG_CAPACITY: u64 = 512 << 10;
/// Files per volume the workload keeps at most.
const MAX_FILES: usize = 10;
/// A file past this size is cut back instead of grown.
const MAX_SIZE: usize = 1_500_000;

/// (volume index, directory index, name)
type Key = (usize, usize, String);
/// A file the child found when it started: name, file id, length, hash.
type BaseFile = (Key, u64, u64, String);

/// The bytes of one write: zeros (holes), a repeated byte (dedup) or pseudo-random.
fn data(seed: u64, len: usize) -> Vec<u8> {
    match seed % 10 {
        0 => vec![0; len],
        1 => vec![(seed >> 8) as u8 | 1; len],
        _ => {
            let mut r = Rng(seed);
            let mut v = Vec::with_capacity(len + 8);
            while v.len() < len {
                v.extend_from_slice(&r.next().to_le_bytes());
            }
            v.truncate(len);
            v
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Op {
    Create {
        key: Key,
        fid: u64,
    },
    Write {
        fid: u64,
        off: u64,
        len: u64,
        seed: u64,
    },
    Trunc {
        fid: u64,
        size: u64,
    },
    Rename {
        from: Key,
        to: Key,
        exchange: bool,
    },
    Unlink {
        key: Key,
    },
    /// Written after `Engine::fsync` of the file returned: its length and hash then.
    Synced {
        fid: u64,
        len: u64,
        hash: String,
    },
}

impl Op {
    fn line(&self) -> String {
        match self {
            Op::Create { key, fid } => format!("C {} {} {} {fid}\n", key.0, key.1, key.2),
            Op::Write {
                fid,
                off,
                len,
                seed,
            } => format!("W {fid} {off} {len} {seed}\n"),
            Op::Trunc { fid, size } => format!("T {fid} {size}\n"),
            Op::Rename { from, to, exchange } => {
                format!(
                    "R {} {} {} {} {} {}\n",
                    from.0, from.1, from.2, to.1, to.2, *exchange as u8
                )
            }
            Op::Unlink { key } => format!("U {} {} {}\n", key.0, key.1, key.2),
            Op::Synced { fid, len, hash } => format!("F {fid} {len} {hash}\n"),
        }
    }

    fn is_namespace(&self) -> bool {
        matches!(
            self,
            Op::Create { .. } | Op::Rename { .. } | Op::Unlink { .. }
        )
    }
}

/// One journal line, parsed.
enum Line {
    /// What the child found in the pool when it started: key, fid, length, hash.
    Base(Key, u64, u64, String),
    Op(Op),
}

fn parse_line(l: &str) -> Line {
    let f: Vec<&str> = l.split(' ').collect();
    let n = |i: usize| -> u64 {
        f[i].parse()
            .unwrap_or_else(|_| panic!("bad journal line {l:?}"))
    };
    let key = |i: usize| -> Key { (n(i) as usize, n(i + 1) as usize, f[i + 2].to_string()) };
    match f[0] {
        "B" => Line::Base(key(1), n(4), n(5), f[6].to_string()),
        "C" => Line::Op(Op::Create {
            key: key(1),
            fid: n(4),
        }),
        "W" => Line::Op(Op::Write {
            fid: n(1),
            off: n(2),
            len: n(3),
            seed: n(4),
        }),
        "T" => Line::Op(Op::Trunc {
            fid: n(1),
            size: n(2),
        }),
        "R" => {
            let from = key(1);
            let to = (from.0, n(4) as usize, f[5].to_string());
            Line::Op(Op::Rename {
                from,
                to,
                exchange: n(6) == 1,
            })
        }
        "U" => Line::Op(Op::Unlink { key: key(1) }),
        "F" => Line::Op(Op::Synced {
            fid: n(1),
            len: n(2),
            hash: f[3].to_string(),
        }),
        _ => panic!("bad journal line {l:?}"),
    }
}

/// Complete lines of a journal (a line cut by the kill is dropped).
fn read_journal(path: &Path) -> (Vec<BaseFile>, Vec<Op>) {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let complete = match text.rfind('\n') {
        Some(i) => &text[..i],
        None => "",
    };
    let (mut base, mut ops) = (Vec::new(), Vec::new());
    for l in complete.lines() {
        match parse_line(l) {
            Line::Base(k, fid, len, hash) => base.push((k, fid, len, hash)),
            Line::Op(op) => ops.push(op),
        }
    }
    (base, ops)
}

/// What the workload believes: which file each name holds, and every file's content.
#[derive(Default, Clone)]
struct Model {
    ns: BTreeMap<Key, u64>,
    files: HashMap<u64, Vec<u8>>,
}

impl Model {
    fn from_state(state: &BTreeMap<Key, Vec<u8>>) -> Model {
        let mut m = Model::default();
        for (fid, (k, content)) in state.iter().enumerate() {
            m.ns.insert(k.clone(), fid as u64);
            m.files.insert(fid as u64, content.clone());
        }
        m
    }

    fn apply(&mut self, op: &Op) {
        match op {
            Op::Create { key, fid } => {
                self.ns.insert(key.clone(), *fid);
                self.files.insert(*fid, Vec::new());
            }
            Op::Write {
                fid,
                off,
                len,
                seed,
            } => {
                let f = self.files.get_mut(fid).expect("write to a known file");
                let (off, end) = (*off as usize, (*off + *len) as usize);
                if f.len() < end {
                    f.resize(end, 0);
                }
                f[off..end].copy_from_slice(&data(*seed, *len as usize));
            }
            Op::Trunc { fid, size } => self
                .files
                .get_mut(fid)
                .expect("truncate of a known file")
                .resize(*size as usize, 0),
            Op::Rename { from, to, exchange } => {
                let a = self.ns.remove(from).expect("rename source exists");
                if *exchange {
                    let b = self
                        .ns
                        .insert(to.clone(), a)
                        .expect("exchange target exists");
                    self.ns.insert(from.clone(), b);
                } else {
                    self.ns.insert(to.clone(), a);
                }
            }
            Op::Unlink { key } => {
                self.ns.remove(key).expect("unlinked name exists");
            }
            Op::Synced { .. } => {}
        }
    }
}

fn hash(b: &[u8]) -> blake3::Hash {
    blake3::hash(b)
}

fn dir_inos(e: &Engine, vol: VolumeId) -> [InodeNo; 2] {
    [
        ROOT,
        e.lookup(vol, View::Live, ROOT, SUBDIR)
            .expect("directory d")
            .ino,
    ]
}

/// Every regular file of both volumes with its inode and content, read through the engine.
fn read_state(e: &Engine, vols: &[VolumeId]) -> BTreeMap<Key, (InodeNo, Vec<u8>)> {
    let mut out = BTreeMap::new();
    for (vi, &vol) in vols.iter().enumerate() {
        for (di, dir) in dir_inos(e, vol).into_iter().enumerate() {
            let mut offset = 0;
            loop {
                let entries = e
                    .readdir(vol, View::Live, dir, offset, 64)
                    .expect("readdir");
                let Some(last) = entries.last() else { break };
                offset = last.offset;
                for ent in entries {
                    if ent.name == b"." || ent.name == b".." || (di == 0 && ent.name == SUBDIR) {
                        continue;
                    }
                    assert_eq!(
                        ent.kind,
                        FileKind::File,
                        "unexpected entry {:?}",
                        String::from_utf8_lossy(&ent.name)
                    );
                    let attr = e
                        .getattr(vol, View::Live, ent.ino)
                        .expect("getattr of a listed file");
                    let mut content = Vec::with_capacity(attr.size as usize);
                    while (content.len() as u64) < attr.size {
                        let piece = e
                            .read(vol, View::Live, ent.ino, content.len() as u64, 1 << 20)
                            .expect("read");
                        assert!(!piece.is_empty(), "short read before the file's size");
                        content.extend_from_slice(&piece);
                    }
                    assert!(
                        e.read(vol, View::Live, ent.ino, attr.size, 4096)
                            .expect("read at eof")
                            .is_empty()
                    );
                    let name = String::from_utf8(ent.name).expect("utf-8 name");
                    out.insert((vi, di, name), (ent.ino, content));
                }
            }
        }
    }
    out
}

fn volume_ids(e: &Engine) -> Vec<VolumeId> {
    VOLS.iter()
        .map(|(n, _)| e.volume_id(n).expect("volume exists"))
        .collect()
}

// ---------------------------------------------------------------------------------------
// The child.

#[test]
#[ignore = "the child process of crash_recovery_keeps_fsynced_data; does nothing on its own"]
fn child_writer() {
    let Ok(spec) = std::env::var(ENV) else { return };
    let mut parts = spec.split('|');
    let pool = PathBuf::from(parts.next().expect("pool"));
    let journal = PathBuf::from(parts.next().expect("journal"));
    let seed: u64 = parts.next().and_then(|s| s.parse().ok()).expect("seed");
    run_child(&pool, &journal, seed);
}

struct Child {
    e: Engine,
    vols: Vec<VolumeId>,
    dirs: Vec<[InodeNo; 2]>,
    journal: File,
    m: Model,
    inos: HashMap<u64, (usize, InodeNo)>,
    next_fid: u64,
    /// Where the intent log's acknowledged part ends (see `Engine::intent_log_tail`).
    tail: PathBuf,
}

impl Child {
    fn log(&mut self, op: &Op) {
        self.journal
            .write_all(op.line().as_bytes())
            .expect("journal write");
    }

    /// Journals the operation, then applies it to the model and to the engine.
    fn run(&mut self, op: Op) {
        self.log(&op);
        self.m.apply(&op);
        let dir = |c: &Child, k: &Key| (c.vols[k.0], c.dirs[k.0][k.1]);
        match &op {
            Op::Create { key, fid } => {
                let (vol, d) = dir(self, key);
                let a = self
                    .e
                    .create(vol, d, key.2.as_bytes(), 0o644, CTX)
                    .expect("create");
                self.inos.insert(*fid, (key.0, a.ino));
            }
            Op::Write {
                fid,
                off,
                len,
                seed,
            } => {
                let (v, ino) = self.inos[fid];
                let n = self
                    .e
                    .write(self.vols[v], ino, *off, &data(*seed, *len as usize))
                    .expect("write");
                assert_eq!(n as u64, *len);
            }
            Op::Trunc { fid, size } => {
                let (v, ino) = self.inos[fid];
                self.e
                    .setattr(
                        self.vols[v],
                        ino,
                        SetAttr {
                            size: Some(*size),
                            ..Default::default()
                        },
                    )
                    .expect("truncate");
            }
            Op::Rename { from, to, exchange } => {
                let ((vol, fd), (_, td)) = (dir(self, from), dir(self, to));
                let flags = RenameFlags {
                    noreplace: false,
                    exchange: *exchange,
                };
                self.e
                    .rename(vol, fd, from.2.as_bytes(), td, to.2.as_bytes(), flags)
                    .expect("rename");
            }
            Op::Unlink { key } => {
                let (vol, d) = dir(self, key);
                self.e.unlink(vol, d, key.2.as_bytes()).expect("unlink");
            }
            Op::Synced { .. } => unreachable!("journalled by fsync"),
        }
    }

    /// fsync, then a durable journal record of the file's content.
    fn fsync(&mut self, fid: u64) {
        let (v, ino) = self.inos[&fid];
        self.e.fsync(self.vols[v], ino).expect("fsync");
        if let Some((_, off, free)) = self.e.intent_log_tail() {
            // Where the log's acknowledged part ends: the parent may cut what follows, as a
            // power loss would (a plain write: SIGKILL keeps the page cache).
            std::fs::write(&self.tail, format!("{off} {free}")).expect("tail file");
        }
        let content = &self.m.files[&fid];
        let op = Op::Synced {
            fid,
            len: content.len() as u64,
            hash: hash(content).to_hex().to_string(),
        };
        self.log(&op);
        self.journal.sync_all().expect("journal sync");
    }
}

fn tail_path(journal: &Path) -> PathBuf {
    journal.with_extension("tail")
}

/// Plays a power loss on the intent log: what follows its acknowledged part is cut (zeroed
/// from a random point) or garbled at a random byte. Replay must stop there, never apply
/// garbage, and keep every acknowledged record.
fn cut_log_tail(journal: &Path, rng: &mut Rng) -> bool {
    let Ok(t) = std::fs::read_to_string(tail_path(journal)) else {
        return false;
    };
    let mut it = t.split(' ').filter_map(|x| x.parse::<u64>().ok());
    let (Some(off), Some(free)) = (it.next(), it.next()) else {
        return false;
    };
    let log = journal
        .parent()
        .expect("journal dir")
        .join("pool")
        .join("intent.log");
    let f = OpenOptions::new()
        .write(true)
        .open(&log)
        .expect("intent log");
    let len = f.metadata().expect("log size").len();
    let end = (off + free).min(len);
    if end <= off {
        return false;
    }
    use std::os::unix::fs::FileExt;
    let at = off + rng.below(end - off);
    if rng.chance(50) {
        let zeros = vec![0u8; (end - at) as usize];
        f.write_all_at(&zeros, at).expect("cut the log");
    } else {
        f.write_all_at(&[rng.next() as u8 | 1], at)
            .expect("garble the log");
    }
    true
}

fn run_child(pool: &Path, journal: &Path, seed: u64) {
    // Most rounds never commit on their own, so only fsync makes anything durable; some run
    // the commit ticker fast, some flush on a small buffer limit.
    let cfg = EngineConfig {
        commit_interval: if seed % 4 == 3 {
            Duration::from_millis(25)
        } else {
            Duration::from_secs(3600)
        },
        dirty_limit: if seed.is_multiple_of(3) {
            256 << 10
        } else {
            64 << 20
        },
        log_capacity: LOG_CAPACITY,
    };
    let e = Engine::open_with(pool, cfg).expect("open pool");
    let vols = volume_ids(&e);
    let dirs: Vec<[InodeNo; 2]> = vols.iter().map(|&v| dir_inos(&e, v)).collect();
    let journal_path = journal;
    let journal = OpenOptions::new()
        .create(true)
        .append(true)
        .open(journal)
        .expect("journal");
    let state = read_state(&e, &vols);
    let mut c = Child {
        e,
        vols,
        dirs,
        journal,
        m: Model::default(),
        inos: HashMap::new(),
        next_fid: 0,
        tail: tail_path(journal_path),
    };
    for (key, (ino, content)) in state {
        let fid = c.next_fid;
        c.next_fid += 1;
        let line = format!(
            "B {} {} {} {fid} {} {}\n",
            key.0,
            key.1,
            key.2,
            content.len(),
            hash(&content).to_hex()
        );
        c.journal.write_all(line.as_bytes()).expect("journal write");
        c.inos.insert(fid, (key.0, ino));
        c.m.ns.insert(key, fid);
        c.m.files.insert(fid, content);
    }
    let mut rng = Rng(seed);
    let started = Instant::now();
    let mut serial = 0u64;
    // The parent kills us long before this; the limit only keeps a lost child from running on.
    while started.elapsed() < Duration::from_secs(30) {
        serial += 1;
        let live: Vec<(Key, u64)> = c.m.ns.iter().map(|(k, f)| (k.clone(), *f)).collect();
        let count = |v: usize| live.iter().filter(|(k, _)| k.0 == v).count();
        let new_name = |rng: &mut Rng, v: usize| -> Key {
            (v, rng.below(2) as usize, format!("f{seed:x}-{serial}"))
        };
        let pick = |rng: &mut Rng| live[rng.below(live.len() as u64) as usize].clone();
        let r = rng.below(100);
        let mut touched = None;
        if live.is_empty() || r < 8 {
            let v = rng.below(2) as usize;
            if count(v) < MAX_FILES {
                let fid = c.next_fid;
                c.next_fid += 1;
                let key = new_name(&mut rng, v);
                c.run(Op::Create { key, fid });
                touched = Some(fid);
            }
        } else if r < 15 {
            let (from, fid) = pick(&mut rng);
            let others: Vec<&Key> = live
                .iter()
                .map(|(k, _)| k)
                .filter(|k| k.0 == from.0 && **k != from)
                .collect();
            let to_existing = !others.is_empty() && rng.chance(50);
            let (to, exchange) = if to_existing {
                (
                    others[rng.below(others.len() as u64) as usize].clone(),
                    rng.chance(30),
                )
            } else {
                (new_name(&mut rng, from.0), false)
            };
            c.run(Op::Rename { from, to, exchange });
            touched = Some(fid);
        } else if r < 20 {
            let (key, fid) = pick(&mut rng);
            if count(key.0) > 2 {
                if rng.chance(30) {
                    // Unlinked while open: written to and maybe fsynced as an orphan, then
                    // released (freed); a crash in between leaves an orphan for the next open.
                    let (v, ino) = c.inos[&fid];
                    c.e.open_file(c.vols[v], View::Live, ino).expect("open");
                    c.run(Op::Unlink { key });
                    c.run(Op::Write {
                        fid,
                        off: 0,
                        len: 1 + rng.below(100_000),
                        seed: rng.next(),
                    });
                    if rng.chance(50) {
                        c.fsync(fid);
                    }
                    c.e.release(c.vols[v], View::Live, ino).expect("release");
                } else {
                    c.run(Op::Unlink { key });
                }
            }
        } else {
            let (_, fid) = pick(&mut rng);
            let size = c.m.files[&fid].len() as u64;
            let op = if r < 30 || size > MAX_SIZE as u64 {
                let size = if size > MAX_SIZE as u64 || rng.chance(70) {
                    rng.below(size + 1)
                } else {
                    size + rng.below(70_000)
                };
                Op::Trunc { fid, size }
            } else if r < 60 {
                let big = rng.chance(10);
                Op::Write {
                    fid,
                    off: rng.below(size + 8192),
                    len: 1 + rng.below(if big { 300_000 } else { 20_000 }),
                    seed: rng.next(),
                }
            } else {
                Op::Write {
                    fid,
                    off: size,
                    len: 1 + rng.below(40_000),
                    seed: rng.next(),
                }
            };
            c.run(op);
            touched = Some(fid);
        }
        if rng.chance(20) {
            let fid = match touched {
                Some(f) if rng.chance(60) => f,
                _ => {
                    let names: Vec<u64> = c.m.ns.values().copied().collect();
                    if names.is_empty() {
                        continue;
                    }
                    names[rng.below(names.len() as u64) as usize]
                }
            };
            c.fsync(fid);
        }
    }
}

// ---------------------------------------------------------------------------------------
// The parent.

/// The model after replaying one journal: every content each file had and the points known
/// to be committed.
struct Replay {
    /// Namespace after each namespace operation: (journal position, namespace); entry 0 is
    /// the starting state at position 0. Positions of operations start at 1.
    ns: Vec<(usize, BTreeMap<Key, u64>)>,
    /// Every content a file had: (position of the op that made it, hash, length).
    states: HashMap<u64, Vec<(usize, blake3::Hash, u64)>>,
    /// Points where a file's content was committed by the call itself (start, create,
    /// truncate, fsync): (position, index into `states`).
    commits: HashMap<u64, Vec<(usize, usize)>>,
    /// Journal positions of each file's fsync records.
    fsynced: HashMap<u64, Vec<usize>>,
    /// Position of the last fsync record (0: none).
    last_fsync: usize,
}

fn replay(base: &BTreeMap<Key, Vec<u8>>, ops: &[Op]) -> Replay {
    let mut m = Model::from_state(base);
    let mut r = Replay {
        ns: vec![(0, m.ns.clone())],
        states: HashMap::new(),
        commits: HashMap::new(),
        fsynced: HashMap::new(),
        last_fsync: 0,
    };
    for (fid, content) in &m.files {
        r.states
            .insert(*fid, vec![(0, hash(content), content.len() as u64)]);
        r.commits.insert(*fid, vec![(0, 0)]);
    }
    for (i, op) in ops.iter().enumerate() {
        let pos = i + 1;
        if let Op::Synced { fid, len, hash: h } = op {
            let content = &m.files[fid];
            assert_eq!(
                (content.len() as u64, hash(content).to_hex().to_string()),
                (*len, h.clone()),
                "the parent's replay disagrees with the child's model at journal position {pos}"
            );
            let idx = r.states[fid].len() - 1;
            r.commits.get_mut(fid).expect("known file").push((pos, idx));
            r.fsynced.entry(*fid).or_default().push(pos);
            r.last_fsync = pos;
            continue;
        }
        m.apply(op);
        match op {
            Op::Create { fid, .. } => {
                r.states.insert(*fid, vec![(pos, hash(&[]), 0)]);
                r.commits.insert(*fid, vec![(pos, 0)]);
            }
            Op::Write { fid, .. } | Op::Trunc { fid, .. } => {
                let content = &m.files[fid];
                let states = r.states.get_mut(fid).expect("known file");
                states.push((pos, hash(content), content.len() as u64));
                if matches!(op, Op::Trunc { .. }) {
                    let idx = states.len() - 1;
                    r.commits.get_mut(fid).expect("known file").push((pos, idx));
                }
            }
            _ => {}
        }
        if op.is_namespace() {
            r.ns.push((pos, m.ns.clone()));
        }
    }
    r
}

#[derive(Default, Debug)]
struct Stats {
    ops: usize,
    fsync_records: usize,
    rounds_with_fsync: usize,
    /// Rounds whose intent log's unacknowledged tail was cut or garbled before reopening.
    log_cuts: usize,
    /// Files that were fsynced in the round and had exactly one accepted content.
    exact: usize,
    /// Files whose accepted contents were bounded below by an fsync of the round.
    bounded_by_fsync: usize,
    /// Files that had changes after their last fsync that were lost (accepted as not
    /// durable) or kept.
    unsynced_lost: usize,
    unsynced_kept: usize,
}

/// Checks the recovered files against the replayed journal; panics with the reason.
fn check(round: u64, r: &Replay, got: &BTreeMap<Key, (InodeNo, Vec<u8>)>, stats: &mut Stats) {
    let got_hash: BTreeMap<&Key, (blake3::Hash, u64)> = got
        .iter()
        .map(|(k, (_, c))| (k, (hash(c), c.len() as u64)))
        .collect();
    let newest = r.ns.len() - 1;
    // Every namespace operation before the last fsync is durable.
    let lowest =
        r.ns.iter()
            .rposition(|(pos, _)| *pos < r.last_fsync.max(1))
            .unwrap_or(0);
    let mut reasons = Vec::new();
    for k in lowest..=newest {
        let (ns_pos, ns) = &r.ns[k];
        if !ns.keys().eq(got_hash.keys().copied()) {
            reasons.push(format!("k={k}: namespace differs"));
            continue;
        }
        // Everything committed before this point is durable.
        let durable_point = r.last_fsync.max(*ns_pos);
        // Nothing committed after the next namespace operation is.
        let limit = r.ns.get(k + 1).map_or(usize::MAX, |(p, _)| *p);
        let mut ok = true;
        let mut local = Stats::default();
        for (key, fid) in ns {
            let states = &r.states[fid];
            let lo = r.commits[fid]
                .iter()
                .filter(|(p, _)| *p <= durable_point)
                .map(|(_, i)| *i)
                .max()
                .unwrap_or(0);
            let hi = states.iter().rposition(|(p, _, _)| *p < limit).unwrap_or(0);
            let (h, len) = got_hash[key];
            if hi < lo {
                reasons.push(format!(
                    "k={k}: {key:?} (file {fid}) was committed after namespace operation {}",
                    k + 1
                ));
                ok = false;
                break;
            }
            match states[lo..=hi]
                .iter()
                .position(|(_, sh, sl)| *sh == h && *sl == len)
            {
                Some(i) => {
                    if r.fsynced
                        .get(fid)
                        .is_some_and(|ps| ps.iter().any(|p| *p <= durable_point))
                    {
                        local.bounded_by_fsync += 1;
                        if lo == hi {
                            local.exact += 1;
                        }
                    }
                    if hi > lo {
                        if lo + i == hi {
                            local.unsynced_kept += 1;
                        } else {
                            local.unsynced_lost += 1;
                        }
                    }
                }
                None => {
                    let newer = states.iter().position(|(_, sh, sl)| *sh == h && *sl == len);
                    reasons.push(format!(
                        "k={k}: {key:?} (file {fid}) has {len} bytes {}, accepted states {lo}..={hi} \
                         (positions {}..={}, lengths {:?}); matches state {newer:?} of {}",
                        &h.to_hex()[..12],
                        states[lo].0,
                        states[hi].0,
                        states[lo..=hi].iter().map(|s| s.2).collect::<Vec<_>>(),
                        states.len()
                    ));
                    ok = false;
                    break;
                }
            }
        }
        if ok {
            stats.exact += local.exact;
            stats.bounded_by_fsync += local.bounded_by_fsync;
            stats.unsynced_kept += local.unsynced_kept;
            stats.unsynced_lost += local.unsynced_lost;
            return;
        }
    }
    panic!(
        "round {round}: the recovered pool is not a state the workload went through, or lost \
         fsynced data (last fsync at journal position {}, namespace ops at {:?}):\n{}",
        r.last_fsync,
        r.ns.iter().map(|(p, _)| *p).collect::<Vec<_>>(),
        reasons.join("\n")
    );
}

/// Bytes the engine stores for one file: each block with its trailing zeros trimmed.
/// Non-zero bytes of a file: each lies in some chunk its extents reference.
fn nonzero_bytes(content: &[u8]) -> u64 {
    content.iter().filter(|&&b| b != 0).count() as u64
}

/// Every chunk the live extent rows of `vol` reference (with its length), once per mention.
fn live_chunks(e: &Engine, vol: VolumeId) -> Vec<([u8; 32], u64)> {
    let r = e.store().read().expect("read");
    let mut out = Vec::new();
    r.volume_rows(vol, View::Live, |_, v| {
        out.extend(v.chunks().into_iter().map(|(c, l)| (c.0, l as u64)));
        Ok(true)
    })
    .expect("scan rows");
    out
}

/// The volume and pool counters agree with the files and the rows (and orphans were
/// purged). A block may be stored as a base with patches, so what a volume stores is
/// counted from its extent rows, and is at least its files' non-zero bytes.
fn check_counters(e: &Engine, got: &BTreeMap<Key, (InodeNo, Vec<u8>)>, round: u64) {
    let mut referenced = 0u64;
    let mut distinct: HashMap<[u8; 32], u64> = HashMap::new();
    let ids = volume_ids(e);
    for (vi, (name, _)) in VOLS.iter().enumerate() {
        let info = e.volume_info(name).expect("volume info");
        let files: Vec<&Vec<u8>> = got
            .iter()
            .filter(|(k, _)| k.0 == vi)
            .map(|(_, (_, c))| c)
            .collect();
        let chunks = live_chunks(e, ids[vi]);
        let stored: u64 = chunks.iter().map(|(_, l)| l).sum();
        distinct.extend(chunks.iter().copied());
        referenced += stored;
        let least: u64 = files.iter().map(|c| nonzero_bytes(c)).sum();
        assert!(
            stored >= least,
            "round {round}: volume {name} stores {stored} bytes, less than its files hold ({least})"
        );
        let logical: u64 = files.iter().map(|c| c.len() as u64).sum();
        assert_eq!(
            (info.files, info.logical_bytes, info.physical_bytes),
            (files.len() as u64 + 2, logical, stored),
            "round {round}: volume {name}'s (files, logical, stored) counters after recovery"
        );
    }
    let s = e.pool_stats().expect("pool stats");
    assert_eq!(
        (s.referenced_bytes, s.physical_bytes),
        (referenced, distinct.values().sum::<u64>()),
        "round {round}: pool (referenced, physical) bytes after recovery"
    );
}

#[test]
fn crash_recovery_keeps_fsynced_data() {
    let started = Instant::now();
    let tmp = tempfile::tempdir().expect("tempdir");
    let pool = tmp.path().join("pool");
    {
        let cfg = EngineConfig {
            log_capacity: LOG_CAPACITY,
            ..EngineConfig::default()
        };
        let e = Engine::open_with(&pool, cfg).expect("create pool");
        for (name, bs) in VOLS {
            let v = e
                .create_volume(name, Some(bs), CTX)
                .expect("create volume")
                .id;
            e.mkdir(v, ROOT, SUBDIR, 0o755, CTX).expect("mkdir");
        }
    }
    let exe = std::env::current_exe().expect("test binary");
    // TANDEM_CRASH_SEED and TANDEM_CRASH_ROUNDS explore other kill points and workloads.
    let env_u64 = |k: &str| std::env::var(k).ok().and_then(|v| v.parse::<u64>().ok());
    let mut rng = Rng(env_u64("TANDEM_CRASH_SEED").unwrap_or(0x00C0_FFEE_D00D));
    let rounds = env_u64("TANDEM_CRASH_ROUNDS").unwrap_or(ITERATIONS);
    let mut base: BTreeMap<Key, Vec<u8>> = BTreeMap::new();
    let mut stats = Stats::default();
    for round in 0..rounds {
        let seed = rng.next();
        let journal = tmp.path().join(format!("journal-{round}"));
        let log_path = tmp.path().join(format!("child-{round}.log"));
        let log = File::create(&log_path).expect("child log");
        let mut child = Command::new(&exe)
            .args([
                "--exact",
                "child_writer",
                "--nocapture",
                "--ignored",
                "--test-threads=1",
            ])
            .env(
                ENV,
                format!("{}|{}|{seed}", pool.display(), journal.display()),
            )
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("spawn child");
        // Mostly well into the workload: the delay counts from when the child has opened the
        // pool (it creates its journal then), however long a loaded machine takes to get
        // there. Some kills come early instead, while the pool is opening or recovering.
        if rng.chance(85) {
            let since = Instant::now();
            while !journal.exists()
                && since.elapsed() < Duration::from_secs(30)
                && child.try_wait().expect("child status").is_none()
            {
                std::thread::sleep(Duration::from_millis(1));
            }
            std::thread::sleep(Duration::from_millis(rng.below(700)));
        } else {
            std::thread::sleep(Duration::from_millis(rng.below(300)));
        }
        let early = child.try_wait().expect("child status");
        if early.is_none() {
            child.kill().expect("SIGKILL");
        }
        let status = child.wait().expect("wait for child");
        if let Some(st) = early {
            let log = std::fs::read_to_string(&log_path).unwrap_or_default();
            panic!("round {round}: the child exited by itself ({st}) before the kill:\n{log}");
        }
        assert!(!status.success(), "round {round}: the child was killed");

        let (child_base, ops) = read_journal(&journal);
        // The child saw what the parent checked last round.
        let expect_base: Vec<BaseFile> = base
            .iter()
            .enumerate()
            .map(|(fid, (k, c))| {
                (
                    k.clone(),
                    fid as u64,
                    c.len() as u64,
                    hash(c).to_hex().to_string(),
                )
            })
            .collect();
        assert_eq!(
            child_base[..],
            expect_base[..child_base.len()],
            "round {round}: the child started from another state"
        );
        let r = replay(&base, &ops);
        if rng.chance(50) && cut_log_tail(&journal, &mut rng) {
            stats.log_cuts += 1;
        }

        let e = Engine::open(&pool).unwrap_or_else(|err| {
            panic!("round {round}: the pool does not open after the kill: {err}")
        });
        let vols = volume_ids(&e);
        let got = read_state(&e, &vols);
        check(round, &r, &got, &mut stats);
        check_counters(&e, &got, round);
        drop(e);

        stats.ops += ops.len();
        let fsyncs = ops
            .iter()
            .filter(|o| matches!(o, Op::Synced { .. }))
            .count();
        stats.fsync_records += fsyncs;
        stats.rounds_with_fsync += (fsyncs > 0) as usize;
        base = got.into_iter().map(|(k, (_, c))| (k, c)).collect();
    }
    eprintln!(
        "crash test: {rounds} kills in {:.1} s, {stats:?}",
        started.elapsed().as_secs_f64()
    );
    // The checks above were not vacuous: most rounds fsynced, and many files had exactly one
    // accepted content, fixed by an fsync.
    let rounds = rounds as usize;
    assert!(stats.rounds_with_fsync >= rounds / 2, "{stats:?}");
    assert!(stats.fsync_records >= 3 * rounds, "{stats:?}");
    assert!(stats.exact >= rounds, "{stats:?}");
    assert!(stats.bounded_by_fsync >= 2 * rounds, "{stats:?}");
}
