//! The daemon's side of the control socket: creating it, accepting connections, and reading
//! request lines; what a request does is the daemon's (`handle` below).
//!
//! Invariants:
//! - The socket is owner-only from the moment it has its name: it is bound in a fresh 0700
//!   directory, made 0600, and only then renamed to `<pool>/tandem.sock`.
//! - Only root and the daemon's own user are served, whatever the socket's mode: the peer's
//!   credentials (SO_PEERCRED) are checked before anything is read.
//! - A request line is at most [`MAX_LINE`] bytes; a longer one is answered with a short
//!   error that does not repeat it, and the connection is closed. At most
//!   [`MAX_CONNECTIONS`] connections are served at once; one more is told so and closed.
//! - A handler that works for long may send lines before its response through [`Peer`]
//!   (progress) and ask whether the client hung up. A line that cannot be written whole
//!   within [`PROGRESS_WRITE_TIMEOUT`] breaks the connection: nothing more is written on it.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::{Envelope, ErrorCode, PROTOCOL_VERSION, Response, WireError};

/// Longest request line served (requests are small JSON documents).
pub const MAX_LINE: usize = 1 << 20;
/// Most connections served at once.
pub const MAX_CONNECTIONS: usize = 64;
/// Longest a progress line may wait for a client that does not read.
pub const PROGRESS_WRITE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// The client a request came from, as its handler sees it.
pub struct Peer<'a> {
    stream: &'a mut UnixStream,
    broken: bool,
}

impl Peer<'_> {
    /// Sends one line (without its newline) ahead of the response.
    pub fn send(&mut self, line: &str) -> io::Result<()> {
        if self.broken {
            return Err(io::Error::from(io::ErrorKind::BrokenPipe));
        }
        let mut out = String::with_capacity(line.len() + 1);
        out.push_str(line);
        out.push('\n');
        let written = self
            .stream
            .set_write_timeout(Some(PROGRESS_WRITE_TIMEOUT))
            .and_then(|()| self.stream.write_all(out.as_bytes()));
        let _ = self.stream.set_write_timeout(None);
        if written.is_err() {
            self.broken = true;
        }
        written
    }

    /// The client closed the connection or its sending side (it is not waiting for an
    /// answer any more).
    pub fn hung_up(&self) -> bool {
        if self.broken {
            return true;
        }
        use rustix::event::{PollFd, PollFlags, Timespec, poll};
        let mut fds = [PollFd::new(&*self.stream, PollFlags::RDHUP)];
        let now = Timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        poll(&mut fds, Some(&now)).is_ok_and(|n| n > 0)
            && fds[0]
                .revents()
                .intersects(PollFlags::RDHUP | PollFlags::HUP | PollFlags::ERR)
    }
}

/// What the daemon does with a request line: its response line, written after whatever the
/// handler sent through the [`Peer`].
pub type Handler = dyn Fn(&str, &mut Peer) -> String + Send + Sync;

