//! The FUSE passthrough ceiling: a minimal FUSE filesystem that serves a native backing
//! directory, for benchmarks only (it is not part of tandem). Names and data go straight to
//! the backing directory (pread/pwrite on a backing descriptor per open handle, fsync and
//! fdatasync forwarded, fsyncdir forwarded), so it does durable I/O exactly as the native
//! directory does, plus the kernel round trips of FUSE. It is mounted with tandem's options
//! and session shape (4 session threads, cloned device descriptors, default_permissions,
//! allow_other, noatime, the readahead of the backing disk) and tells the kernel what
//! tandem's adapter does (capabilities, write size, cache lifetimes, open flags: see fs.rs).
//! A workload on it is the best any FUSE filesystem that writes to that disk can do on this
//! machine: `examples/pgbench.sh` runs PostgreSQL on it beside the native directory, so that
//! what tandem loses splits into what FUSE costs and what tandem's own work costs.
//!
//!   cargo build --release --example passthrough
//!   target/release/examples/passthrough BACKING_DIR MOUNTPOINT
//!
//! Runs in the foreground until SIGTERM or SIGINT (then it unmounts) or until the mount is
//! unmounted. Run it as root: files are made by root and given to the requesting user and
//! group, as the kernel checks permissions itself (default_permissions).

mod data;
mod fs;
mod names;
mod nodes;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use fuser::{Config, MountOption, SessionACL};
use rustix::fs::{Mode, OFlags};

/// fuser session threads, as tandem's per mount.
const SESSION_THREADS: usize = 4;

fn usage() -> ExitCode {
    eprintln!("usage: passthrough BACKING_DIR MOUNTPOINT (as root; stop with SIGTERM or SIGINT)");
    ExitCode::from(2)
}

fn main() -> ExitCode {
    let args: Vec<PathBuf> = std::env::args_os().skip(1).map(PathBuf::from).collect();
    let [backing, mountpoint] = args.as_slice() else {
        return usage();
    };
    match serve(backing, mountpoint) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("passthrough: {e}");
            ExitCode::FAILURE
        }
    }
}

fn serve(backing: &Path, mountpoint: &Path) -> Result<(), String> {
    if !rustix::process::geteuid().is_root() {
        return Err("run as root: files are made by the daemon and given to their user".into());
    }
    // Modes arrive with the caller's umask applied (see fs.rs): none of the daemon's own.
    rustix::process::umask(Mode::empty());
    let flags = OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC;
    let root = rustix::fs::open(backing, flags, Mode::empty()).map_err(|e| {
        format!(
            "backing directory {}: {e}; give an existing directory",
            backing.display()
        )
    })?;
    let nodes = nodes::Nodes::new(std::fs::File::from(root))
        .map_err(|e| format!("backing directory {}: {e}", backing.display()))?;
    let mut config = Config::default();
    config.mount_options = vec![
        MountOption::FSName(format!("passthrough:{}", backing.display())),
        MountOption::CUSTOM("subtype=passthrough".into()),
        MountOption::DefaultPermissions,
        MountOption::NoAtime,
        MountOption::Suid,
        MountOption::Dev,
        MountOption::Exec,
    ];
    config.acl = SessionACL::All;
    config.n_threads = Some(SESSION_THREADS);
    config.clone_fd = true;
    let session =
        fuser::spawn_mount(fs::Passthrough::new(nodes), mountpoint, &config).map_err(|e| {
            format!(
                "mounting on {}: {e}; is it an existing directory, not mounted already?",
                mountpoint.display()
            )
        })?;
    tandem::fuse::tune_readahead(mountpoint, backing);

    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(sig, stop.clone())
            .map_err(|e| format!("cannot catch signal {sig}: {e}"))?;
    }
    while !stop.load(Ordering::Relaxed) && !session.guard.is_finished() {
        std::thread::sleep(Duration::from_millis(100));
    }
    let ended = if session.guard.is_finished() {
        session.join()
    } else {
        session.umount_and_join()
    };
    ended.map_err(|e| format!("unmounting {}: {e}", mountpoint.display()))
}
