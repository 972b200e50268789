//! What the daemon says to and takes from a service manager, and its reload (SIGHUP): readiness and state
//! (sd_notify(3): `READY=1`, `RELOADING=1`, `STOPPING=1`, `STATUS=` datagrams to
//! `$NOTIFY_SOCKET`) and the control socket it may pass (sd_listen_fds(3): `LISTEN_PID`,
//! `LISTEN_FDS`, descriptors from 3). Both through the `sd-notify` crate: a few hundred lines
//! without dependencies that implement exactly these two protocols (libsystemd bindings
//! would tie the binary to a C library for nothing more).
//!
//! Invariants: without `$NOTIFY_SOCKET` every notification is a no-op, and a failed one is
//! logged, never fatal (the service manager decides what a missing `READY=1` means). The
//! passed descriptors are taken once, at the start; they are made close-on-exec, so children
//! such as hooks never hold the listening socket (and `LISTEN_PID` names this process, not
//! them, so they never take it either).

use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::net::UnixListener;
use std::path::Path;

use sd_notify::NotifyState;

use super::Daemon;

/// Tells the service manager `states` (nothing when none listens).
pub fn notify(states: &[NotifyState]) {
    if std::env::var_os("NOTIFY_SOCKET").is_none() {
        return;
    }
    if let Err(e) = sd_notify::notify(states) {
        tracing::warn!("telling the service manager {states:?}: {e}");
    }
}

/// The listening control socket the service manager passed (socket activation), if any.
/// Called once. More than one descriptor is a warning (the first is
/// the control socket, the rest are closed).
pub fn passed_listener() -> std::io::Result<Option<UnixListener>> {
    let mut fds = sd_notify::listen_fds()?;
    let Some(first) = fds.next() else {
        return Ok(None);
    };
    // SAFETY: sd_listen_fds(3): the passed descriptors are open and owned by nobody else
    // in this process; this function runs once, so each is taken once.
    let fd = unsafe { OwnedFd::from_raw_fd(first) };
    let rest: Vec<OwnedFd> = fds
        // SAFETY: as above, for the following passed descriptors.
        .map(|n| unsafe { OwnedFd::from_raw_fd(n) })
        .collect();
    if !rest.is_empty() {
        tracing::warn!(
            "the service manager passed {} sockets; the control socket is the first, the rest are closed",
            rest.len() + 1
        );
    }
    Ok(Some(UnixListener::from(fd)))
}

/// Warns when the passed socket is not where the CLI looks for the control socket.
pub fn check_passed(listener: &UnixListener, expected: &Path) {
    let at = listener.local_addr();
    let at = at.as_ref().ok().and_then(|a| a.as_pathname());
    if at == Some(expected) {
        return;
    }
    tracing::warn!(
        "the service manager passed the control socket {}, but tandem's CLI connects to {}; the socket unit needs ListenStream={}",
        at.map_or("(not a named unix socket)".into(), |p| p
            .display()
            .to_string()),
        expected.display(),
        expected.display()
    );
}

impl Daemon {
    /// SIGHUP (`systemctl reload tandem`): re-read what the daemon keeps from outside its
    /// requests: the scheduler re-plans from the pool's schedules and the mount table drops
    /// mounts unmounted from outside. Options, schedules and snapshots live in the pool and
    /// take effect when set, so there is no file to re-read; mounts and open files stay.
    pub(super) fn reload(&self) {
        notify(&[NotifyState::Reloading]);
        tracing::info!("SIGHUP: reloading");
        self.mounts.reap();
        self.wake_scheduler();
        let status = self.status_line();
        tracing::info!("reloaded: {status}");
        notify(&[NotifyState::Ready, NotifyState::Status(&status)]);
    }

    /// What `systemctl status tandem` shows.
    pub(super) fn status_line(&self) -> String {
        let n = self.mounts.list().len();
        format!(
            "serving pool {} ({n} mount{})",
            self.pool.display(),
            if n == 1 { "" } else { "s" }
        )
    }
}
