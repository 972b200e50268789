//! Engine benchmark: the same workloads through `tandem::fs::Engine` (no FUSE) and through
//! std::fs on a native directory of the same disk, in the same run, for several volume block
//! sizes (to choose the default one).
//!
//!     cargo run --release --example engine_bench [-- --dir DIR] [--block-sizes 4K,16K,64K,...]
//!         [--repeat 1] [--size-mib 1024] [--random-mib 256] [--random-writes 4096]
//!         [--files 10000] [--workloads seq,random,small]
//!
//! Workloads:
//! - seq: sequential write of `--size-mib` MiB with 1 MiB writes, then fsync (with the CPU
//!   seconds it took, user + system, all threads); sequential read of it with 1 MiB reads,
//!   cold (page cache dropped: `sync`, then `3 > /proc/sys/vm/drop_caches`, which needs root;
//!   otherwise the files' pages are evicted with posix_fadvise) and warm; then deleting the
//!   file, made durable (tandem: unlink + commit; native: unlink + fsync of the directory).
//!   `seqwrite` runs the write alone (for profiling).
//! - random: 4 KiB overwrites at random 4 KiB-aligned offsets of a `--random-mib` MiB file,
//!   with an fsync every 32 writes (tandem's fsync logs the written spans in the intent log;
//!   its flush stores a part-written block as patches over the stored one, src/fs/flush.rs).
//! - small: create + write 100 bytes, stat, and delete of `--files` files in one directory.
//!
//! Every block size is paired with a native run made just before it, and with `--repeat N`
//! each pair runs N times and the median of each figure is shown: the disk of a shared
//! machine is noisy. Each tandem run uses a fresh pool under DIR (default: the system temp
//! directory), removed afterwards.

#[path = "common/mod.rs"]
mod common;

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::FileExt;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::Instant;

use clap::Parser;
use common::{MIB, Rng, cpu_seconds};
use tandem::fs::{Ctx, Engine};
use tandem::store::rows::View;
use tandem::types::{InodeNo, VolumeId};

const ROOT: InodeNo = InodeNo::ROOT;
const CTX: Ctx = Ctx {
    uid: 0,
    gid: 0,
    umask: 0,
};
/// Random overwrites between two fsyncs.
const FSYNC_EVERY: usize = 32;

/// Engine benchmark: tandem's engine against a native directory, per block size.
#[derive(Parser)]
#[command(name = "engine_bench")]
struct Args {
    /// Directory for the pools and the native runs.
    #[arg(long, default_value_os_t = std::env::temp_dir(), value_parser = common::directory)]
    dir: PathBuf,
    /// Volume block sizes to compare (4096, 64K, 1M, ...).
    #[arg(long, value_delimiter = ',', value_parser = common::parse_size,
          default_value = "4096,16384,65536,131072,262144,1M")]
    block_sizes: Vec<u64>,
    /// Runs per pair; the median of each figure is shown.
    #[arg(long, default_value = "1", value_parser = common::positive)]
    repeat: usize,
    /// MiB written and read by the sequential workload.
    #[arg(long, default_value_t = 1024)]
    size_mib: u64,
    /// MiB of the file the random workload overwrites.
    #[arg(long, default_value_t = 256)]
    random_mib: u64,
    /// 4 KiB overwrites of the random workload.
    #[arg(long, default_value_t = 4096)]
    random_writes: usize,
    /// Files of the small-file workload.
    #[arg(long, default_value_t = 10_000)]
    files: usize,
    /// Workloads to run.
    #[arg(long, value_delimiter = ',', default_value = "seq,random,small",
          value_parser = ["seq", "seqwrite", "random", "small"])]
    workloads: Vec<String>,
}

impl Args {
    fn runs(&self, w: &str) -> bool {
        self.workloads.iter().any(|x| x == w)
    }
}

fn human(bs: u64) -> String {
    if bs >= MIB {
        format!("{} MiB", bs / MIB)
    } else {
        format!("{} KiB", bs / 1024)
    }
}

