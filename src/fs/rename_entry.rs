//! rename(2) of a directory entry (volume and group renames: renames.rs).
//!
//! One writer job ([`rename_in_tx`]) checks everything, then mutates: the new name, the old
//! name gone, the moved inode's ctime and parent, a replaced target's lost link, both
//! directories' times and link counts. A refused rename changes nothing.
//!
//! The common rename is write-behind, as unlink and link are (see pending.rs): a file,
//! symlink or special file moved to a free name or over another non-directory, without
//! RENAME_EXCHANGE. It is checked against the rows plus the overlay, answered, and
//! committed in a later batch by the same [`rename_in_tx`]. Until then the overlay shows it
//! as three entries of one job: the target's unlink (when a name is replaced), a link of
//! the moved inode under the new name, and the unlink of the old name. A link and an
//! unlink of one name in one job resolve to the link (`Seen::name`); the moved inode's
//! link count is unchanged (one link added, one dropped), the replaced one loses one.
//!
//! Everything else commits before it answers: a directory moves (loop check, `..`, both
//! parents' link counts), an exchange, a replaced directory, any case the checks would
//! refuse (the synchronous path then gives the error), a nearly full disk, and any rename
//! while another synchronous namespace operation is queued (`Pending::sync_ns`).
//!
//! The write-behind job does not defer its rewrites (`queue_behind_as`): the writer writes
//! out the held directory rows and volume record before it, so it runs exactly as the
//! synchronous job does.

use std::collections::BTreeMap;

use crate::store::rows::{Gens, View};
use crate::store::{ReadView, Tx};
use crate::types::{InodeNo, Name, VolumeId};

use super::attr::*;
use super::error::FsError;
use super::opens::{Opens, mark_if_open};
use super::pending::{dirent_seen, entry_seen, inode_seen};
use super::txops::{self, entry_name, get_dir, get_inode, lookup, put_inode};
use super::{Inner, lock};

impl Inner {
    pub fn rename(
        &self,
        vol: VolumeId,
        parent: InodeNo,
        name: &[u8],
        newparent: InodeNo,
        newname: &[u8],
        flags: RenameFlags,
    ) -> Result<(), FsError> {
        let name = entry_name(name)?;
        let newname = entry_name(newname)?;
        if flags.exchange && flags.noreplace {
            return Err(FsError::Invalid(
                "RENAME_EXCHANGE and RENAME_NOREPLACE together",
            ));
        }
        let now = Timestamp::now();
        let vs = self.vol_state(vol)?;
        let (from, to) = ((parent, &name), (newparent, &newname));
        if self.rename_behind(&vs, vol, from, to, flags, now)? {
            return Ok(());
        }
        let opens = self.opens.clone();
        let victim = self.ns_write_op(&vs, move |tx| {
            rename_in_tx(
                tx,
                vol,
                (parent, &name),
                (newparent, &newname),
                flags,
                &opens,
                now,
            )
        })?;
        if let Some(v) = victim {
            self.forget_if_gone(vol, v);
        }
        Ok(())
    }

    /// The write-behind rename (see the module doc): true once answered, false when it
    /// must commit before it answers.
    fn rename_behind(
        &self,
        vs: &std::sync::Arc<super::VolState>,
        vol: VolumeId,
        (parent, name): (InodeNo, &Name),
        (newparent, newname): (InodeNo, &Name),
        flags: RenameFlags,
        now: Timestamp,
    ) -> Result<bool, FsError> {
        if flags.exchange || !self.space.roomy() {
            return Ok(false);
        }
        // Locked from the checks to the new entries, as for an unlink (see remove.rs).
        let pending = lock(&vs.pending);
        if pending.sync_ns > 0 {
            return Ok(false);
        }
        let r = self.store.read()?;
        let seen = pending.seen(&r)?;
        let Ok((sino, skind)) = dirent_seen(&r, seen, vol, View::Live, parent, name) else {
            return Ok(false);
        };
        if skind == FileKind::Dir
            || !matches!(inode_seen(&r, seen, vol, View::Live, newparent), Ok(d) if d.kind == FileKind::Dir)
        {
            return Ok(false);
        }
        // The new parent is a directory (above): an absent entry is a free name.
        let victim = match entry_seen(&r, seen, vol, View::Live, newparent, newname)? {
            None => None,
            Some((dino, dkind)) if !flags.noreplace && dino != sino && dkind != FileKind::Dir => {
                Some(dino)
            }
            Some(_) => return Ok(false),
        };
        // As for an unlink: the target's buffered writes go with its last link, unless it
        // is open. The buffer lock is taken before the overlay's elsewhere: only tried.
        let last_link = match victim {
            Some(dino)
                if vs
                    .dirty
                    .try_lock()
                    .is_none_or(|d| d.files.contains_key(&dino)) =>
            {
                let inode = inode_seen(&r, seen, vol, View::Live, dino)?;
                seen.map_or(inode.nlink, |s| s.nlink(dino, &inode)) <= 1
            }
            _ => false,
        };
        drop(r);
        let opens = self.opens.clone();
        let (job_from, job_to) = (name.clone(), newname.clone());
        let (done_from, done_to) = (name.clone(), newname.clone());
        let (rm_from, rm_to) = (name.clone(), newname.clone());
        self.queue_behind_as(
            vs,
            pending,
            false,
            move |tx| {
                let (from, to) = ((parent, &job_from), (newparent, &job_to));
                rename_in_tx(tx, vol, from, to, flags, &opens, now).map(|_| ())
            },
            move |e| {
                tracing::error!(
                    "rename of {:?} in directory {parent} to {:?} in directory {newparent} of \
                     volume {vol} failed after it was answered, the old name is back: {e}",
                    String::from_utf8_lossy(done_from.as_bytes()),
                    String::from_utf8_lossy(done_to.as_bytes()),
                )
            },
            |p, n| {
                if let Some(dino) = victim {
                    p.unlinks.add(n, newparent, newname.as_bytes(), dino, now);
                }
                p.creates
                    .add_link(n, (newparent, newname.as_bytes()), sino, skind, now);
                p.unlinks.add(n, parent, name.as_bytes(), sino, now);
            },
            move |p, n| {
                p.unlinks.remove(n, parent, rm_from.as_bytes(), sino);
                p.creates.remove_link(n, newparent, rm_to.as_bytes(), sino);
                if let Some(dino) = victim {
                    p.unlinks.remove(n, newparent, rm_to.as_bytes(), dino);
                }
            },
        )?;
        if let Some(dino) = victim
            && last_link
            && !self.is_open(vol, dino)
        {
            self.discard_dirty(vol, dino);
        }
        Ok(true)
    }
}

