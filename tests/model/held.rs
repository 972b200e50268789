//! Which operations run while the writer's commits are held (`Op::Pause`): besides the
//! ones that always answer before their commit (`Op::runs_paused`), a rename the engine
//! answers first, and a chmod or chown unless the engine says it commits first this time.
//! Asking wrongly would make a case wait for itself.

use crate::world::World;
use crate::{Op, setattr_of};

impl World {
    /// Is `op` a rename the engine answers before its commit (a non-directory moved to a
    /// free name or over another non-directory, no exchange: see `fs/rename_entry.rs`)?
    /// It then runs while commits are held, so the model meets it in the overlay.
    pub(crate) fn renames_behind(&self, op: &Op) -> bool {
        let Op::Rename(a, b, f) = op else {
            return false;
        };
        let m = &self.model;
        let Ok(src) = m.resolve(a) else {
            return false;
        };
        let Ok((dp, dn)) = m.parent(b) else {
            return false;
        };
        if f & 2 != 0 || m.is_dir(src) || !m.is_dir(dp) {
            return false;
        }
        match m.lookup(dp, dn) {
            Err(_) => true,
            Ok(dst) => f & 1 == 0 && dst != src && !m.is_dir(dst),
        }
    }

    /// Would `op` (a chmod or chown) commit before it answers this time? The engine says
    /// (a file's buffered writes are flushed first; not every setattr is write-behind).
    pub(crate) fn commits_first(&self, op: &Op) -> bool {
        let (Some(set), Op::Chmod(p, _) | Op::Chown(p, _)) = (setattr_of(op), op) else {
            return false;
        };
        match self.e_resolve(p) {
            Ok(ino) => (self.e().setattr_commits_first(self.vol, ino, &set)).unwrap_or(true),
            // Not found: it fails before it reaches the writer.
            Err(_) => false,
        }
    }
}