/// Incompressible data that never deduplicates: a random buffer with a serial number
/// stamped at the start of every 4 KiB.
struct Data {
    base: Vec<u8>,
    serial: u64,
}

impl Data {
    fn new(seed: u64) -> Data {
        let mut r = Rng::new(seed);
        let base = (0..MIB / 8).flat_map(|_| r.next().to_le_bytes()).collect();
        Data { base, serial: 0 }
    }

    /// Fills `buf` (a multiple of 4 KiB, at most 1 MiB long) with fresh bytes.
    fn fill(&mut self, buf: &mut [u8]) {
        buf.copy_from_slice(&self.base[..buf.len()]);
        for piece in buf.chunks_mut(4096) {
            self.serial += 1;
            piece[..8].copy_from_slice(&self.serial.to_le_bytes());
        }
    }
}

/// How the page cache was emptied before a cold read.
#[derive(Clone, Copy, PartialEq)]
enum Cold {
    DropCaches,
    Fadvise,
}

/// Writes dirty pages back and drops the page cache; falls back to evicting the pages of
/// the files under `paths` with POSIX_FADV_DONTNEED.
fn drop_caches(paths: &[&Path]) -> Cold {
    // SAFETY: sync(2) takes no arguments.
    unsafe { libc::sync() };
    if fs::write("/proc/sys/vm/drop_caches", "3").is_ok() {
        return Cold::DropCaches;
    }
    fn evict(p: &Path) {
        if p.is_dir() {
            for e in fs::read_dir(p).into_iter().flatten().flatten() {
                evict(&e.path());
            }
        } else if let Ok(f) = File::open(p) {
            // SAFETY: advisory call on a descriptor we own.
            unsafe { libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
        }
    }
    for p in paths {
        evict(p);
    }
    Cold::Fadvise
}

/// The figures of one run of one side; NaN for a workload that did not run.
#[derive(Clone, Copy)]
struct Results {
    /// MiB/s.
    seq_write: f64,
    /// CPU seconds of the sequential write.
    seq_write_cpu: f64,
    seq_read_cold: f64,
    seq_read_warm: f64,
    /// Seconds to delete the big file durably.
    big_delete: f64,
    /// ops/s from here on.
    random_write: f64,
    create: f64,
    stat: f64,
    delete: f64,
}

impl Default for Results {
    fn default() -> Self {
        let n = f64::NAN;
        Results {
            seq_write: n,
            seq_write_cpu: n,
            seq_read_cold: n,
            seq_read_warm: n,
            big_delete: n,
            random_write: n,
            create: n,
            stat: n,
            delete: n,
        }
    }
}

fn rate(amount: f64, t: Instant) -> f64 {
    amount / t.elapsed().as_secs_f64()
}

fn name(i: usize) -> String {
    format!("small-{i:06}")
}

/// Random 4 KiB-aligned offsets inside a file of `size` bytes (the same for both sides).
fn random_offsets(size: u64, n: usize) -> Vec<u64> {
    let mut r = Rng::new(0x5EED_F00D);
    (0..n).map(|_| (r.next() % (size / 4096)) * 4096).collect()
}

fn native(a: &Args, dir: &Path) -> (Results, Cold) {
    let mut res = Results::default();
    let mut data = Data::new(1);
    let mut buf = vec![0u8; MIB as usize];
    let mut cold = Cold::DropCaches;
    if a.runs("seq") || a.runs("seqwrite") {
        let path = dir.join("big");
        let (t, cpu) = (Instant::now(), cpu_seconds());
        let mut f = File::create(&path).expect("create");
        for _ in 0..a.size_mib {
            data.fill(&mut buf);
            f.write_all(&buf).expect("write");
        }
        f.sync_all().expect("fsync");
        res.seq_write = rate(a.size_mib as f64, t);
        res.seq_write_cpu = cpu_seconds() - cpu;
        drop(f);
        if a.runs("seq") {
            for warm in [false, true] {
                if !warm {
                    cold = drop_caches(&[&path]);
                }
                let t = Instant::now();
                let mut f = File::open(&path).expect("open");
                let mut total = 0u64;
                loop {
                    let n = f.read(&mut buf).expect("read");
                    if n == 0 {
                        break;
                    }
                    total += n as u64;
                }
                assert_eq!(total, a.size_mib * MIB);
                let r = rate(a.size_mib as f64, t);
                if warm {
                    res.seq_read_warm = r
                } else {
                    res.seq_read_cold = r
                }
            }
        }
        let t = Instant::now();
        fs::remove_file(&path).expect("remove");
        File::open(dir)
            .and_then(|d| d.sync_all())
            .expect("fsync dir");
        res.big_delete = t.elapsed().as_secs_f64();
    }
    if a.runs("random") {
        let path = dir.join("random");
        let f = OpenOptions::new()
            .create(true)
            .truncate(true)
            .read(true)
            .write(true)
            .open(&path)
            .expect("create");
        for i in 0..a.random_mib {
            data.fill(&mut buf);
            f.write_all_at(&buf, i * MIB).expect("write");
        }
        f.sync_all().expect("fsync");
        let offsets = random_offsets(a.random_mib * MIB, a.random_writes);
        let mut page = vec![0u8; 4096];
        let t = Instant::now();
        for (i, off) in offsets.iter().enumerate() {
            data.fill(&mut page);
            f.write_all_at(&page, *off).expect("write");
            if (i + 1) % FSYNC_EVERY == 0 {
                f.sync_all().expect("fsync");
            }
        }
        f.sync_all().expect("fsync");
        res.random_write = rate(offsets.len() as f64, t);
        drop(f);
        fs::remove_file(&path).expect("remove");
    }
    if a.runs("small") {
        let small = dir.join("small");
        fs::create_dir(&small).expect("mkdir");
        let body = [b'x'; 100];
        let t = Instant::now();
        for i in 0..a.files {
            let mut f = File::create(small.join(name(i))).expect("create");
            f.write_all(&body).expect("write");
        }
        res.create = rate(a.files as f64, t);
        let t = Instant::now();
        for i in 0..a.files {
            assert_eq!(fs::metadata(small.join(name(i))).expect("stat").len(), 100);
        }
        res.stat = rate(a.files as f64, t);
        let t = Instant::now();
        for i in 0..a.files {
            fs::remove_file(small.join(name(i))).expect("unlink");
        }
        res.delete = rate(a.files as f64, t);
        fs::remove_dir(&small).expect("rmdir");
    }
    (res, cold)
}

fn read_all(e: &Engine, v: VolumeId, ino: InodeNo, size: u64) {
    let mut off = 0;
    while off < size {
        let got = e.read(v, View::Live, ino, off, MIB as u32).expect("read");
        assert!(!got.is_empty(), "short read");
        off += got.len() as u64;
    }
    assert_eq!(off, size);
}

fn tandem(a: &Args, pool: &Path, bs: u64) -> Results {
    let mut res = Results::default();
    let e = Engine::open(pool).expect("open pool");
    let v = e
        .create_volume("bench", Some(bs), CTX)
        .expect("create volume")
        .id;
    let mut data = Data::new(1);
    let mut buf = vec![0u8; MIB as usize];
    if a.runs("seq") || a.runs("seqwrite") {
        let size = a.size_mib * MIB;
        let (t, cpu) = (Instant::now(), cpu_seconds());
        let ino = e.create(v, ROOT, b"big", 0o644, CTX).expect("create").ino;
        for i in 0..a.size_mib {
            data.fill(&mut buf);
            e.write(v, ino, i * MIB, &buf).expect("write");
        }
        e.fsync(v, ino).expect("fsync");
        res.seq_write = rate(a.size_mib as f64, t);
        res.seq_write_cpu = cpu_seconds() - cpu;
        if a.runs("seq") {
            drop_caches(&[pool]);
            let t = Instant::now();
            read_all(&e, v, ino, size);
            res.seq_read_cold = rate(a.size_mib as f64, t);
            let t = Instant::now();
            read_all(&e, v, ino, size);
            res.seq_read_warm = rate(a.size_mib as f64, t);
        }
        // Durable, and the freed chunks punched out of the packs.
        let t = Instant::now();
        e.unlink(v, ROOT, b"big").expect("unlink");
        e.commit_all().expect("commit");
        res.big_delete = t.elapsed().as_secs_f64();
    }
    if a.runs("random") {
        let ino = e
            .create(v, ROOT, b"random", 0o644, CTX)
            .expect("create")
            .ino;
        for i in 0..a.random_mib {
            data.fill(&mut buf);
            e.write(v, ino, i * MIB, &buf).expect("write");
        }
        e.fsync(v, ino).expect("fsync");
        let offsets = random_offsets(a.random_mib * MIB, a.random_writes);
        let mut page = vec![0u8; 4096];
        let t = Instant::now();
        for (i, off) in offsets.iter().enumerate() {
            data.fill(&mut page);
            e.write(v, ino, *off, &page).expect("write");
            if (i + 1) % FSYNC_EVERY == 0 {
                e.fsync(v, ino).expect("fsync");
            }
        }
        e.fsync(v, ino).expect("fsync");
        res.random_write = rate(offsets.len() as f64, t);
    }
    if a.runs("small") {
        // In a directory, like the native side.
        let dir = e.mkdir(v, ROOT, b"small", 0o755, CTX).expect("mkdir").ino;
        let body = [b'x'; 100];
        let t = Instant::now();
        for i in 0..a.files {
            let f = e
                .create(v, dir, name(i).as_bytes(), 0o644, CTX)
                .expect("create")
                .ino;
            e.write(v, f, 0, &body).expect("write");
        }
        res.create = rate(a.files as f64, t);
        let t = Instant::now();
        for i in 0..a.files {
            assert_eq!(
                e.lookup(v, View::Live, dir, name(i).as_bytes())
                    .expect("stat")
                    .size,
                100
            );
        }
        res.stat = rate(a.files as f64, t);
        let t = Instant::now();
        for i in 0..a.files {
            e.unlink(v, dir, name(i).as_bytes()).expect("unlink");
        }
        res.delete = rate(a.files as f64, t);
    }
    // The pool is thrown away: no need to free what is left in it.
    drop(e);
    res
}

/// A row of the table: label, unit, the figure, and whether lower is better (then the
/// ratio is native / tandem, so that above 1 always means tandem is better).
type Row = (String, &'static str, fn(&Results) -> f64, bool);

fn rows(a: &Args) -> [Row; 9] {
    [
        (
            format!("seq write {} MiB (1 MiB writes + fsync)", a.size_mib),
            "MiB/s",
            |r| r.seq_write,
            false,
        ),
        (
            "  CPU time of the seq write (all threads)".into(),
            "s",
            |r| r.seq_write_cpu,
            true,
        ),
        (
            "seq read, cold cache (1 MiB reads)".into(),
            "MiB/s",
            |r| r.seq_read_cold,
            false,
        ),
        (
            "seq read, warm cache (1 MiB reads)".into(),
            "MiB/s",
            |r| r.seq_read_warm,
            false,
        ),
        (
            format!("delete the {} MiB file, durably", a.size_mib),
            "s",
            |r| r.big_delete,
            true,
        ),
        (
            format!("4 KiB random overwrite of {} MiB, fsync/32", a.random_mib),
            "ops/s",
            |r| r.random_write,
            false,
        ),
        (
            format!("create + write 100 B x {}", a.files),
            "ops/s",
            |r| r.create,
            false,
        ),
        (format!("stat x {}", a.files), "ops/s", |r| r.stat, false),
        (
            format!("delete x {}", a.files),
            "ops/s",
            |r| r.delete,
            false,
        ),
    ]
}

/// Median of each figure over repeated runs.
fn median(runs: &[Results]) -> Results {
    let pick = |get: fn(&Results) -> f64| {
        let mut v: Vec<f64> = runs.iter().map(get).filter(|x| !x.is_nan()).collect();
        if v.is_empty() {
            return f64::NAN;
        }
        v.sort_by(f64::total_cmp);
        if v.len() % 2 == 1 {
            v[v.len() / 2]
        } else {
            (v[v.len() / 2 - 1] + v[v.len() / 2]) / 2.0
        }
    };
    Results {
        seq_write: pick(|r| r.seq_write),
        seq_write_cpu: pick(|r| r.seq_write_cpu),
        seq_read_cold: pick(|r| r.seq_read_cold),
        seq_read_warm: pick(|r| r.seq_read_warm),
        big_delete: pick(|r| r.big_delete),
        random_write: pick(|r| r.random_write),
        create: pick(|r| r.create),
        stat: pick(|r| r.stat),
        delete: pick(|r| r.delete),
    }
}

fn ratio(t: f64, n: f64, lower_better: bool) -> f64 {
    if lower_better { n / t } else { t / n }
}

fn figure(x: f64, unit: &str) -> String {
    if unit == "s" {
        format!("{x:.2} s")
    } else {
        format!("{x:.0} {unit}")
    }
}

fn main() {
    let a = Args::parse();
    let root = tempfile::Builder::new()
        .prefix("tandem-bench-")
        .tempdir_in(&a.dir)
        .expect("bench dir under --dir");
    println!(
        "tandem engine benchmark in {} (pool and native directory on the same filesystem)",
        root.path().display()
    );
    println!(
        "each block size is paired with a native run made just before it; {} run(s) per pair, median shown",
        a.repeat
    );
    let native_dir = root.path().join("native");
    fs::create_dir(&native_dir).expect("mkdir");
    let mut all = Vec::new();
    for &bs in &a.block_sizes {
        let t = Instant::now();
        let (mut nat, mut tan) = (Vec::new(), Vec::new());
        let mut cold = Cold::DropCaches;
        for _ in 0..a.repeat {
            let (n, c) = native(&a, &native_dir);
            nat.push(n);
            cold = c;
            let pool = root.path().join(format!("pool-{bs}"));
            tan.push(tandem(&a, &pool, bs));
            fs::remove_dir_all(&pool).expect("remove pool");
        }
        let (res, nat) = (median(&tan), median(&nat));
        println!();
        println!(
            "block size {} ({:.0} s)",
            human(bs),
            t.elapsed().as_secs_f64()
        );
        if cold == Cold::Fadvise {
            println!(
                "(could not write /proc/sys/vm/drop_caches: cold reads evict the files with posix_fadvise)"
            );
        }
        println!(
            "{:<46} {:>13} {:>13} {:>7}",
            "workload", "tandem", "native", "ratio"
        );
        for (label, unit, get, lower) in rows(&a) {
            let (t, n) = (get(&res), get(&nat));
            if t.is_nan() {
                continue;
            }
            println!(
                "{label:<46} {:>13} {:>13} {:>6.2}x",
                figure(t, unit),
                figure(n, unit),
                ratio(t, n, lower)
            );
        }
        all.push((bs, res, nat));
    }
    println!();
    println!("summary: tandem vs native by block size (above 1.00x: tandem is better)");
    print!("{:<46}", "workload");
    for (bs, _, _) in &all {
        print!(" {:>8}", human(*bs));
    }
    println!();
    for (label, _, get, lower) in rows(&a) {
        if all.iter().all(|(_, r, _)| get(r).is_nan()) {
            continue;
        }
        print!("{label:<46}");
        for (_, r, n) in &all {
            print!(" {:>7.2}x", ratio(get(r), get(n), lower));
        }
        println!();
    }
}
