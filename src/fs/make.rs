//! create, mknod, mkdir and symlink: one new inode and its name.
//!
//! All four are write-behind (see pending.rs and pending_create.rs): checked against the
//! committed rows plus the overlay, given an inode number from the volume's in-memory
//! allocator, answered at once, and committed by the writer in a later batch. They commit
//! before they answer instead when a namespace operation that commits first is in flight
//! (its job could refuse theirs), or when the pool's disk is nearly full (the commit then
//! answers what the disk says: ENOSPC is never returned after success).
//!
//! A directory whose mkdir is pending is a parent like a committed one: its link count, its
//! setgid bit and its default ACL (which the overlay keeps with it) decide what is made
//! inside it, and those creates queue behind its job. Every other operation on it either
//! reads the overlay or runs in the writer after its commit (rmdir, rename, link: FIFO).
//!
//! The new inode is built by [`new_inode`] before either path queues its job, so the
//! attributes answered are the row committed.

use crate::store::rows::View;
use crate::store::volumes::VolumeRecord;
use crate::store::{ReadView, Tx};
use crate::types::{InodeNo, Name, VolumeId};

use super::acl::{self, Inherited};
use super::attr::*;
use super::error::FsError;
use super::ns::MAX_LINKS;
use super::pending::{dirent_seen, inode_seen};
use super::txops::{self, entry_name, get_dir, lookup, put_inode};
use super::{Inner, VolState, lock};

/// Longest symlink target (PATH_MAX - 1).
const MAX_TARGET: usize = 4095;

/// What a create asks for (besides where).
struct NewNode {
    kind: FileKind,
    mode: u32,
    rdev: u32,
    target: Vec<u8>,
    ctx: Ctx,
}

/// The inode `node` makes in directory `dir` (inode `parent`) at `now`, and the ACLs it
/// inherits: the mode (umask or the directory's default ACL, see `acl::on_create`), owner
/// and group a create gives it (the setgid directory rule included). `r` holds the
/// directory's committed rows; `pending_dir` the ACLs of a directory whose own create is
/// still pending (the rows have none of it yet).
fn new_inode(
    r: &impl ReadView,
    vol: VolumeId,
    node: NewNode,
    (dir, pending_dir): (&Inode, Option<&Inherited>),
    parent: InodeNo,
    now: Timestamp,
) -> Result<(Inode, Inherited), FsError> {
    let NewNode {
        kind,
        mode,
        rdev,
        target,
        ctx,
    } = node;
    let sgid = dir.perm as u32 & libc::S_ISGID != 0;
    let (mut perm, acls) = match pending_dir {
        Some(p) => acl::inherit(p.default_acl(), kind, mode, ctx.umask),
        None => acl::on_create(r, vol, parent, kind, mode, ctx.umask)?,
    };
    if kind == FileKind::Dir && sgid {
        perm |= libc::S_ISGID as u16;
    }
    let inode = Inode {
        kind,
        perm,
        uid: ctx.uid,
        gid: if sgid { dir.gid } else { ctx.gid },
        nlink: if kind == FileKind::Dir { 2 } else { 1 },
        size: if kind == FileKind::Symlink {
            target.len() as u64
        } else {
            0
        },
        atime: now,
        mtime: now,
        ctime: now,
        crtime: now,
        rdev,
        // Every inode remembers the directory it was created or last renamed in (for
        // paths in diffs); for directories it is also "..".
        parent,
        stored: 0,
        target,
    };
    Ok((inode, acls))
}

/// Checks that an inode of `kind` can be made in directory `dir` under a name that
/// `exists` already or not.
fn check_new(dir: &Inode, kind: FileKind, exists: bool) -> Result<(), FsError> {
    if dir.kind != FileKind::Dir {
        return Err(FsError::NotDir);
    }
    if dir.nlink == 0 {
        return Err(FsError::NotFound);
    }
    if exists {
        return Err(FsError::Exists);
    }
    if kind == FileKind::Dir && dir.nlink >= MAX_LINKS {
        return Err(FsError::TooManyLinks);
    }
    Ok(())
}

