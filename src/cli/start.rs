//! Reaching the pool's daemon, and the one rule for when the CLI may start one itself.
//!
//! The rule (README, "The daemon and systemd"): a command that finds no daemon answering
//! starts one in the background when
//! - `--autostart` is given or `TANDEM_AUTOSTART=1` (explicit), or
//! - systemd does not run this machine (no `/run/systemd/system`: containers, tests) and
//!   `TANDEM_AUTOSTART` is not `0`;
//!
//! otherwise systemd owns the daemon (`tandem.socket` / `tandem.service`) and the command
//! fails with one line naming `systemctl start tandem.socket` and the flag. A daemon started
//! here is detached (own session, `<pool>/daemon.log`); `tandem demo` always may start one.

use std::io::Read;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use tandem::control::{Client, Request, socket_path};

/// `--autostart` was given (set once by `run`, before any command talks to the daemon).
static AUTOSTART_FLAG: AtomicBool = AtomicBool::new(false);

/// Records `--autostart` for [`connect_or_start`].
pub fn set_autostart_flag(on: bool) {
    AUTOSTART_FLAG.store(on, Ordering::Relaxed);
}

/// The directory whose existence means systemd is PID 1 (sd_booted(3)).
const SYSTEMD_RUN_DIR: &str = "/run/systemd/system";

/// Why the CLI may or may not start a daemon itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Autostart {
    /// `--autostart` or `TANDEM_AUTOSTART=1`.
    Asked,
    /// No systemd on this machine, and not refused.
    NoSystemd,
    /// `TANDEM_AUTOSTART=0`.
    Refused,
    /// systemd runs this machine: it owns the daemon.
    Systemd,
}

/// Applies the rule to the flag, the `TANDEM_AUTOSTART` value and whether systemd runs.
fn autostart_rule(flag: bool, env: Option<&str>, systemd: bool) -> Result<Autostart> {
    if flag {
        return Ok(Autostart::Asked);
    }
    match env.map(str::trim).unwrap_or("") {
        "1" | "yes" | "true" | "on" => Ok(Autostart::Asked),
        "0" | "no" | "false" | "off" => Ok(Autostart::Refused),
        "" if systemd => Ok(Autostart::Systemd),
        "" => Ok(Autostart::NoSystemd),
        other => bail!(
            "TANDEM_AUTOSTART={other} is not understood; set it to 1 (start a daemon when none answers) or 0 (never), or unset it"
        ),
    }
}

fn autostart() -> Result<Autostart> {
    let env = std::env::var("TANDEM_AUTOSTART").ok();
    autostart_rule(
        AUTOSTART_FLAG.load(Ordering::Relaxed),
        env.as_deref(),
        Path::new(SYSTEMD_RUN_DIR).is_dir(),
    )
}

/// Connects to the pool's daemon; when none answers, starts one if the rule allows.
pub fn connect_or_start(pool: &Path) -> Result<Client> {
    connect_or(pool, autostart()?)
}

/// Connects to the pool's daemon, starting it when none answers (`tandem demo`).
pub fn connect_or_start_always(pool: &Path) -> Result<Client> {
    connect_or(pool, Autostart::Asked)
}

fn connect_or(pool: &Path, rule: Autostart) -> Result<Client> {
    // A socket systemd holds answers once the daemon it starts has opened the pool, which
    // may take a while after an unclean stop: wait for it when nothing would be started.
    let patience = match rule {
        Autostart::Asked | Autostart::NoSystemd => Duration::from_secs(5),
        Autostart::Refused | Autostart::Systemd => Duration::from_secs(90),
    };
    if let Ok(mut c) = Client::connect(pool)
        && c.call(Request::Ping, Some(patience)).is_ok()
    {
        return Ok(c);
    }
    match rule {
        Autostart::Asked | Autostart::NoSystemd => start(pool),
        Autostart::Systemd => bail!(
            "no tandem daemon answers for pool {} ({}); systemd runs this machine, so start it there (systemctl start tandem.socket, or tandem.service), or pass --autostart (TANDEM_AUTOSTART=1) to start one from this command",
            pool.display(),
            socket_path(pool).display()
        ),
        Autostart::Refused => bail!(
            "no tandem daemon answers for pool {} ({}) and TANDEM_AUTOSTART=0; start one (tandem daemon, or systemctl start tandem.socket) or pass --autostart",
            pool.display(),
            socket_path(pool).display()
        ),
    }
}

/// Starts the pool's daemon in the background and waits until it answers.
fn start(pool: &Path) -> Result<Client> {
    // Private from the start: the daemon's log goes there before the daemon runs.
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(pool)
        .with_context(|| format!("creating pool directory {}", pool.display()))?;
    let log_path = pool.join("daemon.log");
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(&log_path)
        .with_context(|| format!("opening {}", log_path.display()))?;
    let exe = std::env::current_exe().context("locating the tandem binary")?;
    let mut cmd = Command::new(exe);
    cmd.arg("--pool")
        .arg(pool)
        .arg("daemon")
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    // Not a systemd service: whatever readiness socket or listening sockets this command
    // was given are not the daemon's.
    for var in [
        "NOTIFY_SOCKET",
        "LISTEN_FDS",
        "LISTEN_PID",
        "LISTEN_FDNAMES",
    ] {
        cmd.env_remove(var);
    }
    // SAFETY: setsid in the child before exec: detach from our session and terminal.
    unsafe {
        use std::os::unix::process::CommandExt;
        cmd.pre_exec(|| {
            libc::setsid();
            Ok(())
        });
    }
    let mut child = cmd.spawn().context("starting the tandem daemon")?;
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Ok(mut c) = Client::connect(pool)
            && c.call(Request::Ping, Some(Duration::from_secs(5))).is_ok()
        {
            return Ok(c);
        }
        if let Ok(Some(status)) = child.try_wait() {
            let mut tail = String::new();
            if let Ok(mut f) = std::fs::File::open(&log_path) {
                let _ = f.read_to_string(&mut tail);
            }
            let last = tail
                .lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("")
                .to_string();
            bail!(
                "the tandem daemon for {} exited ({status}): {last}",
                pool.display()
            );
        }
        if Instant::now() > deadline {
            bail!(
                "the tandem daemon for {} did not answer on {} within 15 s; see {}",
                pool.display(),
                socket_path(pool).display(),
                log_path.display()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_autostart_rule() {
        use Autostart::*;
        assert_eq!(autostart_rule(true, Some("0"), true).unwrap(), Asked);
        assert_eq!(autostart_rule(false, Some("1"), true).unwrap(), Asked);
        assert_eq!(autostart_rule(false, None, true).unwrap(), Systemd);
        assert_eq!(autostart_rule(false, Some(""), false).unwrap(), NoSystemd);
        assert_eq!(autostart_rule(false, Some("0"), false).unwrap(), Refused);
        let e = autostart_rule(false, Some("maybe"), false).unwrap_err();
        assert!(e.to_string().contains("TANDEM_AUTOSTART=maybe"), "{e}");
    }
}
