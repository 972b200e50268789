//! Group snapshot benchmark: the freeze pause and the create round trip of group snapshots
//! taken while every member volume is under a running write load, for several group sizes
//! and amounts of data per volume.
//!
//!     cargo run --release --example snapshot_bench [-- --sizes-mib 100,2048 --groups 1,4,8
//!         --snapshots 30] [--dir DIR] [--interval-ms 50] [--baseline-secs 3]
//!         [--keep 4]
//!
//! For each group size N and data size S: a fresh pool in a temporary directory under DIR
//! (default: the system temp directory) gets N volumes, each filled with S MiB of data that
//! does not deduplicate (written through the engine API, then fsynced) plus a 64 MiB file
//! for the load; the volumes are grouped and mounted in this process (`tandem::fuse::Mount`).
//! One writer thread per volume then writes 64 KiB blocks at random offsets of the 64 MiB
//! file through the mount (plain pwrite, no fsync), continuously. With the load running:
//!
//! 1. a phase without snapshots (`--baseline-secs`) measures the writers' throughput;
//! 2. `--snapshots` group snapshots, `--interval-ms` apart, each measured for its pause
//!    (`CreateOutcome.snapshot.pause_us`: first gate closed to gates reopened) and its round
//!    trip (wall time of `snapshot::create`), with the writers' throughput meanwhile, and
//!    where the pause goes: the coordinator times its own steps (`CreateOutcome.steps`:
//!    parallel pre-flush, close + drain, commit, pause, sync after the thaw).
//!
//! The writers rewrite their 64 MiB files many times a second, so every snapshot pins up to
//! 64 MiB per volume: only the newest `--keep` snapshots are kept (older ones are deleted
//! between creates, outside the timed calls; 0 keeps all), a case is skipped when the disk
//! lacks room for it, and stopped when less than 5 GiB stay free. Stop the program with
//! Ctrl-C or SIGTERM (it unmounts); SIGKILL would leave its mounts' writers hung (then
//! abort the connections under /sys/fs/fuse/connections).
//!
//! If `btrfs` (btrfs-progs) is on the PATH, the time to snapshot N subvolumes with
//! `btrfs subvolume snapshot` on a loop device (same data, same load) is shown beside.

#[path = "common/mod.rs"]
mod common;

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use clap::Parser;
use common::{MIB, Mounts, Rng, loadavg, ms};
use tandem::fs::{Ctx, Engine};
use tandem::fuse::{Mount, MountSpec};
use tandem::snapshot::{self, CreateRequest, Target};
use tandem::store::rows::View;
use tandem::types::{InodeNo, VolumeId};

const CTX: Ctx = Ctx { uid: 0, gid: 0 };
/// Size of each write of the load.
const LOAD_BLOCK: usize = 64 << 10;
/// Size of the file the load writes into.
const LOAD_FILE_MIB: u64 = 64;
/// Targets from the issue.
const TARGET_PAUSE_P99_MS: f64 = 10.0;
const TARGET_CREATE_MS: f64 = 50.0;

/// Group snapshot benchmark: freeze pause and create round trip under a write load.
#[derive(Parser)]
#[command(name = "snapshot_bench")]
struct Args {
    /// Directory for the pools.
    #[arg(long, default_value_os_t = std::env::temp_dir(), value_parser = common::directory)]
    dir: PathBuf,
    /// MiB of data per volume, one case each.
    #[arg(long, value_delimiter = ',', default_value = "100,2048")]
    sizes_mib: Vec<u64>,
    /// Volumes per group, one case each.
    #[arg(long, value_delimiter = ',', default_value = "1,4,8", value_parser = common::positive)]
    groups: Vec<usize>,
    /// Group snapshots measured per case.
    #[arg(long, default_value = "30", value_parser = common::positive)]
    snapshots: usize,
    /// Milliseconds between two snapshots.
    #[arg(long = "interval-ms", value_name = "MS", default_value = "50", value_parser = millis)]
    interval: Duration,
    /// Seconds of load without snapshots, for the writers' baseline throughput.
    #[arg(long = "baseline-secs", value_name = "SECONDS", default_value = "3", value_parser = secs)]
    baseline: Duration,
    /// Snapshots kept per case (older ones are deleted between creates); 0 keeps all.
    #[arg(long, default_value_t = 4)]
    keep: usize,
}

