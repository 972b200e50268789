//! fallocate(2): which modes a copy-on-write volume supports, and the size extension of a
//! plain allocation, in one writer job.
//!
//! Space is never reserved in a copy-on-write store (every write allocates anew), so a plain
//! allocation (mode 0) only grows the file to `offset + length` and `FALLOC_FL_KEEP_SIZE`
//! does nothing; every other mode (punch hole, zero range, collapse, insert, ...) is refused
//! with EOPNOTSUPP.
//!
//! Like every path that changes a file's data, fallocate by a caller without CAP_FSETID
//! drops the file's setuid/setgid bits and capabilities (Linux's `file_modified`, which the
//! kernel leaves to tandem under FUSE_HANDLE_KILLPRIV_V2), whatever the mode and whether or
//! not the file grows.

use crate::store::ReadView;
use crate::types::{InodeNo, VolumeId};

use super::Inner;
use super::attr::{FileKind, Timestamp};
use super::error::FsError;
use super::txops::{drop_privs, get_inode, put_inode};

/// A fallocate(2) mode tandem supports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Allocate {
    /// Mode 0: the file grows to cover the range (it never shrinks).
    Extend,
    /// `FALLOC_FL_KEEP_SIZE`: nothing to do (no space is reserved ahead).
    KeepSize,
}

impl Allocate {
    /// From the mode bits of fallocate(2); EOPNOTSUPP for any other bit.
    pub fn from_mode(mode: i32) -> Result<Allocate, FsError> {
        if mode & !libc::FALLOC_FL_KEEP_SIZE != 0 {
            return Err(FsError::NotSupported("fallocate mode"));
        }
        Ok(if mode & libc::FALLOC_FL_KEEP_SIZE != 0 {
            Allocate::KeepSize
        } else {
            Allocate::Extend
        })
    }
}

