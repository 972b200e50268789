//! Snapshot hooks: executables in `<pool>/hooks/pre-snapshot.d/` and
//! `<pool>/hooks/post-snapshot.d/`, run in name order with the snapshot's details in the
//! environment, each under a timeout. A hook that fails or times out is reported by name.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Longest a hook may run (TANDEM_HOOK_TIMEOUT overrides, e.g. "30s").
pub const DEFAULT_HOOK_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Pre,
    Post,
}

impl Phase {
    fn dir(self) -> &'static str {
        match self {
            Phase::Pre => "pre-snapshot.d",
            Phase::Post => "post-snapshot.d",
        }
    }
}

/// What the hooks learn about the snapshot.
#[derive(Debug, Clone, Default)]
pub struct HookEnv {
    pub snapshot: String,
    pub group: Option<String>,
    /// (volume, mountpoints)
    pub volumes: Vec<(String, Vec<PathBuf>)>,
    /// For post hooks: "ok" or "failed: reason".
    pub status: String,
}

#[derive(Debug, thiserror::Error)]
pub enum HookError {
    #[error("{phase}-snapshot hook {hook} failed ({status}): {output}")]
    Failed {
        phase: &'static str,
        hook: String,
        status: String,
        output: String,
    },
    #[error("{phase}-snapshot hook {hook} did not finish within {secs} s and was killed")]
    Timeout {
        phase: &'static str,
        hook: String,
        secs: u64,
    },
    #[error("could not run {phase}-snapshot hook {hook}: {source}")]
    Spawn {
        phase: &'static str,
        hook: String,
        #[source]
        source: std::io::Error,
    },
}

fn timeout() -> Duration {
    std::env::var("TANDEM_HOOK_TIMEOUT")
        .ok()
        .and_then(|v| crate::options::parse_duration(&v))
        .unwrap_or(DEFAULT_HOOK_TIMEOUT)
}

fn env_name(vol: &str) -> String {
    vol.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect()
}

/// The executables of one phase, in name order.
pub fn list(pool: &Path, phase: Phase) -> Vec<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let dir = pool.join("hooks").join(phase.dir());
    let mut out: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.path())
                .filter(|p| {
                    p.metadata()
                        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
                        .unwrap_or(false)
                })
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

/// Runs every hook of a phase. Pre hooks stop at the first failure; post hooks all run and
/// the first failure is returned.
pub fn run(pool: &Path, phase: Phase, env: &HookEnv) -> Result<(), HookError> {
    let name = match phase {
        Phase::Pre => "pre",
        Phase::Post => "post",
    };
    let mut first_err = None;
    for hook in list(pool, phase) {
        let res = run_one(pool, &hook, name, env);
        if let Err(e) = res {
            tracing::warn!("{e}");
            if phase == Phase::Pre {
                return Err(e);
            }
            first_err.get_or_insert(e);
        }
    }
    first_err.map_or(Ok(()), Err)
}

fn run_one(pool: &Path, hook: &Path, phase: &'static str, env: &HookEnv) -> Result<(), HookError> {
    let hook_name = hook
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut cmd = Command::new(hook);
    cmd.env("TANDEM_POOL", pool)
        .env("TANDEM_PHASE", phase)
        .env("TANDEM_SNAPSHOT", &env.snapshot)
        .env("TANDEM_GROUP", env.group.clone().unwrap_or_default())
        .env(
            "TANDEM_VOLUMES",
            env.volumes
                .iter()
                .map(|(v, _)| v.as_str())
                .collect::<Vec<_>>()
                .join(" "),
        )
        .env(
            "TANDEM_MOUNTPOINTS",
            env.volumes
                .iter()
                .flat_map(|(_, m)| m.iter().map(|p| p.display().to_string()))
                .collect::<Vec<_>>()
                .join(" "),
        )
        .env("TANDEM_STATUS", &env.status)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // The daemon blocks SIGTERM/SIGINT/SIGHUP in its threads (one thread waits for them);
    // a hook must not inherit that mask, or it could never be stopped by a signal.
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        use std::os::unix::process::CommandExt;
        cmd.pre_exec(|| {
            let mut none: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut none);
            libc::pthread_sigmask(libc::SIG_SETMASK, &none, std::ptr::null_mut());
            Ok(())
        });
    }
    for (v, mps) in &env.volumes {
        cmd.env(
            format!("TANDEM_MOUNT_{}", env_name(v)),
            mps.first()
                .map(|p| p.display().to_string())
                .unwrap_or_default(),
        );
    }
    let mut child = cmd.spawn().map_err(|e| HookError::Spawn {
        phase,
        hook: hook_name.clone(),
        source: e,
    })?;
    // Drain output in threads so a chatty hook cannot block on a full pipe.
    let out = child.stdout.take().map(|mut s| {
        std::thread::spawn(move || {
            let mut b = String::new();
            let _ = std::io::Read::read_to_string(&mut s, &mut b);
            b
        })
    });
    let err = child.stderr.take().map(|mut s| {
        std::thread::spawn(move || {
            let mut b = String::new();
            let _ = std::io::Read::read_to_string(&mut s, &mut b);
            b
        })
    });
    let limit = timeout();
    let start = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break s,
            Ok(None) if start.elapsed() > limit => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(HookError::Timeout {
                    phase,
                    hook: hook_name,
                    secs: limit.as_secs(),
                });
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(5)),
            Err(e) => {
                return Err(HookError::Spawn {
                    phase,
                    hook: hook_name,
                    source: e,
                });
            }
        }
    };
    let output = format!(
        "{}{}",
        out.and_then(|t| t.join().ok()).unwrap_or_default(),
        err.and_then(|t| t.join().ok()).unwrap_or_default()
    );
    tracing::info!(
        "{phase}-snapshot hook {hook_name}: {status}; {}",
        output.trim()
    );
    if status.success() {
        Ok(())
    } else {
        let last = output
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("no output")
            .to_string();
        Err(HookError::Failed {
            phase,
            hook: hook_name,
            status: status.to_string(),
            output: last,
        })
    }
}
