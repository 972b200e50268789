//! A small filesystem to fill: a loop-mounted ext4 image (the full-disk tests).

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::Command;

/// A loop-mounted ext4 image, unmounted on drop.
pub struct SmallDisk {
    dir: tempfile::TempDir,
    /// Where the image is mounted.
    pub mnt: PathBuf,
}

impl SmallDisk {
    /// `None` where one cannot be made (needs root and mkfs.ext4).
    pub fn new(mib: u64) -> Option<SmallDisk> {
        let dir = tempfile::tempdir().ok()?;
        let img = dir.path().join("disk.img");
        let mnt = dir.path().join("disk");
        fs::create_dir(&mnt).ok()?;
        File::create(&img).ok()?.set_len(mib << 20).ok()?;
        let ok = |c: &mut Command| c.output().map(|o| o.status.success()).unwrap_or(false);
        if !ok(Command::new("mkfs.ext4").arg("-q").arg(&img))
            || !ok(Command::new("mount")
                .arg("-o")
                .arg("loop")
                .arg(&img)
                .arg(&mnt))
        {
            return None;
        }
        Some(SmallDisk { dir, mnt })
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.mnt).output();
        let _ = self.dir.path();
    }
}

/// Bytes free for an unprivileged user on the filesystem holding `dir`.
pub fn free_bytes(dir: &Path) -> u64 {
    let c = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes()).expect("path");
    // SAFETY: a valid path and a zeroed out-struct the call fills.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    assert_eq!(unsafe { libc::statvfs(c.as_ptr(), &mut st) }, 0);
    st.f_bavail as u64 * st.f_frsize as u64
}
