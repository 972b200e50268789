//! Snapshot hooks: executables in `<pool>/hooks/pre-snapshot.d/` and
//! `<pool>/hooks/post-snapshot.d/`, run in name order with the snapshot's details in the
//! environment, each under a timeout. A hook that fails or times out is reported by name.
//!
//! Invariants (hooks run with the daemon's privileges, usually root):
//! - Only trusted files run: `<pool>/hooks`, the phase directory, each hook (the file a
//!   symlink leads to) and the directory holding it must be owned by root or the daemon's
//!   user and writable by nobody else; otherwise the phase is refused, by path, with the fix.
//! - A hook gets a minimal environment (see [`HookEnv`] and hooks/README.md), never the
//!   daemon's own.
//! - A hook runs in its own process group. Its output is read until it exits (what is
//!   buffered then is kept; a background process holding the pipes is not waited for), and
//!   at the timeout the whole group is killed (`child`, which waits on events, not a timer).

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use super::child::{Ended, spawn_and_wait};

/// Longest a hook may run (TANDEM_HOOK_TIMEOUT overrides, e.g. "30s").
pub const DEFAULT_HOOK_TIMEOUT: Duration = Duration::from_secs(60);

/// The PATH every hook gets.
pub const HOOK_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Pre,
    Post,
    /// A restore test's command (`snapshot test --run`): not a directory of hooks, the
    /// same environment with TANDEM_PHASE=test and the clone's mountpoints.
    Test,
}

impl Phase {
    fn dir(self) -> &'static str {
        match self {
            Phase::Pre => "pre-snapshot.d",
            Phase::Post => "post-snapshot.d",
            Phase::Test => "test.d",
        }
    }

    fn name(self) -> &'static str {
        match self {
            Phase::Pre => "pre",
            Phase::Post => "post",
            Phase::Test => "test",
        }
    }
}

/// What the hooks learn about the snapshot. In the environment: TANDEM_POOL, TANDEM_PHASE,
/// TANDEM_SNAPSHOT, TANDEM_GROUP, TANDEM_VOLUME_COUNT, TANDEM_VOLUME_<i> and
/// TANDEM_MOUNT_<i> (i from 0), TANDEM_VOLUMES and TANDEM_MOUNTPOINTS (newline-separated),
/// TANDEM_STATUS (post only), plus PATH, HOME and LANG.
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
    #[error(
        "{phase}-snapshot hook {hook} did not finish within {limit:?}; it and its process group were killed"
    )]
    Timeout {
        phase: &'static str,
        hook: String,
        limit: Duration,
    },
    #[error("could not run {phase}-snapshot hook {hook}: {source}")]
    Spawn {
        phase: &'static str,
        hook: String,
        #[source]
        source: std::io::Error,
    },
    #[error("refusing to run {phase}-snapshot hooks: {path} {problem}; {fix}")]
    Unsafe {
        phase: &'static str,
        path: String,
        problem: String,
        fix: String,
    },
}

impl HookError {
    /// A refusal to run untrusted hooks (not a hook's own failure: no flag overrides it).
    pub fn is_unsafe(&self) -> bool {
        matches!(self, HookError::Unsafe { .. })
    }
}