impl Inner {
    /// fallocate(2) on a live file: grows it to `offset + length` when it is shorter (new
    /// mtime and ctime, as a truncate up); a file already that long is left untouched.
    /// With `kill_priv` (a caller without CAP_FSETID) the file's privileges are dropped
    /// (new ctime), in the same commit; returns whether it had any (the kernel's cached mode
    /// is then stale). EFBIG when the range ends past
    /// [`super::MAX_FILE_SIZE`] (or overflows), EISDIR for a directory and EINVAL for a
    /// special file that would have to grow.
    pub fn fallocate(
        &self,
        vol: VolumeId,
        ino: InodeNo,
        offset: u64,
        length: u64,
        how: Allocate,
        kill_priv: bool,
    ) -> Result<bool, FsError> {
        if how == Allocate::KeepSize && !kill_priv {
            return Ok(false);
        }
        let end = offset.checked_add(length).ok_or(FsError::FileTooBig)?;
        let grow = how == Allocate::Extend;
        let vs = self.vol_state(vol)?;
        // The size of a file changes only under its volume's buffer lock (see data.rs); its
        // buffered writes are committed first, so the size read below is the one readers see.
        let mut dirty = vs.dirty.lock();
        self.flush_locked(vol, &vs, &mut dirty, Some(ino))?;
        let now = Timestamp::now();
        let killed = self.write_op(move |tx| {
            let mut rec = tx.volume(vol)?;
            let mut inode = get_inode(tx, vol, ino)?;
            let g = rec.gens();
            let killed =
                kill_priv && inode.kind == FileKind::File && drop_privs(tx, &g, ino, &mut inode)?;
            let mut changed = killed;
            if killed {
                inode.ctime = now;
            }
            if grow && end > inode.size {
                inode.resizable(end)?;
                rec.logical_bytes = (rec.logical_bytes + end).saturating_sub(inode.size);
                inode.size = end;
                inode.mtime = now;
                inode.ctime = now;
                tx.put_volume(&rec)?;
                changed = true;
            }
            if changed {
                put_inode(tx, &g, ino, &inode)?;
            }
            Ok(killed)
        })?;
        drop(dirty);
        Ok(killed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fs::{Ctx, Engine, MAX_FILE_SIZE};
    use crate::store::rows::View;

    fn errno<T: std::fmt::Debug>(r: Result<T, FsError>) -> i32 {
        r.expect_err("expected an error").errno()
    }

    #[test]
    fn modes_and_size_extension() {
        let dir = tempfile::tempdir().unwrap();
        let e = Engine::open(dir.path()).unwrap();
        let v = e.create_volume("v", Some(4096), Ctx::default()).unwrap().id;
        let root = InodeNo::ROOT;
        let f = e.create(v, root, b"f", 0o644, Ctx::default()).unwrap().ino;
        assert_eq!(
            errno(Allocate::from_mode(libc::FALLOC_FL_PUNCH_HOLE)),
            libc::EOPNOTSUPP
        );
        assert_eq!(Allocate::from_mode(0).unwrap(), Allocate::Extend);
        let keep = Allocate::from_mode(libc::FALLOC_FL_KEEP_SIZE).unwrap();
        e.fallocate(v, f, 0, 8192, keep, false).unwrap();
        assert_eq!(e.getattr(v, View::Live, f).unwrap().size, 0);
        // A buffered write past the range: the file keeps its larger size.
        e.write(v, f, 9000, b"x").unwrap();
        e.fallocate(v, f, 0, 8192, Allocate::Extend, false).unwrap();
        assert_eq!(e.getattr(v, View::Live, f).unwrap().size, 9001);
        e.fallocate(v, f, 10_000, 5, Allocate::Extend, false)
            .unwrap();
        let a = e.getattr(v, View::Live, f).unwrap();
        assert_eq!(a.size, 10_005);
        assert_eq!(
            e.read(v, View::Live, f, 9000, 10).unwrap(),
            b"x\0\0\0\0\0\0\0\0\0"
        );
        assert_eq!(
            errno(e.fallocate(v, f, u64::MAX, 1, Allocate::Extend, false)),
            libc::EFBIG
        );
        assert_eq!(
            errno(e.fallocate(v, f, MAX_FILE_SIZE, 1, Allocate::Extend, false)),
            libc::EFBIG
        );
        assert_eq!(
            errno(e.fallocate(v, root, 0, 1 << 20, Allocate::Extend, false)),
            libc::EISDIR
        );
    }

    #[test]
    fn an_unprivileged_fallocate_drops_privileges_in_every_mode() {
        let dir = tempfile::tempdir().unwrap();
        let e = Engine::open(dir.path()).unwrap();
        let v = e.create_volume("v", Some(4096), Ctx::default()).unwrap().id;
        let f = e
            .create(v, InodeNo::ROOT, b"f", 0o6777, Ctx::default())
            .unwrap()
            .ino;
        let mode = |e: &Engine| e.getattr(v, View::Live, f).unwrap().perm;
        let setuid = |e: &Engine| {
            let set = crate::fs::SetAttr {
                mode: Some(0o6777),
                ..Default::default()
            };
            e.setattr(v, f, set).unwrap();
        };
        // A privileged caller keeps them.
        assert!(!e.fallocate(v, f, 0, 10, Allocate::Extend, false).unwrap());
        assert_eq!(mode(&e), 0o6777);
        for (how, end) in [(Allocate::Extend, 100), (Allocate::Extend, 50)] {
            setuid(&e);
            assert!(e.fallocate(v, f, 0, end, how, true).unwrap());
            assert_eq!(mode(&e), 0o777);
            assert_eq!(e.getattr(v, View::Live, f).unwrap().size, 100);
        }
        setuid(&e);
        let keep = Allocate::from_mode(libc::FALLOC_FL_KEEP_SIZE).unwrap();
        assert!(e.fallocate(v, f, 0, 8192, keep, true).unwrap());
        assert_eq!(mode(&e), 0o777);
        // Nothing left to drop.
        assert!(!e.fallocate(v, f, 0, 8192, keep, true).unwrap());
    }
}