/// The rename inside the writer's transaction; returns the inode that lost its name to it
/// (a replaced target), if any.
fn rename_in_tx(
    tx: &mut Tx<'_>,
    vol: VolumeId,
    (parent, name): (InodeNo, &Name),
    (newparent, newname): (InodeNo, &Name),
    flags: RenameFlags,
    opens: &Opens,
    now: Timestamp,
) -> Result<Option<InodeNo>, FsError> {
    let mut rec = tx.volume(vol)?;
    let g = rec.gens();
    let mut dirs = BTreeMap::new();
    dirs.insert(parent, get_dir(tx, vol, parent)?);
    if newparent != parent {
        dirs.insert(newparent, get_dir(tx, vol, newparent)?);
    }
    let (sino, skind) = lookup(tx, vol, parent, name)?.ok_or(FsError::NotFound)?;
    let dst = lookup(tx, vol, newparent, newname)?;
    let mut victim = None;
    if flags.exchange {
        let (dino, dkind) = dst.ok_or(FsError::NotFound)?;
        if dino == sino {
            return Ok(None);
        }
        if parent != newparent
            && ((skind == FileKind::Dir && txops::is_within(tx, vol, newparent, sino)?)
                || (dkind == FileKind::Dir && txops::is_within(tx, vol, parent, dino)?))
        {
            return Err(FsError::Invalid("cannot move a directory into itself"));
        }
        txops::add_dirent(tx, &g, parent, name, dino, dkind)?;
        txops::add_dirent(tx, &g, newparent, newname, sino, skind)?;
        for (ino, kind, from, to) in [
            (sino, skind, parent, newparent),
            (dino, dkind, newparent, parent),
        ] {
            moved(tx, &g, &mut dirs, (ino, kind), from, to, now)?;
        }
    } else {
        if flags.noreplace && dst.is_some() {
            return Err(FsError::Exists);
        }
        if dst.is_some_and(|(d, _)| d == sino) {
            return Ok(None);
        }
        if skind == FileKind::Dir && txops::is_within(tx, vol, newparent, sino)? {
            return Err(FsError::Invalid("cannot move a directory into itself"));
        }
        // The target is an ancestor of the source (so not empty), whatever the source is.
        if let Some((dino, FileKind::Dir)) = dst
            && txops::is_within(tx, vol, parent, dino)?
        {
            return Err(FsError::NotEmpty);
        }
        if let Some((dino, dkind)) = dst {
            if skind == FileKind::Dir && dkind != FileKind::Dir {
                return Err(FsError::NotDir);
            }
            if skind != FileKind::Dir && dkind == FileKind::Dir {
                return Err(FsError::IsDir);
            }
            if dkind == FileKind::Dir && !tx.dir_is_empty(vol, dino)? {
                return Err(FsError::NotEmpty);
            }
            // Open, the victim stays (with no links) until its last release.
            let open = mark_if_open(opens, vol, dino);
            if dkind == FileKind::Dir {
                txops::drop_dir(tx, &mut rec, dino, open, &opens.held, now)?;
                if let Some(d) = dirs.get_mut(&newparent) {
                    d.nlink = d.nlink.saturating_sub(1);
                }
            } else {
                txops::drop_link(tx, &mut rec, dino, open, now)?;
            }
            victim = Some(dino);
        }
        txops::remove_dirent(tx, &g, parent, name)?;
        txops::add_dirent(tx, &g, newparent, newname, sino, skind)?;
        moved(tx, &g, &mut dirs, (sino, skind), parent, newparent, now)?;
    }
    for (ino, mut d) in dirs {
        d.mtime = now;
        d.ctime = now;
        put_inode(tx, &g, ino, &d)?;
    }
    tx.put_volume(&rec)?;
    Ok(victim)
}

/// Records in a rename that `ino` (of `kind`) moved from directory `from` to `to`: its
/// ctime and parent link; a directory that changes parent also moves its ".." link from
/// `from`'s link count to `to`'s (in `dirs`, which the caller writes).
fn moved(
    tx: &mut Tx<'_>,
    g: &Gens,
    dirs: &mut BTreeMap<InodeNo, Inode>,
    (ino, kind): (InodeNo, FileKind),
    from: InodeNo,
    to: InodeNo,
    now: Timestamp,
) -> Result<(), FsError> {
    let mut inode = get_inode(tx, g.vol, ino)?;
    inode.ctime = now;
    if kind != FileKind::Dir {
        inode.parent = to;
    }
    if kind == FileKind::Dir && from != to {
        inode.parent = to;
        if let Some(d) = dirs.get_mut(&from) {
            d.nlink = d.nlink.saturating_sub(1);
        }
        if let Some(d) = dirs.get_mut(&to) {
            d.nlink += 1;
        }
    }
    put_inode(tx, g, ino, &inode)
}