fn millis(s: &str) -> Result<Duration, String> {
    s.trim()
        .parse()
        .map(Duration::from_millis)
        .map_err(|_| format!("'{s}' is not a number of milliseconds"))
}

fn secs(s: &str) -> Result<Duration, String> {
    s.trim()
        .parse::<f64>()
        .ok()
        .and_then(|x| Duration::try_from_secs_f64(x).ok())
        .ok_or_else(|| format!("'{s}' is not a number of seconds"))
}

/// Set by SIGINT/SIGTERM: everything winds down and unmounts. (Killing the process outright
/// would leave its writer threads blocked forever on its own FUSE mounts.)
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    INTERRUPTED.store(true, Ordering::Relaxed);
}

fn catch_signals() {
    let handler: extern "C" fn(libc::c_int) = on_signal;
    for sig in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
        unsafe { libc::signal(sig, handler as libc::sighandler_t) };
    }
}

fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::Relaxed)
}

/// Sleeps, waking early on an interrupt.
fn nap(d: Duration) {
    let end = Instant::now() + d;
    while !interrupted() {
        let now = Instant::now();
        if now >= end {
            break;
        }
        std::thread::sleep((end - now).min(Duration::from_millis(20)));
    }
}

/// Makes every 4 KiB of `buf` unique: writes (tag, sequence, position) at its start.
fn stamp(buf: &mut [u8], tag: u64, seq: u64) {
    for (j, c) in buf.chunks_mut(4096).enumerate() {
        if c.len() >= 24 {
            c[..8].copy_from_slice(&tag.to_le_bytes());
            c[8..16].copy_from_slice(&seq.to_le_bytes());
            c[16..24].copy_from_slice(&(j as u64).to_le_bytes());
        }
    }
}

/// Nearest-rank percentile of sorted values.
fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn sorted(mut v: Vec<f64>) -> Vec<f64> {
    v.sort_by(|a, b| a.total_cmp(b));
    v
}

/// CPU seconds (user + system) of this process so far.
fn cpu_secs() -> f64 {
    let Ok(s) = fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    // Fields after the command name (which is in parentheses and may hold spaces).
    let Some(rest) = s.rsplit_once(')').map(|(_, r)| r) else {
        return 0.0;
    };
    let f: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    let ticks: f64 = f.get(11..13).map_or(0.0, |t| {
        t.iter().filter_map(|x| x.parse::<f64>().ok()).sum()
    });
    // SAFETY: sysconf has no memory arguments.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    if hz > 0.0 { ticks / hz } else { 0.0 }
}

// ---------------------------------------------------------------------------------------
// The write load
// ---------------------------------------------------------------------------------------

/// Counters one writer thread keeps.
#[derive(Default)]
struct WriterStats {
    bytes: AtomicU64,
    /// Longest single write since the last reset, microseconds.
    max_write_us: AtomicU64,
}

struct Load {
    stop: Arc<AtomicBool>,
    stats: Vec<Arc<WriterStats>>,
    handles: Vec<JoinHandle<Result<(), String>>>,
}

