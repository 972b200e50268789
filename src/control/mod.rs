//! The control API between the `tandem` CLI and the daemon: versioned serde request and
//! response types, sent as one JSON document per line over the pool's Unix socket
//! (`<pool>/tandem.sock`, mode 0600), and the client side of it.
//!
//! The wire: the client writes a request line (`Envelope<Request>`); the daemon answers with
//! one response line (`Envelope<Response>`, `ok` or `err`). A request that asks for progress
//! (`pool-verify` or `snapshot-verify` with `progress_ms` set) gets `progress` response lines first, about
//! every `progress_ms`, and then its one `ok`/`err` line; a client that does not ask gets
//! none, so a client that knows only `ok`/`err` reads the same answers as before. A client
//! withdraws such a request by shutting down its sending side (or closing): the daemon stops
//! the work and answers `err` saying how far it got.
//!
//! Each request has one reply type (the table is in [`reply`]; [`Client::call_as`] checks
//! it, so a mismatch is handled there and nowhere else). An `err` line carries a stable
//! [`ErrorCode`] and the message for the user: `{"err":{"code":"not_found","message":"..."}}`
//! (see [`error`] for the codes and the one place layer errors are mapped to them; the
//! README lists them for scripts). A client that reads only `message` reads it as before.

pub mod error;
mod reply;
pub mod server;

pub use error::{Coded, ErrorCode, WireError};
pub use reply::*;

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// Bumped on any incompatible change of the types below.
pub const PROTOCOL_VERSION: u32 = 1;

pub fn socket_path(pool: &Path) -> PathBuf {
    pool.join("tandem.sock")
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Envelope<T> {
    pub version: u32,
    pub body: T,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "kebab-case")]
pub enum Request {
    Ping,
    VolumeCreate {
        name: String,
        block_size: Option<u64>,
    },
    VolumeList,
    VolumeInfo {
        name: String,
    },
    VolumeDelete {
        name: String,
    },
    VolumeSet {
        name: String,
        key: String,
        value: String,
    },
    /// Every option of a volume: the value in force and where it comes from.
    VolumeGet {
        name: String,
    },
    /// Drops a volume's own value of an option (it falls back to the system-wide value or
    /// the default); answers as `volume-get`.
    VolumeInherit {
        name: String,
        key: String,
    },
    /// Renames a volume, a group or a snapshot (one transaction); mounts follow.
    VolumeRename {
        old: String,
        new: String,
    },
    GroupRename {
        old: String,
        new: String,
    },
    SnapshotRename {
        old: String,
        new: String,
    },
    Mount {
        volume: String,
        mountpoint: PathBuf,
        options: Vec<String>,
    },
    Umount {
        target: String,
    },
    Status,
    Shutdown,
    /// Scrub: re-read every chunk, check every extent's chunk. With `progress_ms`, the
    /// daemon sends a `progress` line about that often before its answer.
    PoolVerify {
        #[serde(default)]
        progress_ms: Option<u64>,
    },
    GroupCreate {
        name: String,
        volumes: Vec<String>,
    },
    GroupAdd {
        name: String,
        volumes: Vec<String>,
    },
    GroupRemove {
        name: String,
        volumes: Vec<String>,
    },
    GroupDelete {
        name: String,
        delete_snapshots: bool,
    },
    GroupList,
    GroupInfo {
        name: String,
    },
    SnapshotCreate(crate::snapshot::CreateRequest),
    SnapshotList {
        volume: Option<String>,
        group: Option<String>,
    },
    SnapshotInfo {
        name: String,
    },
    SnapshotStatus {
        name: Option<String>,
    },
    SnapshotDelete(crate::snapshot::DeleteWhich),
    /// Sets options (when `set` is not empty) and returns the effective configuration.
    SnapshotConfig {
        volume: Option<String>,
        set: Vec<(String, String)>,
    },
    SnapshotActivate {
        name: String,
        mountpoint: Option<PathBuf>,
        /// `-o` mount options (e.g. allow_other, noexec) on top of a snapshot view's defaults.
        #[serde(default)]
        options: Vec<String>,
    },
    SnapshotRestore {
        name: String,
        no_undo: bool,
        online: bool,
    },
    Df,
    SnapshotClone {
        new: String,
        snapshot: String,
    },
    SnapshotDiff {
        snapshot: String,
        other: Option<String>,
        volume: Option<String>,
    },
    SnapshotDeactivate {
        name: String,
    },
    /// Re-read every chunk a snapshot references and recompute its root; progress as for
    /// `pool-verify`.
    SnapshotVerify {
        name: String,
        #[serde(default)]
        progress_ms: Option<u64>,
    },
    /// A restore test: clone, mount, run a command, clean up, record the result.
    SnapshotTest(crate::snapshot::test::TestRequest),
    /// Places hold `tag` on a snapshot (it is then deleted by nothing until released).
    SnapshotHold {
        name: String,
        tag: String,
    },
    SnapshotRelease {
        name: String,
        tag: String,
    },
    /// The holds of one snapshot, or of all.
    SnapshotHolds {
        name: Option<String>,
    },
    /// A snapshot schedule of a group or of one ungrouped volume (exactly one of them).
    ScheduleAdd {
        name: String,
        group: Option<String>,
        volume: Option<String>,
        /// The interval (0 with `cron`).
        every_ms: u64,
        /// A five-field cron expression in UTC, instead of `every_ms`.
        #[serde(default)]
        cron: Option<String>,
        /// Retention, sanoid's `hourly=24,daily=7,...,latest=N` (None: nothing pruned).
        keep: Option<String>,
        description: String,
        /// A restore-test command run on each snapshot the schedule takes.
        #[serde(default)]
        test: Option<String>,
    },
    ScheduleList,
    ScheduleInfo {
        name: String,
    },
    ScheduleRemove {
        name: String,
    },
    ScheduleEnable {
        name: String,
        enabled: bool,
    },
    /// `tandem cp`: copies the file at `src` to `dst` (absolute, canonical paths on tandem
    /// mounts of the pool; `dst` is the new file's path, its directory exists), sharing
    /// blocks. The new file is owned by `uid`/`gid` and gets the source's mode less
    /// `umask` (the caller's), as cp(1) makes it.
    Copy {
        src: PathBuf,
        dst: PathBuf,
        uid: u32,
        gid: u32,
        #[serde(default)]
        umask: u32,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Response {
    Ok(Reply),
    Err(WireError),
    /// Ahead of the answer, only to a request that asked for it.
    Progress(crate::store::verify::VerifyProgress),
}

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("no tandem daemon answers on {path}: {source}")]
    Connect {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("talking to the daemon on {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "the daemon sent a reply this tandem does not understand ({0}); are the CLI and daemon the same version?"
    )]
    Protocol(String),
    /// The daemon refused the request; the message is meant for the user as is, the code
    /// for scripts.
    #[error("{0}")]
    Refused(WireError),
    #[error(
        "the daemon on {path} did not answer within {} s after the request was withdrawn; see its daemon.log",
        .waited.as_secs()
    )]
    NoAnswer { path: PathBuf, waited: Duration },
}

