//! What the passthrough filesystem keeps between requests: the inodes the kernel knows (each an
//! `O_PATH` descriptor of the backing file, counted by the kernel's lookups), the open file
//! and directory handles, and the conversions of backing metadata and errors for the kernel.
//!
//! Invariants: a node id is the backing inode number (the backing directory itself is 1, the
//! FUSE root), so `st_ino` and readdir's `d_ino` are the backing ones; a node lives while the
//! kernel holds a lookup of it, and its descriptor keeps the backing inode (and so its
//! number) from being reused meanwhile. Only one backing filesystem is served: an entry on
//! another device (a mount inside the backing directory) is refused with EXDEV.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs::{File, Metadata};
use std::os::fd::AsFd;
use std::os::unix::fs::MetadataExt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fuser::{Errno, FileAttr, FileType, INodeNo};
use parking_lot::Mutex;
use rustix::fs::{Mode, OFlags};

/// The kernel's id of the root (the backing directory).
pub const ROOT: u64 = 1;

/// A rustix error as the kernel's errno.
pub fn ex(e: rustix::io::Errno) -> Errno {
    Errno::from_i32(e.raw_os_error())
}

/// `/proc/self/fd/N` of `f`: how calls that take no `O_PATH` descriptor (open, chmod,
/// utimensat, xattrs) reach the file a node stands for.
pub fn proc_path(f: &impl AsFd) -> String {
    use std::os::fd::AsRawFd;
    format!("/proc/self/fd/{}", f.as_fd().as_raw_fd())
}

/// An `O_PATH` descriptor of `name` in directory `dir` (not following a final symlink).
pub fn open_path(dir: &File, name: &OsStr) -> Result<File, Errno> {
    let flags = OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    rustix::fs::openat(dir, name, flags, Mode::empty())
        .map(File::from)
        .map_err(ex)
}

pub fn kind(mode: u32) -> FileType {
    match mode & libc::S_IFMT {
        libc::S_IFDIR => FileType::Directory,
        libc::S_IFLNK => FileType::Symlink,
        libc::S_IFIFO => FileType::NamedPipe,
        libc::S_IFSOCK => FileType::Socket,
        libc::S_IFCHR => FileType::CharDevice,
        libc::S_IFBLK => FileType::BlockDevice,
        _ => FileType::RegularFile,
    }
}

fn time(secs: i64, nsecs: i64) -> SystemTime {
    let nsecs = u32::try_from(nsecs).unwrap_or(0);
    match u64::try_from(secs) {
        Ok(s) => UNIX_EPOCH + Duration::new(s, nsecs),
        Err(_) => UNIX_EPOCH - Duration::from_secs(secs.unsigned_abs()) + Duration::new(0, nsecs),
    }
}

/// The kernel's view of backing metadata `m` of node `id`.
pub fn attr(id: u64, m: &Metadata) -> FileAttr {
    FileAttr {
        ino: INodeNo(id),
        size: m.size(),
        blocks: m.blocks(),
        atime: time(m.atime(), m.atime_nsec()),
        mtime: time(m.mtime(), m.mtime_nsec()),
        ctime: time(m.ctime(), m.ctime_nsec()),
        crtime: UNIX_EPOCH,
        kind: kind(m.mode()),
        perm: (m.mode() & 0o7777) as u16,
        nlink: u32::try_from(m.nlink()).unwrap_or(u32::MAX),
        uid: m.uid(),
        gid: m.gid(),
        rdev: u32::try_from(m.rdev()).unwrap_or(0),
        blksize: u32::try_from(m.blksize()).unwrap_or(4096),
        flags: 0,
    }
}

/// A backing inode the kernel knows.
pub struct Node {
    /// `O_PATH` descriptor of the backing inode.
    pub file: File,
    pub symlink: bool,
}

struct Slot {
    node: Arc<Node>,
    /// Lookups the kernel holds (entry replies minus FORGETs).
    lookups: u64,
}

/// The inodes the kernel knows, by node id.
pub struct Nodes {
    root: Arc<Node>,
    dev: u64,
    root_ino: u64,
    map: Mutex<HashMap<u64, Slot>>,
}

impl Nodes {
    /// The table of a mount of `root` (an `O_PATH` descriptor of the backing directory).
    pub fn new(root: File) -> std::io::Result<Nodes> {
        let m = root.metadata()?;
        Ok(Nodes {
            dev: m.dev(),
            root_ino: m.ino(),
            root: Arc::new(Node {
                file: root,
                symlink: false,
            }),
            map: Mutex::new(HashMap::new()),
        })
    }

    pub fn root(&self) -> &File {
        &self.root.file
    }

