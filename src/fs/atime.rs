//! Access times: the mount's policy ([`Atime`]: `noatime`, `relatime`, `strictatime`,
//! `nodiratime`) and the updates it asks for, kept in memory and committed in batches.
//!
//! Through FUSE the kernel does not keep atime for the filesystem: a read or a directory
//! listing that reaches the daemon calls [`Inner::accessed`], which decides under the
//! mount's policy and notes the new atime in the volume's buffer (`Dirty::atimes`). Nothing
//! is committed per read: the commit ticker (and every flush of all volumes, e.g. on
//! unmount and at shutdown) writes the noted atimes in one writer job per volume
//! ([`Inner::commit_atimes`]). Meanwhile attributes show them (`overlay_attr`).
//!
//! Invariants: a noted atime is committed only while the buffer lock is held, and a
//! setattr that sets atime drops the noted one under the same lock before it commits
//! ([`Inner::forget_atime`]), so an explicit `touch -a` is never overwritten by an older
//! read; an inode gone meanwhile is skipped; snapshot views and read-only mounts never
//! note anything (the adapter asks only for the live view of a writable mount).

use std::time::Duration;

use crate::store::ReadView;
use crate::store::rows::View;
use crate::types::{InodeNo, VolumeId};

use super::Inner;
use super::attr::Timestamp;
use super::error::FsError;
use super::txops::{get_inode, put_inode};

/// When a read updates atime (mount(8)'s atime options).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AtimeMode {
    /// Never (`noatime`): tandem's default, a read costs nothing extra.
    #[default]
    Never,
    /// When atime is not after mtime or ctime, or is a day old (`relatime`).
    Relative,
    /// On every read that reaches the daemon (`strictatime`).
    Strict,
}

/// A mount's atime policy: the mode, and whether directory listings follow it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Atime {
    pub mode: AtimeMode,
    /// `nodiratime`: listing a directory never updates its atime.
    pub no_dirs: bool,
}

/// relatime's limit: an atime older than this is updated on the next read.
const RELATIME_AGE: Duration = Duration::from_secs(24 * 3600);

impl Atime {
    /// `noatime`.
    pub const NEVER: Atime = Atime {
        mode: AtimeMode::Never,
        no_dirs: false,
    };

    /// Does a read by this policy ever update atime? (The adapter then asks at each open
    /// whether one would now, [`Inner::atime_due`], and lets the kernel drop the file's
    /// cached pages if so, so that the first read of the open reaches it.)
    pub fn on(self) -> bool {
        self.mode != AtimeMode::Never
    }

    /// The mount(8) option names, as a mount is shown and remembered (nothing for tandem's
    /// default, `noatime`).
    pub fn options(self) -> Vec<&'static str> {
        let mut out = match self.mode {
            AtimeMode::Never => return Vec::new(),
            AtimeMode::Relative => vec!["relatime"],
            AtimeMode::Strict => vec!["strictatime"],
        };
        if self.no_dirs {
            out.push("nodiratime");
        }
        out
    }

    /// Applies one mount(8) option; `false` if it is not an atime option.
    pub fn apply(&mut self, opt: &str) -> bool {
        match opt {
            "noatime" => self.mode = AtimeMode::Never,
            "relatime" | "atime" => self.mode = AtimeMode::Relative,
            "strictatime" => self.mode = AtimeMode::Strict,
            "nodiratime" => self.no_dirs = true,
            "diratime" => self.no_dirs = false,
            _ => return false,
        }
        true
    }

    /// Does an access at `now` update an inode with these times?
    fn wants(self, now: Timestamp, atime: Timestamp, mtime: Timestamp, ctime: Timestamp) -> bool {
        match self.mode {
            AtimeMode::Never => false,
            AtimeMode::Strict => true,
            AtimeMode::Relative => {
                atime <= mtime
                    || atime <= ctime
                    || now.secs.saturating_sub(atime.secs) >= RELATIME_AGE.as_secs() as i64
            }
        }
    }
}

