//! The consistency test: writers append numbered records in turn to files on several
//! volumes of a group (each write returns before the next starts) while group snapshots are
//! taken; every snapshot must be a consistent cut. The checker is shown to catch violations:
//! on a constructed case, and on snapshots taken one volume at a time under the same load.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tandem::fs::{Ctx, Engine};
use tandem::fuse::{Gate, Mount, MountSpec};
use tandem::snapshot::{self, CreateRequest, MountView, Target};
use tandem::store::rows::View;
use tandem::types::{Generation, InodeNo, VolumeId};

const RECORD: usize = 16;

struct Mounts {
    mounts: Vec<(VolumeId, String, Mount)>,
}

impl MountView for Mounts {
    fn gates(&self, vol: VolumeId) -> Vec<Arc<Gate>> {
        self.mounts
            .iter()
            .filter(|(v, _, _)| *v == vol)
            .map(|(_, _, m)| m.gate())
            .collect()
    }
    fn mountpoints(&self, volume: &str) -> Vec<PathBuf> {
        self.mounts
            .iter()
            .filter(|(_, n, _)| n == volume)
            .map(|(_, _, m)| m.spec.mountpoint.clone())
            .collect()
    }
}

fn record(writer: usize, k: u64) -> [u8; RECORD] {
    let mut r = [b' '; RECORD];
    let s = format!("w{writer}:{k}");
    r[..s.len()].copy_from_slice(s.as_bytes());
    r[RECORD - 1] = b'\n';
    r
}

/// Parses one writer's log: the record numbers in file order.
fn parse(data: &[u8], writer: usize) -> Vec<u64> {
    data.chunks(RECORD)
        .map(|c| {
            let s = String::from_utf8_lossy(c);
            let s = s.trim();
            let (w, k) = s
                .trim_start_matches('w')
                .split_once(':')
                .expect("record format");
            assert_eq!(w.parse::<usize>().unwrap(), writer);
            k.parse::<u64>().unwrap()
        })
        .collect()
}

/// Checks one writer's records across volumes (in write order) at one snapshot; returns the
/// violations found.
fn check_cut(per_volume: &[Vec<u64>]) -> Vec<String> {
    let mut bad = Vec::new();
    for (i, recs) in per_volume.iter().enumerate() {
        if recs.iter().enumerate().any(|(j, &k)| k != j as u64) {
            bad.push(format!("volume {i}: records are not a prefix: {recs:?}"));
        }
    }
    let n: Vec<usize> = per_volume.iter().map(Vec::len).collect();
    for i in 0..n.len().saturating_sub(1) {
        // Record k goes to volume i before volume i+1.
        if n[i + 1] > n[i] {
            bad.push(format!(
                "record {} is on volume {} but not on volume {i}",
                n[i],
                i + 1
            ));
        }
    }
    // Record k+1 goes to the first volume only after record k reached the last one.
    if let (Some(first), Some(last)) = (n.first(), n.last())
        && *first > *last + 1
    {
        bad.push(format!(
            "volume 0 has {first} records but the last volume only {last}"
        ));
    }
    bad
}

struct Setup {
    _pool: tempfile::TempDir,
    _dirs: Vec<tempfile::TempDir>,
    engine: Arc<Engine>,
    mounts: Mounts,
    vols: Vec<VolumeId>,
}

fn setup(n: usize) -> Setup {
    let pool = tempfile::tempdir().unwrap();
    let engine = Arc::new(Engine::open(pool.path()).unwrap());
    let mut dirs = Vec::new();
    let mut mounts = Vec::new();
    let mut names = Vec::new();
    let mut vols = Vec::new();
    for i in 0..n {
        let name = format!("v{i}");
        let vol = engine
            .create_volume(&name, Some(4096), Ctx::default())
            .unwrap()
            .id;
        let dir = tempfile::tempdir().unwrap();
        let spec = MountSpec {
            vol,
            name: name.clone(),
            view: View::Live,
            mountpoint: dir.path().to_path_buf(),
            read_only: false,
            allow_other: false,
        };
        mounts.push((vol, name.clone(), Mount::new(engine.clone(), spec).unwrap()));
        dirs.push(dir);
        names.push(name);
        vols.push(vol);
    }
    engine.group_create("g", &names, 0).unwrap();
    Setup {
        _pool: pool,
        _dirs: dirs,
        engine,
        mounts: Mounts { mounts },
        vols,
    }
}

