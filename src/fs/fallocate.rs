//! fallocate(2): which modes a copy-on-write volume supports, and what each does.
//!
//! - Mode 0 grows the file to `offset + length` (never shrinks it); `FALLOC_FL_KEEP_SIZE`
//!   leaves the size. Space cannot be set aside in a copy-on-write store (every write
//!   allocates anew), so both only check that the pool's disk could hold the range's holes
//!   now, beside what the write buffers may need and the metadata headroom (see `space`),
//!   and fail with ENOSPC otherwise: a preallocation larger than the pool never succeeds.
//!   (Writes into the range later are admitted as any write is.)
//! - `FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE` and `FALLOC_FL_ZERO_RANGE` (with or
//!   without KEEP_SIZE) drop the blocks wholly inside the range and rewrite the partial
//!   ones with the range zeroed (see `punch`): space is returned at once. Zeroing without
//!   KEEP_SIZE grows the file to cover the range.
//! - Every other mode (collapse, insert, unshare, punch without KEEP_SIZE) is refused with
//!   EOPNOTSUPP.
//!
//! Like every path that changes a file's data, fallocate by a caller without CAP_FSETID
//! drops the file's setuid/setgid bits and capabilities (Linux's `file_modified`, which the
//! kernel leaves to tandem under FUSE_HANDLE_KILLPRIV_V2), whatever the mode and whether or
//! not the file grows. Each call is one writer job under the volume's buffer lock, with the
//! file's buffered writes committed first (as a truncate).

use crate::store::ReadView;
use crate::store::keys::RowId;
use crate::store::rows::View;
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
    /// `FALLOC_FL_KEEP_SIZE`: the space check only.
    KeepSize,
    /// `FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE`: the range becomes a hole.
    PunchHole,
    /// `FALLOC_FL_ZERO_RANGE`: the range reads as zeros; without KEEP_SIZE the file grows
    /// to cover it.
    Zero { keep_size: bool },
}

impl Allocate {
    /// From the mode bits of fallocate(2); EOPNOTSUPP for any other combination.
    pub fn from_mode(mode: i32) -> Result<Allocate, FsError> {
        let keep_size = mode & libc::FALLOC_FL_KEEP_SIZE != 0;
        match mode & !libc::FALLOC_FL_KEEP_SIZE {
            0 if keep_size => Ok(Allocate::KeepSize),
            0 => Ok(Allocate::Extend),
            libc::FALLOC_FL_PUNCH_HOLE if keep_size => Ok(Allocate::PunchHole),
            libc::FALLOC_FL_ZERO_RANGE => Ok(Allocate::Zero { keep_size }),
            _ => Err(FsError::NotSupported("fallocate mode")),
        }
    }
}

impl Inner {
    /// fallocate(2) on a live file (see the module docs). Mode 0 grows it to
    /// `offset + length` when it is shorter (new mtime and ctime, as a truncate up); a file
    /// already that long keeps its times. With `kill_priv` (a caller without CAP_FSETID)
    /// the file's privileges are dropped (new ctime), in the same commit; returns whether it
    /// had any (the kernel's cached mode is then stale). EFBIG when the range ends past
    /// [`super::MAX_FILE_SIZE`] (or overflows), EISDIR for a directory, EINVAL for a
    /// special file, ENOSPC when the disk could not hold the range's holes.
    pub fn fallocate(
        &self,
        vol: VolumeId,
        ino: InodeNo,
        offset: u64,
        length: u64,
        how: Allocate,
        kill_priv: bool,
    ) -> Result<bool, FsError> {
        let end = offset.checked_add(length).ok_or(FsError::FileTooBig)?;
        let grow = match how {
            Allocate::Extend => true,
            Allocate::KeepSize => false,
            Allocate::PunchHole => return self.punch(vol, ino, offset, end, false, kill_priv),
            Allocate::Zero { keep_size } => {
                return self.punch(vol, ino, offset, end, !keep_size, kill_priv);
            }
        };
        if grow && end > super::MAX_FILE_SIZE {
            return Err(FsError::FileTooBig);
        }
        let vs = self.vol_state(vol)?;
        let bs = vs.block_size as u64;
        // The size of a file changes only under its volume's buffer lock (see data.rs); its
        // buffered writes are committed first, so the size read below is the one readers see.
        let mut dirty = vs.dirty.lock();
        self.flush_locked(vol, &vs, &mut dirty, Some(ino))?;
        let need = {
            let (r, inode) = self.read_inode(vol, View::Live, ino)?;
            match inode.kind {
                FileKind::File => {}
                FileKind::Dir => return Err(FsError::IsDir),
                _ if grow => return Err(FsError::Invalid("fallocate of a special file")),
                _ => {}
            }
            holes(&r, vol, ino, offset, end, bs)? * bs
        };
        // What the holes would take, checked against the disk now (nothing is held: see
        // the module docs).
        if !self.space.admit(need) {
            return Err(FsError::NoSpace);
        }
        self.space.release(need);
        if !grow && !kill_priv {
            return Ok(false);
        }
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

/// How many blocks of file `ino` in `[offset, end)` store nothing (committed rows only: the
/// caller flushed the file's buffer).
fn holes(
    r: &impl ReadView,
    vol: VolumeId,
    ino: InodeNo,
    offset: u64,
    end: u64,
    bs: u64,
) -> Result<u64, FsError> {
    if end <= offset {
        return Ok(0);
    }
    let (first, last) = (offset / bs, (end - 1) / bs);
    let mut stored = 0u64;
    r.extents_from(vol, View::Live, ino, first, |id, _| match id {
        RowId::Extent(_, b) if b <= last => {
            stored += 1;
            Ok(true)
        }
        _ => Ok(false),
    })?;
    Ok((last - first + 1).saturating_sub(stored))
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
        let (_dir, e, v, f) = crate::fs::tests::engine_with_file(0o6777);
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