impl Inner {
    /// Notes a read of `ino` (a directory listing when `dir`) by a mount with `policy`.
    /// Costs no commit: see the module docs.
    pub fn accessed(
        &self,
        vol: VolumeId,
        ino: InodeNo,
        policy: Atime,
        dir: bool,
    ) -> Result<(), FsError> {
        if !policy.on() || (dir && policy.no_dirs) {
            return Ok(());
        }
        let vs = self.vol_state(vol)?;
        let now = Timestamp::now();
        let mut d = vs.dirty.lock();
        if self.due(vol, &vs, &d, ino, policy, now)? {
            d.atimes.insert(ino, now);
        }
        Ok(())
    }

    /// Would a read of file `ino` now update its atime under `policy`? When it would not,
    /// an open may let the kernel serve the file's cached pages: a read the daemon does
    /// not see changes nothing (see `fuse::atime`).
    pub fn atime_due(&self, vol: VolumeId, ino: InodeNo, policy: Atime) -> Result<bool, FsError> {
        match policy.mode {
            AtimeMode::Never => Ok(false),
            AtimeMode::Strict => Ok(true),
            AtimeMode::Relative => {
                let vs = self.vol_state(vol)?;
                let d = vs.dirty.lock();
                self.due(vol, &vs, &d, ino, policy, Timestamp::now())
            }
        }
    }

    /// [`Atime::wants`] for `ino` at `now`, with its times as a stat sees them (the caller
    /// holds the volume's buffer lock, `d`).
    fn due(
        &self,
        vol: VolumeId,
        vs: &super::VolState,
        d: &super::data::Dirty,
        ino: InodeNo,
        policy: Atime,
        now: Timestamp,
    ) -> Result<bool, FsError> {
        if policy.mode != AtimeMode::Relative {
            return Ok(policy.on());
        }
        // The attributes as a stat sees them: committed, with the buffered overlay and
        // the pending namespace operations (a file created but not committed yet).
        let pending = super::lock(&vs.pending);
        let r = self.store.read()?;
        let seen = pending.seen(&r)?;
        let mut attr =
            super::pending::inode_seen(&r, seen, vol, View::Live, ino)?.attr(ino, vs.block_size);
        Self::overlay_attr(d, &mut attr);
        if let Some(s) = seen {
            s.apply(&mut attr);
        }
        Ok(policy.wants(now, attr.atime, attr.mtime, attr.ctime))
    }

    /// Drops the noted atime of `ino` (a setattr that sets atime, under the buffer lock).
    pub(crate) fn forget_atime(d: &mut super::data::Dirty, ino: InodeNo) {
        d.atimes.remove(&ino);
    }

