//! Snapshot operations benchmark: activation and deactivation, restore, clone and diff,
//! timed in-process through the library API, beside the size of what they work on.
//!
//!     cargo run --release --example restore_bench [-- --dir DIR] [--big-mib 2048]
//!         [--small-mib 100] [--files 100000] [--few-files 10000]
//!         [--changes 1000,10000,100000] [--reps 3] [--phases activate,clone,restore]
//!
//! One pool in a temporary directory under DIR (default: the system temp directory), with
//! volumes of the default block size (128 KiB), all filled through the engine API (no FUSE):
//!
//! - `data100m` and `data2g`: one file each of `--small-mib` / `--big-mib` MiB of data that
//!   does not deduplicate (every 4 KiB stamped), fsynced;
//! - `files100k` and `files10k`: `--files` / `--few-files` small files (128 bytes each, all
//!   different), 1,000 per directory.
//!
//! Then, each operation through the functions the daemon calls:
//!
//! 1. activation: every member of a snapshot mounted read-only at its generation
//!    (`tandem::fuse::Mount::new` with `View::At(gen)`, `read_only: true`, as
//!    `MountTable::mount_snapshot` does), then the first `stat` + 4 KiB read through the
//!    mount (the FUSE handshake is done by then), then deactivation (`Mount::try_unmount`, as
//!    `MountTable::unmount_snapshot` does);
//! 2. restore (`snapshot::restore`, volumes not mounted, `no_undo = true`; once with the
//!    undo snapshot) to a snapshot taken just before N files were changed (each changed file
//!    is overwritten with new content: a new extent row and inode row), on volumes that also
//!    hold many unchanged files; a fresh snapshot for every round, so that each round's
//!    change index holds that round's changes only;
//! 3. clone (`snapshot::clone`) of a snapshot of each volume: a layer over the snapshot's
//!    generation (no row or data copied), so its time should not grow with the rows shown;
//! 4. diff (`snapshot::diff` of the round's snapshot against the live volume) after the
//!    same changes, before the restore.

#[path = "../common/mod.rs"]
mod common;
mod report;
mod volumes;

use std::fs;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result, ensure};
use clap::error::ErrorKind;
use clap::{CommandFactory, Parser};
use common::{MIB, Mounts, Rng, loadavg, ms};
use report::{print_activation, print_clones, print_rounds, print_verdict};
use tandem::fs::{Ctx, Engine};
use tandem::fuse::{Mount, MountSpec};
use tandem::snapshot::{self, CreateRequest, Target};
use tandem::store::rows::View;
use tandem::types::{Generation, InodeNo};
use volumes::{RowCount, Vol, count_rows, data_volume, files_volume, small_content};

const CTX: Ctx = Ctx {
    uid: 0,
    gid: 0,
    umask: 0,
};
/// Bytes of each small file.
const SMALL_FILE: usize = 128;
/// Small files per directory.
const PER_DIR: usize = 1000;
/// Targets from the issue, milliseconds.
const TARGET_ACTIVATE_MS: f64 = 100.0;
const TARGET_CLONE_MS: f64 = 50.0;

/// Snapshot operations benchmark: activation, restore, clone and diff, timed in-process.
#[derive(Parser)]
#[command(name = "restore_bench")]
struct Args {
    /// Directory for the pool.
    #[arg(long, default_value_os_t = std::env::temp_dir(), value_parser = common::directory)]
    dir: PathBuf,
    /// MiB of the big data volume.
    #[arg(long, default_value_t = 2048)]
    big_mib: u64,
    /// MiB of the small data volume.
    #[arg(long, default_value_t = 100)]
    small_mib: u64,
    /// Small files of the many-files volume.
    #[arg(long, default_value_t = 100_000)]
    files: usize,
    /// Small files of the few-files volume.
    #[arg(long, default_value = "10000", value_parser = common::positive)]
    few_files: usize,
    /// Files changed before each restore (each between 1 and --files).
    #[arg(long, value_delimiter = ',', default_value = "1000,10000,100000",
          value_parser = common::positive)]
    changes: Vec<usize>,
    /// Repetitions of each timed operation.
    #[arg(long, default_value = "3", value_parser = common::positive)]
    reps: usize,
    /// Phases to run.
    #[arg(long, value_delimiter = ',', default_value = "activate,clone,restore",
          value_parser = ["activate", "clone", "restore"])]
    phases: Vec<String>,
}

impl Args {
    fn runs(&self, phase: &str) -> bool {
        self.phases.iter().any(|p| p == phase)
    }

    /// Parses the command line; exits with clap's error on bad input.
    fn get() -> Args {
        let a = Args::parse();
        if let Some(c) = a.changes.iter().find(|&&c| c > a.files) {
            Args::command()
                .error(
                    ErrorKind::ValueValidation,
                    format!("--changes {c} is more than --files {}", a.files),
                )
                .exit();
        }
        a
    }
}

