//! The `tandem` command line: a thin client of the daemon's control socket (anyhow lives
//! here, at the edge). Whether a command may start the pool's daemon is [`start`]'s rule.
//! Group commands live in [`group`], snapshot commands in [`snap`] (verify and restore
//! tests in [`integrity`]); holds in [`life`], schedules in [`schedule`].

// First: the modules below print with its `outln!`.
#[macro_use]
mod out;

mod confirm;
mod cp;
mod docs;
mod escape;
mod group;
mod integrity;
mod json;
mod life;
mod pool;
mod progress;
mod schedule;
mod snap;
mod snapshow;
mod start;
mod table;
mod volume;

pub use group::GroupCmd;
use group::run_group;
pub use snap::SnapCmd;
use snap::run_snapshot;
pub use start::{connect_or_start, connect_or_start_always};

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow};
use clap::{Parser, Subcommand};

use escape::esc;

use tandem::control::{
    Client, ClientError, FromReply, MountInfo, Pong, Request, StatusInfo, Unmounted, socket_path,
};

#[derive(Parser, Debug)]
#[command(
    name = "tandem",
    version,
    about = "Volumes over FUSE with crash-consistent group snapshots"
)]
pub struct Cli {
    /// Pool directory (default: $TANDEM_POOL, else /var/lib/tandem for root, else the XDG data dir).
    #[arg(long, global = true, value_name = "DIR")]
    pub pool: Option<PathBuf>,
    /// Start the pool's daemon if none answers, even where systemd owns it (as TANDEM_AUTOSTART=1).
    #[arg(long, global = true)]
    pub autostart: bool,
    /// Print the result as one JSON document (schema in the README, "JSON output").
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: Cmd,
}

#[derive(clap::Args, Debug)]
pub struct DaemonArgs {
    /// Serve Prometheus metrics at http://ADDR/metrics, e.g. 127.0.0.1:9464 (default:
    /// $TANDEM_METRICS; unset: no endpoint).
    #[arg(long, value_name = "ADDR")]
    pub metrics: Option<std::net::SocketAddr>,
    /// Log more: -v debug, -vv trace (TANDEM_LOG or RUST_LOG, when set, decide instead).
    #[arg(short, long, action = clap::ArgAction::Count)]
    pub verbose: u8,
}

#[derive(Subcommand, Debug)]
pub enum Cmd {
    /// Run the daemon for the pool in the foreground.
    Daemon(DaemonArgs),
    /// Create, list, inspect, configure and delete volumes.
    #[command(subcommand)]
    Volume(volume::VolumeCmd),
    /// Mount a volume on a directory.
    Mount {
        volume: String,
        dir: PathBuf,
        /// Comma-separated options: ro, rw, allow_other, nosuid, nodev, noexec (suid, dev, exec),
        /// relatime, strictatime, nodiratime (noatime).
        #[arg(short = 'o', value_name = "OPTIONS")]
        options: Vec<String>,
    },
    /// Copy a file (a tree with -r) between tandem mounts of the pool, also from one volume
    /// to another, by sharing blocks: instant, and no new space until written.
    Cp {
        src: PathBuf,
        dst: PathBuf,
        /// Copy a directory and everything below it.
        #[arg(short = 'r', long = "recursive")]
        recursive: bool,
    },
    /// Unmount a tandem mount, by directory or by volume name.
    #[command(alias = "unmount")]
    Umount { target: String },
    /// Daemon, pool usage and mounts.
    Status,
    /// Stop the pool's daemon (everything is unmounted and committed; mounts are remembered).
    Shutdown,
    /// Run the quick-start demo on the pool: create, mount, use, unmount, verify.
    Demo,
    /// Space per volume (logical, physical, unique, shared), per snapshot, and the pool's.
    Df(table::ListFlags),
    /// Consistency groups: volumes snapshotted together at one instant.
    #[command(subcommand)]
    Group(GroupCmd),
    /// Snapshots of groups and volumes.
    #[command(subcommand)]
    Snapshot(SnapCmd),
    /// Snapshot schedules with retention, run by the daemon.
    #[command(subcommand)]
    Schedule(schedule::ScheduleCmd),
    /// The pool's files, without the daemon.
    #[command(subcommand)]
    Pool(pool::PoolCmd),
    /// Print the shell completion script for bash, zsh or fish.
    Completions { shell: clap_complete::Shell },
    /// Print the man page tandem(8), or write it and one page per subcommand into DIR.
    Man {
        /// Write every page (tandem.8, tandem-volume-create.8, ...) into this directory.
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
}

/// The user interrupted the command (Ctrl-C); it exits 130, as a shell reports SIGINT.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Interrupted(pub String);

/// The command line asks for something that does not exist (an unknown `-o` column): it
/// exits 2, as clap's own usage errors and `zfs list -o bogus` do.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Usage(pub String);

/// What `tandem umount TARGET` means, whatever the caller's working directory holds: a
/// target with a '/' (`./wal`, `/srv/wal`) or `.`/`..` is a directory, resolved here in the
/// caller's working directory (the daemon has its own) and sent as an absolute path; any
/// other target is a volume name.
fn umount_target(target: &str) -> Result<String> {
    if !(target.contains('/') || target == "." || target == "..") {
        return Ok(target.to_string());
    }
    let dir = std::env::current_dir()
        .context("reading the working directory to resolve the path to unmount")?
        .join(target);
    Ok(tandem::daemon::canonical(&dir).display().to_string())
}

/// Process `pid` runs: it exists and has not exited (a zombie its parent has not reaped yet
/// has let go of everything).
fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(") ")
            .and_then(|(_, rest)| rest.chars().next())
            .is_some_and(|state| state != 'Z' && state != 'X'),
        Err(_) => false,
    }
}

