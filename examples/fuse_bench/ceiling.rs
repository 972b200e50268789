//! The FUSE ceiling: an in-memory filesystem that does nothing but keep a namespace and file
//! sizes, mounted with tandem's mount options, session shape (4 threads, cloned fds) and cache
//! lifetimes. The metadata workloads run on it in the same run, so the table shows how much
//! of a gap to native is the kernel round trips every FUSE filesystem pays here, and how
//! much is tandem's own work.

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use fuser::{
    BackgroundSession, Config, Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags,
    Generation, INodeNo, LockOwner, MountOption, OpenFlags, RenameFlags, ReplyAttr, ReplyCreate,
    ReplyEmpty, ReplyEntry, ReplyOpen, ReplyWrite, ReplyXattr, Request, TimeOrNow, WriteFlags,
};

const TTL: Duration = Duration::from_secs(3600);

struct Node {
    attr: FileAttr,
    /// Directory entries (directories only).
    children: HashMap<OsString, u64>,
}

#[derive(Default)]
struct State {
    nodes: HashMap<u64, Node>,
    next: u64,
}

pub struct NullFs {
    state: Mutex<State>,
}

/// Attributes of a new inode, owned by the caller (root without one).
fn attr(ino: u64, kind: FileType, perm: u16, req: Option<&Request>) -> FileAttr {
    let now = SystemTime::now();
    FileAttr {
        ino: INodeNo(ino),
        size: 0,
        blocks: 0,
        atime: now,
        mtime: now,
        ctime: now,
        crtime: now,
        kind,
        perm,
        nlink: if kind == FileType::Directory { 2 } else { 1 },
        uid: req.map_or(0, |r| r.uid()),
        gid: req.map_or(0, |r| r.gid()),
        rdev: 0,
        blksize: 4096,
        flags: 0,
    }
}

impl NullFs {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn make(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        kind: FileType,
        mode: u32,
    ) -> Result<FileAttr, Errno> {
        let mut st = self.lock();
        let ino = st.next;
        let a = attr(ino, kind, (mode & 0o7777) as u16, Some(req));
        let dir = st.nodes.get_mut(&parent.0).ok_or(Errno::ENOENT)?;
        if dir.children.contains_key(name) {
            return Err(Errno::EEXIST);
        }
        dir.children.insert(name.to_owned(), ino);
        dir.attr.mtime = a.mtime;
        st.next += 1;
        st.nodes.insert(
            ino,
            Node {
                attr: a,
                children: HashMap::new(),
            },
        );
        Ok(a)
    }

    fn remove(&self, parent: INodeNo, name: &OsStr) -> Result<(), Errno> {
        let mut st = self.lock();
        let dir = st.nodes.get_mut(&parent.0).ok_or(Errno::ENOENT)?;
        let ino = dir.children.remove(name).ok_or(Errno::ENOENT)?;
        dir.attr.mtime = SystemTime::now();
        st.nodes.remove(&ino);
        Ok(())
    }
}

