//! The `tandem` command line: a thin client of the daemon's control socket (anyhow lives
//! here, at the edge). The first command that needs the daemon starts it for the pool.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use clap::{Args, Parser, Subcommand};

use crate::control::{Client, ClientError, GroupInfo, MountInfo, Reply, Request, socket_path};
use crate::fs::VolumeInfo;
use crate::snapshot::{CreateRequest, DeleteWhich, SnapshotInfo, Target};

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
    #[command(subcommand)]
    pub command: Cmd,
}

#[derive(Subcommand, Debug)]
pub enum Cmd {
    /// Run the daemon for the pool in the foreground.
    Daemon,
    /// Create, list, inspect, configure and delete volumes.
    #[command(subcommand)]
    Volume(VolumeCmd),
    /// Mount a volume on a directory.
    Mount {
        volume: String,
        dir: PathBuf,
        /// Comma-separated options: ro, rw, allow_other.
        #[arg(short = 'o', value_name = "OPTIONS")]
        options: Vec<String>,
    },
    /// Unmount a tandem mount, by directory or by volume name.
    #[command(alias = "unmount")]
    Umount { target: String },
    /// Daemon, pool usage and mounts.
    Status(JsonFlag),
    /// Stop the pool's daemon (everything is unmounted and committed; mounts are remembered).
    Shutdown,
    /// Run the quick-start demo on the pool: create, mount, use, unmount, verify.
    Demo,
    /// Space per volume (logical, physical, unique, shared), per snapshot, and the pool's.
    Df(JsonFlag),
    /// Consistency groups: volumes snapshotted together at one instant.
    #[command(subcommand)]
    Group(GroupCmd),
    /// Snapshots of groups and volumes.
    #[command(subcommand)]
    Snapshot(SnapCmd),
}

#[derive(Subcommand, Debug)]
pub enum GroupCmd {
    /// Create a group, optionally with volumes.
    Create { name: String, volumes: Vec<String> },
    /// Add volumes to a group (a volume belongs to at most one group).
    Add {
        name: String,
        #[arg(required = true)]
        volumes: Vec<String>,
    },
    /// Remove volumes from a group.
    Remove {
        name: String,
        #[arg(required = true)]
        volumes: Vec<String>,
    },
    /// Delete a group (its snapshots only with --delete-snapshots).
    Delete {
        name: String,
        #[arg(long)]
        delete_snapshots: bool,
    },
    /// List groups.
    List(JsonFlag),
    /// Show a group: members and snapshots.
    Info {
        name: String,
        #[command(flatten)]
        json: JsonFlag,
    },
}

