//! fallocate(2): which modes a copy-on-write volume supports, and the size extension of a
//! plain allocation, in one writer job.
//!
//! Space is never reserved in a copy-on-write store (every write allocates anew), so a plain
//! allocation (mode 0) only grows the file to `offset + length` and `FALLOC_FL_KEEP_SIZE`
//! does nothing; every other mode (punch hole, zero range, collapse, insert, ...) is refused
//! with EOPNOTSUPP.

use crate::store::ReadView;
use crate::types::{InodeNo, VolumeId};

use super::Inner;
use super::attr::Timestamp;
use super::error::FsError;
use super::txops::{get_inode, put_inode};

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
    /// EFBIG when the range ends past [`super::MAX_FILE_SIZE`] (or overflows), EISDIR for a
    /// directory and EINVAL for a special file that would have to grow.
    pub fn fallocate(
        &self,
        vol: VolumeId,
        ino: InodeNo,
        offset: u64,
        length: u64,
        how: Allocate,
    ) -> Result<(), FsError> {
        if how == Allocate::KeepSize {
            return Ok(());
        }
        let end = offset.checked_add(length).ok_or(FsError::FileTooBig)?;
        let vs = self.vol_state(vol)?;
        // The size of a file changes only under its volume's buffer lock (see data.rs); its
        // buffered writes are committed first, so the size read below is the one readers see.
        let mut dirty = vs.dirty.lock();
        self.flush_locked(vol, &vs, &mut dirty, Some(ino))?;
        let now = Timestamp::now();
        self.write_op(move |tx| {
            let mut rec = tx.volume(vol)?;
            let mut inode = get_inode(tx, vol, ino)?;
            if end <= inode.size {
                return Ok(());
            }
            inode.resizable(end)?;
            let g = rec.gens();
            rec.logical_bytes = (rec.logical_bytes + end).saturating_sub(inode.size);
            inode.size = end;
            inode.mtime = now;
            inode.ctime = now;
            // TODO(issue 16): an unprivileged writer's fallocate must drop setuid/setgid:
            // `txops::drop_privs(tx, &g, ino, &mut inode)?` here when the caller asks for it.
            put_inode(tx, &g, ino, &inode)?;
            tx.put_volume(&rec)?;
            Ok(())
        })?;
        drop(dirty);
        Ok(())
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
        e.fallocate(v, f, 0, 8192, keep).unwrap();
        assert_eq!(e.getattr(v, View::Live, f).unwrap().size, 0);
        // A buffered write past the range: the file keeps its larger size.
        e.write(v, f, 9000, b"x").unwrap();
        e.fallocate(v, f, 0, 8192, Allocate::Extend).unwrap();
        assert_eq!(e.getattr(v, View::Live, f).unwrap().size, 9001);
        e.fallocate(v, f, 10_000, 5, Allocate::Extend).unwrap();
        let a = e.getattr(v, View::Live, f).unwrap();
        assert_eq!(a.size, 10_005);
        assert_eq!(
            e.read(v, View::Live, f, 9000, 10).unwrap(),
            b"x\0\0\0\0\0\0\0\0\0"
        );
        assert_eq!(
            errno(e.fallocate(v, f, u64::MAX, 1, Allocate::Extend)),
            libc::EFBIG
        );
        assert_eq!(
            errno(e.fallocate(v, f, MAX_FILE_SIZE, 1, Allocate::Extend)),
            libc::EFBIG
        );
        assert_eq!(
            errno(e.fallocate(v, root, 0, 1 << 20, Allocate::Extend)),
            libc::EISDIR
        );
    }
}