/// How often a waiting [`Client::call_with_progress`] asks whether to withdraw.
const INTERRUPT_POLL: Duration = Duration::from_millis(100);

/// A connection to a pool's daemon.
pub struct Client {
    path: PathBuf,
    stream: BufReader<UnixStream>,
}

impl Client {
    pub fn connect(pool: &Path) -> Result<Client, ClientError> {
        let path = socket_path(pool);
        let stream = UnixStream::connect(&path).map_err(|e| ClientError::Connect {
            path: path.clone(),
            source: e,
        })?;
        Ok(Client {
            path,
            stream: BufReader::new(stream),
        })
    }

    fn io(&self, e: std::io::Error) -> ClientError {
        ClientError::Io {
            path: self.path.clone(),
            source: e,
        }
    }

    /// Sends one request and waits for its reply (`timeout` bounds the wait).
    pub fn call(&mut self, req: Request, timeout: Option<Duration>) -> Result<Reply, ClientError> {
        self.stream
            .get_ref()
            .set_read_timeout(timeout)
            .map_err(|e| self.io(e))?;
        self.send(req)?;
        let mut answer = Vec::new();
        let n = self
            .stream
            .read_until(b'\n', &mut answer)
            .map_err(|e| self.io(e))?;
        if n == 0 {
            return Err(ClientError::Protocol(
                "the daemon closed the connection".into(),
            ));
        }
        match parse(&answer)? {
            Response::Progress(_) => Err(ClientError::Protocol(
                "progress sent for a request that did not ask for it".into(),
            )),
            other => finish(other),
        }
    }

    /// [`Client::call`], expecting the reply type `R`: another kind of reply is a protocol
    /// error (CLI and daemon of different versions).
    pub fn call_as<R: FromReply>(
        &mut self,
        req: Request,
        timeout: Option<Duration>,
    ) -> Result<R, ClientError> {
        expect(self.call(req, timeout)?)
    }

