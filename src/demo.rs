//! `tandem demo`: the README's quick start. Runs the main job against a pool (the embedded
//! default one unless --pool says otherwise) through the daemon, narrating each step:
//! create a volume, mount it, use it as an ordinary filesystem, unmount, remount and find
//! every byte again. Safe to run repeatedly: it reuses its volume and cleans up its mounts.

use std::io::Write;
use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result, bail};

use crate::cli::connect_or_start;
use crate::control::{Client, Reply, Request};

fn step(n: u32, what: &str) {
    println!("\n[{n}] {what}");
}

fn call(c: &mut Client, req: Request) -> Result<Reply> {
    c.call(req, None)
        .map_err(|e| anyhow::anyhow!(e.to_string()))
}

pub fn run(pool: &Path) -> Result<()> {
    println!("tandem demo on pool {}", pool.display());
    step(1, "start (or reach) the pool's daemon");
    let mut c = connect_or_start(pool)?;
    if let Reply::Pong { pid, .. } = call(&mut c, Request::Ping)? {
        println!("    daemon pid {pid}");
    }

    step(
        2,
        "create the volume demo-data (kept from an earlier run if it exists)",
    );
    let vols = match call(&mut c, Request::VolumeList)? {
        Reply::Volumes { volumes } => volumes,
        r => bail!("unexpected reply {r:?}"),
    };
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
    if let Reply::Status(s) = call(&mut c, Request::Status)? {
        println!(
            "    {} volume(s); logical {} MiB, physical {} MiB, dedup ratio {:.2}",
            s.volumes,
            s.stats.logical_bytes >> 20,
            s.stats.physical_bytes >> 20,
            s.dedup_ratio
        );
    }

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

    step(7, "unmount");
    call(
        &mut c,
        Request::Umount {
            target: "demo-data".into(),
        },
    )?;
    println!("    done. `tandem status` shows the pool; `tandem shutdown` stops the daemon.");
    Ok(())
}