fn time<R>(f: impl FnOnce() -> R) -> (R, f64) {
    let t = Instant::now();
    let r = f();
    (r, ms(t.elapsed()))
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    if s.is_empty() {
        f64::NAN
    } else {
        s[(s.len() - 1) / 2]
    }
}

fn max(v: &[f64]) -> f64 {
    v.iter().copied().fold(f64::NAN, f64::max)
}

/// 1234567 -> "1,234,567".
fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn size(bytes: u64) -> String {
    if bytes >= 1 << 30 {
        format!("{:.1} GiB", bytes as f64 / (1u64 << 30) as f64)
    } else {
        format!("{:.1} MiB", bytes as f64 / MIB as f64)
    }
}

fn snap(engine: &Engine, pool: &Path, vol: &str, name: &str) -> Result<(Generation, f64)> {
    let req = CreateRequest {
        name: name.into(),
        target: Target::Volume(vol.into()),
        description: String::new(),
        timestamp: false,
        skip_hooks: true,
        ignore_hook_errors: false,
    };
    let (out, t) = time(|| snapshot::create(engine, pool, &Mounts::default(), &req));
    let out = out.with_context(|| format!("snapshot {name}"))?;
    Ok((out.snapshot.members[0].1, t))
}

// ---------------------------------------------------------------------------------------
// 1. Activation
// ---------------------------------------------------------------------------------------

struct ActRow {
    vol: String,
    bytes: u64,
    files: usize,
    rows: u64,
    activate: Vec<f64>,
    first_access: Vec<f64>,
    deactivate: Vec<f64>,
}

/// Activates the snapshot `snap_name` (one member) `reps` times, as the daemon does.
fn activation(
    engine: &Arc<Engine>,
    pool: &Path,
    v: &Vol,
    snap_name: &str,
    reps: usize,
) -> Result<ActRow> {
    let rec = engine.snapshot(snap_name)?;
    let rows = count_rows(engine, v.id, View::At(rec.members[0].generation))?.total();
    let mut row = ActRow {
        vol: v.name.clone(),
        bytes: v.bytes,
        files: v.files,
        rows,
        activate: vec![],
        first_access: vec![],
        deactivate: vec![],
    };
    for _ in 0..reps {
        let base = pool.join("run/snaps").join(snap_name);
        let t = Instant::now();
        let mut mounts = Vec::new();
        for m in &rec.members {
            let dir = base.join(&m.name);
            fs::create_dir_all(&dir)?;
            let spec = MountSpec {
                vol: m.vol,
                name: format!("{}@{snap_name}", m.name),
                view: View::At(m.generation),
                mountpoint: dir,
                read_only: true,
                allow_other: true,
            };
            mounts.push(
                Mount::new(engine.clone(), spec)
                    .with_context(|| format!("activate {snap_name}"))?,
            );
        }
        row.activate.push(ms(t.elapsed()));
        // First access: stat + read 4 KiB of a file through each member's mount.
        let t = Instant::now();
        for m in &mounts {
            let p = m.spec.mountpoint.join(&v.probe.0);
            let meta = fs::metadata(&p).with_context(|| format!("stat {}", p.display()))?;
            ensure!(
                meta.len() == v.probe.1,
                "{}: size {} through the mount, expected {}",
                p.display(),
                meta.len(),
                v.probe.1
            );
            let f = fs::File::open(&p)?;
            let mut buf = vec![0u8; 4096.min(v.probe.1 as usize)];
            f.read_exact_at(&mut buf, 0)?;
            ensure!(
                fs::write(m.spec.mountpoint.join("x"), b"x").is_err(),
                "a snapshot mount accepted a write"
            );
        }
        row.first_access.push(ms(t.elapsed()));
        let t = Instant::now();
        for mut m in mounts {
            m.try_unmount().context("deactivate")?;
        }
        row.deactivate.push(ms(t.elapsed()));
    }
    Ok(row)
}

// ---------------------------------------------------------------------------------------
// 2 + 4. Restore and diff
// ---------------------------------------------------------------------------------------

struct RoundRow {
    vol: String,
    files: usize,
    bytes: u64,
    changes: usize,
    undo: bool,
    /// Rows in the change index between the snapshot and now (what restore and diff walk).
    index_rows: usize,
    diff_entries: usize,
    diff_ms: Vec<f64>,
    restore_ms: Vec<f64>,
    /// Time spent in `restore_generations` (the freeze), from RestoreOutcome::pause_us.
    restore_tx_ms: Vec<f64>,
    rows_restored: usize,
    /// Time to make the changes (engine writes + commit), for information.
    change_ms: Vec<f64>,
}

