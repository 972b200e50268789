//! The child: runs the random workload on the pool, journalling each operation first,
//! until the parent kills it; and the power loss the parent plays on the intent log.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tandem::fs::{Engine, EngineConfig, RenameFlags, SetAttr};
use tandem::store::rows::View;
use tandem::types::{InodeNo, VolumeId};

use super::common::Rng;
use super::journal::Op;
use super::{
    CTX, Key, LOG_CAPACITY, MAX_FILES, MAX_SIZE, Model, data, dir_inos, hash, read_state,
    volume_ids,
};

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
pub(crate) fn cut_log_tail(journal: &Path, rng: &mut Rng) -> bool {
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

pub(crate) fn run_child(pool: &Path, journal: &Path, seed: u64) {
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
