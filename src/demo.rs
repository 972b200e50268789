//! `tandem demo`: the README's quick start. Runs the main job against a pool (the embedded
//! default one unless --pool says otherwise) through the daemon, narrating each step:
//! create a volume, mount it, use it as an ordinary filesystem, unmount, remount and find
//! every byte again; then group two volumes, snapshot them under a running writer, activate
//! and browse a snapshot, restore online, clone. Safe to run repeatedly.

use std::io::Write;
use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result, bail};

use crate::cli::connect_or_start_always;
use tandem::control::{Activated, Client, FromReply, Pong, Reply, Request, StatusInfo};

fn step(n: u32, what: &str) {
    println!("\n[{n}] {what}");
}

fn volumes(c: &mut Client) -> Result<Vec<tandem::fs::VolumeInfo>> {
    ask(c, Request::VolumeList)
}

/// A step whose reply is not looked at.
fn call(c: &mut Client, req: Request) -> Result<Reply> {
    c.call(req, None)
        .map_err(|e| anyhow::anyhow!(e.to_string()))
}

/// A step whose reply is shown: as the type its request gets.
fn ask<R: FromReply>(c: &mut Client, req: Request) -> Result<R> {
    c.call_as(req, None)
        .map_err(|e| anyhow::anyhow!(e.to_string()))
}

