//! FUSE benchmark: the same workloads on a mounted tandem volume (served by a real
//! `tandem daemon` process) and on a native directory of the same disk, in the same run.
//!
//!     cargo build --release && cargo run --release --example fuse_bench [-- --size-mib 1024 --files 10000]
//!
//! The metadata workloads run `--rounds` times (native, tandem, ceiling in turn) and each
//! figure is the median over the rounds. Prints each figure beside native and the ratio, then the daemon's CPU seconds and peak
//! RSS (from /proc). Page caches are dropped before the cold-read phases (needs root).
//!
//! The metadata rows and the 4 KiB random write row also show the FUSE ceiling: the same
//! workloads on an in-memory FUSE filesystem that does nothing else (ceiling.rs), mounted
//! the same way, in the same run (it keeps no bytes and has no fsync, so its random write
//! figure is what the write round trips alone allow). `tandem/ceiling` is the share of what
//! FUSE itself allows on this machine that tandem gets.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

mod ceiling;
#[path = "../common/mod.rs"]
mod common;

use clap::Parser;
use common::Rng;

/// FUSE benchmark: a mounted tandem volume against a native directory and the FUSE ceiling.
#[derive(Parser)]
#[command(name = "fuse_bench")]
struct Args {
    /// MiB of the data workloads' file.
    #[arg(long, default_value_t = 1024)]
    size_mib: u64,
    /// Files of the metadata workloads.
    #[arg(long, default_value_t = 10_000)]
    files: usize,
    /// Directory for the pool, the mount and the native runs.
    #[arg(long, default_value_os_t = std::env::temp_dir(), value_parser = common::directory)]
    dir: PathBuf,
    /// Block size of the volume (4096, 64K, 1M; default: the daemon's).
    #[arg(long, value_parser = common::parse_size)]
    block_size: Option<u64>,
    /// Rounds of the metadata workloads: each round runs them on native, tandem and the
    /// FUSE ceiling in turn; each figure is the median over the rounds, and each ratio the
    /// median of the rounds' ratios (this machine is shared and noisy).
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Run only the data or only the metadata workloads.
    #[arg(long, value_parser = ["data", "meta"])]
    only: Option<String>,
}

fn drop_caches() -> bool {
    // SAFETY: sync(2) has no arguments.
    unsafe { libc::sync() };
    fs::write("/proc/sys/vm/drop_caches", "3").is_ok()
}

#[derive(Default, Clone)]
struct Figures {
    seq_write: f64,
    seq_read: f64,
    rand_read: f64,
    rand_write: f64,
    create: f64,
    stat: f64,
    rename: f64,
    chmod: f64,
    utimes: f64,
    unlink: f64,
}

/// Incompressible bytes the workloads take their data from; every 4 KiB written also gets
/// a unique stamp (`fill`), so no block of any size deduplicates (native has no dedup
/// either).
fn random_pool() -> Vec<u8> {
    let mut rng = Rng::new(0x2545_f491_4f6c_dd1d);
    (0..(RANDOM_POOL / 8))
        .flat_map(|_| rng.next().to_le_bytes())
        .collect()
}

/// Random bytes the workloads take their data from.
const RANDOM_POOL: usize = 64 << 20;

/// `buf` filled from the random pool at a place chosen by `n`, with every 4 KiB page
/// stamped with (`n`, page): unique per block whatever the block size.
fn fill(buf: &mut [u8], data: &[u8], n: u64) {
    let start = ((n as usize).wrapping_mul(7919 * 4096)) % (data.len() - buf.len());
    buf.copy_from_slice(&data[start..start + buf.len()]);
    for (page, chunk) in buf.chunks_mut(4096).enumerate() {
        let k = chunk.len().min(16);
        let mut stamp = [0u8; 16];
        stamp[..8].copy_from_slice(&n.to_le_bytes());
        stamp[8..].copy_from_slice(&(page as u64).to_le_bytes());
        chunk[..k].copy_from_slice(&stamp[..k]);
    }
}

