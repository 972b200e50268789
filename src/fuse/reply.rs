//! Answers to the kernel: how each fuser reply carries an operation's result ([`Answer`]),
//! the one conversion of an engine error to an errno (`From<FsError> for Errno`, which also
//! logs storage errors), the attribute conversion and the cache lifetimes the kernel is given.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::time::{Duration, Instant};

use fuser::{
    Errno, FileAttr, FileHandle, FileType, FopenFlags, Generation, INodeNo, ReplyAttr, ReplyCreate,
    ReplyData, ReplyDirectory, ReplyDirectoryPlus, ReplyEmpty, ReplyEntry, ReplyLseek, ReplyOpen,
    ReplyStatfs, ReplyWrite, ReplyXattr,
};

use super::uss;
use crate::fs::{Attr, DirEntry, FileKind, FsError, StatFs};
use crate::metrics::ReqClass;

/// Attribute and entry cache lifetime of real inodes. Only the daemon changes a volume, all
/// through this mount (the kernel sees every change and drops what it changes), and it tells
/// the kernel when it changes a tree behind its back (online restore): so the kernel may keep
/// entries long, and a stat, an open or an unlink of a known name costs no LOOKUP.
const TTL: Duration = Duration::from_secs(3600);
/// For the `.snaps` tree: snapshots come and go without the kernel seeing it.
const SNAPS_TTL: Duration = Duration::from_secs(1);

/// How long the kernel may cache what it learns of inode `i`.
fn ttl(i: u64) -> &'static Duration {
    if uss::is_virtual(i) { &SNAPS_TTL } else { &TTL }
}

/// THE mapping of the engine's errors for the kernel (the errno is [`FsError::errno`]'s).
impl From<FsError> for Errno {
    fn from(e: FsError) -> Errno {
        if let FsError::Store(s) = &e {
            tracing::error!("storage error: {s}");
        }
        Errno::from_i32(e.errno())
    }
}

pub(super) fn kind(k: FileKind) -> FileType {
    match k {
        FileKind::File => FileType::RegularFile,
        FileKind::Dir => FileType::Directory,
        FileKind::Symlink => FileType::Symlink,
        FileKind::Fifo => FileType::NamedPipe,
        FileKind::Socket => FileType::Socket,
        FileKind::CharDev => FileType::CharDevice,
        FileKind::BlockDev => FileType::BlockDevice,
    }
}

fn fattr(a: &Attr) -> FileAttr {
    FileAttr {
        ino: INodeNo(a.ino.0),
        size: a.size,
        blocks: a.blocks,
        atime: a.atime.into(),
        mtime: a.mtime.into(),
        ctime: a.ctime.into(),
        crtime: a.crtime.into(),
        kind: kind(a.kind),
        perm: a.perm,
        nlink: a.nlink,
        uid: a.uid,
        gid: a.gid,
        rdev: a.rdev,
        blksize: a.blksize,
        flags: 0,
    }
}

/// A fuser reply that carries the result of one operation: a value, or an errno.
pub(super) trait Answer: Sized {
    type Value;
    /// Answers file data (READ, READLINK) or a WRITE: the latency class of such a request
    /// is its own (see [`Timed`]).
    const DATA: bool = false;
    fn value(self, v: Self::Value);
    fn fail(self, e: Errno);

    fn answer(self, r: Result<Self::Value, Errno>) {
        match r {
            Ok(v) => self.value(v),
            Err(e) => self.fail(e),
        }
    }
}

/// A reply that records its request's latency, from its arrival to its answer, in the
/// histogram of its class ([`ReqClass`]): data or not by the reply, served on the session
/// thread or queued as a mutation by its caller (`TandemFs::serve`, `TandemFs::mutate`).
/// A reply dropped unanswered (the queue shut down while unmounting) records nothing.
pub(super) struct Timed<R> {
    reply: R,
    started: Instant,
    class: ReqClass,
}

/// `reply`, timed from now.
pub(super) fn timed<R: Answer>(reply: R, mutation: bool) -> Timed<R> {
    let class = match (R::DATA, mutation) {
        (true, false) => ReqClass::Read,
        (true, true) => ReqClass::Write,
        (false, false) => ReqClass::Lookup,
        (false, true) => ReqClass::Modify,
    };
    Timed {
        reply,
        started: Instant::now(),
        class,
    }
}

impl<R> Timed<R> {
    fn record(started: Instant, class: ReqClass) {
        crate::metrics::global()
            .fuse(class)
            .observe_duration(started.elapsed());
    }
}

