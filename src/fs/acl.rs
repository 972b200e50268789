//! POSIX ACLs: the `system.posix_acl_access` and `system.posix_acl_default` xattrs, kept as
//! ordinary xattr rows (so snapshots, clones and restores carry them like any other xattr).
//!
//! The kernel enforces ACLs itself (the mount negotiates FUSE_POSIX_ACL and runs with
//! default_permissions) and caches them; this module owns what the kernel leaves to the
//! filesystem, as `fs/posix_acl.c` does for a local one:
//! - the stored value is the kernel's xattr format (version 2 header, then entries of
//!   tag/perm/id, little endian), validated as `posix_acl_valid` does: malformed is EINVAL;
//! - the mode and the access ACL agree: an ACL equivalent to a mode is not stored (the mode
//!   is set instead), a stored one gives the mode its owner/group-or-mask/other bits, and
//!   chmod rewrites those entries of a stored ACL ([`on_chmod`]);
//! - setting an access ACL drops setgid when the caller is neither in the file's group nor
//!   holds CAP_FSETID (the kernel strips it for chmod, not for an ACL a server stores);
//! - a new inode inherits its directory's default ACL, or gets the caller's umask when the
//!   directory has none (FUSE_POSIX_ACL makes the kernel send the umask instead of applying
//!   it); a new directory also keeps the default ACL as its own ([`on_create`]).
//!
//! Invariant: a stored access ACL always has named entries or a mask (never equivalent to
//! the mode), and its USER_OBJ, GROUP_OBJ-or-MASK and OTHER entries equal the mode's bits.

use crate::store::keys::RowId;
use crate::store::rows::{Gens, RowValue, View};
use crate::store::{ReadView, Tx};
use crate::types::{InodeNo, VolumeId};

use super::Inner;
use super::attr::*;
use super::error::FsError;
use super::txops::{get_inode, put_inode};

/// The access ACL's xattr name.
pub const ACCESS: &[u8] = b"system.posix_acl_access";
/// The default ACL's xattr name (directories only).
pub const DEFAULT: &[u8] = b"system.posix_acl_default";

const VERSION: u32 = 2;
const USER_OBJ: u16 = 0x01;
const USER: u16 = 0x02;
const GROUP_OBJ: u16 = 0x04;
const GROUP: u16 = 0x08;
const MASK: u16 = 0x10;
const OTHER: u16 = 0x20;
/// The id of entries that name no one (USER_OBJ, GROUP_OBJ, MASK, OTHER).
const UNDEFINED_ID: u32 = u32::MAX;
/// Every entry's size in the xattr format.
const ENTRY: usize = 8;
const RWX: u16 = 0o7;

/// Which of an inode's two ACLs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AclKind {
    Access,
    Default,
}

impl AclKind {
    /// The ACL an xattr name stands for, if it is one.
    pub fn of(name: &[u8]) -> Option<AclKind> {
        match name {
            ACCESS => Some(AclKind::Access),
            DEFAULT => Some(AclKind::Default),
            _ => None,
        }
    }

    fn name(self) -> &'static [u8] {
        match self {
            AclKind::Access => ACCESS,
            AclKind::Default => DEFAULT,
        }
    }
}

/// Who sets an access ACL, as far as keeping setgid is concerned: the caller's groups
/// (primary and supplementary) and whether it holds CAP_FSETID.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Caller {
    pub groups: Vec<u32>,
    pub fsetid: bool,
}

impl Caller {
    /// A caller that keeps setgid whatever the file's group (the library's own callers).
    pub fn privileged() -> Caller {
        Caller {
            groups: Vec::new(),
            fsetid: true,
        }
    }

