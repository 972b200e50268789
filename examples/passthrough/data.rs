//! File data and directory listings of the passthrough filesystem: opens and creates (a
//! backing descriptor per open handle), pread/pwrite, fsync and fdatasync, fallocate, lseek
//! for data and holes, copy_file_range, listings (readdirplus entries count as kernel
//! lookups), fsyncdir, and extended attributes forwarded to the backing inode.
//!
//! Invariant: a handle's backing descriptor is opened with the caller's flags less those the
//! kernel already handled (creation, O_APPEND: the kernel sends each write's offset) and
//! O_DIRECT (the request buffers are not aligned for it); durability is the backing file's.

use std::ffi::OsStr;
use std::fs::File;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileExt;

use fuser::{Errno, FileAttr, Generation, INodeNo, ReplyDirectory, ReplyDirectoryPlus, Request};
use parking_lot::Mutex;
use rustix::fs::{Mode, OFlags};

use crate::fs::{Passthrough, TTL};
use crate::nodes::{DirHandle, attr, ex, open_path, proc_path};

/// The flags a backing descriptor is opened with for a kernel open with `flags`.
fn backing_flags(flags: i32) -> OFlags {
    let dropped = OFlags::CREATE
        | OFlags::EXCL
        | OFlags::NOCTTY
        | OFlags::APPEND
        | OFlags::DIRECT
        | OFlags::NOFOLLOW;
    (OFlags::from_bits_retain(flags as u32) - dropped) | OFlags::CLOEXEC
}

impl Passthrough {
    pub(crate) fn open_of(&self, i: INodeNo, flags: i32) -> Result<u64, Errno> {
        let n = self.nodes.get(i)?;
        let f = rustix::fs::open(proc_path(&n.file), backing_flags(flags), Mode::empty());
        Ok(self.files.insert(File::from(f.map_err(ex)?)))
    }

    pub(crate) fn create_in(
        &self,
        req: &Request,
        (parent, name): (INodeNo, &OsStr),
        mode: u32,
        flags: i32,
    ) -> Result<(FileAttr, u64), Errno> {
        let p = self.nodes.get(parent)?;
        let excl = OFlags::from_bits_retain(flags as u32) & OFlags::EXCL;
        let flags = backing_flags(flags) | OFlags::CREATE | excl;
        let mode = Mode::from_raw_mode(mode & 0o7777);
        let f = File::from(rustix::fs::openat(&p.file, name, flags, mode).map_err(ex)?);
        let (uid, gid) = self.owner(req, &p.file)?;
        rustix::fs::fchown(&f, uid, gid).map_err(ex)?;
        // The node is the inode just opened, whatever happens to the name meanwhile.
        let node = rustix::fs::open(proc_path(&f), OFlags::PATH | OFlags::CLOEXEC, Mode::empty());
        let a = self.entry_of(File::from(node.map_err(ex)?))?;
        Ok((a, self.files.insert(f)))
    }