    /// The node id of backing inode `ino` (as listed by readdir).
    pub fn id_of(&self, ino: u64) -> u64 {
        if ino == self.root_ino { ROOT } else { ino }
    }

    /// The node id of backing metadata `m`, or why it cannot have one.
    pub fn id(&self, m: &Metadata) -> Result<u64, Errno> {
        if m.dev() != self.dev {
            return Err(Errno::EXDEV);
        }
        match self.id_of(m.ino()) {
            // A backing inode numbered 1 that is not the root (never on ext4 or xfs).
            ROOT if m.ino() != self.root_ino => Err(Errno::EIO),
            id => Ok(id),
        }
    }

    pub fn get(&self, id: INodeNo) -> Result<Arc<Node>, Errno> {
        if id.0 == ROOT {
            return Ok(self.root.clone());
        }
        self.map
            .lock()
            .get(&id.0)
            .map(|s| s.node.clone())
            .ok_or(Errno::ESTALE)
    }

    /// The kernel got an entry reply for `file` (metadata `m`): one lookup more of its node
    /// (made now if the kernel did not know it). Returns the node id.
    pub fn remember(&self, file: File, m: &Metadata) -> Result<u64, Errno> {
        let id = self.id(m)?;
        if id == ROOT {
            // The kernel never forgets the root.
            return Ok(id);
        }
        let mut map = self.map.lock();
        map.entry(id)
            .and_modify(|s| s.lookups += 1)
            .or_insert_with(|| Slot {
                node: Arc::new(Node {
                    file,
                    symlink: m.file_type().is_symlink(),
                }),
                lookups: 1,
            });
        Ok(id)
    }

    /// FORGET: the kernel dropped `n` lookups of node `id`.
    pub fn forget(&self, id: u64, n: u64) {
        let mut map = self.map.lock();
        if let Some(s) = map.get_mut(&id) {
            s.lookups = s.lookups.saturating_sub(n);
            if s.lookups == 0 {
                map.remove(&id);
            }
        }
    }

    /// The session ended: the kernel holds nothing any more.
    pub fn forget_all(&self) {
        self.map.lock().clear();
    }
}

/// Open handles of one kind (files, directories), by the handle number given to the kernel.
pub struct Handles<T> {
    next: AtomicU64,
    map: Mutex<HashMap<u64, Arc<T>>>,
}

impl<T> Default for Handles<T> {
    fn default() -> Self {
        Handles {
            next: AtomicU64::new(1),
            map: Mutex::new(HashMap::new()),
        }
    }
}

impl<T> Handles<T> {
    pub fn insert(&self, t: T) -> u64 {
        let fh = self.next.fetch_add(1, Ordering::Relaxed);
        self.map.lock().insert(fh, Arc::new(t));
        fh
    }

    pub fn get(&self, fh: u64) -> Result<Arc<T>, Errno> {
        self.map.lock().get(&fh).cloned().ok_or(Errno::EBADF)
    }

    /// The kernel released `fh` (its descriptor closes once no request uses it).
    pub fn remove(&self, fh: u64) {
        self.map.lock().remove(&fh);
    }

    pub fn clear(&self) {
        self.map.lock().clear();
    }
}

/// A directory entry as listed by the backing directory.
pub struct Entry {
    pub name: Vec<u8>,
    pub ino: u64,
    pub kind: FileType,
}

/// An open directory: its descriptor (fsyncdir syncs it) and the listing taken when the
/// kernel read it from offset 0 (offsets are positions in it, plus one).
pub struct DirHandle {
    pub file: File,
    pub listing: Mutex<Vec<Entry>>,
}

impl DirHandle {
    /// Lists the directory afresh when the kernel reads it from the start (`offset` 0).
    pub fn relist_at(&self, offset: u64) -> Result<(), Errno> {
        if offset != 0 {
            return Ok(());
        }
        let mut list = Vec::new();
        for e in rustix::fs::Dir::read_from(&self.file).map_err(ex)? {
            let e = e.map_err(ex)?;
            let kind = match e.file_type() {
                rustix::fs::FileType::Directory => FileType::Directory,
                rustix::fs::FileType::Symlink => FileType::Symlink,
                rustix::fs::FileType::Fifo => FileType::NamedPipe,
                rustix::fs::FileType::Socket => FileType::Socket,
                rustix::fs::FileType::CharacterDevice => FileType::CharDevice,
                rustix::fs::FileType::BlockDevice => FileType::BlockDevice,
                _ => FileType::RegularFile,
            };
            list.push(Entry {
                name: e.file_name().to_bytes().to_vec(),
                ino: e.ino(),
                kind,
            });
        }
        *self.listing.lock() = list;
        Ok(())
    }
}