    /// Whether a change by this caller keeps setgid on a file of group `gid` (CAP_FSETID, or
    /// a member of the group).
    pub(crate) fn keeps_sgid(&self, gid: u32) -> bool {
        self.fsetid || self.groups.contains(&gid)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Entry {
    tag: u16,
    perm: u16,
    id: u32,
}

/// A valid ACL, entries in the kernel's order (by tag).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Acl(Vec<Entry>);

impl Acl {
    /// Parses and validates the xattr format; `None` for a header without entries (which
    /// the kernel reads as "no ACL").
    pub(crate) fn parse(bytes: &[u8]) -> Result<Option<Acl>, FsError> {
        let bad = FsError::Invalid(
            "malformed POSIX ACL (expected version 2, then entries of tag, perm, id)",
        );
        let (head, body) = bytes
            .split_at_checked(4)
            .ok_or(FsError::Invalid("POSIX ACL shorter than its header"))?;
        if u32::from_le_bytes([head[0], head[1], head[2], head[3]]) != VERSION {
            return Err(FsError::Invalid("POSIX ACL version is not 2"));
        }
        if body.len() % ENTRY != 0 {
            return Err(bad);
        }
        if body.is_empty() {
            return Ok(None);
        }
        let entries = body
            .chunks_exact(ENTRY)
            .map(|e| Entry {
                tag: u16::from_le_bytes([e[0], e[1]]),
                perm: u16::from_le_bytes([e[2], e[3]]),
                id: u32::from_le_bytes([e[4], e[5], e[6], e[7]]),
            })
            .collect();
        let acl = Acl(entries);
        acl.validate()?;
        Ok(Some(acl))
    }

    /// `posix_acl_valid`: one USER_OBJ, GROUP_OBJ and OTHER, at most one MASK (required
    /// with named entries), tags in order, perms rwx only.
    fn validate(&self) -> Result<(), FsError> {
        let bad = |why| Err(FsError::Invalid(why));
        let mut last: Option<Entry> = None;
        let mut named = false;
        let has = |tag: u16| self.0.iter().filter(|e| e.tag == tag).count();
        if has(USER_OBJ) != 1 || has(GROUP_OBJ) != 1 || has(OTHER) != 1 || has(MASK) > 1 {
            return bad("POSIX ACL needs exactly one user::, group:: and other:: entry");
        }
        for e in &self.0 {
            if e.perm & !RWX != 0 {
                return bad("POSIX ACL permission other than rwx");
            }
            match e.tag {
                USER_OBJ | GROUP_OBJ | MASK | OTHER => {}
                USER | GROUP => {
                    if e.id == UNDEFINED_ID {
                        return bad("POSIX ACL names the undefined id");
                    }
                    named = true;
                }
                _ => return bad("POSIX ACL entry of an unknown type"),
            }
            if let Some(p) = last {
                // As the kernel: tags in order; named entries may share a tag.
                let ordered = p.tag < e.tag || (p.tag == e.tag && matches!(e.tag, USER | GROUP));
                if !ordered {
                    return bad("POSIX ACL entries out of order");
                }
            }
            last = Some(*e);
        }
        if named && has(MASK) == 0 {
            return bad("POSIX ACL with named entries needs a mask:: entry");
        }
        Ok(())
    }

    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(4 + ENTRY * self.0.len());
        out.extend_from_slice(&VERSION.to_le_bytes());
        for e in &self.0 {
            out.extend_from_slice(&e.tag.to_le_bytes());
            out.extend_from_slice(&e.perm.to_le_bytes());
            out.extend_from_slice(&e.id.to_le_bytes());
        }
        out
    }

    /// `posix_acl_equiv_mode`: `perm` with its rwx bits taken from the ACL, and whether
    /// the ACL says more than a mode can (named entries or a mask).
    pub(crate) fn equiv_mode(&self, perm: u16) -> (u16, bool) {
        let mut mode = 0u16;
        let mut not_equiv = false;
        for e in &self.0 {
            match e.tag {
                USER_OBJ => mode |= e.perm << 6,
                GROUP_OBJ => mode |= e.perm << 3,
                OTHER => mode |= e.perm,
                MASK => {
                    mode = (mode & !0o070) | (e.perm << 3);
                    not_equiv = true;
                }
                _ => not_equiv = true,
            }
        }
        ((perm & !0o777) | mode, not_equiv)
    }

    /// `posix_acl_chmod`: the entries a mode stands for follow `perm`.
    pub(crate) fn chmod(&mut self, perm: u16) {
        let has_mask = self.0.iter().any(|e| e.tag == MASK);
        for e in &mut self.0 {
            match e.tag {
                USER_OBJ => e.perm = (perm >> 6) & RWX,
                MASK => e.perm = (perm >> 3) & RWX,
                GROUP_OBJ if !has_mask => e.perm = (perm >> 3) & RWX,
                OTHER => e.perm = perm & RWX,
                _ => {}
            }
        }
    }

    /// `posix_acl_create_masq`: a directory's default ACL, cut down to the mode a creator
    /// asks for; returns that mode (with the ACL's limits) and whether the ACL says more.
    fn create_masq(&mut self, perm: u16) -> (u16, bool) {
        let mut mode = perm & 0o777;
        let mut not_equiv = false;
        let has_mask = self.0.iter().any(|e| e.tag == MASK);
        for e in &mut self.0 {
            match e.tag {
                USER_OBJ => {
                    e.perm &= (mode >> 6) & RWX;
                    mode &= (e.perm << 6) | !0o700;
                }
                OTHER => {
                    e.perm &= mode & RWX;
                    mode &= e.perm | !0o007;
                }
                MASK => {
                    not_equiv = true;
                    e.perm &= (mode >> 3) & RWX;
                    mode &= (e.perm << 3) | !0o070;
                }
                GROUP_OBJ if !has_mask => {
                    e.perm &= (mode >> 3) & RWX;
                    mode &= (e.perm << 3) | !0o070;
                }
                USER | GROUP => not_equiv = true,
                _ => {}
            }
        }
        ((perm & !0o777) | mode, not_equiv)
    }
}

/// The ACL `kind` of `ino` as stored (validated when it was written).
fn stored(
    tx: &impl ReadView,
    vol: VolumeId,
    ino: InodeNo,
    kind: AclKind,
) -> Result<Option<Acl>, FsError> {
    match tx.xattr(vol, View::Live, ino, kind.name())? {
        Some(bytes) => Acl::parse(&bytes),
        None => Ok(None),
    }
}

fn put(
    tx: &mut Tx<'_>,
    g: &Gens,
    ino: InodeNo,
    kind: AclKind,
    acl: Option<&Acl>,
) -> Result<(), FsError> {
    let id = RowId::Xattr(ino, kind.name().to_vec());
    match acl {
        Some(acl) => tx.put_row(g, &id, &RowValue::Xattr(acl.encode()))?,
        None if tx.row(g.vol, &id, View::Live)?.is_some() => tx.delete_row(g, &id)?,
        None => {}
    }
    Ok(())
}

/// The ACLs a new inode gets from its directory (see [`on_create`]).
#[derive(Debug, Default, Clone)]
pub(crate) struct Inherited {
    access: Option<Acl>,
    default: Option<Acl>,
}

impl Inherited {
    /// The default ACL the new inode keeps (a directory's, inherited from its parent).
    pub(crate) fn default_acl(&self) -> Option<&Acl> {
        self.default.as_ref()
    }