/// Which `k` of `n` files a round changes: a fresh pseudo-random choice per round.
fn pick(n: usize, k: usize, seed: u64) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..n).collect();
    let mut rng = Rng::new(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    for i in 0..k.min(n) {
        let j = i + (rng.next() % (n - i) as u64) as usize;
        idx.swap(i, j);
    }
    idx.truncate(k);
    idx
}

/// One round: snapshot, change `k` files, diff against live, restore, check, delete the
/// snapshot. Changes of a data volume overwrite 4 KiB in `k` different 128 KiB blocks.
fn round(
    engine: &Engine,
    pool: &Path,
    v: &Vol,
    k: usize,
    undo: bool,
    seed: u64,
    row: &mut Option<RoundRow>,
) -> Result<()> {
    let snap_name = format!("r{seed}-{}", v.name);
    let (g, _) = snap(engine, pool, &v.name, &snap_name)?;
    // Change.
    let t = Instant::now();
    let picked: Vec<usize>;
    if v.small.is_empty() {
        let bs = engine.record(v.id)?.block_size as u64;
        let blocks = v.bytes / bs;
        picked = pick(blocks as usize, k, seed);
        let ino = engine.lookup(v.id, View::Live, InodeNo::ROOT, b"data")?.ino;
        let mut buf = vec![0u8; 4096];
        for &b in &picked {
            Rng::new((seed ^ ((b as u64) << 20)) | 1).fill(&mut buf);
            engine.write(v.id, ino, b as u64 * bs, &buf)?;
        }
    } else {
        picked = pick(v.small.len(), k, seed);
        for &i in &picked {
            engine.write(v.id, v.small[i], 0, &small_content(&v.name, i, seed))?;
        }
    }
    engine.commit_all()?;
    let change_ms = ms(t.elapsed());
    let cur = engine.record(v.id)?.cur;
    let index_rows = engine.changed_rows(v.id, g, cur)?.len();
    // Diff.
    let (d, diff_ms) = time(|| snapshot::diff(engine, &snap_name, None, Some(&v.name)));
    let d = d?;
    let diff_entries: usize = d.iter().map(|(_, e)| e.len()).sum();
    let expect = if v.small.is_empty() { 1 } else { k };
    ensure!(
        diff_entries == expect,
        "diff of {snap_name}: {diff_entries} entries, expected {expect}"
    );
    // Restore.
    let (out, restore_ms) =
        time(|| snapshot::restore(engine, pool, &Mounts::default(), &snap_name, !undo, false));
    let out = out.with_context(|| format!("restore {snap_name}"))?;
    ensure!(out.undo.is_some() == undo, "undo snapshot: {:?}", out.undo);
    // Check a few of the changed files.
    for &i in picked.iter().take(20) {
        if v.small.is_empty() {
            continue;
        }
        let got = engine.read(v.id, View::Live, v.small[i], 0, SMALL_FILE as u32)?;
        ensure!(
            got == small_content(&v.name, i, 0),
            "{} file {i} not restored",
            v.name
        );
    }
    engine.snapshot_delete(&snap_name)?;
    if let Some(u) = &out.undo {
        engine.snapshot_delete(u)?;
    }
    let r = row.get_or_insert_with(|| RoundRow {
        vol: v.name.clone(),
        files: v.files,
        bytes: v.bytes,
        changes: k,
        undo,
        index_rows,
        diff_entries,
        diff_ms: vec![],
        restore_ms: vec![],
        restore_tx_ms: vec![],
        rows_restored: out.rows_changed,
        change_ms: vec![],
    });
    r.diff_ms.push(diff_ms);
    r.restore_ms.push(restore_ms);
    r.restore_tx_ms.push(out.pause_us as f64 / 1e3);
    r.change_ms.push(change_ms);
    Ok(())
}

// ---------------------------------------------------------------------------------------
// 3. Clone
// ---------------------------------------------------------------------------------------

struct CloneRow {
    vol: String,
    bytes: u64,
    files: usize,
    rows: RowCount,
    clone_ms: Vec<f64>,
    delete_ms: Vec<f64>,
}

fn clone_bench(engine: &Engine, v: &Vol, snap_name: &str, reps: usize) -> Result<CloneRow> {
    let rec = engine.snapshot(snap_name)?;
    let rows = count_rows(engine, v.id, View::At(rec.members[0].generation))?;
    let mut row = CloneRow {
        vol: v.name.clone(),
        bytes: v.bytes,
        files: v.files,
        rows,
        clone_ms: vec![],
        delete_ms: vec![],
    };
    for i in 0..reps {
        let new = format!("clone{i}-{}", v.name);
        let (out, t) = time(|| snapshot::clone(engine, &new, snap_name));
        out.with_context(|| format!("clone {snap_name}"))?;
        row.clone_ms.push(t);
        let got = count_rows(engine, engine.volume_id(&new)?, View::Live)?;
        ensure!(
            got.total() == rows.total(),
            "clone {new} has {} rows, its snapshot {}",
            got.total(),
            rows.total()
        );
        let (out, t) = time(|| engine.delete_volume(&new));
        out?;
        row.delete_ms.push(t);
    }
    Ok(row)
}

