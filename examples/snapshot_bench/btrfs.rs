//! btrfs, for comparison: the same data and load on btrfs subvolumes of a loop device,
//! snapshotted with `btrfs subvolume snapshot`.

use super::*;

pub fn on_path(prog: &str) -> Option<PathBuf> {
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
pub fn btrfs_case(a: &Args, n: usize, size_mib: u64) -> Result<Vec<f64>, String> {
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
