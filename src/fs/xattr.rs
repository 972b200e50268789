//! Extended attributes: set, get, list, remove, and dropping file capabilities with the
//! setuid/setgid bits (`kill_privs`). The POSIX ACL names go to acl.rs. Each change is one writer job that checks before it
//! mutates, as in [`super::ns`].

use crate::store::keys::RowId;
use crate::store::rows::{Gens, RowValue, View};
use crate::store::{ReadView, Tx};
use crate::types::{InodeNo, VolumeId};

use super::Inner;
use super::acl::{AclKind, Caller};
use super::attr::*;
use super::error::FsError;
use super::txops::{self, get_inode, put_inode};

const MAX_XATTR_VALUE: usize = 64 * 1024;

impl Inner {
    pub fn setxattr(
        &self,
        vol: VolumeId,
        ino: InodeNo,
        name: &[u8],
        value: &[u8],
        mode: XattrMode,
    ) -> Result<(), FsError> {
        check_xattr_name(name)?;
        if value.len() > MAX_XATTR_VALUE {
            return Err(FsError::TooBig);
        }
        if let Some(kind) = AclKind::of(name) {
            return self.set_acl(vol, ino, kind, Some(value), &Caller::privileged());
        }
        if name == CAPS_XATTR {
            // Buffered writes checked for privileges before this one existed.
            self.mark_privs(vol, ino);
        }
        let value = value.to_vec();
        self.change_xattr(vol, ino, name, move |tx, g, id, exists| {
            match mode {
                XattrMode::Create if exists => return Err(FsError::Exists),
                XattrMode::Replace if !exists => return Err(FsError::NoData),
                _ => {}
            }
            Ok(tx.put_row(g, id, &RowValue::Xattr(value))?)
        })
    }

    pub fn getxattr(
        &self,
        vol: VolumeId,
        view: View,
        ino: InodeNo,
        name: &[u8],
    ) -> Result<Vec<u8>, FsError> {
        check_xattr_name(name)?;
        // The kernel asks a new file for `security.capability` before its first write (and
        // a new directory for its ACLs when someone else than its owner goes in): an inode
        // whose create is not committed yet has no xattrs but the ACLs its create
        // inherits, which the overlay keeps, so these answers need no wait for the writer.
        if let Some(acls) = self.create_pending(vol, view, ino)? {
            return AclKind::of(name)
                .and_then(|kind| acls.xattr(kind))
                .ok_or(FsError::NoData);
        }
        let (r, _) = self.read_inode(vol, view, ino)?;
        r.xattr(vol, view, ino, name)?.ok_or(FsError::NoData)
    }

    /// The ACLs of live inode `ino` when it is a create answered but not committed yet.
    /// Every change of its xattrs is a writer job after its create, so none is committed
    /// either.
    fn create_pending(
        &self,
        vol: VolumeId,
        view: View,
        ino: InodeNo,
    ) -> Result<Option<super::acl::Inherited>, FsError> {
        if view != View::Live {
            return Ok(None);
        }
        let vs = self.vol_state(vol)?;
        let pending = super::lock(&vs.pending);
        let r = self.store.read()?;
        Ok(pending.seen(&r)?.and_then(|s| s.created_acls(ino)).cloned())
    }

    pub fn listxattr(
        &self,
        vol: VolumeId,
        view: View,
        ino: InodeNo,
    ) -> Result<Vec<Vec<u8>>, FsError> {
        let (r, _) = self.read_inode(vol, view, ino)?;
        Ok(r.xattr_names(vol, view, ino)?)
    }

    /// Drops a file's privileges (see [`SetAttr::kill_priv`]) for a write by a caller
    /// without CAP_FSETID; returns whether it had any.
    pub(crate) fn kill_privs(&self, vol: VolumeId, ino: InodeNo) -> Result<bool, FsError> {
        let now = Timestamp::now();
        self.write_op(move |tx| {
            let rec = tx.volume(vol)?;
            let g = rec.gens();
            let mut inode = get_inode(tx, vol, ino)?;
            if !txops::drop_privs(tx, &g, ino, &mut inode)? {
                return Ok(false);
            }
            inode.ctime = now;
            put_inode(tx, &g, ino, &inode)?;
            Ok(true)
        })
    }

    pub fn removexattr(&self, vol: VolumeId, ino: InodeNo, name: &[u8]) -> Result<(), FsError> {
        check_xattr_name(name)?;
        if let Some(kind) = AclKind::of(name) {
            return self.set_acl(vol, ino, kind, None, &Caller::privileged());
        }
        self.change_xattr(vol, ino, name, |tx, g, id, exists| {
            if !exists {
                return Err(FsError::NoData);
            }
            Ok(tx.delete_row(g, id)?)
        })
    }

    /// One writer job that changes the xattr `name` of `ino`: `change` gets whether it
    /// exists and writes or removes its row, or refuses (changing nothing); the inode's
    /// ctime follows.
    fn change_xattr(
        &self,
        vol: VolumeId,
        ino: InodeNo,
        name: &[u8],
        change: impl FnOnce(&mut Tx<'_>, &Gens, &RowId, bool) -> Result<(), FsError> + Send + 'static,
    ) -> Result<(), FsError> {
        let name = name.to_vec();
        let now = Timestamp::now();
        self.write_op(move |tx| {
            let g = tx.volume(vol)?.gens();
            let mut inode = get_inode(tx, vol, ino)?;
            let id = RowId::Xattr(ino, name);
            let exists = tx.row(vol, &id, View::Live)?.is_some();
            change(tx, &g, &id, exists)?;
            inode.ctime = now;
            put_inode(tx, &g, ino, &inode)
        })
    }
}

fn check_xattr_name(name: &[u8]) -> Result<(), FsError> {
    // Linux refuses an empty name with ERANGE, like an over-long one.
    if name.is_empty() {
        return Err(FsError::Range);
    }
    if name.len() > 255 {
        return Err(FsError::Range);
    }
    Ok(())
}
