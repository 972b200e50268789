//! Inode records and the plain attribute types the fs operations return.

use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::error::FsError;
use crate::store::StoreError;
use crate::types::InodeNo;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum FileKind {
    File,
    Dir,
    Symlink,
    Fifo,
    Socket,
    CharDev,
    BlockDev,
}

impl FileKind {
    pub fn code(self) -> u8 {
        match self {
            FileKind::File => 1,
            FileKind::Dir => 2,
            FileKind::Symlink => 3,
            FileKind::Fifo => 4,
            FileKind::Socket => 5,
            FileKind::CharDev => 6,
            FileKind::BlockDev => 7,
        }
    }

    pub fn from_code(c: u8) -> Result<FileKind, StoreError> {
        Ok(match c {
            1 => FileKind::File,
            2 => FileKind::Dir,
            3 => FileKind::Symlink,
            4 => FileKind::Fifo,
            5 => FileKind::Socket,
            6 => FileKind::CharDev,
            7 => FileKind::BlockDev,
            _ => return Err(StoreError::Damaged(format!("unknown file kind {c}"))),
        })
    }

    /// The S_IFMT bits.
    pub fn mode_bits(self) -> u32 {
        match self {
            FileKind::File => libc::S_IFREG,
            FileKind::Dir => libc::S_IFDIR,
            FileKind::Symlink => libc::S_IFLNK,
            FileKind::Fifo => libc::S_IFIFO,
            FileKind::Socket => libc::S_IFSOCK,
            FileKind::CharDev => libc::S_IFCHR,
            FileKind::BlockDev => libc::S_IFBLK,
        }
    }

    /// From the S_IFMT bits of a mode (0 means a regular file, as mknod(2) says).
    pub fn from_mode(mode: u32) -> Option<FileKind> {
        Some(match mode & libc::S_IFMT {
            0 | libc::S_IFREG => FileKind::File,
            libc::S_IFDIR => FileKind::Dir,
            libc::S_IFLNK => FileKind::Symlink,
            libc::S_IFIFO => FileKind::Fifo,
            libc::S_IFSOCK => FileKind::Socket,
            libc::S_IFCHR => FileKind::CharDev,
            libc::S_IFBLK => FileKind::BlockDev,
            _ => return None,
        })
    }
}

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
pub struct Timestamp {
    pub secs: i64,
    pub nsecs: u32,
}

impl Timestamp {
    pub fn now() -> Timestamp {
        Timestamp::from(SystemTime::now())
    }
}

impl From<SystemTime> for Timestamp {
    fn from(t: SystemTime) -> Timestamp {
        match t.duration_since(UNIX_EPOCH) {
            Ok(d) => Timestamp {
                secs: d.as_secs() as i64,
                nsecs: d.subsec_nanos(),
            },
            Err(e) => {
                let d = e.duration();
                if d.subsec_nanos() == 0 {
                    Timestamp {
                        secs: -(d.as_secs() as i64),
                        nsecs: 0,
                    }
                } else {
                    Timestamp {
                        secs: -(d.as_secs() as i64) - 1,
                        nsecs: 1_000_000_000 - d.subsec_nanos(),
                    }
                }
            }
        }
    }
}

impl From<Timestamp> for SystemTime {
    fn from(t: Timestamp) -> SystemTime {
        if t.secs >= 0 {
            UNIX_EPOCH + std::time::Duration::new(t.secs as u64, t.nsecs)
        } else {
            UNIX_EPOCH - std::time::Duration::from_secs(t.secs.unsigned_abs())
                + std::time::Duration::from_nanos(t.nsecs as u64)
        }
    }
}

/// The stored inode (value of an inode row, postcard-encoded).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Inode {
    pub kind: FileKind,
    /// Permission bits (mode & 0o7777).
    pub perm: u16,
    pub uid: u32,
    pub gid: u32,
    pub nlink: u32,
    pub size: u64,
    pub atime: Timestamp,
    pub mtime: Timestamp,
    pub ctime: Timestamp,
    pub crtime: Timestamp,
    pub rdev: u32,
    /// Parent directory, for directories ("..", and the rename-into-own-subtree check).
    pub parent: InodeNo,
    /// Stored bytes of the file's extents (st_blocks).
    pub stored: u64,
    /// Symlink target.
    pub target: Vec<u8>,
}

impl Inode {
    pub fn decode(b: &[u8]) -> Result<Inode, FsError> {
        postcard::from_bytes(b)
            .map_err(|e| FsError::Store(StoreError::Damaged(format!("inode: {e}"))))
    }

