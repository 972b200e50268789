//! How one kernel request runs: the mount's state ([`TandemFs`]), the span each request gets
//! (`op!`), reads answered on the session thread ([`TandemFs::serve`]), mutations through
//! the volume's queue ([`TandemFs::mutate`]), and the conversions of fuser's arguments to
//! the engine's plain types.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::sync::{Arc, OnceLock};

use fuser::{Errno, INodeNo, Notifier, Request, TimeOrNow};
use tracing::Span;

use super::queue::{After, VolumeQueue};
use super::reply::Answer;
use super::uss::Uss;
use crate::fs::{Ctx, Engine, FsError, RenameFlags, TimeSet, XattrMode};
use crate::store::rows::View;
use crate::types::{InodeNo, VolumeId};

/// One mount's view of a volume, as the kernel's requests reach it.
pub struct TandemFs {
    pub(super) engine: Arc<Engine>,
    pub(super) vol: VolumeId,
    pub(super) view: View,
    /// Mutations are refused (EROFS): a read-only mount, or a snapshot view.
    pub(super) read_only: bool,
    pub(super) uss: Uss,
    pub(super) queue: Arc<VolumeQueue>,
    /// The session's notifier, once the session exists (see the adapter's `write`).
    pub(super) notifier: Arc<OnceLock<Notifier>>,
    /// The volume's data counters (metrics), taken once when mounted.
    pub(super) io: crate::metrics::VolumeIo,
    /// When reads update atime (never on a read-only mount or a snapshot view).
    pub(super) atime: crate::fs::atime::Atime,
}

/// The span of one request (debug level: nothing is built unless it is logged).
macro_rules! op {
    ($op:literal, $ino:expr $(, $($field:tt)*)?) => {
        tracing::debug_span!("fuse", op = $op, ino = $ino.0 $(, $($field)*)?)
    };
}
pub(super) use op;

pub(super) fn ino(i: INodeNo) -> InodeNo {
    InodeNo(i.0)
}

pub(super) fn ctx(req: &Request) -> Ctx {
    Ctx {
        uid: req.uid(),
        gid: req.gid(),
        umask: 0,
    }
}

pub(super) fn time(t: TimeOrNow) -> TimeSet {
    match t {
        TimeOrNow::Now => TimeSet::Now,
        TimeOrNow::SpecificTime(s) => TimeSet::At(s.into()),
    }
}

pub(super) fn bytes(s: &OsStr) -> Vec<u8> {
    s.as_bytes().to_vec()
}

pub(super) fn rename_flags(flags: fuser::RenameFlags) -> Result<RenameFlags, Errno> {
    let bits = flags.bits();
    if bits & !(libc::RENAME_NOREPLACE | libc::RENAME_EXCHANGE) != 0 {
        return Err(Errno::EINVAL);
    }
    Ok(RenameFlags {
        noreplace: bits & libc::RENAME_NOREPLACE != 0,
        exchange: bits & libc::RENAME_EXCHANGE != 0,
    })
}

pub(super) fn xattr_mode(flags: i32) -> Result<XattrMode, Errno> {
    match flags {
        0 => Ok(XattrMode::Any),
        libc::XATTR_CREATE => Ok(XattrMode::Create),
        libc::XATTR_REPLACE => Ok(XattrMode::Replace),
        _ => Err(Errno::EINVAL),
    }
}

impl TandemFs {
    /// Answers a read on the session thread, inside its span.
    pub(super) fn serve<R: Answer>(
        span: Span,
        reply: R,
        f: impl FnOnce() -> Result<R::Value, Errno>,
    ) {
        let reply = super::reply::timed(reply, false);
        let _in = span.enter();
        reply.answer(f());
    }

    /// Runs a mutation through the volume's queue, inside its span, once `check` (the
    /// refusals decided on the session thread) passed; EROFS on a read-only mount.
    pub(super) fn mutate<R, A>(
        &self,
        span: Span,
        reply: R,
        check: Result<A, Errno>,
        f: impl FnOnce(&Engine, A) -> Result<R::Value, FsError> + Send + 'static,
    ) where
        R: Answer + Send + 'static,
        A: Send + 'static,
    {
        self.mutate_then(span, reply, check, move |e, a| (f(e, a), None));
    }

