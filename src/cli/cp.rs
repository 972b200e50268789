//! `tandem cp SRC DST [-r]`: an instant copy between files on tandem mounts of one pool, also
//! from one volume to another (where `cp` copies bytes: the kernel refuses copy_file_range
//! between two mounts). Paths are resolved here, in the caller's working directory, and
//! sent absolute and canonical; the daemon finds their mounts and shares the blocks. With
//! `-r` a directory is copied as a tree: directories and symlinks are made through the
//! mount, each file by the daemon.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow};
use serde::Serialize;

use super::{call, human, json};
use tandem::control::{CopyOutcome, Request};

/// What `--json` prints.
#[derive(Debug, Default, Serialize)]
struct Copied {
    src: PathBuf,
    dst: PathBuf,
    files: u64,
    bytes: u64,
    /// Bytes shared as whole blocks: no data copied, no new space.
    shared_bytes: u64,
}

pub fn run_cp(pool: &Path, src: &Path, dst: &Path, recursive: bool, json_out: bool) -> Result<()> {
    let src = src
        .canonicalize()
        .with_context(|| format!("{}: no such file; give an existing file", src.display()))?;
    // Into an existing directory: under the source's name, as cp does.
    let dst = if dst.is_dir() {
        let name = src.file_name().ok_or_else(|| {
            anyhow!(
                "{} has no name to copy under; name the destination",
                src.display()
            )
        })?;
        dst.join(name)
    } else {
        dst.to_path_buf()
    };
    let dst = absolute(&dst)?;
    let mut total = Copied {
        src: src.clone(),
        dst: dst.clone(),
        ..Default::default()
    };
    if src.is_dir() {
        if !recursive {
            return Err(anyhow!(
                "{} is a directory; copy it with tandem cp -r",
                src.display()
            ));
        }
        tree(pool, &src, &dst, &mut total)?;
    } else {
        file(pool, &src, &dst, &mut total)?;
    }
    if json_out {
        return json::emit(&total);
    }
    outln!(
        "copied {} to {}: {} in {} file(s), {} shared (no data copied)",
        src.display(),
        dst.display(),
        human(total.bytes),
        total.files,
        human(total.shared_bytes)
    );
    Ok(())
}

/// `path` absolute and canonical up to its last component (which need not exist).
fn absolute(path: &Path) -> Result<PathBuf> {
    let name = path.file_name().ok_or_else(|| {
        anyhow!(
            "{} names no file; give the destination's name",
            path.display()
        )
    })?;
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let parent = parent
        .canonicalize()
        .with_context(|| format!("{}: no such directory; create it first", parent.display()))?;
    Ok(parent.join(name))
}

fn file(pool: &Path, src: &Path, dst: &Path, total: &mut Copied) -> Result<()> {
    use rustix::process::{getgid, getuid, umask};
    // umask is read by setting it and put back at once (this process makes no file
    // meanwhile).
    let m = umask(rustix::fs::Mode::from_raw_mode(0o022));
    umask(m);
    let (uid, gid, umask) = (getuid().as_raw(), getgid().as_raw(), m.as_raw_mode());
    let o: CopyOutcome = call(
        pool,
        Request::Copy {
            src: src.to_path_buf(),
            dst: dst.to_path_buf(),
            uid,
            gid,
            umask,
        },
    )?;
    total.files += 1;
    total.bytes += o.bytes;
    total.shared_bytes += o.shared;
    Ok(())
}

fn tree(pool: &Path, src: &Path, dst: &Path, total: &mut Copied) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(src)
        .with_context(|| format!("reading {}", src.display()))?
        .permissions()
        .mode();
    match std::fs::create_dir(dst) {
        Ok(()) => {
            std::fs::set_permissions(dst, std::fs::Permissions::from_mode(mode & 0o7777))
                .with_context(|| format!("setting the mode of {}", dst.display()))?;
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && dst.is_dir() => {}
        Err(e) => return Err(anyhow!("creating directory {}: {e}", dst.display())),
    }
    let mut entries: Vec<_> = std::fs::read_dir(src)
        .with_context(|| format!("listing {}", src.display()))?
        .collect::<std::io::Result<_>>()
        .with_context(|| format!("listing {}", src.display()))?;
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let (from, to) = (e.path(), dst.join(e.file_name()));
        let kind = e
            .file_type()
            .with_context(|| format!("reading {}", from.display()))?;
        if kind.is_dir() {
            tree(pool, &from, &to, total)?;
        } else if kind.is_symlink() {
            let target = std::fs::read_link(&from)
                .with_context(|| format!("reading link {}", from.display()))?;
            std::os::unix::fs::symlink(&target, &to)
                .with_context(|| format!("creating link {}", to.display()))?;
        } else if kind.is_file() {
            file(pool, &from, &to, total)?;
        } else {
            eprintln!(
                "tandem: skipped {} (not a file, directory or link)",
                from.display()
            );
        }
    }
    Ok(())
}