    pub fn encode(&self) -> Result<Vec<u8>, FsError> {
        postcard::to_stdvec(self)
            .map_err(|e| FsError::Store(StoreError::Damaged(format!("inode: {e}"))))
    }

    /// Can the inode take size `size`? Only a regular file can (EISDIR for a directory,
    /// EINVAL for a special file), up to [`super::MAX_FILE_SIZE`] (EFBIG): the rule of
    /// truncate and of fallocate.
    pub fn resizable(&self, size: u64) -> Result<(), FsError> {
        match self.kind {
            FileKind::File => {}
            FileKind::Dir => return Err(FsError::IsDir),
            _ => return Err(FsError::Invalid("size of a special file")),
        }
        if size > super::MAX_FILE_SIZE {
            return Err(FsError::FileTooBig);
        }
        Ok(())
    }

    pub fn attr(&self, ino: InodeNo, blksize: u32) -> Attr {
        Attr {
            ino,
            kind: self.kind,
            perm: self.perm,
            uid: self.uid,
            gid: self.gid,
            nlink: self.nlink,
            size: self.size,
            blocks: self.stored.div_ceil(512),
            atime: self.atime,
            mtime: self.mtime,
            ctime: self.ctime,
            crtime: self.crtime,
            rdev: self.rdev,
            blksize,
        }
    }
}

/// What `getattr` returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attr {
    pub ino: InodeNo,
    pub kind: FileKind,
    pub perm: u16,
    pub uid: u32,
    pub gid: u32,
    pub nlink: u32,
    pub size: u64,
    /// 512-byte blocks the data occupies.
    pub blocks: u64,
    pub atime: Timestamp,
    pub mtime: Timestamp,
    pub ctime: Timestamp,
    pub crtime: Timestamp,
    pub rdev: u32,
    pub blksize: u32,
}

impl Attr {
    /// st_mode: type bits | permission bits.
    pub fn mode(&self) -> u32 {
        self.kind.mode_bits() | self.perm as u32
    }

    /// The inode's generation, which file handles carry beside its number (32 bits: what
    /// the kernel keeps): a function of its birth time, so the same across remounts and
    /// restarts, and another for a later inode given the same number (a restore hands out
    /// numbers again). 0 for the root directory, as the kernel made it at mount.
    pub fn generation(&self) -> u64 {
        if self.ino == InodeNo::ROOT {
            return 0;
        }
        let t = (self.crtime.secs as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)
            ^ self.crtime.nsecs as u64;
        (t ^ (t >> 32)) & 0xFFFF_FFFF
    }
}

/// How setattr changes a time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeSet {
    Now,
    At(Timestamp),
}

/// The changes of one setattr call; `None` leaves a field alone.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SetAttr {
    pub mode: Option<u32>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub size: Option<u64>,
    pub atime: Option<TimeSet>,
    pub mtime: Option<TimeSet>,
    pub ctime: Option<Timestamp>,
    /// Drop the file's privileges: setuid, setgid when group-executable, and the
    /// `security.capability` xattr (what Linux does on chown, and on a truncate by a caller
    /// without CAP_FSETID; the FUSE kernel leaves it to us, see the adapter's init).
    pub kill_priv: bool,
}

/// The xattr that holds a file's capabilities: dropped with its other privileges.
pub const CAPS_XATTR: &[u8] = b"security.capability";

/// Permission bits without the privileges a write, chown or truncate drops (Linux's rule:
/// setuid always; setgid only with group execute, otherwise it marks mandatory locking).
pub fn without_privs(perm: u16) -> u16 {
    let mut p = perm & !(libc::S_ISUID as u16);
    if p & (libc::S_IXGRP as u16) != 0 {
        p &= !(libc::S_ISGID as u16);
    }
    p
}

/// Who asks: the caller's credentials, for ownership of new inodes, and its umask (applied
/// to a new inode's mode unless its directory has a default ACL, see acl.rs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Ctx {
    pub uid: u32,
    pub gid: u32,
    pub umask: u32,
}

/// One readdir entry. `offset` is the cookie to pass to continue after this entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirEntry {
    pub ino: InodeNo,
    pub offset: u64,
    pub kind: FileKind,
    pub name: Vec<u8>,
}

/// rename(2) flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RenameFlags {
    pub noreplace: bool,
    pub exchange: bool,
}

/// setxattr(2) flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum XattrMode {
    #[default]
    Any,
    Create,
    Replace,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatFs {
    pub blocks: u64,
    pub bfree: u64,
    pub bavail: u64,
    pub files: u64,
    pub ffree: u64,
    pub bsize: u32,
    pub namelen: u32,
    pub frsize: u32,
}
