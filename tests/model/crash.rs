//! The crash operation and what the model may assert after it.
//!
//! A crash is played in-process: every write and sync of the pool's packs and index fails
//! from that moment (the store's fault plan, sticky EIO), then the engine is dropped. Its
//! shutdown path still runs, but nothing of it reaches the files: its final checkpoint and
//! redb's closing commit both fail, so the index keeps its last durable commit and the
//! buffered writes are gone, as after a SIGKILL. The pool is then opened again from its
//! directory, which replays the intent-log records the rows lack (the log is not behind the
//! fault plan; it only holds records that fsyncs already synced).
//!
//! The durability contract (see `src/fs/intent.rs`):
//! - an fsync of any inode makes every earlier commit durable (its fast path runs only when
//!   every commit is durable already; otherwise it commits durably);
//! - an fsynced file's writes survive a crash (in a durable commit or a log record);
//! - a write that was not fsynced may be lost, or kept by a flush or by the commit ticker,
//!   whose timing the test does not control.
//!
//! So the crash operation first fsyncs the root (every commit durable: names, attributes,
//! extended attributes, truncates, snapshots, and whatever flushes wrote), then fsyncs the
//! chosen file, mostly one written since its last fsync (with every commit durable this is
//! the fast path: its buffered writes go to the log), then crashes. Crashing without that
//! first fsync would leave the namespace at whatever the commit ticker last made durable,
//! which the test does not control. What the model asserts after the reopen:
//! - the whole tree equals the model exactly (names, inode numbers, attributes, link counts,
//!   extended attributes, symlinks), files held open but unlinked are gone, and every
//!   snapshot still equals the model taken with it;
//! - a file fsynced (or truncated, which commits it) and not written since holds exactly
//!   its model content;
//! - a file written since holds one of the contents it had since then (at its last fsync or
//!   truncate, or after any later write: a flush or the ticker may have committed any of
//!   them); the model adopts that content, and anything else fails the case.
//!
//! The run also tallies how fsyncs were answered and how many log records the openings
//! after a crash applied, so a run that never replays a record fails (see
//! [`check_exercised`]). Two fixed sequences in `tests/model.rs` pin what random ones
//! rarely line up: a replay that must apply a record, and one that must skip a record older
//! than the rows.

use std::collections::BTreeMap;

use proptest::test_runner::TestCaseError;
use tandem::fs::Engine;
use tandem::store::fault::FaultOp;
use tandem::store::rows::View;
use tandem::types::InodeNo;

use crate::P;
use crate::compare::{Out, fail, same};
use crate::reference::{Body, Model};
use crate::world::World;

/// How a case (or a run: the sum of its cases) exercised fsync and crashes.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Tally {
    /// fsyncs answered by a log record (or with nothing to log, every commit durable).
    pub(crate) logged: u64,
    /// fsyncs answered by a durable commit.
    pub(crate) committed: u64,
    pub(crate) crashes: u64,
    /// Log records the openings after a crash applied.
    pub(crate) replayed: u64,
    /// Layered clones made, and volumes deleted while a clone was layered over them.
    pub(crate) clones: u64,
    pub(crate) origins_deleted: u64,
}

impl Tally {
    /// Adds an engine's fsync counters (before it is dropped).
    pub(crate) fn fsyncs_of(&mut self, e: &Engine) {
        let (logged, committed) = e.fsync_counts();
        self.logged += logged;
        self.committed += committed;
    }

    pub(crate) fn add(self, o: Tally) -> Tally {
        Tally {
            logged: self.logged + o.logged,
            committed: self.committed + o.committed,
            crashes: self.crashes + o.crashes,
            replayed: self.replayed + o.replayed,
            clones: self.clones + o.clones,
            origins_deleted: self.origins_deleted + o.origins_deleted,
        }
    }
}

