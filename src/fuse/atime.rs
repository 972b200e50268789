//! The mount's side of atime (see `fs::atime`): which requests note an access, and when a
//! file's cached pages are kept across opens.
//!
//! Invariant: only a plain live inode of a mount whose policy keeps atimes is noted (the
//! policy is `noatime` for read-only mounts and snapshot views, see `Mount::with_flags`).

use fuser::INodeNo;

use super::request::TandemFs;
use crate::store::rows::View;

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

    /// Does an open keep the file's cached pages? Not when reads update atime: the first
    /// read of each open must reach the daemon (the kernel serves cached pages itself).
    pub(super) fn keep_cache(&self) -> bool {
        !self.atime.on()
    }
}