impl Load {
    /// One writer per file: 64 KiB pwrites at random 64 KiB-aligned offsets, no fsync.
    fn start(files: &[PathBuf]) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let mut stats = Vec::new();
        let mut handles = Vec::new();
        for (w, path) in files.iter().enumerate() {
            let st = Arc::new(WriterStats::default());
            stats.push(st.clone());
            let (stop, path) = (stop.clone(), path.clone());
            handles.push(std::thread::spawn(move || -> Result<(), String> {
                let file = OpenOptions::new()
                    .write(true)
                    .open(&path)
                    .map_err(|e| format!("{}: {e}", path.display()))?;
                let mut rng = Rng::new(0x9e37_79b9_7f4a_7c15 ^ ((w as u64 + 1) << 32));
                let mut buf = vec![0u8; LOAD_BLOCK];
                rng.fill(&mut buf);
                let slots = LOAD_FILE_MIB * MIB / LOAD_BLOCK as u64;
                let mut k = 0u64;
                while !stop.load(Ordering::Relaxed) && !interrupted() {
                    stamp(&mut buf, 0x4c4f_4144 ^ w as u64, k);
                    let off = (rng.next() % slots) * LOAD_BLOCK as u64;
                    let t = Instant::now();
                    file.write_all_at(&buf, off)
                        .map_err(|e| format!("write to {}: {e}", path.display()))?;
                    let us = t.elapsed().as_micros() as u64;
                    st.max_write_us.fetch_max(us, Ordering::Relaxed);
                    st.bytes.fetch_add(LOAD_BLOCK as u64, Ordering::Relaxed);
                    k += 1;
                }
                Ok(())
            }));
        }
        Load {
            stop,
            stats,
            handles,
        }
    }

    fn bytes(&self) -> u64 {
        self.stats
            .iter()
            .map(|s| s.bytes.load(Ordering::Relaxed))
            .sum()
    }

    /// Longest single write of any writer since the last call, milliseconds.
    fn take_max_write_ms(&self) -> f64 {
        self.stats
            .iter()
            .map(|s| s.max_write_us.swap(0, Ordering::Relaxed))
            .max()
            .unwrap_or(0) as f64
            / 1e3
    }

    fn alive(&self) -> bool {
        self.handles.iter().all(|h| !h.is_finished())
    }

    fn stop(mut self) -> Result<(), String> {
        self.stop.store(true, Ordering::Relaxed);
        for h in std::mem::take(&mut self.handles) {
            h.join().map_err(|_| "a writer panicked".to_string())??;
        }
        Ok(())
    }
}

impl Drop for Load {
    /// Writers must be gone before their mounts are unmounted.
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for h in std::mem::take(&mut self.handles) {
            let _ = h.join();
        }
    }
}

/// Runs `f` while measuring the load's throughput (MB/s, 10^6 bytes) and longest write.
fn measured<R>(load: &Load, f: impl FnOnce() -> R) -> (R, f64, f64) {
    load.take_max_write_ms();
    let (b0, t0) = (load.bytes(), Instant::now());
    let r = f();
    let mbps = (load.bytes() - b0) as f64 / t0.elapsed().as_secs_f64() / 1e6;
    (r, mbps, load.take_max_write_ms())
}

// ---------------------------------------------------------------------------------------
// One tandem case
// ---------------------------------------------------------------------------------------

#[derive(Default)]
struct Breakdown {
    /// Per snapshot, the coordinator's steps in ms: pre-flush, close + drain, commit,
    /// pause, sync after the thaw (`CreateOutcome.steps`).
    steps: Vec<[f64; 5]>,
    /// Time of `snapshot_exclusive_bytes` (computed after the thaw by `create`), ms.
    exclusive_ms: Vec<f64>,
}

struct CaseResult {
    n: usize,
    size_mib: u64,
    fill_secs: f64,
    pause_ms: Vec<f64>,
    create_ms: Vec<f64>,
    base_mbps: f64,
    snap_mbps: f64,
    base_max_write_ms: f64,
    snap_max_write_ms: f64,
    cpu_secs_snap_phase: f64,
    breakdown: Breakdown,
    btrfs: Option<Result<Vec<f64>, String>>,
}

/// Writes `size_mib` MiB of unique data to a new file of a volume through the engine API.
fn fill_file(
    engine: &Engine,
    vol: VolumeId,
    name: &str,
    size_mib: u64,
    tag: u64,
) -> Result<InodeNo, String> {
    let attr = engine
        .create(vol, InodeNo::ROOT, name.as_bytes(), 0o644, CTX)
        .map_err(|e| format!("create {name}: {e}"))?;
    let mut rng = Rng::new(0x2545_f491_4f6c_dd1d ^ tag);
    let mut buf = vec![0u8; MIB as usize];
    rng.fill(&mut buf);
    for i in 0..size_mib {
        if interrupted() {
            return Err("interrupted".into());
        }
        stamp(&mut buf, tag, i);
        engine
            .write(vol, attr.ino, i * MIB, &buf)
            .map_err(|e| format!("write {name}: {e}"))?;
    }
    engine
        .fsync(vol, attr.ino)
        .map_err(|e| format!("fsync {name}: {e}"))?;
    Ok(attr.ino)
}