fn data_workloads(dir: &Path, size_mib: u64, data: &[u8], f: &mut Figures) {
    let big = dir.join("big");
    // Sequential write with 1 MiB writes and a final fsync; unique, incompressible data.
    let mut buf = vec![0u8; 1 << 20];
    let t = Instant::now();
    {
        let mut file = File::create(&big).unwrap();
        for i in 0..size_mib {
            fill(&mut buf, data, i);
            file.write_all(&buf).unwrap();
        }
        file.sync_all().unwrap();
    }
    f.seq_write = size_mib as f64 / t.elapsed().as_secs_f64();
    // Sequential read, cold.
    drop_caches();
    let t = Instant::now();
    {
        let mut file = File::open(&big).unwrap();
        let mut buf = vec![0u8; 1 << 20];
        let mut total = 0u64;
        loop {
            let n = file.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            total += n as u64;
        }
        assert_eq!(total, size_mib << 20);
    }
    f.seq_read = size_mib as f64 / t.elapsed().as_secs_f64();
    // 4 KiB random reads, cold.
    drop_caches();
    let blocks = (size_mib << 20) / 4096;
    let n = 20_000;
    let mut rng = Rng::new(0x9e3779b97f4a7c15);
    let t = Instant::now();
    {
        let file = File::open(&big).unwrap();
        let mut buf = [0u8; 4096];
        for _ in 0..n {
            file.read_exact_at(&mut buf, (rng.next() % blocks) * 4096)
                .unwrap();
        }
    }
    f.rand_read = n as f64 / t.elapsed().as_secs_f64();
    f.rand_write = rand_write(&big, blocks, data, size_mib, &mut rng);
    fs::remove_file(&big).unwrap();
}

/// 4 KiB random writes (unique data, stamped from `stamp` on) into the first `blocks`
/// pages of the existing file `path`, fdatasync every 32: writes per second.
fn rand_write(path: &Path, blocks: u64, data: &[u8], stamp: u64, rng: &mut Rng) -> f64 {
    let n = 8192;
    let t = Instant::now();
    let file = OpenOptions::new().write(true).open(path).unwrap();
    let mut page = [0u8; 4096];
    for i in 0..n {
        fill(&mut page, data, stamp + i);
        file.write_all_at(&page, (rng.next() % blocks) * 4096)
            .unwrap();
        if i % 32 == 31 {
            file.sync_data().unwrap();
        }
    }
    file.sync_data().unwrap();
    n as f64 / t.elapsed().as_secs_f64()
}

fn meta_workloads(dir: &Path, files: usize, data: &[u8], f: &mut Figures) {
    // Metadata: create (with 100 bytes), stat, rename, chmod, utimes, unlink.
    let d = dir.join("many");
    fs::create_dir(&d).unwrap();
    let name = |p: &str, i: usize| d.join(format!("{p}{i:06}"));
    let rate = |t: Instant| files as f64 / t.elapsed().as_secs_f64();
    let t = Instant::now();
    for i in 0..files {
        let mut file = File::create(name("f", i)).unwrap();
        file.write_all(&data[..100]).unwrap();
    }
    f.create = rate(t);
    let t = Instant::now();
    for i in 0..files {
        fs::metadata(name("f", i)).unwrap();
    }
    f.stat = rate(t);
    let t = Instant::now();
    for i in 0..files {
        fs::rename(name("f", i), name("g", i)).unwrap();
    }
    f.rename = rate(t);
    let t = Instant::now();
    for i in 0..files {
        fs::set_permissions(name("g", i), fs::Permissions::from_mode(0o600)).unwrap();
    }
    f.chmod = rate(t);
    let t = Instant::now();
    for i in 0..files {
        utimes(&name("g", i), i as i64);
    }
    f.utimes = rate(t);
    let t = Instant::now();
    for i in 0..files {
        fs::remove_file(name("g", i)).unwrap();
    }
    f.unlink = rate(t);
    fs::remove_dir(&d).unwrap();
}