    /// Commits the atimes noted for a volume, in one writer job (no fsync).
    pub(crate) fn commit_atimes(&self, vol: VolumeId) -> Result<(), FsError> {
        let vs = self.vol_state(vol)?;
        let d = vs.dirty.lock();
        if d.atimes.is_empty() {
            return Ok(());
        }
        let noted: Vec<(InodeNo, Timestamp)> = d.atimes.iter().map(|(i, t)| (*i, *t)).collect();
        self.write_op(move |tx| {
            let g = tx.volume(vol)?.gens();
            for (ino, t) in noted {
                let mut inode = match get_inode(tx, vol, ino) {
                    Ok(i) => i,
                    // Removed meanwhile: nothing to update.
                    Err(FsError::NotFound) => continue,
                    Err(e) => return Err(e),
                };
                if inode.atime != t {
                    inode.atime = t;
                    put_inode(tx, &g, ino, &inode)?;
                }
            }
            Ok(())
        })?;
        // Under the same lock: nothing was noted or forgotten meanwhile.
        let mut d = d;
        d.atimes.clear();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(secs: i64) -> Timestamp {
        Timestamp { secs, nsecs: 0 }
    }

    #[test]
    fn relatime_updates_after_a_change_or_a_day() {
        let rel = Atime {
            mode: AtimeMode::Relative,
            no_dirs: false,
        };
        let now = t(1_000_000);
        assert!(rel.wants(now, t(100), t(100), t(50)), "atime == mtime");
        assert!(rel.wants(now, t(100), t(50), t(200)), "ctime after atime");
        assert!(
            !rel.wants(now, t(999_000), t(50), t(50)),
            "read since the change"
        );
        assert!(
            rel.wants(now, t(1_000_000 - 86_400), t(50), t(50)),
            "a day old"
        );
        let strict = Atime {
            mode: AtimeMode::Strict,
            no_dirs: false,
        };
        assert!(strict.wants(now, t(999_999), t(0), t(0)));
        assert!(!Atime::default().wants(now, t(0), t(1), t(1)), "noatime");
    }

    #[test]
    fn a_read_notes_atime_in_memory_and_the_batch_commits_it() {
        let (_d, e, v, f) = crate::fs::tests::engine_with_file(0o644);
        let strict = Atime {
            mode: AtimeMode::Strict,
            no_dirs: false,
        };
        let before = e.getattr(v, View::Live, f).unwrap().atime;
        std::thread::sleep(Duration::from_millis(5));
        e.accessed(v, f, strict, false).unwrap();
        let seen = e.getattr(v, View::Live, f).unwrap().atime;
        assert!(seen > before, "stat shows the noted atime");
        let committed = e.inner.committed_inode(v, View::Live, f).unwrap().atime;
        assert_eq!(committed, before, "a read costs no commit");
        e.inner.commit_all().unwrap();
        let committed = e.inner.committed_inode(v, View::Live, f).unwrap().atime;
        assert_eq!(committed, seen, "the batch commits it");
        // An explicit atime wins over a noted one.
        e.accessed(v, f, strict, false).unwrap();
        let set = crate::fs::SetAttr {
            atime: Some(crate::fs::TimeSet::At(Timestamp { secs: 7, nsecs: 0 })),
            ..Default::default()
        };
        e.setattr(v, f, set).unwrap();
        e.inner.commit_all().unwrap();
        assert_eq!(e.getattr(v, View::Live, f).unwrap().atime.secs, 7);
        // noatime and nodiratime note nothing.
        e.accessed(v, f, Atime::NEVER, false).unwrap();
        let nodir = Atime {
            mode: AtimeMode::Strict,
            no_dirs: true,
        };
        e.accessed(v, InodeNo::ROOT, nodir, true).unwrap();
        assert!(e.inner.vol_state(v).unwrap().dirty.lock().atimes.is_empty());
    }

    #[test]
    fn an_update_is_due_under_relatime_until_a_read_notes_it() {
        let (_d, e, v, f) = crate::fs::tests::engine_with_file(0o644);
        let rel = Atime {
            mode: AtimeMode::Relative,
            no_dirs: false,
        };
        let strict = Atime {
            mode: AtimeMode::Strict,
            no_dirs: false,
        };
        // A new file's atime equals its mtime.
        assert!(e.inner.atime_due(v, f, rel).unwrap());
        e.accessed(v, f, rel, false).unwrap();
        assert!(
            !e.inner.atime_due(v, f, rel).unwrap(),
            "noted, not committed"
        );
        e.inner.commit_all().unwrap();
        assert!(!e.inner.atime_due(v, f, rel).unwrap(), "committed");
        assert!(e.inner.atime_due(v, f, strict).unwrap());
        assert!(!e.inner.atime_due(v, f, Atime::NEVER).unwrap());
    }

    #[test]
    fn options_round_trip() {
        for opts in [
            vec![],
            vec!["relatime"],
            vec!["strictatime"],
            vec!["relatime", "nodiratime"],
        ] {
            let mut a = Atime::default();
            for o in &opts {
                assert!(a.apply(o));
            }
            assert_eq!(a.options(), opts);
        }
        assert!(!Atime::default().apply("ro"));
    }
}
