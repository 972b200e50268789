//! The engine side of a case: an open pool with the volume operations run on, the reference
//! model next to it, the open handles and the snapshots taken, and the other volumes of the
//! case (layered clones and their origins: `clones.rs`), each with its own model and
//! snapshots. [`World::step`] runs one operation on both and compares the answers (errno
//! included); reopening the pool is here too (crashing it: `crash.rs`).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use tandem::fs::{Ctx, Engine, EngineConfig, RenameFlags, SetAttr, XattrMode};
use tandem::store::fault::Faults;
use tandem::store::rows::View;
use tandem::types::{Generation, InodeNo, VolumeId};

use libc::EINVAL;

use crate::compare::{Out, fail, same, stat_of};
use crate::crash::{Tally, Unsynced};
use crate::reference::{Body, Model};
use crate::{
    BS, CTX, GIDS, MODES, Op, P, Params, XATTRS, errno, payload, setattr_of, symlink_target,
    xattr_value,
};

pub(crate) struct World {
    /// Commits held (see `Op::Pause`): declared first, so it lets the writer go before the
    /// engine closes.
    pub(crate) pause: Option<tandem::fs::CommitPause>,
    /// Declared before `dir`: fields drop in order, and the pool must close before its
    /// directory goes.
    pub(crate) engine: Option<Engine>,
    pub(crate) dir: tempfile::TempDir,
    pub(crate) cfg: EngineConfig,
    pub(crate) vol: VolumeId,
    /// The name of volume `vol`.
    pub(crate) name: String,
    pub(crate) model: Model,
    /// Open handles (inode numbers; engine and model agree on them).
    pub(crate) handles: Vec<u64>,
    pub(crate) snaps: Vec<(Generation, Model)>,
    /// The pool's I/O goes through this plan: a crash fails all of it (see `crash.rs`).
    pub(crate) faults: Arc<Faults>,
    /// What a crash may bring back of the files written since their last fsync.
    pub(crate) unsynced: Unsynced,
    /// How this case exercised fsync and crashes.
    pub(crate) tally: Tally,
    /// The volumes operations do not run on now (see `clones.rs`).
    pub(crate) parked: Vec<crate::clones::Parked>,
    /// How many clones this case made (names the next).
    pub(crate) clones_made: u32,
}

impl World {
    pub(crate) fn new(p: Params) -> Result<World, TestCaseError> {
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
        let faults = Faults::new();
        let engine = Engine::open_with_faults(dir.path(), cfg, Some(faults.clone()))
            .map_err(|e| fail(format!("open: {e}")))?;
        let vol = engine
            .create_volume("v", Some(BS), Ctx::default())
            .map_err(|e| fail(format!("create_volume: {e}")))?
            .id;
        Ok(World {
            pause: None,
            dir,
            cfg,
            engine: Some(engine),
            vol,
            name: "v".to_string(),
            model: Model::new(),
            handles: Vec::new(),
            snaps: Vec::new(),
            faults,
            unsynced: Unsynced::default(),
            tally: Tally::default(),
            parked: Vec::new(),
            clones_made: 0,
        })
    }

    pub(crate) fn e(&self) -> &Engine {
        self.engine.as_ref().expect("engine is open")
    }

