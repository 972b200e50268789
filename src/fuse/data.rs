//! File data requests: open and release (handles counted, see `fs::opens`), reads, writes
//! (paced, buffered and answered inside the gate), fallocate, copy_file_range, lseek for
//! data and holes, fsync.

use fuser::{Errno, INodeNo, ReplyData, ReplyEmpty, ReplyLseek, ReplyOpen, ReplyWrite, Request};

use super::request::{TandemFs, ino, op};
use super::uss::{self, writable};
use crate::fs::copy::FileAt;
use crate::fs::fallocate::Allocate;
use crate::fs::seek::Seek;
use crate::store::rows::View;

impl TandemFs {
    pub(super) fn on_open(&self, i: INodeNo, flags: i32, reply: ReplyOpen) {
        Self::serve(op!("open", i, flags), reply, || {
            let writing = flags & libc::O_ACCMODE != libc::O_RDONLY || flags & libc::O_TRUNC != 0;
            if writing && (self.read_only || uss::is_virtual(i.0)) {
                return Err(Errno::EROFS);
            }
            let (view, i) = self.target(i)?;
            self.engine.open_file(self.vol, view, i)?;
            Ok(self.keep_cache(view, i))
        })
    }

    pub(super) fn on_read(&self, i: INodeNo, offset: u64, size: u32, reply: ReplyData) {
        Self::serve(op!("read", i, offset, size), reply, || {
            let (view, t) = self.target(i)?;
            let data = self.engine.read(self.vol, view, t, offset, size)?;
            self.io.read(data.len());
            self.note_access(i, false);
            Ok(data)
        })
    }

    /// `kill`: the kernel's KILL_SUIDGID (HANDLE_KILLPRIV_V2), set when the writer lacks
    /// CAP_FSETID.
    pub(super) fn on_write(
        &self,
        i: INodeNo,
        offset: u64,
        data: &[u8],
        kill: bool,
        reply: ReplyWrite,
    ) {
        let span = op!("write", i, offset, len = data.len());
        self.pace_write(data.len());
        let (vol, data, notifier) = (self.vol, data.to_vec(), self.notifier.clone());
        let io = self.io.clone();
        self.mutate_write(span, reply, writable(&[i]), move |e| {
            let w = e.write_buffered(vol, ino(i), offset, &data, kill)?;
            io.wrote(w.written);
            if w.killed
                && let Some(n) = notifier.get()
            {
                // Not every kernel drops its cached mode after a write: make it ask again
                // (attributes only, no page cache: safe in a request).
                let _ = n.inval_inode(i, -1, 0);
            }
            Ok((w.written, w.over_limit))
        })
    }

    pub(super) fn on_fallocate(
        &self,
        req: &Request,
        i: INodeNo,
        (offset, length): (u64, u64),
        mode: i32,
        reply: ReplyEmpty,
    ) {
        let span = op!("fallocate", i, offset, length, mode);
        let check = writable(&[i]).and_then(|()| Allocate::from_mode(mode).map_err(Errno::from));
        // The request carries no KILL_SUIDGID flag (as a write does) and the kernel leaves
        // this to us (HANDLE_KILLPRIV_V2): a caller other than root (which stands for
        // CAP_FSETID, as for a truncate) drops the file's privileges, whatever the mode.
        let kill = req.uid() != 0;
        let (vol, notifier) = (self.vol, self.notifier.clone());
        self.mutate(span, reply, check, move |e, how| {
            if e.fallocate(vol, ino(i), offset, length, how, kill)?
                && let Some(n) = notifier.get()
            {
                // The kernel may keep its cached mode: make it ask again (as after a write).
                let _ = n.inval_inode(i, -1, 0);
            }
            Ok(())
        })
    }

    pub(super) fn on_copy_file_range(
        &self,
        req: &Request,
        (ino_in, offset_in): (INodeNo, u64),
        (ino_out, offset_out): (INodeNo, u64),
        len: u64,
        reply: ReplyWrite,
    ) {
        let span = op!(
            "copy_file_range",
            ino_out,
            ino_in = ino_in.0,
            offset_in,
            offset_out,
            len
        );
        // The source may be a snapshot view's file (the `.snaps` tree of this mount).
        let (view, src) = match self.target(ino_in) {
            Ok(t) => t,
            Err(e) => return reply.error(e),
        };
        let src = FileAt {
            vol: self.vol,
            view,
            ino: src,
        };
        // The answer counts in 32 bits: a longer copy is answered short (the caller loops).
        let len = len.min(u64::from(u32::MAX) & !0xfff);
        // No KILL_SUIDGID flag here: as for fallocate, a caller other than root drops the
        // destination's privileges.
        let kill = req.uid() != 0;
        let (vol, notifier) = (self.vol, self.notifier.clone());
        self.mutate_write(span, reply, writable(&[ino_out]), move |e| {
            let c = e.copy_range(src, offset_in, vol, ino(ino_out), offset_out, len, kill)?;
            if c.killed
                && let Some(n) = notifier.get()
            {
                let _ = n.inval_inode(ino_out, -1, 0);
            }
            // At most `len`, which fits.
            Ok((u32::try_from(c.bytes).unwrap_or(u32::MAX), c.over_limit))
        })
    }

    pub(super) fn on_lseek(&self, i: INodeNo, offset: i64, whence: i32, reply: ReplyLseek) {
        Self::serve(op!("lseek", i, offset, whence), reply, || {
            // The kernel answers SEEK_SET/CUR/END itself; only DATA and HOLE come here.
            let what = Seek::from_whence(whence).ok_or(Errno::EINVAL)?;
            let offset = u64::try_from(offset).map_err(|_| Errno::ENXIO)?;
            let (view, i) = self.target(i)?;
            let at = self.engine.seek(self.vol, view, i, offset, what)?;
            i64::try_from(at).map_err(|_| Errno::EOVERFLOW)
        })
    }

    pub(super) fn on_release(&self, i: INodeNo, reply: ReplyEmpty) {
        // Only live inodes count their open handles.
        if uss::is_virtual(i.0) || self.view != View::Live {
            return reply.ok();
        }
        let (vol, view) = (self.vol, self.view);
        self.mutate(op!("release", i), reply, Ok(()), move |e, ()| {
            e.release(vol, view, ino(i))
        })
    }

    pub(super) fn on_fsync(&self, i: INodeNo, reply: ReplyEmpty) {
        // Nothing of a snapshot view is ever buffered.
        if uss::is_virtual(i.0) || self.view != View::Live {
            return reply.ok();
        }
        let (vol, io) = (self.vol, self.io.clone());
        self.mutate(op!("fsync", i), reply, Ok(()), move |e, ()| {
            let started = std::time::Instant::now();
            let answered = e.fsync_answered(vol, ino(i));
            io.fsynced(started.elapsed(), answered.as_ref().ok().copied());
            answered.map(drop)
        })
    }
}