/// The pool a command works on.
pub fn pool_dir(flag: Option<PathBuf>) -> Result<PathBuf> {
    if let Some(p) = flag {
        return Ok(p);
    }
    if let Some(p) = std::env::var_os("TANDEM_POOL").filter(|p| !p.is_empty()) {
        return Ok(PathBuf::from(p));
    }
    if rustix::process::geteuid().is_root() {
        return Ok(PathBuf::from("/var/lib/tandem"));
    }
    if let Some(x) = std::env::var_os("XDG_DATA_HOME").filter(|p| !p.is_empty()) {
        return Ok(PathBuf::from(x).join("tandem"));
    }
    let home = std::env::var_os("HOME")
        .ok_or_else(|| anyhow!("neither HOME nor TANDEM_POOL is set; pass --pool DIR"))?;
    Ok(PathBuf::from(home).join(".local/share/tandem"))
}

/// Sends one request to the pool's daemon (started if none answers and the rule allows) and returns its reply as
/// the type that request gets; a reply of another kind is an error here, once for all
/// commands. A refusal keeps its code (`tandem::control::WireError`) under the message.
fn call<R: FromReply>(pool: &Path, req: Request) -> Result<R> {
    let mut c = connect_or_start(pool)?;
    c.call_as(req, None).map_err(client_error)
}

/// A refusal is the daemon's message as is; anything else says what went wrong in talking.
fn client_error(e: ClientError) -> anyhow::Error {
    match e {
        ClientError::Refused(w) => anyhow::Error::new(w),
        other => anyhow!(other),
    }
}

fn human(bytes: u64) -> String {
    const U: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = bytes as f64;
    let mut i = 0;
    while v >= 1024.0 && i < U.len() - 1 {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", U[i])
    }
}

/// `TANDEM_METRICS`: the metrics address when `--metrics` is not given (empty: none).
fn metrics_from_env() -> Result<Option<std::net::SocketAddr>> {
    match std::env::var("TANDEM_METRICS") {
        Ok(v) if !v.trim().is_empty() => v.trim().parse().map(Some).map_err(|e| {
            anyhow!("TANDEM_METRICS={v}: {e}; give an address and port such as 127.0.0.1:9464")
        }),
        _ => Ok(None),
    }
}