/// Writes the new inode `ino` (with the ACLs it inherits) and its name `name` in `parent`
/// (whose row is `dir`), and counts it in the volume record. The caller has checked the
/// name is free.
#[allow(clippy::too_many_arguments)]
fn add_node(
    tx: &mut Tx<'_>,
    mut rec: VolumeRecord,
    parent: InodeNo,
    mut dir: Inode,
    name: &Name,
    ino: InodeNo,
    (inode, acls): (&Inode, Inherited),
    now: Timestamp,
) -> Result<(), FsError> {
    let g = rec.gens();
    txops::count_ino(&mut rec, ino);
    put_inode(tx, &g, ino, inode)?;
    acls.put(tx, &g, ino)?;
    txops::add_dirent(tx, &g, parent, name, ino, inode.kind)?;
    if inode.kind == FileKind::Dir {
        dir.nlink += 1;
    }
    dir.mtime = now;
    dir.ctime = now;
    // Once per batch for a run of creates and removes (see `crate::store` deferred.rs).
    txops::put_dir_deferred(tx, &g, parent, &dir)?;
    tx.put_volume_deferred(rec);
    Ok(())
}

/// Inside the writer: checks and makes `name` in `parent` with inode `ino` (`inode`).
#[allow(clippy::too_many_arguments)]
fn make_in_tx(
    tx: &mut Tx<'_>,
    vol: VolumeId,
    parent: InodeNo,
    name: &Name,
    ino: InodeNo,
    inode: &Inode,
    acls: Inherited,
    now: Timestamp,
) -> Result<(), FsError> {
    let rec = tx.volume_deferred(vol)?;
    let dir = get_dir(tx, vol, parent)?;
    let exists = dir.nlink != 0 && lookup(tx, vol, parent, name)?.is_some();
    check_new(&dir, inode.kind, exists)?;
    add_node(tx, rec, parent, dir, name, ino, (inode, acls), now)
}

impl Inner {
    fn make_node(
        &self,
        vol: VolumeId,
        parent: InodeNo,
        name: &[u8],
        node: NewNode,
    ) -> Result<Attr, FsError> {
        let name = entry_name(name)?;
        let vs = self.vol_state(vol)?;
        let now = Timestamp::now();
        let node = match self.make_behind(&vs, vol, parent, &name, node, now)? {
            Ok(attr) => return Ok(attr),
            Err(node) => node,
        };
        let alloc = vs.clone();
        let (ino, inode) = self.ns_write_op(&vs, move |tx| {
            let rec = tx.volume_deferred(vol)?;
            let dir = get_dir(tx, vol, parent)?;
            let exists = dir.nlink != 0 && lookup(tx, vol, parent, &name)?.is_some();
            check_new(&dir, node.kind, exists)?;
            // Numbered once checked: a refused create uses no number.
            let (inode, acls) = new_inode(tx, vol, node, (&dir, None), parent, now)?;
            let ino = alloc.alloc_ino();
            add_node(tx, rec, parent, dir, &name, ino, (&inode, acls), now)?;
            Ok((ino, inode))
        })?;
        Ok(inode.attr(ino, vs.block_size))
    }

