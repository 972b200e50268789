//! The mount's side of atime (see `fs::atime`): which requests note an access, and when a
//! file's cached pages are kept across opens: only when a read would change no atime
//! (under `relatime`, a file read since its last change, within the day, keeps them).
//!
//! Invariant: only a plain live inode of a mount whose policy keeps atimes is noted (the
//! policy is `noatime` for read-only mounts and snapshot views, see `Mount::with_flags`).

use fuser::INodeNo;

use super::request::TandemFs;
use crate::store::rows::View;
use crate::types::InodeNo;

impl TandemFs {
    /// Notes a read of `i` (a listing when `dir`) under the mount's atime policy. A failure
    /// costs only the atime (the read was answered).
    pub(super) fn note_access(&self, i: INodeNo, dir: bool) {
        if !self.atime.on() || super::uss::is_virtual(i.0) {
            return;
        }
        if let Ok((View::Live, ino)) = self.target(i)
            && let Err(e) = self.engine.accessed(self.vol, ino, self.atime, dir)
        {
            tracing::debug!("atime of inode {} not noted: {e}", ino.0);
        }
    }

    /// Does an open of live inode `i` (in `view`) keep the file's cached pages? Yes when no
    /// read would update its atime now: always under `noatime` (and in snapshot views and
    /// read-only mounts), under `relatime` when atime is after mtime and ctime and less
    /// than a day old. Otherwise the kernel drops them, so the first read of the open
    /// reaches the daemon and notes the access (the kernel serves cached pages itself).
    /// When it cannot tell, the pages go: a read costs more, atime stays right.
    pub(super) fn keep_cache(&self, view: View, i: InodeNo) -> bool {
        if !self.atime.on() || view != View::Live {
            return true;
        }
        match self.engine.atime_due(self.vol, i, self.atime) {
            Ok(due) => !due,
            Err(e) => {
                tracing::debug!("atime of inode {} not judged at open: {e}", i.0);
                false
            }
        }
    }
}