fn main() -> Result<()> {
    let a = Args::get();
    let cores = std::thread::available_parallelism().map_or(0, |p| p.get());
    eprintln!(
        "restore_bench: {} MiB and {} MiB volumes, {} and {} small files, changes {:?}, {} reps; pool under {}; {cores} cores, load average {}",
        a.small_mib,
        a.big_mib,
        a.files,
        a.few_files,
        a.changes,
        a.reps,
        a.dir.display(),
        loadavg()
    );
    let started = Instant::now();
    let pool_dir = tempfile::Builder::new()
        .prefix("restorebench-pool-")
        .tempdir_in(&a.dir)
        .context("pool directory")?;
    let pool = pool_dir.path().to_path_buf();
    let engine = Arc::new(Engine::open(&pool)?);

    // Data setup.
    let (small, t) = time(|| data_volume(&engine, "data100m", a.small_mib, 1));
    let small = small?;
    eprintln!("  data100m: {} MiB in {:.1} s", a.small_mib, t / 1e3);
    let (big, t) = time(|| data_volume(&engine, "data2g", a.big_mib, 2));
    let big = big?;
    eprintln!(
        "  data2g: {} MiB in {:.1} s ({:.0} MB/s)",
        a.big_mib,
        t / 1e3,
        (a.big_mib * MIB) as f64 / t / 1e3
    );
    let (many, t) = time(|| files_volume(&engine, "files100k", a.files));
    let many = many?;
    eprintln!("  files100k: {} files in {:.1} s", a.files, t / 1e3);
    let (few, t) = time(|| files_volume(&engine, "files10k", a.few_files));
    let few = few?;
    eprintln!("  files10k: {} files in {:.1} s", a.few_files, t / 1e3);
    let vols = [&small, &big, &few, &many];
    for v in vols {
        snap(&engine, &pool, &v.name, &format!("s-{}", v.name))?;
    }

    // 1. Activation.
    let mut acts = Vec::new();
    for v in vols.iter().filter(|_| a.runs("activate")) {
        eprintln!("  activation: {}", v.name);
        acts.push(activation(
            &engine,
            &pool,
            v,
            &format!("s-{}", v.name),
            a.reps.max(5),
        )?);
    }

    // 3. Clone (before the restore rounds add row versions).
    let mut clones = Vec::new();
    for v in vols.iter().filter(|_| a.runs("clone")) {
        eprintln!("  clone: {}", v.name);
        clones.push(clone_bench(&engine, v, &format!("s-{}", v.name), a.reps)?);
    }

    // 2 + 4. Restore and diff rounds.
    let mut rounds = Vec::new();
    let mut seed = 1u64;
    let mut plan: Vec<(&Vol, usize, bool)> = Vec::new();
    let k0 = *a.changes.iter().min().unwrap_or(&1000);
    let big_blocks = big.bytes / engine.record(big.id)?.block_size as u64;
    plan.push((&few, k0.min(few.files), false));
    for &k in &a.changes {
        plan.push((&many, k, false));
    }
    plan.push((&big, k0.min(big_blocks as usize), false));
    plan.push((&many, k0, true));
    let kmax = *a.changes.iter().max().unwrap_or(&k0);
    if kmax != k0 {
        plan.push((&many, kmax, true));
    }
    if !a.runs("restore") {
        plan.clear();
    }
    for (v, k, undo) in plan {
        // Many repetitions of cheap rounds, one of the big ones.
        let reps = if k > 10_000 || undo { 1 } else { a.reps };
        eprintln!(
            "  restore/diff: {} x {k} changes{}, {reps} round(s)",
            v.name,
            if undo { " with undo" } else { "" }
        );
        let mut row = None;
        for _ in 0..reps {
            seed += 1;
            round(&engine, &pool, v, k, undo, seed, &mut row)?;
        }
        rounds.extend(row);
    }

    print_activation(&acts);
    print_clones(&clones);
    print_rounds(&rounds);
    print_verdict(&acts, &rounds, &clones);
    println!();
    println!(
        "Ran in {:.0} s on {cores} cores; load average at the end {} (the machine is shared).",
        started.elapsed().as_secs_f64(),
        loadavg()
    );
    drop(engine);
    Ok(())
}
