//! Running one child command for the hooks (`hooks`): in its own process group, its output
//! kept (the tail of each stream), under a time limit, and cancellable.
//!
//! Invariants:
//! - Nothing polls on a timer: one poll(2) waits for the child's exit (a pidfd), output on
//!   its pipes, and the limit. Only a caller's `cancel` question is asked on a tick
//!   ([`CANCEL_TICK`]), because what it watches has no descriptor here. On a kernel without
//!   pidfds (before 5.3) the exit is checked on that tick as well.
//! - The child's exit ends the wait: what it wrote before is in the pipes and is kept; a
//!   background process that keeps them open is not waited for.
//! - At the limit or a cancel the whole process group is killed and the child reaped.

use std::fs::File;
use std::io::Read;
use std::os::fd::OwnedFd;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use rustix::event::{PollFd, PollFlags, Timespec, poll};
use rustix::process::{Pid, PidfdFlags, Signal, kill_process_group, pidfd_open};

/// Most output kept per stream (the tail).
const MAX_OUTPUT: usize = 64 * 1024;

/// How often a caller's `cancel` is asked (and, without pidfds, the exit checked).
pub const CANCEL_TICK: Duration = Duration::from_millis(100);

/// How a command run under [`spawn_and_wait`] ended.
pub enum Ended {
    Exited(ExitStatus),
    TimedOut,
    /// `cancel` said so (the group was killed).
    Cancelled,
}

/// One output pipe of the child, read without blocking; the tail of what came is kept.
struct Pipe {
    file: Option<File>,
    buf: Vec<u8>,
}

impl Pipe {
    fn new(fd: Option<OwnedFd>) -> Pipe {
        let file = fd.and_then(|fd| {
            use rustix::fs::{OFlags, fcntl_getfl, fcntl_setfl};
            let ok = fcntl_getfl(&fd)
                .and_then(|flags| fcntl_setfl(&fd, flags | OFlags::NONBLOCK))
                .is_ok();
            ok.then(|| File::from(fd))
        });
        Pipe {
            file,
            buf: Vec::new(),
        }
    }

    /// Reads what is there now; closes the pipe at end of file.
    fn drain(&mut self) {
        let Some(f) = &mut self.file else { return };
        let mut chunk = [0u8; 8192];
        loop {
            match f.read(&mut chunk) {
                Ok(0) => {
                    self.file = None;
                    return;
                }
                Ok(n) => {
                    self.buf.extend_from_slice(&chunk[..n]);
                    if self.buf.len() > MAX_OUTPUT {
                        let cut = self.buf.len() - MAX_OUTPUT;
                        self.buf.drain(..cut);
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return,
                Err(_) => {
                    self.file = None;
                    return;
                }
            }
        }
    }
}

/// Waits up to `timeout` for the child's exit (`pidfd`) or output on the open pipes.
fn wait_event(pidfd: Option<&OwnedFd>, pipes: &[&Pipe], timeout: Duration) {
    let mut fds: Vec<PollFd<'_>> = pidfd
        .into_iter()
        .map(|fd| PollFd::new(fd, PollFlags::IN))
        .chain(
            pipes
                .iter()
                .filter_map(|p| p.file.as_ref())
                .map(|f| PollFd::new(f, PollFlags::IN)),
        )
        .collect();
    // At most an hour per wait (poll takes an int of milliseconds); the caller loops.
    let timeout = timeout.min(Duration::from_secs(3600));
    let timeout = Timespec {
        tv_sec: timeout.as_secs() as i64,
        tv_nsec: i64::from(timeout.subsec_nanos()),
    };
    // EINTR or an error: the caller looks at the child and the clock again.
    let _ = poll(&mut fds, Some(&timeout));
}

/// Kills the child's process group (it leads it) and reaps the child.
fn kill_group(child: &mut Child) {
    if let Some(pid) = Pid::from_raw(child.id() as i32) {
        let _ = kill_process_group(pid, Signal::KILL);
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// Runs `cmd` (its environment and directory already set) in its own process group,
/// keeping the tail of its output, and kills the group at `limit` or as soon as `cancel`
/// (asked every [`CANCEL_TICK`]) says so. Returns how it ended and its stdout then stderr.
pub fn spawn_and_wait(
    mut cmd: Command,
    limit: Duration,
    cancel: Option<&dyn Fn() -> bool>,
) -> std::io::Result<(Ended, String)> {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    let mut child = cmd.spawn()?;
    // The child is ours and unreaped, so its pid names it even if it has exited already.
    let pidfd = pidfd_open(Pid::from_child(&child), PidfdFlags::empty()).ok();
    let tick = (cancel.is_some() || pidfd.is_none()).then_some(CANCEL_TICK);
    let mut out = Pipe::new(child.stdout.take().map(OwnedFd::from));
    let mut err = Pipe::new(child.stderr.take().map(OwnedFd::from));
    let deadline = Instant::now() + limit;
    let ended = loop {
        match child.try_wait() {
            Ok(Some(s)) => {
                out.drain();
                err.drain();
                break Ended::Exited(s);
            }
            Ok(None) => {}
            Err(e) => {
                kill_group(&mut child);
                return Err(e);
            }
        }
        let now = Instant::now();
        if now >= deadline {
            kill_group(&mut child);
            break Ended::TimedOut;
        }
        if cancel.is_some_and(|c| c()) {
            kill_group(&mut child);
            break Ended::Cancelled;
        }
        let left = deadline - now;
        wait_event(
            pidfd.as_ref(),
            &[&out, &err],
            tick.map_or(left, |t| t.min(left)),
        );
        out.drain();
        err.drain();
    };
    let output = format!(
        "{}{}",
        String::from_utf8_lossy(&out.buf),
        String::from_utf8_lossy(&err.buf)
    );
    Ok((ended, output))
}