impl Filesystem for NullFs {
    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let st = self.lock();
        match st
            .nodes
            .get(&parent.0)
            .and_then(|d| d.children.get(name))
            .and_then(|i| st.nodes.get(i))
        {
            Some(n) => reply.entry(&TTL, &n.attr, Generation(0)),
            None => reply.error(Errno::ENOENT),
        }
    }

    fn getattr(&self, _req: &Request, i: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        match self.lock().nodes.get(&i.0) {
            Some(n) => reply.attr(&TTL, &n.attr),
            None => reply.error(Errno::ENOENT),
        }
    }

    fn setattr(
        &self,
        _req: &Request,
        i: INodeNo,
        mode: Option<u32>,
        _uid: Option<u32>,
        _gid: Option<u32>,
        size: Option<u64>,
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let mut st = self.lock();
        match st.nodes.get_mut(&i.0) {
            Some(n) => {
                if let Some(m) = mode {
                    n.attr.perm = (m & 0o7777) as u16;
                }
                if let Some(s) = size {
                    n.attr.size = s;
                }
                let at = |t: TimeOrNow| match t {
                    TimeOrNow::SpecificTime(t) => t,
                    TimeOrNow::Now => SystemTime::now(),
                };
                if let Some(t) = atime {
                    n.attr.atime = at(t);
                }
                if let Some(t) = mtime {
                    n.attr.mtime = at(t);
                }
                n.attr.ctime = SystemTime::now();
                reply.attr(&TTL, &n.attr)
            }
            None => reply.error(Errno::ENOENT),
        }
    }

    fn mkdir(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        _umask: u32,
        reply: ReplyEntry,
    ) {
        match self.make(req, parent, name, FileType::Directory, mode) {
            Ok(a) => reply.entry(&TTL, &a, Generation(0)),
            Err(e) => reply.error(e),
        }
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        match self.remove(parent, name) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        match self.remove(parent, name) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    /// Plain rename (no flags): the new name replaces any old one.
    fn rename(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        _flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        let mut st = self.lock();
        let now = SystemTime::now();
        let Some(ino) = st
            .nodes
            .get_mut(&parent.0)
            .and_then(|d| d.children.remove(name))
        else {
            return reply.error(Errno::ENOENT);
        };
        let replaced = match st.nodes.get_mut(&newparent.0) {
            Some(d) => {
                d.attr.mtime = now;
                d.children.insert(newname.to_owned(), ino)
            }
            None => return reply.error(Errno::ENOENT),
        };
        if let Some(old) = replaced {
            st.nodes.remove(&old);
        }
        if let Some(d) = st.nodes.get_mut(&parent.0) {
            d.attr.mtime = now;
        }
        if let Some(n) = st.nodes.get_mut(&ino) {
            n.attr.ctime = now;
        }
        reply.ok()
    }

    fn open(&self, _req: &Request, _i: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        reply.opened(FileHandle(0), FopenFlags::FOPEN_KEEP_CACHE);
    }

    fn write(
        &self,
        _req: &Request,
        i: INodeNo,
        _fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        let mut st = self.lock();
        match st.nodes.get_mut(&i.0) {
            Some(n) => {
                n.attr.size = n.attr.size.max(offset + data.len() as u64);
                n.attr.mtime = SystemTime::now();
                reply.written(data.len() as u32)
            }
            None => reply.error(Errno::ENOENT),
        }
    }

    fn flush(
        &self,
        _req: &Request,
        _i: INodeNo,
        _fh: FileHandle,
        _lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        reply.error(Errno::ENOSYS);
    }

    fn release(
        &self,
        _req: &Request,
        _i: INodeNo,
        _fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        reply.ok();
    }

    fn getxattr(&self, _req: &Request, _i: INodeNo, _name: &OsStr, _size: u32, reply: ReplyXattr) {
        reply.error(Errno::ENODATA);
    }

    fn create(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        _umask: u32,
        _flags: i32,
        reply: ReplyCreate,
    ) {
        match self.make(req, parent, name, FileType::RegularFile, mode) {
            Ok(a) => reply.created(
                &TTL,
                &a,
                Generation(0),
                FileHandle(0),
                FopenFlags::FOPEN_KEEP_CACHE,
            ),
            Err(e) => reply.error(e),
        }
    }
}

/// Mounts the null filesystem on `dir` until the session is dropped.
pub fn mount(dir: &Path) -> std::io::Result<BackgroundSession> {
    let mut nodes = HashMap::new();
    let root = attr(1, FileType::Directory, 0o755, None);
    nodes.insert(
        1,
        Node {
            attr: root,
            children: HashMap::new(),
        },
    );
    let fs = NullFs {
        state: Mutex::new(State { nodes, next: 2 }),
    };
    let mut config = Config::default();
    config.mount_options = vec![
        MountOption::FSName("tandem-bench-ceiling".into()),
        MountOption::DefaultPermissions,
        MountOption::NoAtime,
    ];
    config.n_threads = Some(4);
    config.clone_fd = true;
    fuser::spawn_mount(fs, dir, &config)
}