/// Sets a file's access and modification times to `secs` after the epoch (as `touch -d`
/// and `tar` do), by path.
fn utimes(path: &Path, secs: i64) {
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap();
    let t = libc::timespec {
        tv_sec: secs,
        tv_nsec: 0,
    };
    // SAFETY: `c` is a valid C string and `times` points to two timespecs.
    let rc = unsafe { libc::utimensat(libc::AT_FDCWD, c.as_ptr(), [t, t].as_ptr(), 0) };
    assert_eq!(rc, 0, "utimensat {}", path.display());
}

fn tandem_bin() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let bin = exe
        .parent()
        .and_then(Path::parent)
        .map(|p| p.join("tandem"))
        .unwrap();
    assert!(
        bin.exists(),
        "{} is missing: run `cargo build --release` first",
        bin.display()
    );
    bin
}

fn proc_figures(pid: &str) -> (f64, u64) {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    // SAFETY: sysconf has no side effects.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    let cpu = fields
        .get(11)
        .and_then(|u| u.parse::<f64>().ok())
        .unwrap_or(0.0)
        + fields
            .get(12)
            .and_then(|s| s.parse::<f64>().ok())
            .unwrap_or(0.0);
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let hwm = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|k| k.parse::<u64>().ok())
        .unwrap_or(0);
    (cpu / hz, hwm * 1024)
}