fn request(name: String) -> CreateRequest {
    CreateRequest {
        name,
        target: Target::Group("g".into()),
        description: String::new(),
        timestamp: false,
        skip_hooks: false,
        ignore_hook_errors: false,
    }
}

/// Free bytes of the filesystem holding `dir`.
fn free_bytes(dir: &Path) -> Option<u64> {
    let c = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes()).ok()?;
    // SAFETY: statvfs writes into the zeroed struct we pass; the path is NUL-terminated.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
        return None;
    }
    Some(st.f_bavail as u64 * st.f_frsize as u64)
}

/// Deletes the oldest snapshots beyond `keep` (outside any timed window), and stops the case
/// if the disk runs low.
fn rotate(
    engine: &Engine,
    kept: &mut std::collections::VecDeque<String>,
    keep: usize,
    dir: &Path,
) -> Result<(), String> {
    while keep > 0 && kept.len() > keep {
        if let Some(old) = kept.pop_front() {
            engine
                .snapshot_delete(&old)
                .map_err(|e| format!("delete snapshot {old}: {e}"))?;
        }
    }
    if interrupted() {
        return Err("interrupted".into());
    }
    match free_bytes(dir) {
        Some(free) if free < 5 * 1024 * MIB => Err(format!(
            "stopped: only {:.1} GiB left free under {}",
            free as f64 / (1024 * MIB) as f64,
            dir.display()
        )),
        _ => Ok(()),
    }
}