/// Starts `writers` threads appending records across all volumes in order; returns a stop
/// flag and the handles.
fn start_writers(
    s: &Setup,
    writers: usize,
) -> (Arc<AtomicBool>, Vec<std::thread::JoinHandle<u64>>) {
    let stop = Arc::new(AtomicBool::new(false));
    let mut handles = Vec::new();
    for w in 0..writers {
        let stop = stop.clone();
        let paths: Vec<PathBuf> = s
            .mounts
            .mounts
            .iter()
            .map(|(_, _, m)| m.spec.mountpoint.join(format!("wr{w}.log")))
            .collect();
        handles.push(std::thread::spawn(move || {
            let mut files: Vec<_> = paths
                .iter()
                .map(|p| {
                    OpenOptions::new()
                        .create(true)
                        .append(true)
                        .open(p)
                        .unwrap()
                })
                .collect();
            let mut k = 0u64;
            while !stop.load(Ordering::Relaxed) {
                for f in files.iter_mut() {
                    f.write_all(&record(w, k)).unwrap();
                }
                k += 1;
            }
            k
        }));
    }
    (stop, handles)
}

/// One writer's records on each volume as a set of snapshot views sees them.
fn read_views(engine: &Engine, views: &[(VolumeId, Generation)], writer: usize) -> Vec<Vec<u64>> {
    views
        .iter()
        .map(|&(vol, g)| {
            let view = View::At(g);
            match engine.lookup(
                vol,
                view,
                InodeNo::ROOT,
                format!("wr{writer}.log").as_bytes(),
            ) {
                Ok(a) => parse(
                    &engine.read(vol, view, a.ino, 0, a.size as u32).unwrap(),
                    writer,
                ),
                Err(_) => Vec::new(),
            }
        })
        .collect()
}

#[test]
fn the_checker_flags_a_constructed_violation() {
    assert!(check_cut(&[vec![0, 1, 2], vec![0, 1, 2], vec![0, 1]]).is_empty());
    assert!(
        !check_cut(&[vec![0, 1], vec![0, 1, 2]]).is_empty(),
        "later volume ahead"
    );
    assert!(
        !check_cut(&[vec![0, 1, 2, 3], vec![0, 1]]).is_empty(),
        "first volume two ahead"
    );
    assert!(
        !check_cut(&[vec![0, 2], vec![0]]).is_empty(),
        "hole in a volume"
    );
}

#[test]
fn every_group_snapshot_is_a_consistent_cut() {
    let vols_n: usize = std::env::var("TANDEM_CONSISTENCY_VOLUMES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let snaps_n: usize = std::env::var("TANDEM_CONSISTENCY_SNAPSHOTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(24);
    let writers = 3;
    let s = setup(vols_n);
    let (stop, handles) = start_writers(&s, writers);
    std::thread::sleep(Duration::from_millis(100));
    let pool = tempfile::tempdir().unwrap();
    let mut taken = Vec::new();
    for i in 0..snaps_n {
        let req = CreateRequest {
            name: format!("s{i}"),
            target: Target::Group("g".into()),
            description: String::new(),
            timestamp: false,
            skip_hooks: false,
            ignore_hook_errors: false,
        };
        let out = snapshot::create(&s.engine, pool.path(), &s.mounts, &req).unwrap();
        taken.push(out.snapshot.name);
        std::thread::sleep(Duration::from_millis(15));
    }
    stop.store(true, Ordering::Relaxed);
    let written: Vec<u64> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert!(
        written.iter().all(|&k| k > 20),
        "writers made too little progress: {written:?}"
    );
    let mut nonempty = 0;
    for name in &taken {
        let rec = s.engine.snapshot(name).unwrap();
        assert_eq!(rec.members.len(), vols_n, "every member recorded");
        let views: Vec<(VolumeId, Generation)> = s
            .vols
            .iter()
            .map(|v| (*v, tandem::fs::groups::member_generation(&rec, *v).unwrap()))
            .collect();
        for w in 0..writers {
            let per = read_views(&s.engine, &views, w);
            if !per[0].is_empty() {
                nonempty += 1;
            }
            let bad = check_cut(&per);
            assert!(bad.is_empty(), "snapshot {name}, writer {w}: {bad:?}");
        }
    }
    assert!(
        nonempty > snaps_n,
        "snapshots must hold records for the check to mean anything"
    );
}

#[test]
fn snapshots_taken_one_volume_at_a_time_are_caught() {
    let s = setup(3);
    let (stop, handles) = start_writers(&s, 2);
    std::thread::sleep(Duration::from_millis(100));
    let mut violations = 0;
    let mut tries = 0;
    while violations == 0 && tries < 40 {
        tries += 1;
        let mut views = Vec::new();
        for &v in &s.vols {
            // Not atomic: each volume recorded in its own transaction, writers running.
            let g = s.engine.snapshot_generations(&[v]).unwrap()[0].1;
            views.push((v, g));
            std::thread::sleep(Duration::from_millis(3));
        }
        for w in 0..2 {
            violations += check_cut(&read_views(&s.engine, &views, w)).len();
        }
    }
    stop.store(true, Ordering::Relaxed);
    for h in handles {
        h.join().unwrap();
    }
    assert!(
        violations > 0,
        "per-volume snapshots under load should break the cut (checked {tries} times)"
    );
    eprintln!("per-volume snapshots: violations found after {tries} attempt(s)");
}
