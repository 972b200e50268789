//! POSIX ACLs through a real mount (allow_other), with getfacl/setfacl (the `acl` package)
//! run as root and as other users (`nobody`, and `tests` when the machine has it): named
//! entries that grant access, default ACLs that new files and directories inherit, the umask
//! when there is none, chmod and the mask, setgid and ACL changes, and ACLs in snapshot
//! views, restores and clones.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

mod common;
use common::*;

const NOBODY: u32 = 65534;

/// Runs `sh -c cmd` as `user` (with its own groups, as a login would); true if it succeeded.
fn as_user(user: &str, cmd: &str) -> bool {
    Command::new("runuser")
        .args(["-u", user, "--", "sh", "-c", cmd])
        .output()
        .unwrap()
        .status
        .success()
}

/// Runs `sh -c cmd` as root; panics with its stderr when it fails.
fn sh(cmd: &str) {
    let o = Command::new("sh").args(["-c", cmd]).output().unwrap();
    assert!(
        o.status.success(),
        "{cmd}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// `getfacl -cn`: the entries, numeric ids, without the header.
fn acl_of(path: &Path) -> Vec<String> {
    let o = Command::new("getfacl")
        .args(["-cn", path.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect()
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().mode() & 0o7777
}

fn can_read(user: &str, path: &Path) -> bool {
    as_user(user, &format!("cat '{}' >/dev/null", path.display()))
}

/// A second unprivileged user, if the machine has one (CI creates `tests`).
fn second_user() -> Option<&'static str> {
    Command::new("id")
        .arg("tests")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|_| "tests")
}

/// A pool with volume `v` mounted allow_other on a directory every user may enter.
fn mounted(p: &mut Pool) -> PathBuf {
    let m = p.mnt();
    fs::set_permissions(&m, fs::Permissions::from_mode(0o755)).unwrap();
    p.ok(&["volume", "create", "v"]);
    p.ok(&["mount", "v", m.to_str().unwrap(), "-o", "allow_other"]);
    fs::set_permissions(&m, fs::Permissions::from_mode(0o755)).unwrap();
    m
}

#[test]
fn a_named_entry_grants_access_the_mode_does_not() {
    let mut p = Pool::new();
    let m = mounted(&mut p);
    let f = m.join("secret");
    fs::write(&f, b"for nobody only").unwrap();
    fs::set_permissions(&f, fs::Permissions::from_mode(0o600)).unwrap();
    assert!(!can_read("nobody", &f), "0600 file readable by nobody");

    sh(&format!("setfacl -m u:nobody:r '{}'", f.display()));
    assert!(
        can_read("nobody", &f),
        "the named entry does not grant read"
    );
    assert!(
        !as_user("nobody", &format!("printf x >> '{}'", f.display())),
        "nobody may only read"
    );
    if let Some(other) = second_user() {
        assert!(!can_read(other, &f), "{other} read a file only nobody may");
    }
    assert_eq!(
        acl_of(&f),
        [
            "user::rw-",
            &format!("user:{NOBODY}:r--"),
            "group::---",
            "mask::r--",
            "other::---"
        ]
    );
    // The mask shows as the group bits.
    assert_eq!(mode(&f), 0o640);

    // A group entry: the second user (or nobody, through its group) is let in by group.
    let f2 = m.join("by-group");
    fs::write(&f2, b"group").unwrap();
    fs::set_permissions(&f2, fs::Permissions::from_mode(0o600)).unwrap();
    let (user, group) = second_user().map_or(("nobody", "nogroup"), |u| (u, u));
    assert!(!can_read(user, &f2));
    sh(&format!("setfacl -m g:{group}:r '{}'", f2.display()));
    assert!(can_read(user, &f2), "the group entry does not grant read");

    // Removing the entry takes the access away again (the kernel's cached ACL included).
    sh(&format!("setfacl -x u:nobody '{}'", f.display()));
    assert!(
        !can_read("nobody", &f),
        "nobody still reads after setfacl -x"
    );

    // An ACL that says no more than a mode sets the mode and stores nothing.
    sh(&format!("setfacl -b '{}'", f.display()));
    sh(&format!("setfacl -m u::rwx,g::r,o::- '{}'", f.display()));
    assert_eq!(mode(&f), 0o740);
    let names = xattr_names(&f);
    assert!(
        !names.iter().any(|n| n == "system.posix_acl_access"),
        "an ACL equivalent to the mode was stored: {names:?}"
    );
}

fn xattr_names(path: &Path) -> Vec<String> {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
    let mut buf = vec![0u8; 4096];
    let n = unsafe { libc::listxattr(c.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    assert!(n >= 0, "listxattr: {}", std::io::Error::last_os_error());
    buf[..n as usize]
        .split(|b| *b == 0)
        .filter(|n| !n.is_empty())
        .map(|n| String::from_utf8_lossy(n).into_owned())
        .collect()
}

#[test]
fn new_files_and_directories_inherit_the_default_acl() {
    let mut p = Pool::new();
    let m = mounted(&mut p);
    let d = m.join("shared");
    fs::create_dir(&d).unwrap();
    sh(&format!(
        "setfacl -m d:u::rwx,d:u:nobody:rwx,d:g::r-x,d:o::- '{}'",
        d.display()
    ));
    // The umask does not apply under a default ACL: the ACL limits the mode instead.
    sh(&format!(
        "umask 077 && cd '{}' && echo data > file && mkdir sub && mkfifo fifo",
        d.display()
    ));
    let named = format!("user:{NOBODY}:rwx");
    let file = d.join("file");
    assert_eq!(mode(&file), 0o660, "file mode from the default ACL");
    assert_eq!(
        acl_of(&file),
        [
            "user::rw-",
            &format!("{named}\t#effective:rw-"),
            "group::r-x\t#effective:r--",
            "mask::rw-",
            "other::---"
        ]
    );
    assert!(can_read("nobody", &file), "inherited entry does not apply");
    assert!(as_user(
        "nobody",
        &format!("echo more >> '{}'", file.display())
    ));
    assert_eq!(
        mode(&d.join("fifo")),
        0o660,
        "mknod inherits as create does"
    );

    let sub = d.join("sub");
    assert_eq!(mode(&sub), 0o770);
    let acl = acl_of(&sub);
    assert!(acl.contains(&named), "{acl:?}");
    // A directory keeps the default ACL as its own, so inheritance goes on down.
    for e in [
        "default:user::rwx",
        &format!("default:{named}"),
        "default:other::---",
    ] {
        assert!(acl.contains(&e.to_string()), "{e} missing in {acl:?}");
    }
    assert!(
        as_user(
            "nobody",
            &format!(
                "mkdir '{}/deeper' && touch '{}/deeper/f'",
                sub.display(),
                sub.display()
            )
        ),
        "nobody could not create under the inherited ACL"
    );
    let deep = sub.join("deeper/f");
    assert!(acl_of(&deep).contains(&"mask::rw-".to_string()));
    assert_eq!(fs::metadata(&deep).unwrap().uid(), NOBODY);

    // A symlink gets no ACL (Linux has none on symlinks).
    std::os::unix::fs::symlink("file", d.join("ln")).unwrap();
    assert_eq!(
        fs::symlink_metadata(d.join("ln")).unwrap().mode() & 0o777,
        0o777
    );
}

#[test]
fn the_umask_applies_without_a_default_acl() {
    let mut p = Pool::new();
    let m = mounted(&mut p);
    sh(&format!(
        "cd '{}' && umask 027 && touch f && mkdir d && mkfifo p && umask 0 && touch open && mkdir opend",
        m.display()
    ));
    assert_eq!(mode(&m.join("f")), 0o640);
    assert_eq!(mode(&m.join("d")), 0o750);
    assert_eq!(mode(&m.join("p")), 0o640);
    assert_eq!(mode(&m.join("open")), 0o666);
    assert_eq!(mode(&m.join("opend")), 0o777);
    // As another user too (its umask, not the daemon's).
    fs::set_permissions(&m, fs::Permissions::from_mode(0o777)).unwrap();
    assert!(as_user(
        "nobody",
        &format!("cd '{}' && umask 066 && touch nf", m.display())
    ));
    assert_eq!(mode(&m.join("nf")), 0o600);
}

#[test]
fn chmod_changes_the_mask_and_setgid_follows_the_kernel_rules() {
    let mut p = Pool::new();
    let m = mounted(&mut p);
    let f = m.join("f");
    fs::write(&f, b"x").unwrap();
    fs::set_permissions(&f, fs::Permissions::from_mode(0o600)).unwrap();
    sh(&format!("setfacl -m u:nobody:rwx,g::r '{}'", f.display()));
    assert!(acl_of(&f).contains(&"mask::rwx".to_string()));
    assert!(can_read("nobody", &f));

    sh(&format!("chmod 750 '{}'", f.display()));
    let acl = acl_of(&f);
    assert!(acl.contains(&"mask::r-x".to_string()), "{acl:?}");
    assert!(
        acl.contains(&"group::r--".to_string()),
        "group entry kept: {acl:?}"
    );
    assert!(
        acl.contains(&format!("user:{NOBODY}:rwx\t#effective:r-x")),
        "{acl:?}"
    );
    assert!(acl.contains(&"user::rwx".to_string()), "{acl:?}");

    // The mask now denies nobody what its entry says.
    sh(&format!("chmod 700 '{}'", f.display()));
    assert!(acl_of(&f).contains(&"mask::---".to_string()));
    assert!(!can_read("nobody", &f), "chmod 700 left nobody reading");
    sh(&format!("chmod 740 '{}'", f.display()));
    assert!(can_read("nobody", &f));

    // setfacl by an owner outside the file's group, without CAP_FSETID, drops setgid;
    // an owner in the group keeps it.
    let g = m.join("sgid");
    fs::write(&g, b"x").unwrap();
    sh(&format!(
        "chown nobody:root '{0}' && chmod 2775 '{0}'",
        g.display()
    ));
    assert_eq!(mode(&g), 0o2775);
    assert!(as_user(
        "nobody",
        &format!("setfacl -m u:root:r '{}'", g.display())
    ));
    assert_eq!(mode(&g) & 0o2000, 0, "setgid kept by an outsider's setfacl");
    let k = m.join("keep");
    fs::write(&k, b"x").unwrap();
    sh(&format!(
        "chown nobody:nogroup '{0}' && chmod 2775 '{0}'",
        k.display()
    ));
    assert!(as_user(
        "nobody",
        &format!("setfacl -m u:root:r '{}'", k.display())
    ));
    assert_eq!(mode(&k), 0o2775, "setgid dropped for the group's member");
    // chmod: the kernel drops it for the outsider.
    assert!(as_user("nobody", &format!("chmod 2770 '{}'", g.display())));
    assert_eq!(mode(&g), 0o770);
}

#[test]
fn snapshots_restores_and_clones_carry_acls() {
    let mut p = Pool::new();
    let m = mounted(&mut p);
    let f = m.join("secret");
    fs::write(&f, b"snap").unwrap();
    fs::set_permissions(&f, fs::Permissions::from_mode(0o600)).unwrap();
    sh(&format!("setfacl -m u:nobody:r '{}'", f.display()));
    let d = m.join("d");
    fs::create_dir(&d).unwrap();
    sh(&format!(
        "setfacl -m d:u:nobody:rx,d:o::- '{}'",
        d.display()
    ));
    let (facl, dacl) = (acl_of(&f), acl_of(&d));
    sync(&m);
    p.ok(&["snapshot", "create", "s", "v"]);

    // A snapshot view: same ACLs, and they still grant.
    let base = p.mnt();
    fs::set_permissions(&base, fs::Permissions::from_mode(0o755)).unwrap();
    p.ok(&[
        "snapshot",
        "activate",
        "s",
        "--mountpoint",
        base.to_str().unwrap(),
        "-o",
        "allow_other",
    ]);
    let view = base.join("v");
    assert_eq!(acl_of(&view.join("secret")), facl);
    assert_eq!(acl_of(&view.join("d")), dacl);
    assert!(can_read("nobody", &view.join("secret")), "view: ACL lost");
    p.ok(&["snapshot", "deactivate", "s"]);

    // Restore brings back the ACLs changed since.
    sh(&format!(
        "setfacl -b '{}' && setfacl -k '{}'",
        f.display(),
        d.display()
    ));
    assert!(!can_read("nobody", &f));
    p.ok(&["umount", "v"]);
    p.ok(&["snapshot", "restore", "s", "--no-undo"]);
    p.ok(&["mount", "v", m.to_str().unwrap(), "-o", "allow_other"]);
    assert_eq!(acl_of(&f), facl);
    assert_eq!(acl_of(&d), dacl);
    assert!(can_read("nobody", &f), "restore: ACL lost");

    // A clone: same ACLs, and a new file in it inherits the default ACL.
    p.ok(&["snapshot", "clone", "c", "s"]);
    let mc = p.mnt();
    fs::set_permissions(&mc, fs::Permissions::from_mode(0o755)).unwrap();
    p.ok(&["mount", "c", mc.to_str().unwrap(), "-o", "allow_other"]);
    fs::set_permissions(&mc, fs::Permissions::from_mode(0o755)).unwrap();
    assert_eq!(acl_of(&mc.join("secret")), facl);
    assert_eq!(acl_of(&mc.join("d")), dacl);
    assert!(can_read("nobody", &mc.join("secret")), "clone: ACL lost");
    fs::write(mc.join("d/new"), b"n").unwrap();
    assert!(
        acl_of(&mc.join("d/new"))
            .iter()
            .any(|e| e.starts_with(&format!("user:{NOBODY}:r-x"))),
        "clone: default ACL not inherited"
    );
}

fn sync(dir: &Path) {
    let f = fs::File::open(dir).unwrap();
    f.sync_all().unwrap();
}