    /// Sends a request that asked for progress and waits for its reply, handing each
    /// progress line to `on_progress`. `interrupted` is asked after each line and every
    /// [`INTERRUPT_POLL`]; once it says yes, the request is withdrawn (the sending side is
    /// shut down) and the daemon's answer awaited for at most `grace`.
    pub fn call_with_progress(
        &mut self,
        req: Request,
        on_progress: &mut dyn FnMut(&crate::store::verify::VerifyProgress),
        interrupted: &dyn Fn() -> bool,
        grace: Duration,
    ) -> Result<Reply, ClientError> {
        self.stream
            .get_ref()
            .set_read_timeout(Some(INTERRUPT_POLL))
            .map_err(|e| self.io(e))?;
        self.send(req)?;
        let mut line = Vec::new();
        let mut deadline: Option<Instant> = None;
        loop {
            match self.stream.read_until(b'\n', &mut line) {
                Ok(0) => {
                    return Err(ClientError::Protocol(
                        "the daemon closed the connection".into(),
                    ));
                }
                Ok(_) if line.last() == Some(&b'\n') => {
                    let response = parse(&line)?;
                    line.clear();
                    match response {
                        Response::Progress(p) => on_progress(&p),
                        other => return finish(other),
                    }
                }
                // The end came mid-line: the next read says so.
                Ok(_) => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(e) => return Err(self.io(e)),
            }
            match deadline {
                None if interrupted() => {
                    // A daemon that already answered and closed makes this fail; the
                    // answer is still there to read.
                    let _ = self.stream.get_ref().shutdown(std::net::Shutdown::Write);
                    deadline = Some(Instant::now() + grace);
                }
                Some(at) if Instant::now() > at => {
                    return Err(ClientError::NoAnswer {
                        path: self.path.clone(),
                        waited: grace,
                    });
                }
                _ => {}
            }
        }
    }

    fn send(&mut self, req: Request) -> Result<(), ClientError> {
        let mut line = serde_json::to_string(&Envelope {
            version: PROTOCOL_VERSION,
            body: req,
        })
        .map_err(|e| ClientError::Protocol(e.to_string()))?;
        line.push('\n');
        let written = self.stream.get_mut().write_all(line.as_bytes());
        written.map_err(|e| self.io(e))
    }
}

fn parse(line: &[u8]) -> Result<Response, ClientError> {
    let env: Envelope<Response> =
        serde_json::from_slice(line).map_err(|e| ClientError::Protocol(e.to_string()))?;
    Ok(env.body)
}

/// The reply as the type its request expects.
pub fn expect<R: FromReply>(reply: Reply) -> Result<R, ClientError> {
    R::from_reply(reply).map_err(|other| {
        ClientError::Protocol(format!(
            "a '{}' reply where '{}' was expected",
            other.kind(),
            R::KIND
        ))
    })
}

fn finish(response: Response) -> Result<Reply, ClientError> {
    match response {
        Response::Ok(r) => Ok(r),
        Response::Err(e) => Err(ClientError::Refused(e)),
        Response::Progress(_) => Err(ClientError::Protocol("progress is not an answer".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_verify_request_without_progress_ms_asks_for_none() {
        let old: Envelope<Request> =
            serde_json::from_str(r#"{"version":1,"body":{"op":"pool-verify"}}"#).unwrap();
        assert_eq!(old.body, Request::PoolVerify { progress_ms: None });
    }

    #[test]
    fn an_error_line_carries_its_code_and_an_old_one_still_reads() {
        let line = serde_json::to_string(&Envelope {
            version: PROTOCOL_VERSION,
            body: Response::Err(WireError::new(ErrorCode::NotFound, "no volume named 'x'")),
        })
        .unwrap();
        assert_eq!(
            line,
            r#"{"version":1,"body":{"err":{"code":"not_found","message":"no volume named 'x'"}}}"#
        );
        let old = br#"{"version":1,"body":{"err":{"message":"refused"}}}"#;
        match parse(old).map(finish) {
            Ok(Err(ClientError::Refused(e))) => {
                assert_eq!(e, WireError::new(ErrorCode::Internal, "refused"))
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_reply_of_another_kind_is_a_protocol_error() {
        assert!(matches!(
            expect::<crate::fs::VolumeInfo>(Reply::Done),
            Err(ClientError::Protocol(m)) if m.contains("'done'") && m.contains("'volume'")
        ));
    }

    #[test]
    fn progress_lines_are_not_answers() {
        let line = serde_json::to_vec(&Envelope {
            version: PROTOCOL_VERSION,
            body: Response::Progress(Default::default()),
        })
        .unwrap();
        assert!(matches!(parse(&line), Ok(Response::Progress(_))));
        assert!(matches!(
            finish(Response::Progress(Default::default())),
            Err(ClientError::Protocol(_))
        ));
    }
}
