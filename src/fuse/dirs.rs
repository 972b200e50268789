//! Directory requests: opendir and releasedir (counted as a file's handle is), listings
//! (readdirplus entries count as kernel lookups, see `fs::ghosts`), and fsyncdir.

use fuser::{INodeNo, ReplyDirectory, ReplyDirectoryPlus, ReplyEmpty, ReplyOpen};

use super::reply;
use super::request::{TandemFs, ino, op};
use super::uss;
use crate::store::rows::View;

impl TandemFs {
    pub(super) fn on_opendir(&self, i: INodeNo, flags: i32, reply: ReplyOpen) {
        Self::serve(op!("opendir", i, flags), reply, || {
            // Counted as a file's handle is: a directory removed while open stays until
            // its last release (fstat on it answers, with no links).
            if uss::is_virtual(i.0) {
                return Ok(true);
            }
            let (view, i) = self.target(i)?;
            self.engine.open_file(self.vol, view, i)?;
            Ok(true)
        })
    }

    pub(super) fn on_releasedir(&self, i: INodeNo, reply: ReplyEmpty) {
        if uss::is_virtual(i.0) || self.view != View::Live {
            return reply.ok();
        }
        let (vol, view) = (self.vol, self.view);
        self.mutate(op!("releasedir", i), reply, Ok(()), move |e, ()| {
            e.release(vol, view, ino(i))
        })
    }

    pub(super) fn on_readdir(&self, i: INodeNo, offset: u64, reply: ReplyDirectory) {
        Self::serve(op!("readdir", i, offset), reply, || {
            let list = self.entries(i, offset, 256)?;
            self.note_access(i, true);
            Ok(list)
        })
    }

    /// A listing with attributes: each entry sent but "." and ".." is a kernel lookup.
    pub(super) fn on_readdirplus(&self, i: INodeNo, offset: u64, reply: ReplyDirectoryPlus) {
        let span = op!("readdirplus", i, offset);
        let _in = span.enter();
        match self.entries(i, offset, 128) {
            Ok(list) => {
                self.note_access(i, true);
                reply::listing_plus(
                    reply,
                    list,
                    |d| self.attr_of(INodeNo(d.ino.0)).ok(),
                    |a| self.kernel_holds(a),
                )
            }
            Err(e) => reply.error(e),
        }
    }

    pub(super) fn on_fsyncdir(&self, i: INodeNo, reply: ReplyEmpty) {
        if self.view != View::Live {
            return reply.ok();
        }
        self.mutate(op!("fsyncdir", i), reply, Ok(()), |e, ()| {
            Ok(e.store().sync()?)
        })
    }
}