/// Binds the control socket at `sock` (replacing whatever is there) with mode 0600 and no
/// moment at which it is reachable with another mode.
pub fn bind(sock: &Path) -> io::Result<UnixListener> {
    let parent = sock.parent().unwrap_or(Path::new("."));
    let tmp = parent.join(format!(".tandem-sock-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::DirBuilder::new().mode(0o700).create(&tmp)?;
    let result = (|| {
        let staged = tmp.join("s");
        let listener = UnixListener::bind(&staged)?;
        std::fs::set_permissions(&staged, std::fs::Permissions::from_mode(0o600))?;
        std::fs::rename(&staged, sock)?;
        Ok(listener)
    })();
    let _ = std::fs::remove_dir_all(&tmp);
    result
}

/// The uid of the process at the other end of `stream`.
fn peer_uid(stream: &UnixStream) -> io::Result<u32> {
    Ok(rustix::net::sockopt::socket_peercred(stream)?.uid.as_raw())
}

/// Writes one error response line (best effort: the peer may be gone).
fn refuse(stream: &mut UnixStream, code: ErrorCode, message: String) {
    let env = Envelope {
        version: PROTOCOL_VERSION,
        body: Response::Err(WireError::new(code, message)),
    };
    if let Ok(mut out) = serde_json::to_string(&env) {
        out.push('\n');
        let _ = stream.write_all(out.as_bytes());
    }
}

/// One line from `r`: Ok(None) at the end, Err(None) when longer than [`MAX_LINE`].
fn read_line(r: &mut impl BufRead, buf: &mut Vec<u8>) -> Result<Option<()>, Option<io::Error>> {
    buf.clear();
    let n = r
        .take(MAX_LINE as u64 + 1)
        .read_until(b'\n', buf)
        .map_err(Some)?;
    if n == 0 {
        return Ok(None);
    }
    if buf.last() == Some(&b'\n') {
        buf.pop();
    } else if buf.len() > MAX_LINE {
        return Err(None);
    }
    Ok(Some(()))
}

/// Serves one connection: each request line is answered with `handle`'s response line.
fn serve(mut stream: UnixStream, handle: &Handler) {
    let me = rustix::process::geteuid().as_raw();
    match peer_uid(&stream) {
        Ok(uid) if uid == 0 || uid == me => {}
        Ok(uid) => {
            tracing::warn!("control socket: refused a connection from uid {uid}");
            return refuse(
                &mut stream,
                ErrorCode::Permission,
                format!(
                    "permission denied: this tandem daemon serves only root and uid {me} (you are uid {uid})"
                ),
            );
        }
        Err(e) => {
            tracing::warn!("control socket: cannot read the peer's credentials: {e}");
            return;
        }
    }
    let Ok(mut writer) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(stream);
    let mut buf = Vec::new();
    loop {
        match read_line(&mut reader, &mut buf) {
            Ok(None) | Err(Some(_)) => return,
            Err(None) => {
                return refuse(
                    &mut writer,
                    ErrorCode::Limit,
                    format!(
                        "request longer than {MAX_LINE} bytes refused; the connection is closed"
                    ),
                );
            }
            Ok(Some(())) => {}
        }
        let Ok(line) = std::str::from_utf8(&buf) else {
            return refuse(
                &mut writer,
                ErrorCode::Invalid,
                "malformed request: not UTF-8".into(),
            );
        };
        let mut peer = Peer {
            stream: &mut writer,
            broken: false,
        };
        let mut out = handle(line, &mut peer);
        if peer.broken {
            return;
        }
        out.push('\n');
        if writer.write_all(out.as_bytes()).is_err() {
            return;
        }
    }
}

/// What [`wait_for_connection`] saw.
enum Ready {
    /// A connection may be waiting on the listener.
    Connection,
    /// `stopped` was closed (or broke): accept nothing more.
    Stop,
}

/// Waits until a client connects to `listener` or the other end of `stopped` is dropped.
fn wait_for_connection(listener: &UnixListener, stopped: &UnixStream) -> Ready {
    use rustix::event::{PollFd, PollFlags, poll};
    loop {
        let mut fds = [
            PollFd::new(stopped, PollFlags::IN),
            PollFd::new(listener, PollFlags::IN),
        ];
        match poll(&mut fds, None) {
            Ok(_) if !fds[0].revents().is_empty() => return Ready::Stop,
            Ok(_) if !fds[1].revents().is_empty() => return Ready::Connection,
            Ok(_) | Err(rustix::io::Errno::INTR) => {}
            Err(e) => {
                tracing::error!("control socket: waiting for connections: {e}");
                return Ready::Stop;
            }
        }
    }
}

/// Accepts connections until the other end of `stopped` is dropped or `stop()` says so,
/// serving each on its own thread (at most [`MAX_CONNECTIONS`] at once) with `handle`, which
/// turns a request line into a response line. The stop needs neither the socket's path nor
/// a connection: it works when the pool directory is gone, and leaves nothing queued on a
/// socket the service manager holds.
pub fn accept(
    listener: UnixListener,
    stopped: UnixStream,
    stop: impl Fn() -> bool,
    handle: Arc<Handler>,
) {
    // Non-blocking: a client that gives up between the wake and the accept leaves nothing
    // to accept, and the loop must go back to waiting, not hang in accept.
    if let Err(e) = listener.set_nonblocking(true) {
        tracing::warn!("control socket: cannot make the listener non-blocking: {e}");
    }
    let active = Arc::new(AtomicUsize::new(0));
    loop {
        if let Ready::Stop = wait_for_connection(&listener, &stopped) {
            break;
        }
        let conn = listener.accept();
        if stop() {
            break;
        }
        let mut stream = match conn {
            Ok((s, _)) => s,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            Err(e) => {
                // EMFILE and the like: do not spin while they last.
                tracing::warn!("control socket accept: {e}");
                std::thread::sleep(std::time::Duration::from_millis(50));
                continue;
            }
        };
        // Linux does not pass O_NONBLOCK on to accepted sockets; say so anyway.
        if let Err(e) = stream.set_nonblocking(false) {
            tracing::warn!("control socket: {e}");
            continue;
        }
        if active.fetch_add(1, Ordering::AcqRel) >= MAX_CONNECTIONS {
            active.fetch_sub(1, Ordering::AcqRel);
            let _ = stream.set_write_timeout(Some(std::time::Duration::from_millis(100)));
            refuse(
                &mut stream,
                ErrorCode::Busy,
                format!(
                    "the daemon is serving {MAX_CONNECTIONS} connections already; try again shortly"
                ),
            );
            continue;
        }
        /// Counts the connection until its thread ends, panic or not.
        struct Active(Arc<AtomicUsize>);
        impl Drop for Active {
            fn drop(&mut self) {
                self.0.fetch_sub(1, Ordering::AcqRel);
            }
        }
        let guard = Active(active.clone());
        let handle = handle.clone();
        let spawned = std::thread::Builder::new()
            .name("tandem-conn".into())
            .spawn(move || {
                let _guard = guard;
                serve(stream, &*handle);
            });
        if let Err(e) = spawned {
            tracing::warn!("control socket: cannot start a connection thread: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_longer_than_the_limit_are_refused() {
        let mut long = vec![b'a'; MAX_LINE + 10];
        long.push(b'\n');
        let mut r = io::Cursor::new(long);
        let mut buf = Vec::new();
        assert!(matches!(read_line(&mut r, &mut buf), Err(None)));
        let mut exact = vec![b'a'; MAX_LINE];
        exact.extend_from_slice(b"\nnext\n");
        let mut r = io::Cursor::new(exact);
        assert!(matches!(read_line(&mut r, &mut buf), Ok(Some(()))));
        assert_eq!(buf.len(), MAX_LINE);
        assert!(matches!(read_line(&mut r, &mut buf), Ok(Some(()))));
        assert_eq!(buf, b"next");
        assert!(matches!(read_line(&mut r, &mut buf), Ok(None)));
    }
}