    pub(crate) fn e_parent(&self, p: &P) -> Result<(InodeNo, &'static [u8]), i32> {
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

    pub(crate) fn e_resolve(&self, p: &P) -> Result<InodeNo, i32> {
        let (d, n) = self.e_parent(p)?;
        Ok(self
            .e()
            .lookup(self.vol, View::Live, d, n)
            .map_err(errno)?
            .ino)
    }

    pub(crate) fn handle(&self, h: usize) -> Option<u64> {
        (!self.handles.is_empty()).then(|| self.handles[h % self.handles.len()])
    }

    pub(crate) fn step(&mut self, op: &Op) -> Result<(), TestCaseError> {
        let v = self.vol;
        let op = &op.resolved(|p| match *p {
            P::Written(i) => self
                .model
                .nth_path(i, |ino, _| self.unsynced.has(ino))
                .map(P::Path)
                .unwrap_or_else(|| self.model.pick(&P::File(i))),
            _ => self.model.pick(p),
        });
        let what = format!("{op:?}");
        if (!op.runs_paused() && !self.renames_behind(op))
            || (self.pause.is_some() && self.commits_first(op))
        {
            // This one may commit before it answers: let the writer go first.
            self.resume();
        }
        match op {
            Op::Pause => {
                if self.pause.is_none() {
                    let pause = self.e().pause_commits();
                    self.pause = Some(pause.map_err(|e| fail(format!("pause: {e}")))?);
                }
                Ok(())
            }
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
                let want = self.model.resolve(p).and_then(|ino| {
                    self.unsynced.before_write(&self.model, ino);
                    self.model.write(ino, *off, &data)
                });
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
                let want = self.model.resolve(p).and_then(|ino| {
                    let st = self.model.truncate(ino, *size)?;
                    self.unsynced.committed(ino);
                    Ok(st)
                });
                same(
                    &what,
                    got.map(|a| Out::Stat(stat_of(&a))),
                    want.map(Out::Stat),
                )
            }
            Op::Punch(p, off, len, mode) => self.punch(&what, p, *off, *len, *mode),
            Op::Copy(a, oi, b, oo, len) => self.copy(&what, (a, *oi), (b, *oo), *len),
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
                let set = setattr_of(op).expect("a chmod sets attributes");
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
                let set = setattr_of(op).expect("a chown sets attributes");
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
                let want = self
                    .model
                    .resolve(p)
                    .map(|ino| self.unsynced.committed(ino));
                same(&what, got.map(|_| Out::Unit), want.map(|_| Out::Unit))
            }
            Op::Open(p) => {
                let got = self
                    .e_resolve(p)
                    .and_then(|ino| self.e().open_file(v, View::Live, ino).map_err(errno));
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
                self.unsynced.before_write(&self.model, ino);
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
                if want.is_ok() {
                    self.unsynced.committed(ino);
                }
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
            Op::Clone(i) => self.clone_snapshot(*i),
            Op::Switch(i) => self.switch(*i),
            Op::DropVolume(i) => self.drop_volume(*i),
            Op::Reopen => self.reopen(),
            Op::Crash(p) => self.crash(p),
            Op::Check => self.verify_view(View::Live, &self.model, "live"),
        }
    }

    /// Lets the writer go again after an `Op::Pause`; what was answered meanwhile commits.
    pub(crate) fn resume(&mut self) {
        self.pause = None;
    }

    /// Closes the pool cleanly (every buffered write committed durably) and opens it again.
    pub(crate) fn reopen(&mut self) -> Result<(), TestCaseError> {
        self.close_engine();
        self.open_engine()?;
        self.unsynced.clear();
        self.model.reopened();
        self.verify_all("after reopen")?;
        self.verify_counts()
    }

    /// Drops the engine (its fsync counters go to the run's tally first).
    pub(crate) fn close_engine(&mut self) {
        self.resume();
        if let Some(e) = self.engine.take() {
            self.tally.fsyncs_of(&e);
        }
    }

    /// Opens the pool from its directory (replaying what the intent log holds).
    pub(crate) fn open_engine(&mut self) -> Result<(), TestCaseError> {
        let e = Engine::open_with_faults(self.dir.path(), self.cfg, Some(self.faults.clone()))
            .map_err(|e| fail(format!("reopen: {e}")))?;
        prop_assert_eq!(e.volume_id(&self.name).map_err(errno), Ok(self.vol));
        for p in &self.parked {
            prop_assert_eq!(e.volume_id(&p.name).map_err(errno), Ok(p.vol));
        }
        self.engine = Some(e);
        self.handles.clear();
        Ok(())
    }
}
