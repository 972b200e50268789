//! The control API between the `tandem` CLI and the daemon: versioned serde request and
//! response types, sent as one JSON document per line over the pool's Unix socket
//! (`<pool>/tandem.sock`, mode 0600), and the client side of it.

pub mod server;

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

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
    /// Scrub: re-read every chunk, check every extent's chunk.
    PoolVerify,
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
    Err { message: String },
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
}

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

    /// Sends one request and waits for its reply (`timeout` bounds the wait).
    pub fn call(&mut self, req: Request, timeout: Option<Duration>) -> Result<Reply, ClientError> {
        let io = |e| ClientError::Io {
            path: self.path.clone(),
            source: e,
        };
        self.stream
            .get_ref()
            .set_read_timeout(timeout)
            .map_err(io)?;
        let mut line = serde_json::to_string(&Envelope {
            version: PROTOCOL_VERSION,
            body: req,
        })
        .map_err(|e| ClientError::Protocol(e.to_string()))?;
        line.push('\n');
        self.stream
            .get_mut()
            .write_all(line.as_bytes())
            .map_err(io)?;
        let mut answer = String::new();
        let n = self.stream.read_line(&mut answer).map_err(io)?;
        if n == 0 {
            return Err(ClientError::Protocol(
                "the daemon closed the connection".into(),
            ));
        }
        let env: Envelope<Response> =
            serde_json::from_str(&answer).map_err(|e| ClientError::Protocol(e.to_string()))?;
        match env.body {
            Response::Ok(r) => Ok(r),
            Response::Err { message } => Err(ClientError::Refused(message)),
        }
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
