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
use std::fs::File;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod check;
mod child;
#[path = "../common/mod.rs"]
mod common;
mod journal;

use check::{Stats, check, check_counters, replay};
use child::cut_log_tail;
use common::Rng;
use journal::{Op, read_journal};
use tandem::fs::{Ctx, Engine, EngineConfig, FileKind};
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
const CTX: Ctx = Ctx {
    uid: 0,
    gid: 0,
    umask: 0,
};
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

#[test]
#[ignore = "the child process of crash_recovery_keeps_fsynced_data; does nothing on its own"]
fn child_writer() {
    let Ok(spec) = std::env::var(ENV) else { return };
    let mut parts = spec.split('|');
    let pool = PathBuf::from(parts.next().expect("pool"));
    let journal = PathBuf::from(parts.next().expect("journal"));
    let seed: u64 = parts.next().and_then(|s| s.parse().ok()).expect("seed");
    child::run_child(&pool, &journal, seed);
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