fn run_case(a: &Args, n: usize, size_mib: u64, btrfs: bool) -> Result<CaseResult, String> {
    let io = |what: &str, e: std::io::Error| format!("{what}: {e}");
    // The data, the load files, what snapshots pin of the load, and room for others.
    // Each kept snapshot can pin a whole load file per volume (the writers rewrite it fast).
    let pinned = if a.keep == 0 { a.snapshots } else { a.keep + 2 } as u64;
    let need = n as u64 * (size_mib + (pinned + 2) * LOAD_FILE_MIB) * MIB + 4096 * MIB;
    if let Some(free) = free_bytes(&a.dir)
        && free < need
    {
        return Err(format!(
            "skipped: {:.1} GiB free under {}, this case needs about {:.1} GiB (trim --sizes-mib)",
            free as f64 / (1024 * MIB) as f64,
            a.dir.display(),
            need as f64 / (1024 * MIB) as f64
        ));
    }
    let pool = tempfile::Builder::new()
        .prefix("snapbench-pool-")
        .tempdir_in(&a.dir)
        .map_err(|e| io("pool directory", e))?;
    let engine = Arc::new(Engine::open(pool.path()).map_err(|e| format!("open pool: {e}"))?);
    let mut vols = Vec::new();
    let mut names = Vec::new();
    for i in 0..n {
        let name = format!("v{i}");
        let info = engine
            .create_volume(&name, None, CTX)
            .map_err(|e| format!("create volume {name}: {e}"))?;
        vols.push(info.id);
        names.push(name);
    }

    // Fill: the data and the load file of each volume, two volumes at a time (2 cores).
    let t = Instant::now();
    let next = AtomicU64::new(0);
    let err: Mutex<Option<String>> = Mutex::new(None);
    let threads = n.min(std::thread::available_parallelism().map_or(2, |p| p.get()));
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed) as usize;
                    if i >= n {
                        break;
                    }
                    let r =
                        fill_file(&engine, vols[i], "data", size_mib, i as u64).and_then(|_| {
                            fill_file(&engine, vols[i], "load", LOAD_FILE_MIB, 1000 + i as u64)
                        });
                    if let Err(e) = r {
                        *err.lock().unwrap() = Some(e);
                        break;
                    }
                }
            });
        }
    });
    if let Some(e) = err.into_inner().unwrap() {
        return Err(e);
    }
    engine.commit_all().map_err(|e| format!("commit: {e}"))?;
    let fill_secs = t.elapsed().as_secs_f64();
    eprintln!(
        "  filled {n} x {size_mib} MiB (+{LOAD_FILE_MIB} MiB load file each) in {fill_secs:.1} s ({:.0} MB/s)",
        (n as u64 * (size_mib + LOAD_FILE_MIB) * MIB) as f64 / fill_secs / 1e6
    );

    engine
        .group_create("g", &names, 0)
        .map_err(|e| format!("group create: {e}"))?;
    let mut dirs = Vec::new();
    let mut mounts = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let dir = tempfile::Builder::new()
            .prefix("snapbench-mnt-")
            .tempdir()
            .map_err(|e| io("mountpoint", e))?;
        let spec = MountSpec {
            vol: vols[i],
            name: name.clone(),
            view: View::Live,
            mountpoint: dir.path().to_path_buf(),
            read_only: false,
            allow_other: false,
        };
        let m = Mount::new(engine.clone(), spec).map_err(|e| format!("mount {name}: {e}"))?;
        mounts.push((vols[i], name.clone(), m));
        dirs.push(dir);
    }
    let mounts = Mounts { mounts };
    let files: Vec<PathBuf> = mounts
        .mounts
        .iter()
        .map(|(_, _, m)| m.spec.mountpoint.join("load"))
        .collect();

    let load = Load::start(&files);
    // Warm up: buffers fill and flush at least once or twice.
    nap(Duration::from_millis(500));
    let ((), base_mbps, base_max_write_ms) = measured(&load, || nap(a.baseline));

    let mut pause_ms = Vec::new();
    let mut create_ms = Vec::new();
    let mut kept = std::collections::VecDeque::new();
    let mut breakdown = Breakdown::default();
    let cpu0 = cpu_secs();
    let (res, snap_mbps, snap_max_write_ms) = measured(&load, || -> Result<(), String> {
        for i in 0..a.snapshots {
            let t = Instant::now();
            let out = snapshot::create(&engine, pool.path(), &mounts, &request(format!("s{i}")))
                .map_err(|e| format!("snapshot s{i}: {e}"))?;
            create_ms.push(ms(t.elapsed()));
            pause_ms.push(out.snapshot.pause_us as f64 / 1e3);
            let st = out.steps;
            breakdown.steps.push(
                [
                    st.pre_flush_us,
                    st.drain_us,
                    st.commit_us,
                    st.pause_us,
                    st.sync_us,
                ]
                .map(|us| us as f64 / 1e3),
            );
            kept.push_back(out.snapshot.name);
            rotate(&engine, &mut kept, a.keep, &a.dir)?;
            nap(a.interval);
        }
        Ok(())
    });
    let cpu_secs_snap_phase = cpu_secs() - cpu0;
    res?;
    if !load.alive() {
        return Err(load
            .stop()
            .err()
            .unwrap_or_else(|| "a writer stopped".into()));
    }

    if let Some(last) = kept.back() {
        let rec = engine
            .snapshot(last)
            .map_err(|e| format!("snapshot record: {e}"))?;
        for _ in 0..5 {
            let t = Instant::now();
            engine
                .snapshot_exclusive_bytes(&rec)
                .map_err(|e| format!("exclusive bytes: {e}"))?;
            breakdown.exclusive_ms.push(ms(t.elapsed()));
        }
    }

    load.stop()?;
    if let Ok(b) = engine.store().packs().disk_bytes() {
        eprintln!(
            "  pool packs on disk at the end: {:.2} GiB ({} snapshots kept)",
            b as f64 / (1024 * MIB) as f64,
            engine.snapshots().map_or(0, |s| s.len())
        );
    }
    drop(mounts);
    drop(dirs);
    drop(engine);
    drop(pool);

    let btrfs = btrfs.then(|| btrfs_case(a, n, size_mib));
    Ok(CaseResult {
        n,
        size_mib,
        fill_secs,
        pause_ms,
        create_ms,
        base_mbps,
        snap_mbps,
        base_max_write_ms,
        snap_max_write_ms,
        cpu_secs_snap_phase,
        breakdown,
        btrfs,
    })
}