    /// The xattr value of ACL `kind` its commit writes, if any.
    pub(crate) fn xattr(&self, kind: AclKind) -> Option<Vec<u8>> {
        match kind {
            AclKind::Access => self.access.as_ref(),
            AclKind::Default => self.default.as_ref(),
        }
        .map(Acl::encode)
    }

    /// Stores them as the new inode `ino`'s xattrs.
    pub(crate) fn put(self, tx: &mut Tx<'_>, g: &Gens, ino: InodeNo) -> Result<(), FsError> {
        if let Some(a) = &self.access {
            put(tx, g, ino, AclKind::Access, Some(a))?;
        }
        if let Some(d) = &self.default {
            put(tx, g, ino, AclKind::Default, Some(d))?;
        }
        Ok(())
    }
}

/// The permission bits of a new `kind` inode in `parent` created with `mode` (and its
/// caller's `umask`), and the ACLs it inherits (`posix_acl_create`): without a default ACL
/// on `parent` the umask applies; with one the umask is ignored and the mode is cut down
/// by the ACL. Symlinks get neither (their mode is always 0777).
pub(crate) fn on_create(
    tx: &impl ReadView,
    vol: VolumeId,
    parent: InodeNo,
    kind: FileKind,
    mode: u32,
    umask: u32,
) -> Result<(u16, Inherited), FsError> {
    if kind == FileKind::Symlink {
        return Ok(inherit(None, kind, mode, umask));
    }
    let default = stored(tx, vol, parent, AclKind::Default)?;
    Ok(inherit(default.as_ref(), kind, mode, umask))
}

/// As [`on_create`], given the directory's default ACL (`default`): for a directory whose
/// own create is not committed yet, whose ACLs only the overlay knows (pending_create.rs).
pub(crate) fn inherit(
    default: Option<&Acl>,
    kind: FileKind,
    mode: u32,
    umask: u32,
) -> (u16, Inherited) {
    let perm = (mode & 0o7777) as u16;
    if kind == FileKind::Symlink {
        return (perm, Inherited::default());
    }
    let Some(default) = default else {
        return (perm & !((umask & 0o777) as u16), Inherited::default());
    };
    let mut access = default.clone();
    let (perm, not_equiv) = access.create_masq(perm);
    (
        perm,
        Inherited {
            access: not_equiv.then_some(access),
            default: (kind == FileKind::Dir).then(|| default.clone()),
        },
    )
}

/// chmod of `ino` to `perm`: a stored access ACL follows the new mode (`posix_acl_chmod`).
pub(crate) fn on_chmod(tx: &mut Tx<'_>, g: &Gens, ino: InodeNo, perm: u16) -> Result<(), FsError> {
    if let Some(mut acl) = stored(tx, g.vol, ino, AclKind::Access)? {
        acl.chmod(perm);
        put(tx, g, ino, AclKind::Access, Some(&acl))?;
    }
    Ok(())
}

impl Inner {
    /// Sets (`Some`) or removes (`None`, or a header without entries) the ACL `kind` of
    /// `ino`, as `value` in the xattr format; the mode follows an access ACL, and loses
    /// setgid when `caller` may not keep it. Removing an absent ACL succeeds (as on ext4).
    pub fn set_acl(
        &self,
        vol: VolumeId,
        ino: InodeNo,
        kind: AclKind,
        value: Option<&[u8]>,
        caller: &Caller,
    ) -> Result<(), FsError> {
        let acl = match value {
            Some(v) => Acl::parse(v)?,
            None => None,
        };
        let caller = caller.clone();
        let now = Timestamp::now();
        // Counted with the namespace changes that commit first: a chmod checked meanwhile
        // commits first too, so none goes behind while an ACL it must rewrite is queued
        // (see pending_attr.rs).
        let vs = self.vol_state(vol)?;
        self.ns_write_op(&vs, move |tx| {
            let g = tx.volume(vol)?.gens();
            let mut inode = get_inode(tx, vol, ino)?;
            if inode.kind == FileKind::Symlink {
                return Err(FsError::NotSupported("symlinks have no ACLs"));
            }
            match (kind, acl) {
                (AclKind::Default, Some(_)) if inode.kind != FileKind::Dir => {
                    return Err(FsError::Invalid("only a directory has a default ACL"));
                }
                (AclKind::Access, Some(acl)) => {
                    let (perm, not_equiv) = acl.equiv_mode(inode.perm);
                    inode.perm = perm;
                    if !caller.keeps_sgid(inode.gid) {
                        inode.perm &= !(libc::S_ISGID as u16);
                    }
                    put(tx, &g, ino, kind, not_equiv.then_some(&acl))?;
                }
                (_, acl) => put(tx, &g, ino, kind, acl.as_ref())?,
            }
            inode.ctime = now;
            put_inode(tx, &g, ino, &inode)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acl(entries: &[(u16, u16, u32)]) -> Vec<u8> {
        Acl(entries
            .iter()
            .map(|&(tag, perm, id)| Entry { tag, perm, id })
            .collect())
        .encode()
    }

    const U: u32 = UNDEFINED_ID;

    #[test]
    fn parse_accepts_valid_and_refuses_malformed() {
        let good = acl(&[
            (USER_OBJ, 6, U),
            (USER, 4, 65534),
            (GROUP_OBJ, 4, U),
            (MASK, 4, U),
            (OTHER, 0, U),
        ]);
        assert!(Acl::parse(&good).unwrap().is_some());
        assert!(Acl::parse(&2u32.to_le_bytes()).unwrap().is_none());
        for bad in [
            vec![],
            vec![2, 0, 0],
            acl(&[(USER_OBJ, 6, U)]),
            // Named entry without a mask.
            acl(&[
                (USER_OBJ, 6, U),
                (USER, 4, 1),
                (GROUP_OBJ, 4, U),
                (OTHER, 0, U),
            ]),
            // Out of order.
            acl(&[(GROUP_OBJ, 4, U), (USER_OBJ, 6, U), (OTHER, 0, U)]),
            // Permission bits beyond rwx.
            acl(&[(USER_OBJ, 0o17, U), (GROUP_OBJ, 4, U), (OTHER, 0, U)]),
            // Unknown tag.
            acl(&[
                (USER_OBJ, 6, U),
                (GROUP_OBJ, 4, U),
                (0x40, 0, U),
                (OTHER, 0, U),
            ]),
            [1u32.to_le_bytes().as_slice(), &good[4..]].concat(),
            good[..good.len() - 1].to_vec(),
        ] {
            assert!(Acl::parse(&bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn mode_and_acl_agree() {
        let plain = Acl::parse(&acl(&[(USER_OBJ, 7, U), (GROUP_OBJ, 5, U), (OTHER, 1, U)]))
            .unwrap()
            .unwrap();
        assert_eq!(plain.equiv_mode(0o2000), (0o2751, false));
        let mut named = Acl::parse(&acl(&[
            (USER_OBJ, 6, U),
            (USER, 7, 9),
            (GROUP_OBJ, 4, U),
            (MASK, 6, U),
            (OTHER, 0, U),
        ]))
        .unwrap()
        .unwrap();
        assert_eq!(named.equiv_mode(0), (0o660, true));
        named.chmod(0o640);
        assert_eq!(named.equiv_mode(0), (0o640, true));
        assert_eq!(named.0[1].perm, 7, "chmod leaves named entries");
    }

    #[test]
    fn create_cuts_the_default_acl_by_the_mode() {
        let default = acl(&[
            (USER_OBJ, 7, U),
            (USER, 7, 9),
            (GROUP_OBJ, 5, U),
            (MASK, 7, U),
            (OTHER, 5, U),
        ]);
        let mut a = Acl::parse(&default).unwrap().unwrap();
        assert_eq!(a.create_masq(0o666), (0o666 & 0o775, true));
        let mut plain = Acl::parse(&acl(&[(USER_OBJ, 7, U), (GROUP_OBJ, 0, U), (OTHER, 0, U)]))
            .unwrap()
            .unwrap();
        assert_eq!(plain.create_masq(0o755), (0o700, false));
    }
}
