//! Mounts and pools against other local users and other filesystems, through the real binary:
//! private pool files, honoured mount options, snapshot views that follow the live mount's
//! access rules, the reserved snapshot directory name, restarts that leave foreign
//! filesystems alone, `umount` paths resolved in the caller's directory, nested mounts.

use std::fs;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

mod common;
use common::*;

/// Lets every user into a test directory (temp dirs are 0700).
fn open_up(dir: &Path) {
    fs::set_permissions(dir, fs::Permissions::from_mode(0o755)).unwrap();
}

/// Runs a shell command as `nobody`; true if it succeeded.
fn as_nobody(cmd: &str) -> bool {
    Command::new("sh")
        .args(["-c", cmd])
        .uid(65534)
        .gid(65534)
        .output()
        .unwrap()
        .status
        .success()
}

/// The topmost mount at `dir` in /proc/self/mountinfo: (per-mount options, fstype).
fn mount_at(dir: &Path) -> Option<(Vec<String>, String)> {
    let canon = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
    let info = fs::read_to_string("/proc/self/mountinfo").unwrap();
    info.lines()
        .rev()
        .find(|l| l.split(' ').nth(4) == Some(canon.to_str().unwrap()))
        .map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            let dash = f.iter().position(|x| *x == "-").unwrap();
            (
                f[5].split(',').map(String::from).collect(),
                f[dash + 1].to_string(),
            )
        })
}

fn flags(dir: &Path) -> Vec<String> {
    mount_at(dir).map(|m| m.0).unwrap_or_default()
}

fn tandem_in(p: &Pool, cwd: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .env("TANDEM_AUTOSTART", "1")
        .arg("--pool")
        .arg(p.path())
        .args(args)
        .current_dir(cwd)
        .output()
        .unwrap()
}

fn errno(r: std::io::Result<()>) -> Option<i32> {
    r.err().and_then(|e| e.raw_os_error())
}