#[derive(Subcommand, Debug)]
pub enum SnapCmd {
    /// Snapshot a group (all members at one instant) or one ungrouped volume.
    Create {
        name: String,
        /// The volume to snapshot (not with --group).
        #[arg(required_unless_present = "group", conflicts_with = "group")]
        volume: Option<String>,
        #[arg(long)]
        group: Option<String>,
        #[arg(long, default_value = "")]
        description: String,
        /// Append a UTC time to the name.
        #[arg(long)]
        timestamp: bool,
        /// Do not run the pre/post-snapshot hooks.
        #[arg(long)]
        skip_hooks: bool,
        /// Take the snapshot even if a pre-snapshot hook fails.
        #[arg(long)]
        ignore_hook_errors: bool,
        #[command(flatten)]
        json: JsonFlag,
    },
    /// List snapshots.
    List {
        #[arg(long, conflicts_with = "group")]
        volume: Option<String>,
        #[arg(long)]
        group: Option<String>,
        #[command(flatten)]
        json: JsonFlag,
    },
    /// Show a snapshot: members and generations, creation time, pause, space it holds.
    Info {
        name: String,
        #[command(flatten)]
        json: JsonFlag,
    },
    /// State of one or all snapshots.
    Status {
        name: Option<String>,
        #[command(flatten)]
        json: JsonFlag,
    },
    /// Delete a snapshot, all, or those of a volume or group.
    Delete {
        #[arg(required_unless_present_any = ["all", "volume", "group"])]
        name: Option<String>,
        #[arg(long, conflicts_with_all = ["name", "volume", "group"])]
        all: bool,
        #[arg(long, conflicts_with_all = ["name", "group"])]
        volume: Option<String>,
        #[arg(long, conflicts_with = "name")]
        group: Option<String>,
    },
    /// Mount every member of a snapshot read-only (one directory per member volume).
    Activate {
        name: String,
        /// Directory under which each member is mounted as DIR/VOLUME (default: under the pool's run directory).
        #[arg(long)]
        mountpoint: Option<PathBuf>,
    },
    /// Unmount a snapshot's read-only mounts.
    Deactivate { name: String },
    /// Make the live volumes (every member) equal to the snapshot; keeps it and later ones.
    Restore {
        name: String,
        /// Do not take the automatic undo snapshot first.
        #[arg(long)]
        no_undo: bool,
        /// Restore under running mounts (freeze, switch, drop the kernel's caches).
        #[arg(long)]
        online: bool,
        #[command(flatten)]
        json: JsonFlag,
    },
    /// Writable volumes from a snapshot, sharing its data (a group NEW with volumes NEW-MEMBER
    /// for a group snapshot).
    Clone { new: String, snapshot: String },
    /// What changed since a snapshot: against a later snapshot, or the live volumes.
    Diff {
        snapshot: String,
        /// The snapshot to compare with (default: the live volumes).
        other: Option<String>,
        /// Compare with the live volumes (the default).
        #[arg(long, conflicts_with = "other")]
        live: bool,
        #[arg(long)]
        volume: Option<String>,
        #[command(flatten)]
        json: JsonFlag,
    },
    /// Show or set snapshot limits, system-wide or for one volume.
    Config {
        volume: Option<String>,
        #[arg(long)]
        snap_max_hard_limit: Option<String>,
        #[arg(long)]
        snap_max_soft_limit: Option<String>,
        #[arg(long)]
        auto_delete: Option<String>,
        #[arg(long)]
        activate_on_create: Option<String>,
        #[arg(long)]
        barrier_timeout: Option<String>,
        #[command(flatten)]
        json: JsonFlag,
    },
}

#[derive(Args, Debug)]
pub struct JsonFlag {
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Subcommand, Debug)]
pub enum VolumeCmd {
    /// Create a volume.
    Create {
        name: String,
        /// Block size in bytes: a power of two from 4096 to 1048576.
        #[arg(long)]
        block_size: Option<u64>,
    },
    /// List volumes.
    List(JsonFlag),
    /// Show one volume: sizes, files, generation, mounts, options.
    Info {
        name: String,
        #[command(flatten)]
        json: JsonFlag,
    },
    /// Delete a volume and reclaim its space (it must not be mounted).
    Delete { name: String },
    /// Set a per-volume option.
    #[command(after_help = format!("Options:\n{}", crate::options::help()))]
    Set {
        name: String,
        key: String,
        value: String,
    },
}

/// The pool a command works on.
pub fn pool_dir(flag: Option<PathBuf>) -> Result<PathBuf> {
    if let Some(p) = flag {
        return Ok(p);
    }
    if let Some(p) = std::env::var_os("TANDEM_POOL").filter(|p| !p.is_empty()) {
        return Ok(PathBuf::from(p));
    }
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } == 0 {
        return Ok(PathBuf::from("/var/lib/tandem"));
    }
    if let Some(x) = std::env::var_os("XDG_DATA_HOME").filter(|p| !p.is_empty()) {
        return Ok(PathBuf::from(x).join("tandem"));
    }
    let home = std::env::var_os("HOME")
        .ok_or_else(|| anyhow!("neither HOME nor TANDEM_POOL is set; pass --pool DIR"))?;
    Ok(PathBuf::from(home).join(".local/share/tandem"))
}