fn main() {
    let a = Args::parse();
    let bin = tandem_bin();
    let base = tempfile::tempdir_in(&a.dir).unwrap();
    let pool = base.path().join("pool");
    let mnt = base.path().join("mnt");
    let native = base.path().join("native");
    fs::create_dir_all(&mnt).unwrap();
    fs::create_dir_all(&native).unwrap();
    let tandem = |args: &[&str]| {
        let o = Command::new(&bin)
            .arg("--pool")
            .arg(&pool)
            .args(args)
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "tandem {args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    let bs = a.block_size.map(|b| b.to_string());
    let mut create = vec!["volume", "create", "bench"];
    if let Some(b) = &bs {
        create.extend(["--block-size", b.as_str()]);
    }
    tandem(&create);
    tandem(&["mount", "bench", mnt.to_str().unwrap()]);
    let status: serde_json::Value = serde_json::from_str(&tandem(&["status", "--json"])).unwrap();
    let pid = status["pid"].as_i64().unwrap().to_string();
    if !drop_caches() {
        eprintln!("note: cannot drop page caches (not root?): read figures are warm");
    }
    println!(
        "fuse_bench: {} MiB file, {} small files, pool and native dir under {}",
        a.size_mib,
        a.files,
        a.dir.display()
    );
    let data = random_pool();
    let meta = a.only.as_deref() != Some("data");
    let (mut n, mut t) = (Figures::default(), Figures::default());
    let mut cpu = 0.0;
    if a.only.as_deref() != Some("meta") {
        data_workloads(&native, a.size_mib, &data, &mut n);
        let (cpu0, _) = proc_figures(&pid);
        data_workloads(&mnt, a.size_mib, &data, &mut t);
        cpu += proc_figures(&pid).0 - cpu0;
    }
    let dir = base.path().join("ceiling");
    fs::create_dir_all(&dir).unwrap();
    let session = ceiling::mount(&dir).expect("mount the in-memory FUSE filesystem");
    let mut c = Figures::default();
    if a.only.as_deref() != Some("meta") {
        // The writes' round trips alone: the in-memory filesystem keeps no bytes and
        // answers fsync with ENOSYS (the kernel then no longer sends it).
        let big = dir.join("big");
        File::create(&big).unwrap();
        let blocks = (a.size_mib << 20) / 4096;
        c.rand_write = rand_write(&big, blocks, &data, 0, &mut Rng::new(7));
    }
    // The metadata rounds: native, tandem and the ceiling in turn, so that each round's
    // ratios compare runs made seconds apart.
    let mut rounds = Vec::new();
    for _ in 0..(if meta { a.rounds.max(1) } else { 0 }) {
        let (mut rn, mut rt, mut rc) = (n.clone(), t.clone(), c.clone());
        meta_workloads(&native, a.files, &data, &mut rn);
        let (cpu0, _) = proc_figures(&pid);
        meta_workloads(&mnt, a.files, &data, &mut rt);
        cpu += proc_figures(&pid).0 - cpu0;
        meta_workloads(&dir, a.files, &data, &mut rc);
        rounds.push((rn, rt, rc));
    }
    drop(session);
    let (_, rss) = proc_figures(&pid);
    println!(
        "{:<34} {:>10} {:>10} {:>8} {:>10} {:>16}",
        "workload", "tandem", "native", "ratio", "FUSE ceil", "of ceil"
    );
    let data_row = |name: &str, unit: &str, t: f64, n: f64, c: f64| {
        if n == 0.0 {
            return; // not run (--only)
        }
        let (ceil, share) = if c > 0.0 {
            (format!("{c:.0}"), format!("{:.2}", t / c))
        } else {
            ("-".to_string(), "-".to_string())
        };
        println!(
            "{:<34} {:>10} {:>10} {:>7.2}x {:>10} {:>16}",
            format!("{name} ({unit})"),
            format!("{t:.0}"),
            format!("{n:.0}"),
            t / n,
            ceil,
            share
        );
    };
    data_row(
        "seq write 1 MiB + fsync",
        "MB/s",
        t.seq_write,
        n.seq_write,
        0.0,
    );
    data_row("seq read, cold", "MB/s", t.seq_read, n.seq_read, 0.0);
    data_row(
        "4 KiB random read, cold",
        "ops/s",
        t.rand_read,
        n.rand_read,
        0.0,
    );
    data_row(
        "4 KiB random write, fsync/32",
        "ops/s",
        t.rand_write,
        n.rand_write,
        c.rand_write,
    );
    let meta_row = |name: &str, pick: fn(&Figures) -> f64| {
        if rounds.is_empty() {
            return;
        }
        let all = |f: &dyn Fn(&(Figures, Figures, Figures)) -> f64| {
            let mut v: Vec<f64> = rounds.iter().map(f).collect();
            v.sort_by(f64::total_cmp);
            v
        };
        let med = |v: &[f64]| v[v.len() / 2];
        let share = all(&|(_, t, c)| pick(t) / pick(c));
        let spread = if share.len() > 1 {
            format!(
                "{:.2} ({:.2}-{:.2})",
                med(&share),
                share[0],
                share[share.len() - 1]
            )
        } else {
            format!("{:.2}", med(&share))
        };
        println!(
            "{:<34} {:>10} {:>10} {:>7.2}x {:>10} {:>16}",
            format!("{name} (ops/s)"),
            format!("{:.0}", med(&all(&|(_, t, _)| pick(t)))),
            format!("{:.0}", med(&all(&|(n, _, _)| pick(n)))),
            med(&all(&|(n, t, _)| pick(t) / pick(n))),
            format!("{:.0}", med(&all(&|(_, _, c)| pick(c)))),
            spread
        );
    };
    meta_row("create + 100 B write", |f| f.create);
    meta_row("stat", |f| f.stat);
    meta_row("rename", |f| f.rename);
    meta_row("chmod", |f| f.chmod);
    meta_row("utimes", |f| f.utimes);
    meta_row("unlink", |f| f.unlink);
    if !rounds.is_empty() {
        println!(
            "metadata rows: median of {} rounds (native, tandem, ceiling in turn); \
             of ceil: median (lowest-highest)",
            rounds.len()
        );
    }
    println!(
        "daemon CPU during the tandem runs: {:.1} s; daemon peak RSS: {:.0} MiB",
        cpu,
        rss as f64 / (1 << 20) as f64
    );
    tandem(&["shutdown"]);
}