#[test]
fn pool_files_are_private_to_the_daemon_user() {
    let mut p = Pool::new();
    // A pool made before the rule, or in a directory that was open to all.
    open_up(p.path());
    let m = p.mnt();
    p.ok(&["volume", "create", "v"]);
    p.ok(&["mount", "v", m.to_str().unwrap()]);
    let secret: Vec<u8> = b"tandem-secret-".repeat(80_000);
    fs::write(m.join("secret"), &secret).unwrap();
    fs::set_permissions(m.join("secret"), fs::Permissions::from_mode(0o600)).unwrap();
    fs::File::open(m.join("secret"))
        .unwrap()
        .sync_all()
        .unwrap();
    let mode = fs::metadata(p.path()).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o700, "pool directory mode {mode:o}");
    let mut files: Vec<PathBuf> = fs::read_dir(p.path().join("packs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert!(!files.is_empty(), "no pack written");
    files.push(p.path().join("pool.redb"));
    for f in files {
        assert!(
            !as_nobody(&format!("cat '{}' >/dev/null", f.display())),
            "nobody read {}",
            f.display()
        );
    }
}

#[test]
fn mount_options_harden_the_mount_and_snapshot_views_are_nosuid_nodev() {
    let mut p = Pool::new();
    let m = p.mnt();
    let ms = m.to_str().unwrap();
    p.ok(&["volume", "create", "v"]);
    p.ok(&["mount", "v", ms, "-o", "nosuid,nodev,noexec"]);
    let f = flags(&m);
    for want in ["nosuid", "nodev", "noexec"] {
        assert!(f.contains(&want.to_string()), "{want} missing in {f:?}");
    }
    // noexec is enforced by the kernel: a program there does not run.
    fs::copy("/bin/true", m.join("prog")).unwrap();
    fs::set_permissions(m.join("prog"), fs::Permissions::from_mode(0o755)).unwrap();
    let e = Command::new(m.join("prog")).status().unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::EACCES), "{e}");
    assert!(p.ok(&["status"]).contains("nosuid,nodev,noexec"));
    // Remembered across a restart.
    p.ok(&["shutdown"]);
    wait_until("the daemon to stop", || !is_mounted(&m));
    p.ok(&["status"]);
    let f = flags(&m);
    assert!(
        f.contains(&"nosuid".to_string()) && f.contains(&"noexec".to_string()),
        "{f:?}"
    );
    p.ok(&["umount", "v"]);
    // Without options a volume works as a local disk; ro is honoured.
    p.ok(&["mount", "v", ms, "-o", "ro"]);
    let f = flags(&m);
    assert!(f.contains(&"ro".to_string()), "{f:?}");
    assert!(!f.contains(&"nosuid".to_string()), "{f:?}");
    p.ok(&["umount", "v"]);
    // What nosuid is for: a setuid-root program copied into the volume gives no one root.
    open_up(&m);
    let euid_of_setuid_id = |opts: &str| -> String {
        p.ok(&["mount", "v", ms, "-o", opts]);
        fs::copy("/usr/bin/id", m.join("id")).unwrap();
        fs::set_permissions(m.join("id"), fs::Permissions::from_mode(0o4755)).unwrap();
        // Another test of this binary may fork while fs::copy's write
        // descriptor is open; its child holds that descriptor until it
        // execs, and the kernel refuses to run a file open for writing
        // (ETXTBSY). That window is short: try again.
        let mut tries = 0;
        let out = loop {
            let r = Command::new(m.join("id"))
                .arg("-u")
                .uid(65534)
                .gid(65534)
                .output();
            match r {
                Err(e) if e.raw_os_error() == Some(libc::ETXTBSY) && tries < 100 => {
                    tries += 1;
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                r => break r.unwrap(),
            }
        };
        p.ok(&["umount", "v"]);
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    assert_eq!(euid_of_setuid_id("allow_other,nosuid"), "65534");
    assert_eq!(
        euid_of_setuid_id("allow_other"),
        "0",
        "a local disk honours setuid"
    );
    // mount -t tandem (the helper) passes them on.
    let helper = Path::new(env!("CARGO_MANIFEST_DIR")).join("mount/mount.tandem");
    let opts = format!("nosuid,nodev,noexec,pool={}", p.path().display());
    let st = Command::new(&helper)
        .args(["v", ms, "-o", &opts])
        .env("TANDEM_BIN", BIN)
        .status()
        .unwrap();
    assert!(st.success());
    let f = flags(&m);
    for want in ["nosuid", "nodev", "noexec"] {
        assert!(
            f.contains(&want.to_string()),
            "helper: {want} missing in {f:?}"
        );
    }
    p.ok(&["umount", "v"]);
    // An activated snapshot is nosuid,nodev and read-only.
    p.ok(&["snapshot", "create", "s", "v"]);
    p.ok(&["snapshot", "activate", "s"]);
    let view = p.path().join("run/snaps/s/v");
    let f = flags(&view);
    for want in ["ro", "nosuid", "nodev"] {
        assert!(f.contains(&want.to_string()), "{want} missing in {f:?}");
    }
    p.ok(&["snapshot", "deactivate", "s"]);
}

#[test]
fn a_snapshot_view_follows_the_live_mounts_access_rules() {
    let mut p = Pool::new();
    let (m, base) = (p.mnt(), p.mnt());
    open_up(&m);
    open_up(&base);
    let ms = m.to_str().unwrap();
    p.ok(&["volume", "create", "v"]);
    p.ok(&["mount", "v", ms]);
    fs::write(m.join("f"), b"only for root").unwrap();
    fs::set_permissions(m.join("f"), fs::Permissions::from_mode(0o644)).unwrap();
    let cat = |dir: &Path| as_nobody(&format!("cat '{}' >/dev/null", dir.join("f").display()));
    assert!(
        !cat(&m),
        "nobody read the live volume mounted without allow_other"
    );
    p.ok(&["snapshot", "create", "s", "v"]);
    p.ok(&[
        "snapshot",
        "activate",
        "s",
        "--mountpoint",
        base.to_str().unwrap(),
    ]);
    assert!(
        !cat(&base.join("v")),
        "nobody read the snapshot of a private volume"
    );
    p.ok(&["snapshot", "deactivate", "s"]);
    // Unless asked for.
    let b = base.to_str().unwrap();
    p.ok(&[
        "snapshot",
        "activate",
        "s",
        "--mountpoint",
        b,
        "-o",
        "allow_other",
    ]);
    assert!(cat(&base.join("v")), "-o allow_other was not honoured");
    p.ok(&["snapshot", "deactivate", "s"]);
    // Open live mount: the snapshot view is open as well.
    p.ok(&["umount", "v"]);
    p.ok(&["mount", "v", ms, "-o", "allow_other"]);
    assert!(cat(&m));
    p.ok(&[
        "snapshot",
        "activate",
        "s",
        "--mountpoint",
        base.to_str().unwrap(),
    ]);
    assert!(
        cat(&base.join("v")),
        "the snapshot of an open volume is open too"
    );
    p.ok(&["snapshot", "deactivate", "s"]);
}

#[test]
fn the_snapshot_directory_name_is_reserved() {
    let mut p = Pool::new();
    let m = p.mnt();
    p.ok(&["volume", "create", "v"]);
    p.ok(&["volume", "set", "v", "uss", "on"]);
    p.ok(&["volume", "set", "v", "show-snapshot-directory", "on"]);
    p.ok(&["mount", "v", m.to_str().unwrap()]);
    fs::create_dir(m.join("somedir")).unwrap();
    fs::write(m.join("somedir/kept"), b"x").unwrap();
    fs::write(m.join("file"), b"y").unwrap();
    let snaps = m.join(".snaps");
    // Nothing takes its name.
    assert_eq!(
        errno(fs::rename(m.join("somedir"), &snaps)),
        Some(libc::EPERM)
    );
    // (A file over it: the kernel itself says EISDIR.)
    assert_eq!(
        errno(fs::rename(m.join("file"), &snaps)),
        Some(libc::EISDIR)
    );
    assert_eq!(errno(fs::create_dir(&snaps)), Some(libc::EEXIST));
    assert_eq!(errno(symlink("x", &snaps)), Some(libc::EEXIST));
    assert_eq!(
        errno(fs::hard_link(m.join("file"), &snaps)),
        Some(libc::EEXIST)
    );
    // It is neither removed nor renamed.
    assert_eq!(errno(fs::remove_dir(&snaps)), Some(libc::EBUSY));
    assert_eq!(
        errno(fs::rename(&snaps, m.join("elsewhere"))),
        Some(libc::EPERM)
    );
    // It has no extended attributes.
    let c = std::ffi::CString::new(snaps.to_str().unwrap()).unwrap();
    let mut buf = [0u8; 64];
    let rc = unsafe {
        libc::getxattr(
            c.as_ptr(),
            c"user.x".as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    assert_eq!(rc, -1);
    assert_eq!(
        std::io::Error::last_os_error().raw_os_error(),
        Some(libc::ENODATA)
    );
    // The tree is as it was: one .snaps, somedir reachable.
    let names: Vec<String> = fs::read_dir(&m)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(
        names.iter().filter(|n| *n == ".snaps").count(),
        1,
        "{names:?}"
    );
    assert_eq!(fs::read(m.join("somedir/kept")).unwrap(), b"x");
    assert!(!m.join("elsewhere").exists());
}

#[test]
fn a_restart_leaves_a_foreign_filesystem_alone() {
    let mut p = Pool::new();
    let (m, m2) = (p.mnt(), p.mnt());
    p.ok(&["volume", "create", "v"]);
    p.ok(&["volume", "create", "w"]);
    p.ok(&["mount", "v", m.to_str().unwrap()]);
    p.ok(&["mount", "w", m2.to_str().unwrap()]);
    let pid = p.daemon_pid();
    unsafe { libc::kill(pid, libc::SIGKILL) };
    wait_until("the daemon to die", || unsafe { libc::kill(pid, 0) } != 0);
    // Someone else puts a filesystem of theirs on one of the old mountpoints.
    assert!(
        Command::new("umount")
            .arg("-l")
            .arg(&m)
            .status()
            .unwrap()
            .success()
    );
    let st = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=1m", "theirs"])
        .arg(&m)
        .status()
        .unwrap();
    assert!(st.success());
    fs::write(m.join("their-file"), b"theirs").unwrap();
    p.ok(&["status"]);
    // Left alone, and the refusal is logged; the other dead mount is replaced as before.
    assert_eq!(mount_at(&m).map(|x| x.1).as_deref(), Some("tmpfs"));
    assert_eq!(fs::read(m.join("their-file")).unwrap(), b"theirs");
    let log = fs::read_to_string(p.path().join("daemon.log")).unwrap();
    assert!(
        log.contains("tmpfs mount") && log.contains("left alone"),
        "{log}"
    );
    assert_eq!(mount_at(&m2).map(|x| x.1).as_deref(), Some("fuse.tandem"));
    fs::write(m2.join("ok"), b"w works").unwrap_or_else(|e| panic!("{e}: {log}"));
    assert!(!p.ok(&["status"]).contains(m.to_str().unwrap()));
    assert!(Command::new("umount").arg(&m).status().unwrap().success());
}

#[test]
fn umount_resolves_paths_where_the_caller_is() {
    let mut p = Pool::new();
    let (x, y) = (p.mnt(), p.mnt());
    fs::create_dir(x.join("m2")).unwrap();
    // The daemon starts with its working directory in x.
    let o = tandem_in(&p, &x, &["volume", "create", "a"]);
    assert!(o.status.success());
    p.ok(&["volume", "create", "m2"]);
    p.ok(&["mount", "a", x.join("m2").to_str().unwrap()]);
    p.ok(&["mount", "m2", y.to_str().unwrap()]);
    // From / the name m2 is the volume m2, not the daemon's ./m2.
    let o = tandem_in(&p, Path::new("/"), &["umount", "m2"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(is_mounted(&x.join("m2")) && !is_mounted(&y));
    // Not a volume: a path in the caller's directory, which has no mount there.
    let o = tandem_in(&p, Path::new("/"), &["umount", "m2"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(is_mounted(&x.join("m2")));
    // ./m2 from x is the directory.
    let o = tandem_in(&p, &x, &["umount", "./m2"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(!is_mounted(&x.join("m2")));
}

#[test]
fn a_mount_inside_another_is_unmounted_first() {
    let mut p = Pool::new();
    let m = p.mnt();
    p.ok(&["volume", "create", "outer"]);
    p.ok(&["volume", "create", "inner"]);
    p.ok(&["mount", "outer", m.to_str().unwrap()]);
    fs::create_dir(m.join("in")).unwrap();
    let inner = m.join("in");
    p.ok(&["mount", "inner", inner.to_str().unwrap()]);
    fs::write(inner.join("f"), b"inner data").unwrap();
    let e = p.fails(&["umount", "outer"], 1);
    assert!(e.contains("unmount that first"), "{e}");
    let pid = p.daemon_pid();
    p.ok(&["shutdown"]);
    wait_until("the daemon to exit", || unsafe { libc::kill(pid, 0) } != 0);
    assert!(!is_mounted(&inner), "inner left mounted");
    assert!(!is_mounted(&m), "outer left mounted (dead)");
    // Both come back, in order.
    p.ok(&["status"]);
    assert_eq!(fs::read(inner.join("f")).unwrap(), b"inner data");
}
