//! The control API between the `tandem` CLI and the daemon: versioned serde request and
//! response types, sent as one JSON document per line over the pool's Unix socket
//! (`<pool>/tandem.sock`, mode 0600), and the client side of it.
//!
//! The wire: the client writes a request line (`Envelope<Request>`); the daemon answers with
//! one response line (`Envelope<Response>`, `ok` or `err`). A request that asks for progress
//! (only `pool-verify` with `progress_ms` set) gets `progress` response lines first, about
//! every `progress_ms`, and then its one `ok`/`err` line; a client that does not ask gets
//! none, so a client that knows only `ok`/`err` reads the same answers as before. A client
//! withdraws such a request by shutting down its sending side (or closing): the daemon stops
//! the work and answers `err` saying how far it got.

pub mod server;

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::fs::VolumeInfo;
use crate::store::PoolStats;

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
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupInfo {
    pub name: String,
    pub volumes: Vec<String>,
    pub snapshots: Vec<String>,
    pub created: i64,
}

/// Effective snapshot settings: system-wide, then per volume (key, value, set explicitly).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SnapConfig {
    pub system: Vec<(String, String)>,
    pub volumes: Vec<(String, Vec<OptionValue>)>,
}

/// (key, effective value, set explicitly)
pub type OptionValue = (String, String, bool);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MountInfo {
    pub volume: String,
    pub mountpoint: PathBuf,
    pub options: Vec<String>,
    /// Set for the read-only mount of a snapshot's member.
    #[serde(default)]
    pub snapshot: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VolumeDetail {
    #[serde(flatten)]
    pub info: VolumeInfo,
    pub mountpoints: Vec<PathBuf>,
    /// (key, effective value, set explicitly)
    pub options: Vec<(String, String, bool)>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatusInfo {
    pub pid: u32,
    pub pool: PathBuf,
    pub stats: PoolStats,
    pub dedup_ratio: f64,
    pub volumes: usize,
    pub mounts: Vec<MountInfo>,
    /// The intent log (absent when turned off).
    #[serde(default)]
    pub intent_log: Option<crate::fs::LogStatus>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Reply {
    Pong {
        pid: u32,
        pool: PathBuf,
    },
    Volume(VolumeInfo),
    Volumes {
        volumes: Vec<VolumeInfo>,
    },
    VolumeDetail(VolumeDetail),
    OptionSet {
        volume: String,
        key: String,
        value: String,
    },
    Mounted(MountInfo),
    Unmounted(MountInfo),
    Status(StatusInfo),
    Done,
    Group(GroupInfo),
    Groups {
        groups: Vec<GroupInfo>,
    },
    SnapshotCreated(crate::snapshot::CreateOutcome),
    Snapshot(crate::snapshot::SnapshotInfo),
    Snapshots {
        snapshots: Vec<crate::snapshot::SnapshotInfo>,
    },
    Deleted {
        names: Vec<String>,
    },
    SnapConfig(SnapConfig),
    Verify(crate::store::verify::VerifyReport),
    Activated {
        name: String,
        mounts: Vec<MountInfo>,
    },
    Restored(crate::snapshot::RestoreOutcome),
    Df(DfInfo),
    Cloned(crate::snapshot::CloneOutcome),
    Diff {
        volumes: Vec<(String, Vec<crate::fs::restore::DiffEntry>)>,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Response {
    Ok(Reply),
    Err {
        message: String,
    },
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
    /// The daemon refused the request; the message is meant for the user as is.
    #[error("{0}")]
    Refused(String),
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

fn finish(response: Response) -> Result<Reply, ClientError> {
    match response {
        Response::Ok(r) => Ok(r),
        Response::Err { message } => Err(ClientError::Refused(message)),
        Response::Progress(_) => Err(ClientError::Protocol("progress is not an answer".into())),
    }
}

/// `tandem df`: space per volume and per snapshot, and the pool's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DfInfo {
    /// (volume, logical bytes, physical bytes referenced, unique/shared split)
    pub volumes: Vec<(String, u64, u64, crate::fs::snap::VolumeSpace)>,
    /// (snapshot, bytes only it holds)
    pub snapshots: Vec<(String, u64)>,
    pub pool: PoolStats,
    pub dedup_ratio: f64,
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