pub fn run(pool: &Path) -> Result<()> {
    println!("tandem demo on pool {}", pool.display());
    step(1, "start (or reach) the pool's daemon");
    let mut c = connect_or_start_always(pool)?;
    let Pong { pid, .. } = ask(&mut c, Request::Ping)?;
    println!("    daemon pid {pid}");

    step(
        2,
        "create the volume demo-data (kept from an earlier run if it exists)",
    );
    let vols = volumes(&mut c)?;
    if vols.iter().any(|v| v.name == "demo-data") {
        println!("    demo-data exists");
    } else {
        call(
            &mut c,
            Request::VolumeCreate {
                name: "demo-data".into(),
                block_size: None,
            },
        )?;
        println!("    created demo-data");
    }

    step(3, "mount it");
    let mnt = pool.join("run/demo-data");
    std::fs::create_dir_all(&mnt).with_context(|| format!("creating {}", mnt.display()))?;
    let _ = call(
        &mut c,
        Request::Umount {
            target: "demo-data".into(),
        },
    );
    call(
        &mut c,
        Request::Mount {
            volume: "demo-data".into(),
            mountpoint: mnt.clone(),
            options: vec![],
        },
    )?;
    println!("    mounted on {}", mnt.display());

    step(
        4,
        "use it: a directory tree, a 64 MiB file written and fsynced, a symlink, a rename",
    );
    let t = Instant::now();
    let dir = mnt.join("reports/2026");
    std::fs::create_dir_all(&dir)?;
    for i in 0..100 {
        std::fs::write(
            dir.join(format!("day-{i:03}.txt")),
            format!("report {i}\n").repeat(50),
        )?;
    }
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let big: Vec<u8> = (0..64u32 << 20)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 32) as u8
        })
        .collect();
    {
        let mut f = std::fs::File::create(mnt.join("big.bin"))?;
        f.write_all(&big)?;
        f.sync_all()?;
    }
    let _ = std::fs::remove_file(mnt.join("latest"));
    std::os::unix::fs::symlink("reports/2026/day-099.txt", mnt.join("latest"))?;
    std::fs::rename(dir.join("day-000.txt"), mnt.join("first.txt"))?;
    println!(
        "    wrote 100 small files and 64 MiB in {:.2} s",
        t.elapsed().as_secs_f64()
    );

    step(5, "pool status");
    let s: StatusInfo = ask(&mut c, Request::Status)?;
    println!(
        "    {} volume(s); logical {} MiB, physical {} MiB, dedup ratio {:.2}",
        s.volumes,
        s.stats.logical_bytes >> 20,
        s.stats.physical_bytes >> 20,
        s.dedup_ratio
    );

    step(6, "unmount, mount again, and check every byte");
    call(
        &mut c,
        Request::Umount {
            target: mnt.display().to_string(),
        },
    )?;
    call(
        &mut c,
        Request::Mount {
            volume: "demo-data".into(),
            mountpoint: mnt.clone(),
            options: vec![],
        },
    )?;
    let back = std::fs::read(mnt.join("big.bin"))?;
    if back != big {
        bail!("big.bin differs after remount");
    }
    let latest = std::fs::read_to_string(mnt.join("latest"))?;
    if !latest.starts_with("report 99") {
        bail!("the symlink points at the wrong data");
    }
    println!("    64 MiB and the tree read back identical");

    step(
        7,
        "group demo-data with a second volume, demo-wal, and snapshot both under a running writer",
    );
    let vols = volumes(&mut c)?;
    if !vols.iter().any(|v| v.name == "demo-wal") {
        call(
            &mut c,
            Request::VolumeCreate {
                name: "demo-wal".into(),
                block_size: None,
            },
        )?;
    }
    // Leftovers of an interrupted earlier run.
    let _ = call(
        &mut c,
        Request::GroupDelete {
            name: "demo-clone".into(),
            delete_snapshots: true,
        },
    );
    for v in ["demo-clone-demo-data", "demo-clone-demo-wal"] {
        let _ = call(&mut c, Request::Umount { target: v.into() });
        let _ = call(&mut c, Request::VolumeDelete { name: v.into() });
    }
    let _ = call(
        &mut c,
        Request::GroupDelete {
            name: "demo-app".into(),
            delete_snapshots: true,
        },
    );
    call(
        &mut c,
        Request::GroupCreate {
            name: "demo-app".into(),
            volumes: vec!["demo-data".into(), "demo-wal".into()],
        },
    )?;
    let wal = pool.join("run/demo-wal");
    std::fs::create_dir_all(&wal)?;
    let _ = call(
        &mut c,
        Request::Umount {
            target: "demo-wal".into(),
        },
    );
    call(
        &mut c,
        Request::Mount {
            volume: "demo-wal".into(),
            mountpoint: wal.clone(),
            options: vec![],
        },
    )?;
    // The writer appends record k to demo-data, then to demo-wal, then k+1...
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (a, b, stop) = (mnt.join("records"), wal.join("records"), stop.clone());
        std::thread::spawn(move || -> std::io::Result<u64> {
            let mut fa = std::fs::OpenOptions::new()
                .create(true)
                .write(true)
                .truncate(true)
                .open(&a)?;
            let mut fb = std::fs::OpenOptions::new()
                .create(true)
                .write(true)
                .truncate(true)
                .open(&b)?;
            let mut k = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                fa.write_all(format!("{k:>15}\n").as_bytes())?;
                fb.write_all(format!("{k:>15}\n").as_bytes())?;
                k += 1;
            }
            Ok(k)
        })
    };
    std::thread::sleep(std::time::Duration::from_millis(200));
    let mut snaps = Vec::new();
    for i in 1..=3 {
        let req = tandem::snapshot::CreateRequest {
            name: format!("demo-{i}"),
            target: tandem::snapshot::Target::Group("demo-app".into()),
            description: "demo".into(),
            timestamp: false,
            skip_hooks: true,
            ignore_hook_errors: false,
        };
        let started = Instant::now();
        let o: tandem::snapshot::CreateOutcome = ask(&mut c, Request::SnapshotCreate(req))?;
        println!(
            "    snapshot {} of demo-data + demo-wal: writes paused {:.2} ms, command {:.1} ms",
            o.snapshot.name,
            o.snapshot.pause_us as f64 / 1000.0,
            started.elapsed().as_secs_f64() * 1000.0
        );
        snaps.push(format!("demo-{i}"));
        std::thread::sleep(std::time::Duration::from_millis(150));
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let written = writer
        .join()
        .map_err(|_| anyhow::anyhow!("the writer panicked"))??;
    println!("    the writer appended {written} records to each volume meanwhile");

    step(
        8,
        "activate demo-2 read-only and browse it: both volumes agree (a consistent cut)",
    );
    let Activated { mounts, .. } = ask(
        &mut c,
        Request::SnapshotActivate {
            name: "demo-2".into(),
            mountpoint: None,
            options: Vec::new(),
        },
    )?;
    let count = |vol: &str| -> Result<usize> {
        let m = mounts
            .iter()
            .find(|m| m.volume == vol)
            .context("member mount")?;
        Ok(std::fs::read(m.mountpoint.join("records"))?.len() / 16)
    };
    let (a, b) = (count("demo-data")?, count("demo-wal")?);
    println!(
        "    demo-data holds {a} records, demo-wal {b}: {}",
        if a == b || a == b + 1 {
            "consistent"
        } else {
            "INCONSISTENT"
        }
    );
    if !(a == b || a == b + 1) {
        bail!("snapshot demo-2 is not a consistent cut");
    }
    call(
        &mut c,
        Request::SnapshotDeactivate {
            name: "demo-2".into(),
        },
    )?;

    step(
        9,
        "lose a file, then restore the group from demo-1 under the running mounts (--online)",
    );
    std::fs::remove_file(mnt.join("first.txt"))?;
    let o: tandem::snapshot::RestoreOutcome = ask(
        &mut c,
        Request::SnapshotRestore {
            name: "demo-1".into(),
            no_undo: false,
            online: true,
        },
    )?;
    println!(
        "    restored {} ({} rows changed, pause {:.2} ms); undo snapshot {}",
        o.volumes.join(" + "),
        o.rows_changed,
        o.pause_us as f64 / 1000.0,
        o.undo.clone().unwrap_or_default()
    );
    if !mnt.join("first.txt").exists() {
        bail!("first.txt did not come back");
    }
    println!("    first.txt is back");

    step(
        10,
        "clone demo-3 into writable volumes and write to the clone",
    );
    call(
        &mut c,
        Request::SnapshotClone {
            new: "demo-clone".into(),
            snapshot: "demo-3".into(),
        },
    )?;
    let cl = pool.join("run/demo-clone");
    std::fs::create_dir_all(&cl)?;
    call(
        &mut c,
        Request::Mount {
            volume: "demo-clone-demo-data".into(),
            mountpoint: cl.clone(),
            options: vec![],
        },
    )?;
    std::fs::write(cl.join("first.txt"), b"changed in the clone only\n")?;
    let origin = std::fs::read_to_string(mnt.join("first.txt"))?;
    println!(
        "    clone changed; origin still says: {}",
        origin.lines().next().unwrap_or("")
    );

    step(
        11,
        "clean up: unmount, delete the clone and the demo snapshots",
    );
    call(
        &mut c,
        Request::Umount {
            target: "demo-clone-demo-data".into(),
        },
    )?;
    call(
        &mut c,
        Request::GroupDelete {
            name: "demo-clone".into(),
            delete_snapshots: true,
        },
    )?;
    for v in ["demo-clone-demo-data", "demo-clone-demo-wal"] {
        call(&mut c, Request::VolumeDelete { name: v.into() })?;
    }
    call(
        &mut c,
        Request::GroupDelete {
            name: "demo-app".into(),
            delete_snapshots: true,
        },
    )?;
    call(
        &mut c,
        Request::Umount {
            target: "demo-data".into(),
        },
    )?;
    call(
        &mut c,
        Request::Umount {
            target: "demo-wal".into(),
        },
    )?;
    println!("    done. `tandem status` shows the pool; `tandem shutdown` stops the daemon.");
    Ok(())
}