pub fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Cmd::Completions { shell } => {
            docs::completions(shell);
            return Ok(());
        }
        Cmd::Man { dir } => return docs::man(dir),
        _ => {}
    }
    let pool = pool_dir(cli.pool)?;
    let json = cli.json;
    start::set_autostart_flag(cli.autostart);
    match cli.command {
        Cmd::Daemon(args) => {
            crate::logging::init(args.verbose);
            let metrics = match args.metrics {
                Some(a) => Some(a),
                None => metrics_from_env()?,
            };
            tandem::daemon::run(&pool, &tandem::daemon::Options { metrics })?;
        }
        Cmd::Volume(c) => volume::run_volume(&pool, c, json)?,
        Cmd::Mount {
            volume,
            dir,
            options,
        } => {
            // The daemon resolves paths itself, so send an absolute one.
            let dir = if dir.is_absolute() {
                dir
            } else {
                std::env::current_dir()?.join(dir)
            };
            let m: MountInfo = call(
                &pool,
                Request::Mount {
                    volume,
                    mountpoint: dir,
                    options,
                },
            )?;
            if json {
                return json::emit(&json::Mount::from(&m));
            }
            outln!("mounted '{}' on {}", esc(&m.volume), m.mountpoint.display());
        }
        Cmd::Umount { target } => {
            let resolved = umount_target(&target)?;
            let bare = resolved == target;
            let Unmounted(m) = call(&pool, Request::Umount { target: resolved }).map_err(|e| {
                // A bare name is a volume; say how to mean the directory of that name here.
                if bare && Path::new(&target).is_dir() {
                    anyhow!("{e:#} (for the directory {target} here, say tandem umount ./{target})")
                } else {
                    e
                }
            })?;
            if json {
                return json::emit(&json::Mount::from(&m));
            }
            outln!(
                "unmounted '{}' from {}",
                esc(&m.volume),
                m.mountpoint.display()
            );
        }
        Cmd::Status => {
            let s: StatusInfo = call(&pool, Request::Status)?;
            if json {
                json::emit(&s)?
            } else {
                outln!("daemon:     running (pid {})", s.pid);
                outln!("pool:       {}", s.pool.display());
                outln!("volumes:    {}", s.volumes);
                outln!(
                    "space:      logical {}, referenced {}, physical {}, on disk {}, dedup ratio {:.2}",
                    human(s.stats.logical_bytes),
                    human(s.stats.referenced_bytes),
                    human(s.stats.physical_bytes),
                    human(s.stats.disk_bytes),
                    s.dedup_ratio
                );
                if let Some(l) = &s.intent_log {
                    outln!(
                        "intent log: {} ({} of {} in use); fsyncs: {} logged, {} committed",
                        l.path.display(),
                        human(l.used),
                        human(l.capacity),
                        l.fsyncs_logged,
                        l.fsyncs_committed
                    );
                }
                if s.mounts.is_empty() {
                    outln!("mounts:     none");
                } else {
                    outln!("mounts:");
                    for m in &s.mounts {
                        let o = if m.options.is_empty() {
                            String::new()
                        } else {
                            format!(" ({})", m.options.join(","))
                        };
                        outln!("  {:<20} {}{o}", esc(&m.volume), m.mountpoint.display());
                    }
                }
            }
        }
        Cmd::Cp {
            src,
            dst,
            recursive,
        } => cp::run_cp(&pool, &src, &dst, recursive, json)?,
        Cmd::Demo => crate::demo::run(&pool)?,
        Cmd::Df(flags) => volume::df(&pool, json, &flags)?,
        Cmd::Group(g) => run_group(&pool, g, json)?,
        Cmd::Snapshot(c) => run_snapshot(&pool, c, json)?,
        Cmd::Schedule(c) => schedule::run_schedule(&pool, c, json)?,
        Cmd::Pool(c) => pool::run_pool(&pool, c, json)?,
        Cmd::Completions { .. } | Cmd::Man { .. } => {}
        Cmd::Shutdown => {
            match Client::connect(&pool) {
                Ok(mut c) => {
                    let pid = c
                        .call_as::<Pong>(Request::Ping, Some(Duration::from_secs(10)))
                        .ok()
                        .map(|p| p.pid);
                    c.call_as::<()>(Request::Shutdown, Some(Duration::from_secs(30)))
                        .map_err(|e| anyhow!(e.to_string()))?;
                    // Hang up: the daemon closes the pool once no connection holds it.
                    drop(c);
                    // Wait until the daemon has exited, and so let go of the pool lock.
                    let deadline = Instant::now() + Duration::from_secs(60);
                    // By its pid: a socket systemd holds stays after the daemon exits.
                    let running = || match pid {
                        Some(p) => alive(p),
                        None => socket_path(&pool).exists(),
                    };
                    while running() && Instant::now() < deadline {
                        std::thread::sleep(Duration::from_millis(20));
                    }
                    if json {
                        return json::emit(&serde_json::json!({"pool": pool, "stopped": true}));
                    }
                    outln!("daemon for {} stopped", pool.display());
                }
                Err(_) if json => {
                    return json::emit(&serde_json::json!({"pool": pool, "stopped": false}));
                }
                Err(_) => outln!("no daemon is running for {}", pool.display()),
            }
        }
    }
    Ok(())
}
