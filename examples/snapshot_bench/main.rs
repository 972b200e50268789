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

mod btrfs;
#[path = "../common/mod.rs"]
mod common;
mod load;
mod report;

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use btrfs::{btrfs_case, on_path};
use clap::Parser;
use common::{MIB, Mounts, Rng, cpu_seconds, loadavg, ms, pct, sorted};
use load::{Load, WriteTimes, measured};
use report::{print_breakdown, print_table, print_verdict};
use tandem::fs::{Ctx, Engine};
use tandem::fuse::{Mount, MountSpec};
use tandem::snapshot::{self, CreateRequest, Target};
use tandem::store::rows::View;
use tandem::types::{InodeNo, VolumeId};

const CTX: Ctx = Ctx {
    uid: 0,
    gid: 0,
    umask: 0,
};
/// Size of each write of the load.
const LOAD_BLOCK: usize = 64 << 10;
/// Size of the file the load writes into.
const LOAD_FILE_MIB: u64 = 64;
/// Targets from the issue.
const TARGET_PAUSE_P99_MS: f64 = 2.0;
const TARGET_CREATE_MS: f64 = 50.0;
/// The longest write, at p99.9 of all writes of the load, in milliseconds.
const TARGET_WRITE_P999_MS: f64 = 20.0;

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

// ---------------------------------------------------------------------------------------
// One tandem case
// ---------------------------------------------------------------------------------------

#[derive(Default)]
struct Breakdown {
    /// Per snapshot, the coordinator's steps in ms: pre-flush, close + drain, commit,
    /// finish after the thaw, pause, sync after the thaw (`CreateOutcome.steps`).
    steps: Vec<[f64; 6]>,
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
    base_writes: WriteTimes,
    snap_writes: WriteTimes,
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
    let ((), base_mbps, base_writes) = measured(&load, || nap(a.baseline));

    let mut pause_ms = Vec::new();
    let mut create_ms = Vec::new();
    let mut kept = std::collections::VecDeque::new();
    let mut breakdown = Breakdown::default();
    let cpu0 = cpu_seconds();
    let (res, snap_mbps, snap_writes) = measured(&load, || -> Result<(), String> {
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
                    st.finish_us,
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
    let cpu_secs_snap_phase = cpu_seconds() - cpu0;
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
        base_writes,
        snap_writes,
        cpu_secs_snap_phase,
        breakdown,
        btrfs,
    })
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