    /// The write-behind create (see the module docs): the answer, or the request back
    /// (`Err`) when it must commit before answering.
    fn make_behind(
        &self,
        vs: &std::sync::Arc<VolState>,
        vol: VolumeId,
        parent: InodeNo,
        name: &Name,
        node: NewNode,
        now: Timestamp,
    ) -> Result<Result<Attr, NewNode>, FsError> {
        if !self.space.roomy() {
            return Ok(Err(node));
        }
        // The overlay stays locked from the check to its new entry: one name is made once,
        // and readers never see the create neither answered nor committed.
        let pending = lock(&vs.pending);
        if pending.sync_ns > 0 {
            return Ok(Err(node));
        }
        let r = self.store.read()?;
        let seen = pending.seen(&r)?;
        let mut dir = inode_seen(&r, seen, vol, View::Live, parent)?;
        // Its links as readers see them: pending mkdirs in it count (see check_new).
        dir.nlink += seen.map_or(0, |s| s.subdirs_made(parent));
        let exists = dir.kind == FileKind::Dir
            && dir.nlink != 0
            && match dirent_seen(&r, seen, vol, View::Live, parent, name) {
                Ok(_) => true,
                Err(FsError::NotFound) => false,
                Err(e) => return Err(e),
            };
        check_new(&dir, node.kind, exists)?;
        let pending_dir = seen.and_then(|s| s.created_acls(parent));
        let (inode, acls) = new_inode(&r, vol, node, (&dir, pending_dir), parent, now)?;
        drop(r);
        let seen_acls = acls.clone();
        let what = if inode.kind == FileKind::Dir {
            "mkdir"
        } else {
            "create"
        };
        let ino = vs.alloc_ino();
        let job_inode = inode.clone();
        let job_name = name.clone();
        let done_name = name.clone();
        let rm_name = name.clone();
        let attr = inode.attr(ino, vs.block_size);
        self.queue_behind(
            vs,
            pending,
            move |tx| make_in_tx(tx, vol, parent, &job_name, ino, &job_inode, acls, now),
            move |e| {
                tracing::error!(
                    "{what} of {:?} in directory {parent} of volume {vol} failed after \
                     it was answered, it is gone (with anything made inside it): {e}",
                    String::from_utf8_lossy(done_name.as_bytes())
                )
            },
            |p, n| {
                p.creates
                    .add(n, parent, name.as_bytes(), ino, inode, seen_acls)
            },
            move |p, n| p.creates.remove(n, parent, rm_name.as_bytes(), ino),
        )?;
        Ok(Ok(attr))
    }

    /// mknod(2): regular files (mode type 0 or S_IFREG), fifos, sockets, devices.
    pub fn mknod(
        &self,
        vol: VolumeId,
        parent: InodeNo,
        name: &[u8],
        mode: u32,
        rdev: u32,
        ctx: Ctx,
    ) -> Result<Attr, FsError> {
        let kind = FileKind::from_mode(mode).ok_or(FsError::Invalid("unknown file type"))?;
        if matches!(kind, FileKind::Dir | FileKind::Symlink) {
            return Err(FsError::Invalid(
                "mknod cannot make directories or symlinks",
            ));
        }
        let node = NewNode {
            kind,
            mode,
            rdev,
            target: Vec::new(),
            ctx,
        };
        self.make_node(vol, parent, name, node)
    }

    /// Creates a regular file.
    pub fn create(
        &self,
        vol: VolumeId,
        parent: InodeNo,
        name: &[u8],
        mode: u32,
        ctx: Ctx,
    ) -> Result<Attr, FsError> {
        let node = NewNode {
            kind: FileKind::File,
            mode,
            rdev: 0,
            target: Vec::new(),
            ctx,
        };
        self.make_node(vol, parent, name, node)
    }

    pub fn mkdir(
        &self,
        vol: VolumeId,
        parent: InodeNo,
        name: &[u8],
        mode: u32,
        ctx: Ctx,
    ) -> Result<Attr, FsError> {
        let node = NewNode {
            kind: FileKind::Dir,
            mode,
            rdev: 0,
            target: Vec::new(),
            ctx,
        };
        self.make_node(vol, parent, name, node)
    }

    pub fn symlink(
        &self,
        vol: VolumeId,
        parent: InodeNo,
        name: &[u8],
        target: &[u8],
        ctx: Ctx,
    ) -> Result<Attr, FsError> {
        if target.len() > MAX_TARGET {
            return Err(FsError::NameTooLong);
        }
        if target.is_empty() {
            return Err(FsError::NotFound);
        }
        let node = NewNode {
            kind: FileKind::Symlink,
            mode: 0o777,
            rdev: 0,
            target: target.to_vec(),
            ctx,
        };
        self.make_node(vol, parent, name, node)
    }
}