    /// As [`TandemFs::mutate`] for a mutation that may leave work for after its answer
    /// (run outside the gate, see [`After`]).
    fn mutate_then<R, A>(
        &self,
        span: Span,
        reply: R,
        check: Result<A, Errno>,
        f: impl FnOnce(&Arc<Engine>, A) -> (Result<R::Value, FsError>, Option<After>) + Send + 'static,
    ) where
        R: Answer + Send + 'static,
        A: Send + 'static,
    {
        let reply = super::reply::timed(reply, true);
        let a = match check {
            Ok(a) => a,
            Err(e) => return reply.fail(e),
        };
        if self.read_only {
            return reply.fail(Errno::EROFS);
        }
        let engine = self.engine.clone();
        // The queue shuts down only while unmounting (the reply, dropped, answers EIO).
        let _ = self.queue.submit_then(move || {
            let _in = span.enter();
            let (answer, after) = f(&engine, a);
            reply.answer(answer.map_err(Errno::from));
            after
        });
    }

    /// A mutation that makes the entry `name` in `parent` (mknod, mkdir, symlink, create):
    /// EEXIST where the name is the snapshot directory's, else `make` runs through the
    /// queue with the volume, the parent, the name and the caller.
    pub(super) fn make_entry<R>(
        &self,
        span: Span,
        req: &Request,
        (parent, name): (INodeNo, &OsStr),
        reply: R,
        make: impl FnOnce(&Engine, VolumeId, InodeNo, &[u8], Ctx) -> Result<R::Value, FsError>
        + Send
        + 'static,
    ) where
        R: Answer + Send + 'static,
    {
        let check = self.changeable(&[parent], &[(parent, name)], Errno::EEXIST);
        let (vol, c, name) = (self.vol, ctx(req), bytes(name));
        self.mutate(span, reply, check, move |e, ()| {
            make(e, vol, ino(parent), &name, c)
        })
    }

    /// The kernel got `a` in an entry reply: a live directory's lookup count goes up (a
    /// removed directory the kernel holds goes on answering, see `fs::ghosts`).
    pub(super) fn kernel_holds(&self, a: &crate::fs::Attr) {
        if self.view == View::Live && !super::uss::is_virtual(a.ino.0) {
            self.engine.kernel_looked_up(self.vol, a);
        }
    }

    /// The kernel forgot `n` lookups of `i` (FORGET, and each inode of a BATCH_FORGET).
    pub(super) fn kernel_forgot(&self, i: INodeNo, n: u64) {
        if self.view == View::Live && !super::uss::is_virtual(i.0) {
            self.engine.kernel_forgot(self.vol, ino(i), n);
        }
    }

    /// The session ended: the kernel holds nothing of the volume any more.
    pub(super) fn kernel_let_go(&self) {
        if self.view == View::Live {
            self.engine.kernel_let_go(self.vol);
        }
    }

    /// Makes a writer wait before its write enters the gate, as long as the volume's
    /// buffer asks (see `fs::pace`): on the session thread, holding nothing, so neither a
    /// freeze nor a reader waits for it.
    pub(super) fn pace_write(&self, len: usize) {
        if let Some(pause) = self.engine.write_pause(self.vol, len) {
            std::thread::sleep(pause);
        }
    }

    /// A write: buffered and answered inside the gate; the flush of a buffer it took past
    /// its limit runs after the answer, outside the gate, on the same thread (so the writer
    /// still waits for it before its next write on this thread, and a freeze does not).
    pub(super) fn mutate_write<R>(
        &self,
        span: Span,
        reply: R,
        check: Result<(), Errno>,
        f: impl FnOnce(&Engine) -> Result<(R::Value, bool), FsError> + Send + 'static,
    ) where
        R: Answer + Send + 'static,
    {
        let vol = self.vol;
        self.mutate_then(span, reply, check, move |engine, ()| match f(engine) {
            Ok((v, over)) => {
                let engine = engine.clone();
                let after: After = Box::new(move || {
                    if let Err(e) = engine.flush_over_limit(vol) {
                        // The buffers stay; the next write past the limit or fsync hears it.
                        tracing::debug!("flush of volume {vol} past its limit failed: {e}");
                    }
                });
                (Ok(v), over.then_some(after))
            }
            Err(e) => (Err(e), None),
        });
    }
}