/// Connects to the pool's daemon, starting it in the background if none answers.
pub fn connect_or_start(pool: &Path) -> Result<Client> {
    if let Ok(mut c) = Client::connect(pool)
        && c.call(Request::Ping, Some(Duration::from_secs(5))).is_ok()
    {
        return Ok(c);
    }
    std::fs::create_dir_all(pool)
        .with_context(|| format!("creating pool directory {}", pool.display()))?;
    let log_path = pool.join("daemon.log");
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
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

fn call(pool: &Path, req: Request) -> Result<Reply> {
    let mut c = connect_or_start(pool)?;
    c.call(req, None).map_err(|e| match e {
        ClientError::Refused(m) => anyhow!(m),
        other => anyhow!(other),
    })
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

fn print_json<T: serde::Serialize>(v: &T) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

fn unexpected(r: Reply) -> anyhow::Error {
    anyhow!("unexpected reply from the daemon: {r:?}")
}

fn print_volumes(vols: &[VolumeInfo]) {
    println!(
        "{:<24} {:>10} {:>12} {:>12} {:>8} {:>6}",
        "NAME", "BLOCK", "LOGICAL", "PHYSICAL", "FILES", "GEN"
    );
    for v in vols {
        println!(
            "{:<24} {:>10} {:>12} {:>12} {:>8} {:>6}",
            v.name,
            human(v.block_size as u64),
            human(v.logical_bytes),
            human(v.physical_bytes),
            v.files,
            v.generation
        );
    }
}

pub fn run(cli: Cli) -> Result<()> {
    let pool = pool_dir(cli.pool)?;
    match cli.command {
        Cmd::Daemon => {
            let filter = tracing_subscriber::EnvFilter::try_from_env("TANDEM_LOG")
                .unwrap_or_else(|_| "info".into());
            let _ = tracing_subscriber::fmt()
                .with_env_filter(filter)
                .with_writer(std::io::stderr)
                .try_init();
            crate::daemon::run(&pool)?;
        }
        Cmd::Volume(VolumeCmd::Create { name, block_size }) => {
            match call(&pool, Request::VolumeCreate { name, block_size })? {
                Reply::Volume(v) => println!(
                    "created volume '{}' (block size {})",
                    v.name,
                    human(v.block_size as u64)
                ),
                r => return Err(unexpected(r)),
            }
        }
        Cmd::Volume(VolumeCmd::List(j)) => match call(&pool, Request::VolumeList)? {
            Reply::Volumes { volumes } if j.json => print_json(&volumes)?,
            Reply::Volumes { volumes } => print_volumes(&volumes),
            r => return Err(unexpected(r)),
        },
        Cmd::Volume(VolumeCmd::Info { name, json }) => {
            match call(&pool, Request::VolumeInfo { name })? {
                Reply::VolumeDetail(d) if json.json => print_json(&d)?,
                Reply::VolumeDetail(d) => {
                    let v = &d.info;
                    println!("volume:      {}", v.name);
                    println!("id:          {}", v.id);
                    println!("block size:  {}", human(v.block_size as u64));
                    println!(
                        "logical:     {} ({} bytes)",
                        human(v.logical_bytes),
                        v.logical_bytes
                    );
                    println!(
                        "physical:    {} ({} bytes)",
                        human(v.physical_bytes),
                        v.physical_bytes
                    );
                    println!("files:       {}", v.files);
                    println!("generation:  {}", v.generation);
                    let mps: Vec<String> = d
                        .mountpoints
                        .iter()
                        .map(|p| p.display().to_string())
                        .collect();
                    println!(
                        "mounted at:  {}",
                        if mps.is_empty() {
                            "-".to_string()
                        } else {
                            mps.join(", ")
                        }
                    );
                    println!("options:");
                    for (k, val, set) in &d.options {
                        println!("  {k:<24} {val}{}", if *set { "" } else { " (default)" });
                    }
                }
                r => return Err(unexpected(r)),
            }
        }
        Cmd::Volume(VolumeCmd::Delete { name }) => {
            call(&pool, Request::VolumeDelete { name: name.clone() })?;
            println!("deleted volume '{name}'");
        }
        Cmd::Volume(VolumeCmd::Set { name, key, value }) => {
            match call(&pool, Request::VolumeSet { name, key, value })? {
                Reply::OptionSet { volume, key, value } => println!("{volume}: {key} = {value}"),
                r => return Err(unexpected(r)),
            }
        }
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
            match call(
                &pool,
                Request::Mount {
                    volume,
                    mountpoint: dir,
                    options,
                },
            )? {
                Reply::Mounted(MountInfo {
                    volume, mountpoint, ..
                }) => println!("mounted '{volume}' on {}", mountpoint.display()),
                r => return Err(unexpected(r)),
            }
        }
        Cmd::Umount { target } => {
            let target = if target.contains('/') || Path::new(&target).is_dir() {
                let p = PathBuf::from(&target);
                let p = if p.is_absolute() {
                    p
                } else {
                    std::env::current_dir()?.join(p)
                };
                p.display().to_string()
            } else {
                target
            };
            match call(&pool, Request::Umount { target })? {
                Reply::Unmounted(MountInfo {
                    volume, mountpoint, ..
                }) => println!("unmounted '{volume}' from {}", mountpoint.display()),
                r => return Err(unexpected(r)),
            }
        }
        Cmd::Status(j) => match call(&pool, Request::Status)? {
            Reply::Status(s) if j.json => print_json(&s)?,
            Reply::Status(s) => {
                println!("daemon:     running (pid {})", s.pid);
                println!("pool:       {}", s.pool.display());
                println!("volumes:    {}", s.volumes);
                println!(
                    "space:      logical {}, referenced {}, physical {}, on disk {}, dedup ratio {:.2}",
                    human(s.stats.logical_bytes),
                    human(s.stats.referenced_bytes),
                    human(s.stats.physical_bytes),
                    human(s.stats.disk_bytes),
                    s.dedup_ratio
                );
                if s.mounts.is_empty() {
                    println!("mounts:     none");
                } else {
                    println!("mounts:");
                    for m in &s.mounts {
                        let o = if m.options.is_empty() {
                            String::new()
                        } else {
                            format!(" ({})", m.options.join(","))
                        };
                        println!("  {:<20} {}{o}", m.volume, m.mountpoint.display());
                    }
                }
            }
            r => return Err(unexpected(r)),
        },
        Cmd::Demo => crate::demo::run(&pool)?,
        Cmd::Df(j) => match call(&pool, Request::Df)? {
            Reply::Df(d) if j.json => print_json(&d)?,
            Reply::Df(d) => {
                println!(
                    "{:<24} {:>12} {:>12} {:>12} {:>12}",
                    "VOLUME", "LOGICAL", "PHYSICAL", "UNIQUE", "SHARED"
                );
                for (n, l, p, sp) in &d.volumes {
                    println!(
                        "{n:<24} {:>12} {:>12} {:>12} {:>12}",
                        human(*l),
                        human(*p),
                        human(sp.unique),
                        human(sp.shared)
                    );
                }
                if !d.snapshots.is_empty() {
                    println!("{:<24} {:>12}", "SNAPSHOT", "HOLDS");
                    for (n, h) in &d.snapshots {
                        println!("{n:<24} {:>12}", human(*h));
                    }
                }
                println!(
                    "pool: logical {}, physical {}, on disk {}, dedup ratio {:.2}",
                    human(d.pool.logical_bytes),
                    human(d.pool.physical_bytes),
                    human(d.pool.disk_bytes),
                    d.dedup_ratio
                );
            }
            r => return Err(unexpected(r)),
        },
        Cmd::Group(g) => run_group(&pool, g)?,
        Cmd::Snapshot(c) => run_snapshot(&pool, c)?,
        Cmd::Shutdown => {
            match Client::connect(&pool) {
                Ok(mut c) => {
                    let pid = match c.call(Request::Ping, Some(Duration::from_secs(10))) {
                        Ok(Reply::Pong { pid, .. }) => Some(pid),
                        _ => None,
                    };
                    c.call(Request::Shutdown, Some(Duration::from_secs(30)))
                        .map_err(|e| anyhow!(e.to_string()))?;
                    // Wait until the daemon has exited, and so let go of the pool lock.
                    let deadline = Instant::now() + Duration::from_secs(60);
                    let alive = |p: Option<u32>| {
                        p.is_some_and(|p| Path::new(&format!("/proc/{p}")).exists())
                    };
                    while (socket_path(&pool).exists() || alive(pid)) && Instant::now() < deadline {
                        std::thread::sleep(Duration::from_millis(20));
                    }
                    println!("daemon for {} stopped", pool.display());
                }
                Err(_) => println!("no daemon is running for {}", pool.display()),
            }
        }
    }
    Ok(())
}

fn print_group(g: &GroupInfo) {
    println!("group:      {}", g.name);
    println!(
        "volumes:    {}",
        if g.volumes.is_empty() {
            "-".into()
        } else {
            g.volumes.join(" ")
        }
    );
    println!(
        "snapshots:  {}",
        if g.snapshots.is_empty() {
            "-".into()
        } else {
            g.snapshots.join(" ")
        }
    );
}

fn run_group(pool: &Path, cmd: GroupCmd) -> Result<()> {
    let reply = match cmd {
        GroupCmd::Create { name, volumes } => call(pool, Request::GroupCreate { name, volumes })?,
        GroupCmd::Add { name, volumes } => call(pool, Request::GroupAdd { name, volumes })?,
        GroupCmd::Remove { name, volumes } => call(pool, Request::GroupRemove { name, volumes })?,
        GroupCmd::Delete {
            name,
            delete_snapshots,
        } => {
            match call(
                pool,
                Request::GroupDelete {
                    name: name.clone(),
                    delete_snapshots,
                },
            )? {
                Reply::Deleted { names } => {
                    for n in names {
                        println!("deleted snapshot '{n}'");
                    }
                    println!("deleted group '{name}'");
                    return Ok(());
                }
                r => return Err(unexpected(r)),
            }
        }
        GroupCmd::List(j) => match call(pool, Request::GroupList)? {
            Reply::Groups { groups } if j.json => return print_json(&groups),
            Reply::Groups { groups } => {
                println!("{:<24} {:>9} VOLUMES", "NAME", "SNAPSHOTS");
                for g in groups {
                    println!(
                        "{:<24} {:>9} {}",
                        g.name,
                        g.snapshots.len(),
                        g.volumes.join(" ")
                    );
                }
                return Ok(());
            }
            r => return Err(unexpected(r)),
        },
        GroupCmd::Info { name, json } => match call(pool, Request::GroupInfo { name })? {
            Reply::Group(g) if json.json => return print_json(&g),
            r => r,
        },
    };
    match reply {
        Reply::Group(g) => print_group(&g),
        r => return Err(unexpected(r)),
    }
    Ok(())
}

fn when(us: i64) -> String {
    let secs = us / 1_000_000;
    format!("{secs} (unix time, {} µs)", us)
}

fn print_snapshot(s: &SnapshotInfo) {
    println!("snapshot:     {}", s.name);
    println!(
        "group:        {}",
        s.group.clone().unwrap_or_else(|| "-".into())
    );
    println!(
        "members:      {}",
        s.members
            .iter()
            .map(|(v, g)| format!("{v}@{g}"))
            .collect::<Vec<_>>()
            .join(" ")
    );
    println!("created:      {}", when(s.created_us));
    println!(
        "description:  {}",
        if s.description.is_empty() {
            "-"
        } else {
            &s.description
        }
    );
    println!("pause:        {:.3} ms", s.pause_us as f64 / 1000.0);
    println!(
        "holds:        {} (freed by deleting it)",
        human(s.exclusive_bytes)
    );
    println!("state:        {}", s.state);
    for (v, m) in &s.mountpoints {
        println!("  {v} at {}", m.display());
    }
}

fn run_snapshot(pool: &Path, cmd: SnapCmd) -> Result<()> {
    match cmd {
        SnapCmd::Create {
            name,
            volume,
            group,
            description,
            timestamp,
            skip_hooks,
            ignore_hook_errors,
            json,
        } => {
            let target = match (group, volume) {
                (Some(g), _) => Target::Group(g),
                (None, Some(v)) => Target::Volume(v),
                (None, None) => bail!("name a volume or --group GROUP"),
            };
            let req = CreateRequest {
                name,
                target,
                description,
                timestamp,
                skip_hooks,
                ignore_hook_errors,
            };
            let started = Instant::now();
            match call(pool, Request::SnapshotCreate(req))? {
                Reply::SnapshotCreated(o) if json.json => print_json(&o)?,
                Reply::SnapshotCreated(o) => {
                    for w in &o.warnings {
                        eprintln!("warning: {w}");
                    }
                    for d in &o.auto_deleted {
                        println!("auto-deleted snapshot '{d}'");
                    }
                    println!(
                        "created snapshot '{}' of {} ({} volume(s)); writes paused {:.3} ms; command took {:.1} ms",
                        o.snapshot.name,
                        o.snapshot
                            .group
                            .as_ref()
                            .map(|g| format!("group {g}"))
                            .unwrap_or_else(|| format!("volume {}", o.snapshot.members[0].0)),
                        o.snapshot.members.len(),
                        o.snapshot.pause_us as f64 / 1000.0,
                        started.elapsed().as_secs_f64() * 1000.0
                    );
                }
                r => return Err(unexpected(r)),
            }
        }
        SnapCmd::List {
            volume,
            group,
            json,
        } => match call(pool, Request::SnapshotList { volume, group })? {
            Reply::Snapshots { snapshots } if json.json => print_json(&snapshots)?,
            Reply::Snapshots { snapshots } => {
                println!(
                    "{:<32} {:<16} {:>10} {:>10} MEMBERS",
                    "NAME", "GROUP", "PAUSE ms", "STATE"
                );
                for s in snapshots {
                    println!(
                        "{:<32} {:<16} {:>10.3} {:>10} {}",
                        s.name,
                        s.group.clone().unwrap_or_else(|| "-".into()),
                        s.pause_us as f64 / 1000.0,
                        s.state,
                        s.members
                            .iter()
                            .map(|(v, _)| v.as_str())
                            .collect::<Vec<_>>()
                            .join(" ")
                    );
                }
            }
            r => return Err(unexpected(r)),
        },
        SnapCmd::Info { name, json } => match call(pool, Request::SnapshotInfo { name })? {
            Reply::Snapshot(s) if json.json => print_json(&s)?,
            Reply::Snapshot(s) => print_snapshot(&s),
            r => return Err(unexpected(r)),
        },
        SnapCmd::Status { name, json } => match call(pool, Request::SnapshotStatus { name })? {
            Reply::Snapshots { snapshots } if json.json => print_json(&snapshots)?,
            Reply::Snapshots { snapshots } => {
                for s in snapshots {
                    println!("{}: {} ({} member(s))", s.name, s.state, s.members.len());
                    for (v, m) in &s.mountpoints {
                        println!("  {v} at {}", m.display());
                    }
                }
            }
            r => return Err(unexpected(r)),
        },
        SnapCmd::Delete {
            name,
            all,
            volume,
            group,
        } => {
            let which = match (name, all, volume, group) {
                (Some(n), ..) => DeleteWhich::Name(n),
                (None, true, ..) => DeleteWhich::All,
                (None, false, Some(v), _) => DeleteWhich::Volume(v),
                (None, false, None, Some(g)) => DeleteWhich::Group(g),
                _ => bail!("name a snapshot, or --all, --volume V or --group G"),
            };
            match call(pool, Request::SnapshotDelete(which))? {
                Reply::Deleted { names } => {
                    if names.is_empty() {
                        println!("no snapshots to delete");
                    }
                    for n in names {
                        println!("deleted snapshot '{n}'");
                    }
                }
                r => return Err(unexpected(r)),
            }
        }
        SnapCmd::Activate { name, mountpoint } => {
            let mountpoint = mountpoint.map(|m| {
                if m.is_absolute() {
                    m
                } else {
                    std::env::current_dir().unwrap_or_default().join(m)
                }
            });
            match call(pool, Request::SnapshotActivate { name, mountpoint })? {
                Reply::Activated { name, mounts } => {
                    println!("activated snapshot '{name}' (read-only):");
                    for m in mounts {
                        println!("  {} at {}", m.volume, m.mountpoint.display());
                    }
                }
                r => return Err(unexpected(r)),
            }
        }
        SnapCmd::Restore {
            name,
            no_undo,
            online,
            json,
        } => match call(
            pool,
            Request::SnapshotRestore {
                name,
                no_undo,
                online,
            },
        )? {
            Reply::Restored(o) if json.json => print_json(&o)?,
            Reply::Restored(o) => {
                for n in &o.notes {
                    eprintln!("note: {n}");
                }
                if let Some(u) = &o.undo {
                    println!("undo snapshot: '{u}' (restore it to go back)");
                }
                println!(
                    "restored {} from snapshot '{}' ({} rows changed, writes paused {:.3} ms)",
                    o.volumes.join(" "),
                    o.snapshot,
                    o.rows_changed,
                    o.pause_us as f64 / 1000.0
                );
            }
            r => return Err(unexpected(r)),
        },
        SnapCmd::Clone { new, snapshot } => match call(
            pool,
            Request::SnapshotClone {
                new,
                snapshot: snapshot.clone(),
            },
        )? {
            Reply::Cloned(o) => match o.group {
                Some(g) => println!(
                    "cloned '{snapshot}' into group '{g}' with volumes {}",
                    o.volumes.join(" ")
                ),
                None => println!("cloned '{snapshot}' into volume '{}'", o.volumes.join(" ")),
            },
            r => return Err(unexpected(r)),
        },
        SnapCmd::Diff {
            snapshot,
            other,
            live: _,
            volume,
            json,
        } => match call(
            pool,
            Request::SnapshotDiff {
                snapshot,
                other,
                volume,
            },
        )? {
            Reply::Diff { volumes } if json.json => print_json(&volumes)?,
            Reply::Diff { volumes } => {
                use crate::fs::restore::DiffEntry;
                for (v, entries) in volumes {
                    for e in entries {
                        match e {
                            DiffEntry::Added(p) => println!("+\t{v}:{p}"),
                            DiffEntry::Removed(p) => println!("-\t{v}:{p}"),
                            DiffEntry::Modified(p) => println!("M\t{v}:{p}"),
                            DiffEntry::Renamed { from, to } => {
                                println!("R\t{v}:{from} -> {v}:{to}")
                            }
                        }
                    }
                }
            }
            r => return Err(unexpected(r)),
        },
        SnapCmd::Deactivate { name } => match call(pool, Request::SnapshotDeactivate { name })? {
            Reply::Activated { name, mounts } => {
                println!("deactivated snapshot '{name}' ({} mount(s))", mounts.len());
            }
            r => return Err(unexpected(r)),
        },
        SnapCmd::Config {
            volume,
            snap_max_hard_limit,
            snap_max_soft_limit,
            auto_delete,
            activate_on_create,
            barrier_timeout,
            json,
        } => {
            let set: Vec<(String, String)> = [
                ("snap-max-hard-limit", snap_max_hard_limit),
                ("snap-max-soft-limit", snap_max_soft_limit),
                ("auto-delete", auto_delete),
                ("activate-on-create", activate_on_create),
                ("barrier-timeout", barrier_timeout),
            ]
            .into_iter()
            .filter_map(|(k, v)| v.map(|v| (k.to_string(), v)))
            .collect();
            match call(pool, Request::SnapshotConfig { volume, set })? {
                Reply::SnapConfig(c) if json.json => print_json(&c)?,
                Reply::SnapConfig(c) => {
                    println!("system-wide:");
                    for (k, v) in &c.system {
                        println!("  {k:<22} {v}");
                    }
                    for (vol, opts) in &c.volumes {
                        println!("volume {vol} (effective):");
                        for (k, v, set) in opts {
                            println!(
                                "  {k:<22} {v}{}",
                                if *set { " (set on the volume)" } else { "" }
                            );
                        }
                    }
                }
                r => return Err(unexpected(r)),
            }
        }
    }
    Ok(())
}