fn timeout() -> Duration {
    std::env::var("TANDEM_HOOK_TIMEOUT")
        .ok()
        .and_then(|v| crate::options::parse_duration(&v))
        .unwrap_or(DEFAULT_HOOK_TIMEOUT)
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

/// Refuses a file or directory that someone other than root or the daemon's user could
/// change: owned by another user, or writable by group or others.
fn check_trusted(phase: Phase, path: &Path) -> Result<(), HookError> {
    let meta = std::fs::metadata(path).map_err(|e| HookError::Unsafe {
        phase: phase.name(),
        path: path.display().to_string(),
        problem: format!("cannot be checked ({e})"),
        fix: "make it readable by the daemon's user or remove it".into(),
    })?;
    let me = rustix::process::geteuid().as_raw();
    if meta.uid() != 0 && meta.uid() != me {
        return Err(HookError::Unsafe {
            phase: phase.name(),
            path: path.display().to_string(),
            problem: format!(
                "is owned by uid {}, not root or the daemon's user (uid {me})",
                meta.uid()
            ),
            fix: format!("fix it with `chown {me} {}`", path.display()),
        });
    }
    if meta.mode() & 0o022 != 0 {
        return Err(HookError::Unsafe {
            phase: phase.name(),
            path: path.display().to_string(),
            problem: format!(
                "is writable by group or others (mode {:o})",
                meta.mode() & 0o7777
            ),
            fix: format!("fix it with `chmod go-w {}`", path.display()),
        });
    }
    Ok(())
}

/// Checks everything a phase would run: the hooks directories, each hook's file (through
/// symlinks) and the directory that holds that file.
fn check_phase(pool: &Path, phase: Phase, hooks: &[PathBuf]) -> Result<(), HookError> {
    if hooks.is_empty() {
        return Ok(());
    }
    let root = pool.join("hooks");
    check_trusted(phase, &root)?;
    check_trusted(phase, &root.join(phase.dir()))?;
    for hook in hooks {
        let real = std::fs::canonicalize(hook).unwrap_or_else(|_| hook.clone());
        check_trusted(phase, &real)?;
        if let Some(dir) = real.parent() {
            check_trusted(phase, dir)?;
        }
    }
    Ok(())
}

/// Runs every hook of a phase. Pre hooks stop at the first failure; post hooks all run and
/// the first failure is returned. Untrusted hooks (see the module doc) run none of them.
pub fn run(pool: &Path, phase: Phase, env: &HookEnv) -> Result<(), HookError> {
    let hooks = list(pool, phase);
    if let Err(e) = check_phase(pool, phase, &hooks) {
        tracing::error!("{e}");
        return Err(e);
    }
    let mut first_err = None;
    for hook in hooks {
        if let Err(e) = run_one(pool, &hook, phase, env) {
            tracing::warn!("{e}");
            if phase == Phase::Pre {
                return Err(e);
            }
            first_err.get_or_insert(e);
        }
    }
    first_err.map_or(Ok(()), Err)
}

/// The whole environment of a hook (nothing else of the daemon's is passed).
fn environment(pool: &Path, phase: Phase, env: &HookEnv) -> Vec<(String, std::ffi::OsString)> {
    let mut vars: Vec<(String, std::ffi::OsString)> = vec![
        ("PATH".into(), HOOK_PATH.into()),
        (
            "HOME".into(),
            std::env::var_os("HOME").unwrap_or_else(|| "/".into()),
        ),
        ("LANG".into(), "C.UTF-8".into()),
        ("TANDEM_POOL".into(), pool.as_os_str().to_owned()),
        ("TANDEM_PHASE".into(), phase.name().into()),
        ("TANDEM_SNAPSHOT".into(), env.snapshot.clone().into()),
        (
            "TANDEM_GROUP".into(),
            env.group.clone().unwrap_or_default().into(),
        ),
        (
            "TANDEM_VOLUME_COUNT".into(),
            env.volumes.len().to_string().into(),
        ),
        (
            "TANDEM_VOLUMES".into(),
            env.volumes
                .iter()
                .map(|(v, _)| v.as_str())
                .collect::<Vec<_>>()
                .join("\n")
                .into(),
        ),
        (
            "TANDEM_MOUNTPOINTS".into(),
            env.volumes
                .iter()
                .flat_map(|(_, m)| m.iter().map(|p| p.display().to_string()))
                .collect::<Vec<_>>()
                .join("\n")
                .into(),
        ),
    ];
    for (i, (v, mps)) in env.volumes.iter().enumerate() {
        vars.push((format!("TANDEM_VOLUME_{i}"), v.clone().into()));
        vars.push((
            format!("TANDEM_MOUNT_{i}"),
            mps.first()
                .map(|p| p.as_os_str().to_owned())
                .unwrap_or_default(),
        ));
    }
    if phase == Phase::Post {
        vars.push(("TANDEM_STATUS".into(), env.status.clone().into()));
    }
    vars
}

/// What [`run_command`] saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandRun {
    /// Exit code (None: killed by a signal, timed out, or not started).
    pub exit_code: Option<i32>,
    pub passed: bool,
    pub timed_out: bool,
    /// Killed because the caller's `cancel` said so.
    pub cancelled: bool,
    pub elapsed: Duration,
    /// The tail of stdout then stderr (or why it could not start).
    pub output: String,
}

/// Runs `sh -c command` as a restore test: the hook environment (TANDEM_PHASE=test) with
/// `env`'s volumes, in `dir`, under `limit` (its process group killed then, or as soon as
/// `cancel` says so).
pub fn run_command(
    pool: &Path,
    command: &str,
    env: &HookEnv,
    dir: &Path,
    limit: Duration,
    cancel: &dyn Fn() -> bool,
) -> CommandRun {
    let mut cmd = Command::new("/bin/sh");
    cmd.arg("-c")
        .arg(command)
        .env_clear()
        .envs(environment(pool, Phase::Test, env))
        .current_dir(dir);
    let started = Instant::now();
    let run = |exit_code, passed, timed_out, cancelled, output| CommandRun {
        exit_code,
        passed,
        timed_out,
        cancelled,
        elapsed: started.elapsed(),
        output,
    };
    match spawn_and_wait(cmd, limit, Some(cancel)) {
        Ok((Ended::Exited(s), output)) => run(s.code(), s.success(), false, false, output),
        Ok((Ended::TimedOut, output)) => run(
            None,
            false,
            true,
            false,
            format!("{output}\n(killed after {limit:?})"),
        ),
        Ok((Ended::Cancelled, output)) => {
            run(None, false, false, true, format!("{output}\n(interrupted)"))
        }
        Err(e) => run(
            None,
            false,
            false,
            false,
            format!("could not run /bin/sh: {e}"),
        ),
    }
}

fn run_one(pool: &Path, hook: &Path, phase: Phase, env: &HookEnv) -> Result<(), HookError> {
    let name = phase.name();
    let hook_name = hook
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut cmd = Command::new(hook);
    cmd.env_clear()
        .envs(environment(pool, phase, env))
        .current_dir(pool.join("hooks"));
    let limit = timeout();
    let (status, output) = match spawn_and_wait(cmd, limit, None) {
        Ok((Ended::Exited(s), output)) => (s, output),
        Ok((Ended::TimedOut | Ended::Cancelled, _)) => {
            return Err(HookError::Timeout {
                phase: name,
                hook: hook_name,
                limit,
            });
        }
        Err(e) => {
            return Err(HookError::Spawn {
                phase: name,
                hook: hook_name,
                source: e,
            });
        }
    };
    tracing::info!(
        "{name}-snapshot hook {hook_name}: {status}; {}",
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
            phase: name,
            hook: hook_name,
            status: status.to_string(),
            output: last,
        })
    }
}
