//! Inode and directory-entry rows of one volume as the filesystem sees them, read from a
//! [`ReadView`] (a read transaction or the writer's), and the helpers that run inside a
//! write transaction: writing those rows and freeing an inode with everything it holds.
//! Everything here checks before it mutates, so a refused operation leaves the transaction
//! untouched.

use crate::store::keys::{self, RowId};
use crate::store::rows::{Gens, RowValue, View};
use crate::store::volumes::VolumeRecord;
use crate::store::{ReadView, StoreError, Tx};
use crate::types::{InodeNo, Name, NameError, VolumeId};

use super::attr::{FileKind, Inode, Timestamp};
use super::error::FsError;
use super::ghosts::Held;

/// The inode as a view sees it; ENOENT when absent.
pub(crate) fn inode_in(
    r: &impl ReadView,
    vol: VolumeId,
    view: View,
    ino: InodeNo,
) -> Result<Inode, FsError> {
    match r.inode(vol, view, ino)? {
        Some(b) => Inode::decode(&b),
        None => Err(FsError::NotFound),
    }
}

/// The live inode as this transaction holds it: a deferred rewrite of its row (see
/// [`put_dir_deferred`]), else the row.
pub fn get_inode(tx: &Tx<'_>, vol: VolumeId, ino: InodeNo) -> Result<Inode, FsError> {
    match tx.inode_deferred(vol, ino) {
        Some(b) => Inode::decode(b),
        None => inode_in(tx, vol, View::Live, ino),
    }
}

pub fn get_dir(tx: &Tx<'_>, vol: VolumeId, ino: InodeNo) -> Result<Inode, FsError> {
    let inode = get_inode(tx, vol, ino)?;
    if inode.kind != FileKind::Dir {
        return Err(FsError::NotDir);
    }
    Ok(inode)
}

pub fn put_inode(tx: &mut Tx<'_>, g: &Gens, ino: InodeNo, inode: &Inode) -> Result<(), FsError> {
    tx.put_row(g, &RowId::Inode(ino), &RowValue::Inode(inode.encode()?))?;
    Ok(())
}

/// As [`put_inode`] for a directory a create or a remove in it rewrites (times, links):
/// written once per run of such jobs in a batch (see `crate::store` deferred.rs). Read it
/// back in the same transaction only through [`get_inode`] / [`get_dir`].
pub fn put_dir_deferred(
    tx: &mut Tx<'_>,
    g: &Gens,
    ino: InodeNo,
    inode: &Inode,
) -> Result<(), FsError> {
    tx.put_inode_deferred(g, ino, inode.encode()?)?;
    Ok(())
}

/// Validates a directory-entry name as the kernel would report it.
pub fn entry_name(name: &[u8]) -> Result<Name, FsError> {
    Name::new(name.to_vec()).map_err(|e| match e {
        NameError::TooLong => FsError::NameTooLong,
        NameError::Empty => FsError::NotFound,
        NameError::BadChar | NameError::Reserved => FsError::Invalid("bad file name"),
    })
}

pub fn dirent_id(dir: InodeNo, name: &Name) -> RowId {
    RowId::Dirent(
        dir,
        keys::name_hash(name.as_bytes()),
        name.as_bytes().to_vec(),
    )
}

pub fn lookup(
    tx: &Tx<'_>,
    vol: VolumeId,
    dir: InodeNo,
    name: &Name,
) -> Result<Option<(InodeNo, FileKind)>, FsError> {
    match tx.dirent(vol, View::Live, dir, name.as_bytes())? {
        Some((ino, kind)) => Ok(Some((ino, FileKind::from_code(kind)?))),
        None => Ok(None),
    }
}

pub fn add_dirent(
    tx: &mut Tx<'_>,
    g: &Gens,
    dir: InodeNo,
    name: &Name,
    ino: InodeNo,
    kind: FileKind,
) -> Result<(), FsError> {
    tx.put_row(
        g,
        &dirent_id(dir, name),
        &RowValue::Dirent {
            ino,
            kind: kind.code(),
        },
    )?;
    Ok(())
}

pub fn remove_dirent(tx: &mut Tx<'_>, g: &Gens, dir: InodeNo, name: &Name) -> Result<(), FsError> {
    tx.delete_row(g, &dirent_id(dir, name))?;
    Ok(())
}

/// Counts a new file with inode number `ino` (handed out by `VolState::alloc_ino`) in the
/// volume record: the record's next number passes it.
pub fn count_ino(rec: &mut VolumeRecord, ino: InodeNo) {
    rec.next_ino = InodeNo(rec.next_ino.0.max(ino.0 + 1));
    rec.files += 1;
}