    pub(crate) fn read_at(&self, fh: u64, offset: u64, size: u32) -> Result<Vec<u8>, Errno> {
        let f = self.files.get(fh)?;
        let mut buf = vec![0; size as usize];
        let mut got = 0;
        // A short answer is end of file to the kernel: read until full or at the end.
        while got < buf.len() {
            match f.read_at(&mut buf[got..], offset + got as u64) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e.into()),
            }
        }
        buf.truncate(got);
        Ok(buf)
    }

    pub(crate) fn write_at(&self, fh: u64, offset: u64, data: &[u8]) -> Result<u32, Errno> {
        self.files.get(fh)?.write_all_at(data, offset)?;
        u32::try_from(data.len()).map_err(|_| Errno::EINVAL)
    }

    pub(crate) fn fsync_of(&self, fh: u64, datasync: bool) -> Result<(), Errno> {
        let f = self.files.get(fh)?;
        Ok(if datasync {
            f.sync_data()
        } else {
            f.sync_all()
        }?)
    }

    pub(crate) fn fallocate_of(&self, fh: u64, range: (u64, u64), mode: i32) -> Result<(), Errno> {
        let f = self.files.get(fh)?;
        let how = rustix::fs::FallocateFlags::from_bits_retain(mode as u32);
        rustix::fs::fallocate(&*f, how, range.0, range.1).map_err(ex)
    }

    pub(crate) fn lseek_of(&self, fh: u64, offset: i64, whence: i32) -> Result<i64, Errno> {
        let f = self.files.get(fh)?;
        let offset = u64::try_from(offset).map_err(|_| Errno::ENXIO)?;
        // The kernel answers SEEK_SET/CUR/END itself; only DATA and HOLE come here. Reads
        // and writes are positioned, so moving the shared offset is harmless.
        let to = match whence {
            libc::SEEK_DATA => rustix::fs::SeekFrom::Data(offset),
            libc::SEEK_HOLE => rustix::fs::SeekFrom::Hole(offset),
            _ => return Err(Errno::EINVAL),
        };
        let at = rustix::fs::seek(&*f, to).map_err(ex)?;
        i64::try_from(at).map_err(|_| Errno::EOVERFLOW)
    }

    pub(crate) fn copy_range(
        &self,
        (fh_in, mut offset_in): (u64, u64),
        (fh_out, mut offset_out): (u64, u64),
        len: u64,
    ) -> Result<u32, Errno> {
        let (fin, fout) = (self.files.get(fh_in)?, self.files.get(fh_out)?);
        // The answer counts in 32 bits: a longer copy is answered short (the caller loops).
        let len = len.min(u64::from(u32::MAX) & !0xfff) as usize;
        let (i, o) = (Some(&mut offset_in), Some(&mut offset_out));
        let n = rustix::fs::copy_file_range(&*fin, i, &*fout, o, len).map_err(ex)?;
        u32::try_from(n).map_err(|_| Errno::EOVERFLOW)
    }

    pub(crate) fn opendir_of(&self, i: INodeNo) -> Result<u64, Errno> {
        let n = self.nodes.get(i)?;
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
        let f = rustix::fs::openat(&n.file, ".", flags, Mode::empty()).map_err(ex)?;
        Ok(self.dirs.insert(DirHandle {
            file: File::from(f),
            listing: Mutex::new(Vec::new()),
        }))
    }

    pub(crate) fn fsyncdir_of(&self, fh: u64, datasync: bool) -> Result<(), Errno> {
        let d = self.dirs.get(fh)?;
        Ok(if datasync {
            d.file.sync_data()
        } else {
            d.file.sync_all()
        }?)
    }

    /// Fills `reply` from position `offset` of directory handle `fh` (listed afresh at 0).
    pub(crate) fn listing(&self, fh: u64, offset: u64, mut reply: ReplyDirectory) {
        let d = match self
            .dirs
            .get(fh)
            .and_then(|d| d.relist_at(offset).map(|()| d))
        {
            Ok(d) => d,
            Err(e) => return reply.error(e),
        };
        let list = d.listing.lock();
        for (k, e) in list.iter().enumerate().skip(offset as usize) {
            let id = INodeNo(self.nodes.id_of(e.ino));
            if reply.add(id, k as u64 + 1, e.kind, OsStr::from_bytes(&e.name)) {
                break;
            }
        }
        reply.ok()
    }

    /// As [`Passthrough::listing`], with each entry's attributes: every entry sent but "."
    /// and ".." is a kernel lookup of its node.
    pub(crate) fn listing_plus(
        &self,
        i: INodeNo,
        fh: u64,
        offset: u64,
        mut reply: ReplyDirectoryPlus,
    ) {
        let start = || -> Result<_, Errno> {
            let (n, d) = (self.nodes.get(i)?, self.dirs.get(fh)?);
            d.relist_at(offset)?;
            let own = attr(i.0, &n.file.metadata()?);
            Ok((n, d, own))
        };
        let (n, d, own) = match start() {
            Ok(s) => s,
            Err(e) => return reply.error(e),
        };
        let list = d.listing.lock();
        for (k, e) in list.iter().enumerate().skip(offset as usize) {
            let name = OsStr::from_bytes(&e.name);
            let next = k as u64 + 1;
            if name == "." || name == ".." {
                // The kernel takes no lookup for these: the directory's own attributes do.
                if reply.add(i, next, name, &TTL, &own, Generation(0)) {
                    break;
                }
                continue;
            }
            // Gone since the listing, or on another device: left out.
            let Ok(f) = open_path(&n.file, name) else {
                continue;
            };
            let Ok(m) = f.metadata() else { continue };
            let Ok(id) = self.nodes.id(&m) else { continue };
            if reply.add(INodeNo(id), next, name, &TTL, &attr(id, &m), Generation(0)) {
                break;
            }
            // Cannot fail: the id was checked above.
            let _ = self.nodes.remember(f, &m);
        }
        reply.ok()
    }

    pub(crate) fn getxattr_of(&self, i: INodeNo, name: &OsStr, size: u32) -> Result<Xattr, Errno> {
        let n = self.nodes.get(i)?;
        if n.symlink {
            return Err(Errno::ENODATA);
        }
        let path = proc_path(&n.file);
        if size == 0 {
            let len = rustix::fs::getxattr_query(path, name).map_err(ex)?;
            return Ok(Xattr::Size(len));
        }
        let mut buf = vec![0; size as usize];
        let len = rustix::fs::getxattr(path, name, &mut buf[..]).map_err(ex)?;
        buf.truncate(len);
        Ok(Xattr::Data(buf))
    }

    pub(crate) fn listxattr_of(&self, i: INodeNo, size: u32) -> Result<Xattr, Errno> {
        let n = self.nodes.get(i)?;
        if n.symlink {
            return Ok(if size == 0 {
                Xattr::Size(0)
            } else {
                Xattr::Data(Vec::new())
            });
        }
        let path = proc_path(&n.file);
        if size == 0 {
            let len = rustix::fs::listxattr_query(path).map_err(ex)?;
            return Ok(Xattr::Size(len));
        }
        let mut buf = vec![0; size as usize];
        let len = rustix::fs::listxattr(path, &mut buf[..]).map_err(ex)?;
        buf.truncate(len);
        Ok(Xattr::Data(buf))
    }

    pub(crate) fn setxattr_of(
        &self,
        i: INodeNo,
        name: &OsStr,
        value: &[u8],
        flags: i32,
    ) -> Result<(), Errno> {
        let n = self.nodes.get(i)?;
        if n.symlink {
            return Err(Errno::ENOTSUP);
        }
        let flags = rustix::fs::XattrFlags::from_bits_retain(flags as u32);
        rustix::fs::setxattr(proc_path(&n.file), name, value, flags).map_err(ex)
    }

    pub(crate) fn removexattr_of(&self, i: INodeNo, name: &OsStr) -> Result<(), Errno> {
        let n = self.nodes.get(i)?;
        if n.symlink {
            return Err(Errno::ENODATA);
        }
        rustix::fs::removexattr(proc_path(&n.file), name).map_err(ex)
    }
}

/// An xattr answer: the size asked for (room 0), or the bytes.
pub enum Xattr {
    Size(usize),
    Data(Vec<u8>),
}