impl<R: Answer> Answer for Timed<R> {
    type Value = R::Value;
    const DATA: bool = R::DATA;

    // Recorded just before the answer goes out, so that a request the caller saw return
    // is counted (a scrape right after it sees it).
    fn value(self, v: Self::Value) {
        Self::record(self.started, self.class);
        self.reply.value(v);
    }

    fn fail(self, e: Errno) {
        Self::record(self.started, self.class);
        self.reply.fail(e);
    }
}

macro_rules! answer {
    (data: $reply:ty, $value:ty, |$r:ident, $v:ident| $send:expr) => {
        answer!(@ $reply, $value, true, |$r, $v| $send);
    };
    ($reply:ty, $value:ty, |$r:ident, $v:ident| $send:expr) => {
        answer!(@ $reply, $value, false, |$r, $v| $send);
    };
    (@ $reply:ty, $value:ty, $data:literal, |$r:ident, $v:ident| $send:expr) => {
        impl Answer for $reply {
            type Value = $value;
            const DATA: bool = $data;
            fn value(self, $v: $value) {
                let $r = self;
                $send
            }
            fn fail(self, e: Errno) {
                self.error(e)
            }
        }
    };
}

answer!(ReplyEntry, Attr, |r, a| r.entry(
    ttl(a.ino.0),
    &fattr(&a),
    Generation(a.generation())
));
answer!(ReplyAttr, Attr, |r, a| r.attr(ttl(a.ino.0), &fattr(&a)));
answer!(ReplyEmpty, (), |r, _v| r.ok());
answer!(data: ReplyData, Vec<u8>, |r, d| r.data(&d));
answer!(data: ReplyWrite, u32, |r, n| r.written(n));
answer!(ReplyLseek, i64, |r, o| r.offset(o));
// Only the daemon changes a volume, so the page cache stays valid across opens (`true`);
// a mount that keeps atimes drops it (`false`), so that the first read of an open reaches
// the daemon and updates atime.
answer!(ReplyOpen, bool, |r, keep| r.opened(
    FileHandle(0),
    if keep {
        FopenFlags::FOPEN_KEEP_CACHE
    } else {
        FopenFlags::empty()
    }
));
answer!(ReplyCreate, Attr, |r, a| r.created(
    ttl(a.ino.0),
    &fattr(&a),
    Generation(a.generation()),
    FileHandle(0),
    FopenFlags::FOPEN_KEEP_CACHE,
));
answer!(ReplyStatfs, StatFs, |r, s| r.statfs(
    s.blocks, s.bfree, s.bavail, s.files, s.ffree, s.bsize, s.namelen, s.frsize,
));

/// An xattr value or name list, and the room the caller gave for it (0: asks the size).
pub(super) struct Xattr {
    pub bytes: Vec<u8>,
    pub room: u32,
}

answer!(ReplyXattr, Xattr, |r, v| if v.room == 0 {
    r.size(v.bytes.len() as u32)
} else if v.bytes.len() > v.room as usize {
    r.error(Errno::ERANGE)
} else {
    r.data(&v.bytes)
});

// A listing fills the buffer until the kernel's is full.
answer!(ReplyDirectory, Vec<DirEntry>, |r, entries| {
    let mut r = r;
    for d in entries {
        if r.add(
            INodeNo(d.ino.0),
            d.offset,
            kind(d.kind),
            OsStr::from_bytes(&d.name),
        ) {
            break;
        }
    }
    r.ok()
});

/// Fills the buffer until the kernel's is full, with each entry's attributes (`attr`, asked
/// only for the entries that fit; an entry without attributes is left out).
pub(super) fn listing_plus(
    mut r: ReplyDirectoryPlus,
    entries: Vec<DirEntry>,
    attr: impl Fn(&DirEntry) -> Option<Attr>,
    mut sent: impl FnMut(&Attr),
) {
    for d in entries {
        let Some(a) = attr(&d) else { continue };
        let name = OsStr::from_bytes(&d.name);
        if r.add(
            INodeNo(d.ino.0),
            d.offset,
            name,
            ttl(a.ino.0),
            &fattr(&a),
            Generation(a.generation()),
        ) {
            break;
        }
        // The kernel counts a lookup for every entry it gets but "." and "..".
        if d.name != b"." && d.name != b".." {
            sent(&a);
        }
    }
    r.ok()
}