/// Deletes an inode with all its rows (attributes, extents, xattrs) and releases its chunks.
pub fn free_inode(tx: &mut Tx<'_>, rec: &mut VolumeRecord, ino: InodeNo) -> Result<(), FsError> {
    let inode = get_inode(tx, rec.id, ino)?;
    free_read(tx, rec, ino, &inode)
}

/// [`free_inode`] of an inode already read (`inode`).
fn free_read(
    tx: &mut Tx<'_>,
    rec: &mut VolumeRecord,
    ino: InodeNo,
    inode: &Inode,
) -> Result<(), FsError> {
    let g = rec.gens();
    let mut rows = Vec::new();
    tx.inode_rows(rec.id, View::Live, ino, |id, _| {
        rows.push(id);
        Ok(true)
    })?;
    for id in rows {
        tx.delete_row(&g, &id)?;
    }
    tx.orphans_remove(rec.id, ino)?;
    rec.files = rec.files.saturating_sub(1);
    if inode.kind == FileKind::File {
        rec.logical_bytes = rec.logical_bytes.saturating_sub(inode.size);
    }
    rec.stored_bytes = rec.stored_bytes.saturating_sub(inode.stored);
    Ok(())
}

/// Drops one link of a non-directory inode; the last link frees it, unless it is open, in
/// which case it becomes an orphan that the last close (or the next pool open) frees.
pub fn drop_link(
    tx: &mut Tx<'_>,
    rec: &mut VolumeRecord,
    ino: InodeNo,
    open: bool,
    now: Timestamp,
) -> Result<(), FsError> {
    let g = rec.gens();
    let mut inode = get_inode(tx, rec.id, ino)?;
    inode.nlink = inode.nlink.saturating_sub(1);
    inode.ctime = now;
    if inode.nlink == 0 && !open {
        free_read(tx, rec, ino, &inode)
    } else {
        if inode.nlink == 0 {
            tx.orphans_add(rec.id, ino)?;
        }
        put_inode(tx, &g, ino, &inode)
    }
}

/// Removes the last name of an empty directory: it is freed, unless it is open, in which
/// case it stays with no links (an orphan, as a file unlinked while open) until its last
/// release, or the next pool open, frees it. Freed while the kernel holds it (a working
/// directory), its last attributes and xattrs stay in `held` as its ghost (see ghosts.rs).
pub fn drop_dir(
    tx: &mut Tx<'_>,
    rec: &mut VolumeRecord,
    ino: InodeNo,
    open: bool,
    held: &Held,
    now: Timestamp,
) -> Result<(), FsError> {
    let g = rec.gens();
    let mut inode = get_inode(tx, rec.id, ino)?;
    inode.nlink = 0;
    inode.ctime = now;
    if !open {
        // Buried first: the ghost keeps the xattrs that freeing deletes.
        held.bury(tx, rec.id, ino, &inode)?;
        free_read(tx, rec, ino, &inode)?;
        return Ok(());
    }
    tx.orphans_add(rec.id, ino)?;
    put_inode(tx, &g, ino, &inode)
}

/// Drops an inode's privileges: setuid, group-executable setgid (in `inode`, which the
/// caller stores) and the capabilities xattr (deleted here). Returns whether it had any.
pub fn drop_privs(
    tx: &mut Tx<'_>,
    g: &Gens,
    ino: InodeNo,
    inode: &mut Inode,
) -> Result<bool, FsError> {
    let caps = RowId::Xattr(ino, super::attr::CAPS_XATTR.to_vec());
    let had_caps = tx.row(g.vol, &caps, View::Live)?.is_some();
    let perm = super::attr::without_privs(inode.perm);
    if perm == inode.perm && !had_caps {
        return Ok(false);
    }
    inode.perm = perm;
    if had_caps {
        tx.delete_row(g, &caps)?;
    }
    Ok(true)
}

/// Is `ino` the directory `ancestor` or below it? (Walks up the parent links.)
pub fn is_within(
    tx: &Tx<'_>,
    vol: VolumeId,
    mut ino: InodeNo,
    ancestor: InodeNo,
) -> Result<bool, FsError> {
    for _ in 0..100_000 {
        if ino == ancestor {
            return Ok(true);
        }
        if ino == InodeNo::ROOT {
            return Ok(false);
        }
        ino = get_inode(tx, vol, ino)?.parent;
    }
    Err(StoreError::Damaged("directory parent links form a loop".into()).into())
}