/// After the whole run: crashes happened, fsyncs took both paths, and openings after a crash
/// applied log records. Only asserted for runs at least as long as the default one (a short
/// run may legitimately never replay).
pub(crate) fn check_exercised(t: Tally, full_run: bool) {
    let Tally {
        logged,
        committed,
        crashes,
        replayed,
        clones,
        origins_deleted,
    } = t;
    eprintln!(
        "model: {crashes} crashes, {replayed} log records replayed after them; \
         fsyncs: {logged} through the intent log, {committed} by a durable commit; \
         {clones} layered clones, {origins_deleted} origins deleted under a clone"
    );
    if full_run {
        assert!(crashes > 0, "no case crashed");
        assert!(logged > 0, "no fsync went through the intent log");
        assert!(committed > 0, "no fsync committed durably");
        assert!(replayed > 0, "no crash left a log record to replay");
        assert!(clones > 0, "no case made a clone");
        assert!(origins_deleted > 0, "no case deleted the origin of a clone");
    }
}

/// Per file written since its last fsync or truncate: the contents a crash may leave other
/// than the current one (its content then and after every write since).
#[derive(Debug, Default)]
pub(crate) struct Unsynced(BTreeMap<u64, Vec<Vec<u8>>>);

impl Unsynced {
    /// Before a write to `ino`: its content so far becomes one a crash may bring back.
    pub(crate) fn before_write(&mut self, model: &Model, ino: u64) {
        if let Some(Body::File(d)) = model.nodes.get(&ino).map(|n| &n.body) {
            let states = self.0.entry(ino).or_default();
            if states.last() != Some(d) {
                states.push(d.clone());
            }
        }
    }

    /// `ino` was fsynced, or committed by a truncate: since every crash here follows an
    /// fsync that makes every commit durable, its content now is the only one it may have.
    pub(crate) fn committed(&mut self, ino: u64) {
        self.0.remove(&ino);
    }

    /// Was `ino` written since its last fsync or truncate?
    pub(crate) fn has(&self, ino: u64) -> bool {
        self.0.contains_key(&ino)
    }

    /// A clean shutdown committed everything.
    pub(crate) fn clear(&mut self) {
        self.0.clear();
    }
}

impl World {
    /// fsync of the root, fsync of `p`, crash, reopen with replay; then the tree is checked
    /// as the module doc says.
    pub(crate) fn crash(&mut self, p: &P) -> Result<(), TestCaseError> {
        let v = self.vol;
        self.e()
            .fsync(v, InodeNo::ROOT)
            .map_err(|e| fail(format!("fsync of the root before the crash: {e}")))?;
        let got = self
            .e_resolve(p)
            .and_then(|ino| self.e().fsync(v, ino).map_err(crate::errno));
        let want = self
            .model
            .resolve(p)
            .map(|ino| self.unsynced.committed(ino));
        same(
            &format!("fsync of {p:?} before the crash"),
            got.map(|_| Out::Unit),
            want.map(|_| Out::Unit),
        )?;

        for op in [FaultOp::Write, FaultOp::Sync] {
            self.faults.arm(op, 1, libc::EIO, true);
        }
        self.close_engine();
        self.faults.disarm();
        self.open_engine()?;
        self.tally.crashes += 1;
        self.tally.replayed += self.e().log_replayed();
        self.model.reopened();

        for (ino, states) in std::mem::take(&mut self.unsynced.0) {
            let Some(Body::File(now)) = self.model.nodes.get(&ino).map(|n| &n.body) else {
                continue; // gone: unlinked while open, freed by the reopen
            };
            let got = self
                .e_read_all(View::Live, ino)
                .map_err(|e| fail(format!("after a crash: reading inode {ino}: errno {e}")))?;
            if got == *now || states.contains(&got) {
                if let Some(Body::File(d)) = self.model.nodes.get_mut(&ino).map(|n| &mut n.body) {
                    *d = got;
                }
            } else {
                let what = format!(
                    "after a crash: inode {ino} holds none of the {} contents it had since \
                     its last fsync; compared with the latest",
                    states.len() + 1
                );
                return same(&what, Ok(Out::Data(got)), Ok(Out::Data(now.clone())));
            }
        }
        self.verify_all("after a crash")?;
        self.verify_counts()
    }
}