// ---------------------------------------------------------------------------------------
// btrfs, for comparison
// ---------------------------------------------------------------------------------------

fn on_path(prog: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(prog))
            .find(|p| p.is_file())
    })
}

fn sh(cmd: &str, args: &[&str]) -> Result<(), String> {
    let out = Command::new(cmd)
        .args(args)
        .output()
        .map_err(|e| format!("{cmd}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{cmd} {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

fn write_unique(path: &Path, size_mib: u64, tag: u64) -> Result<(), String> {
    let mut f = File::create(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut rng = Rng::new(0x2545_f491_4f6c_dd1d ^ tag);
    let mut buf = vec![0u8; MIB as usize];
    rng.fill(&mut buf);
    for i in 0..size_mib {
        stamp(&mut buf, tag, i);
        f.write_all(&buf)
            .map_err(|e| format!("{}: {e}", path.display()))?;
    }
    f.sync_all().map_err(|e| format!("{}: {e}", path.display()))
}

/// Per round, the wall time (ms) of `btrfs subvolume snapshot -r` of each of `n`
/// subvolumes in turn, under the same write load, on a btrfs in a loop-mounted image.
fn btrfs_case(a: &Args, n: usize, size_mib: u64) -> Result<Vec<f64>, String> {
    let work = tempfile::Builder::new()
        .prefix("snapbench-btrfs-")
        .tempdir_in(&a.dir)
        .map_err(|e| format!("btrfs work directory: {e}"))?;
    let img = work.path().join("btrfs.img");
    let mnt = work.path().join("mnt");
    fs::create_dir(&mnt).map_err(|e| format!("{}: {e}", mnt.display()))?;
    let bytes = (n as u64 * (size_mib + LOAD_FILE_MIB) * MIB) * 3 / 2 + 1024 * MIB;
    File::create(&img)
        .and_then(|f| f.set_len(bytes))
        .map_err(|e| format!("{}: {e}", img.display()))?;
    let (img_s, mnt_s) = (img.to_string_lossy(), mnt.to_string_lossy());
    sh("mkfs.btrfs", &["-q", "-f", &img_s])?;
    sh("mount", &["-o", "loop", &img_s, &mnt_s])?;
    let result = (|| -> Result<Vec<f64>, String> {
        let mut files = Vec::new();
        for i in 0..n {
            let sub = mnt.join(format!("v{i}"));
            sh("btrfs", &["subvolume", "create", &sub.to_string_lossy()])?;
            write_unique(&sub.join("data"), size_mib, i as u64)?;
            write_unique(&sub.join("load"), LOAD_FILE_MIB, 1000 + i as u64)?;
            files.push(sub.join("load"));
        }
        let load = Load::start(&files);
        nap(Duration::from_millis(500));
        let mut rounds = Vec::new();
        let mut res = Ok(());
        for r in 0..a.snapshots {
            let t = Instant::now();
            for i in 0..n {
                let src = mnt.join(format!("v{i}"));
                let dst = mnt.join(format!("s{r}-v{i}"));
                if let Err(e) = sh(
                    "btrfs",
                    &[
                        "subvolume",
                        "snapshot",
                        "-r",
                        &src.to_string_lossy(),
                        &dst.to_string_lossy(),
                    ],
                ) {
                    res = Err(e);
                    break;
                }
            }
            if res.is_err() {
                break;
            }
            rounds.push(ms(t.elapsed()));
            if interrupted() {
                res = Err("interrupted".into());
                break;
            }
            nap(a.interval);
        }
        load.stop()?;
        res.map(|()| rounds)
    })();
    let umount = sh("umount", &[&mnt_s]);
    let rounds = result?;
    umount?;
    Ok(rounds)
}

// ---------------------------------------------------------------------------------------
// Report
// ---------------------------------------------------------------------------------------

fn print_table(results: &[CaseResult], btrfs: bool) {
    println!();
    println!(
        "Pause = first gate closed .. gates reopened (CreateOutcome.snapshot.pause_us); create = wall time of snapshot::create."
    );
    println!(
        "Throughput: the N writers together, MB/s (10^6 B/s), without snapshots vs while snapshotting; max write = longest single 64 KiB pwrite seen by any writer."
    );
    println!();
    let mut head = format!(
        "{:>3} {:>9} | {:>27} | {:>27} | {:>8} {:>8} {:>6} | {:>15}",
        "N",
        "MiB/vol",
        "pause ms p50 / p99 / max",
        "create ms p50 / p99 / max",
        "base",
        "w/snaps",
        "ratio",
        "max write ms",
    );
    if btrfs {
        head.push_str(&format!(" | {:>27}", "btrfs N snaps ms p50/p99/max"));
    }
    println!("{head}");
    println!("{}", "-".repeat(head.len()));
    for r in results {
        let p = sorted(r.pause_ms.clone());
        let c = sorted(r.create_ms.clone());
        let mut line = format!(
            "{:>3} {:>9} | {:>7.2} / {:>7.2} / {:>7.2} | {:>7.2} / {:>7.2} / {:>7.2} | {:>8.1} {:>8.1} {:>6.2} | {:>6.1} / {:>6.1}",
            r.n,
            r.size_mib,
            pct(&p, 50.0),
            pct(&p, 99.0),
            pct(&p, 100.0),
            pct(&c, 50.0),
            pct(&c, 99.0),
            pct(&c, 100.0),
            r.base_mbps,
            r.snap_mbps,
            r.snap_mbps / r.base_mbps,
            r.base_max_write_ms,
            r.snap_max_write_ms,
        );
        match &r.btrfs {
            Some(Ok(rounds)) => {
                let b = sorted(rounds.clone());
                line.push_str(&format!(
                    " | {:>7.2} / {:>7.2} / {:>7.2}",
                    pct(&b, 50.0),
                    pct(&b, 99.0),
                    pct(&b, 100.0)
                ));
            }
            Some(Err(e)) => line.push_str(&format!(" | failed: {e}")),
            None => {}
        }
        println!("{line}");
    }
    println!("(max write: without snapshots / while snapshotting)");
    if let Some(r) = results.first()
        && r.pause_ms.len() < 100
    {
        println!(
            "(p99 is by nearest rank: with {} samples per row it is the largest sample, the same as max)",
            r.pause_ms.len()
        );
    }
}

fn print_breakdown(results: &[CaseResult]) {
    if results.iter().all(|r| r.breakdown.steps.is_empty()) {
        return;
    }
    println!();
    println!(
        "Where the pause goes: the coordinator's own timing of each create (CreateOutcome.steps), medians in ms (pause: also max)."
    );
    println!(
        "  pre-flush: the members' buffers flushed in parallel, before the freeze | close+drain: gates closed, in-flight requests done"
    );
    println!(
        "  commit: inside the freeze, flush what came in since and the one transaction (snapshot_commit)"
    );
    println!(
        "  post-sync: store().sync() after the thaw | excl.bytes: snapshot_exclusive_bytes (create computes it after the thaw)"
    );
    println!();
    println!(
        "{:>3} {:>9} | {:>9} {:>11} {:>8} | {:>9} {:>9} | {:>9} | {:>10}",
        "N",
        "MiB/vol",
        "pre-flush",
        "close+drain",
        "commit",
        "pause p50",
        "pause max",
        "post-sync",
        "excl.bytes"
    );
    for r in results {
        let rows = &r.breakdown.steps;
        if rows.is_empty() {
            continue;
        }
        let col = |k: usize| sorted(rows.iter().map(|s| s[k]).collect());
        let med = |k: usize| pct(&col(k), 50.0);
        println!(
            "{:>3} {:>9} | {:>9.2} {:>11.2} {:>8.2} | {:>9.2} {:>9.2} | {:>9.2} | {:>10.2}",
            r.n,
            r.size_mib,
            med(0),
            med(1),
            med(2),
            med(3),
            pct(&col(3), 100.0),
            med(4),
            pct(&sorted(r.breakdown.exclusive_ms.clone()), 50.0),
        );
    }
}

fn print_verdict(results: &[CaseResult]) {
    println!();
    println!(
        "Targets: p99 pause <= {TARGET_PAUSE_P99_MS} ms, create round trip (p99) <= {TARGET_CREATE_MS} ms, no growth with data size."
    );
    for r in results {
        let p99 = pct(&sorted(r.pause_ms.clone()), 99.0);
        let c99 = pct(&sorted(r.create_ms.clone()), 99.0);
        let mark = |ok: bool| if ok { "met" } else { "MISSED" };
        println!(
            "  N={:<2} {:>6} MiB/vol: pause p99 {:>7.2} ms {:<6}  create p99 {:>7.2} ms {:<6}  (fill {:.1} s; CPU {:.1} s of this process in the snapshot phase)",
            r.n,
            r.size_mib,
            p99,
            mark(p99 <= TARGET_PAUSE_P99_MS),
            c99,
            mark(c99 <= TARGET_CREATE_MS),
            r.fill_secs,
            r.cpu_secs_snap_phase,
        );
    }
    let mut groups: Vec<usize> = results.iter().map(|r| r.n).collect();
    groups.dedup();
    for n in groups {
        let rows: Vec<&CaseResult> = results.iter().filter(|r| r.n == n).collect();
        if let (Some(small), Some(big)) = (
            rows.iter().min_by_key(|r| r.size_mib),
            rows.iter().max_by_key(|r| r.size_mib),
        ) && small.size_mib != big.size_mib
        {
            let m = |v: &[f64]| pct(&sorted(v.to_vec()), 50.0);
            println!(
                "  N={n}: {} MiB -> {} MiB per volume: pause p50 x{:.2}, create p50 x{:.2}",
                small.size_mib,
                big.size_mib,
                m(&big.pause_ms) / m(&small.pause_ms),
                m(&big.create_ms) / m(&small.create_ms),
            );
        }
    }
}

fn main() {
    let a = Args::parse();
    catch_signals();
    let btrfs = on_path("btrfs").is_some() && on_path("mkfs.btrfs").is_some();
    let cores = std::thread::available_parallelism().map_or(0, |p| p.get());
    eprintln!(
        "snapshot_bench: groups {:?}, MiB per volume {:?}, {} snapshots {} ms apart, pools under {}; {cores} cores, load average {}",
        a.groups,
        a.sizes_mib,
        a.snapshots,
        a.interval.as_millis(),
        a.dir.display(),
        loadavg()
    );
    let started = Instant::now();
    let mut results = Vec::new();
    for &size in &a.sizes_mib {
        for &n in &a.groups {
            eprintln!("case: {n} volume(s) x {size} MiB");
            if interrupted() {
                break;
            }
            match run_case(&a, n, size, btrfs) {
                Ok(r) => {
                    let (p, c) = (sorted(r.pause_ms.clone()), sorted(r.create_ms.clone()));
                    eprintln!(
                        "  pause p50/p99/max {:.2}/{:.2}/{:.2} ms, create {:.2}/{:.2}/{:.2} ms, writers {:.0} MB/s without snapshots, {:.0} MB/s with",
                        pct(&p, 50.0),
                        pct(&p, 99.0),
                        pct(&p, 100.0),
                        pct(&c, 50.0),
                        pct(&c, 99.0),
                        pct(&c, 100.0),
                        r.base_mbps,
                        r.snap_mbps
                    );
                    results.push(r);
                }
                Err(e) => {
                    eprintln!("  FAILED: {e}");
                }
            }
        }
    }
    results.sort_by_key(|r| (r.n, r.size_mib));
    print_table(&results, btrfs);
    if !btrfs {
        println!("btrfs: not installed (no btrfs / mkfs.btrfs on PATH), no comparison.");
    }
    print_breakdown(&results);
    print_verdict(&results);
    println!();
    println!(
        "Ran in {:.0} s on {cores} cores; load average at the end {} (the machine is shared).",
        started.elapsed().as_secs_f64(),
        loadavg()
    );
}
