//! FUSE integration tests: real mounts of real volumes in temporary directories, exercised
//! with plain std::fs and libc calls.

use std::ffi::CString;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tandem::fs::{Ctx, Engine};
use tandem::fuse::{Mount, MountSpec};
use tandem::store::rows::View;

struct Fixture {
    _pool: tempfile::TempDir,
    _mnt: tempfile::TempDir,
    root: PathBuf,
    mount: Option<Mount>,
    engine: Arc<Engine>,
}

impl Fixture {
    fn new() -> Fixture {
        let pool = tempfile::tempdir().unwrap();
        let mnt = tempfile::tempdir().unwrap();
        let engine = Arc::new(Engine::open(pool.path()).unwrap());
        let info = engine.create_volume("vol", None, Ctx::default()).unwrap();
        let spec = MountSpec {
            vol: info.id,
            name: "vol".into(),
            view: View::Live,
            mountpoint: mnt.path().to_path_buf(),
            read_only: false,
            allow_other: true,
        };
        let mount = Mount::new(engine.clone(), spec).unwrap();
        let root = mnt.path().to_path_buf();
        Fixture {
            _pool: pool,
            _mnt: mnt,
            root,
            mount: Some(mount),
            engine,
        }
    }

    fn p(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        if let Some(m) = self.mount.take() {
            m.unmount().unwrap();
        }
    }
}

fn errno_of<T>(r: std::io::Result<T>) -> i32 {
    r.err()
        .and_then(|e| e.raw_os_error())
        .expect("expected an OS error")
}

fn cpath(p: &Path) -> CString {
    CString::new(p.as_os_str().as_bytes()).unwrap()
}

#[test]
fn files_dirs_and_data_round_trip() {
    let f = Fixture::new();
    fs::create_dir(f.p("d")).unwrap();
    fs::write(f.p("d/a"), b"hello world").unwrap();
    assert_eq!(fs::read(f.p("d/a")).unwrap(), b"hello world");
    let big: Vec<u8> = (0..3_000_000u32).map(|i| (i * 7 % 253) as u8).collect();
    fs::write(f.p("big"), &big).unwrap();
    assert_eq!(fs::read(f.p("big")).unwrap(), big);
    let mut names: Vec<_> = fs::read_dir(&f.root)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    names.sort();
    assert_eq!(names, vec!["big", "d"]);
    assert_eq!(errno_of(fs::remove_dir(f.p("d"))), libc::ENOTEMPTY);
    assert_eq!(errno_of(fs::read(f.p("nope"))), libc::ENOENT);
    fs::remove_file(f.p("d/a")).unwrap();
    fs::remove_dir(f.p("d")).unwrap();
    assert!(!f.p("d").exists());
}

#[test]
fn sparse_offsets_truncate_and_append() {
    let f = Fixture::new();
    let file = OpenOptions::new()
        .create(true)
        .truncate(true)
        .read(true)
        .write(true)
        .open(f.p("s"))
        .unwrap();
    file.write_all_at(b"tail", 10 << 30).unwrap();
    assert_eq!(file.metadata().unwrap().len(), (10 << 30) + 4);
    let mut buf = [1u8; 16];
    file.read_exact_at(&mut buf, 5 << 30).unwrap();
    assert_eq!(buf, [0u8; 16]);
    file.set_len(3).unwrap();
    file.set_len(100).unwrap();
    let mut all = Vec::new();
    (&file).seek(SeekFrom::Start(0)).unwrap();
    (&file).read_to_end(&mut all).unwrap();
    assert_eq!(all, vec![0u8; 100]);
    drop(file);
    let mut a = OpenOptions::new().append(true).open(f.p("s")).unwrap();
    a.write_all(b"XY").unwrap();
    drop(a);
    assert_eq!(&fs::read(f.p("s")).unwrap()[100..], b"XY");
    // O_TRUNC and O_EXCL.
    fs::write(f.p("s"), b"new").unwrap();
    assert_eq!(fs::read(f.p("s")).unwrap(), b"new");
    let excl = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(f.p("s"));
    assert_eq!(errno_of(excl), libc::EEXIST);
}

#[test]
fn links_symlinks_rename_and_special_files() {
    let f = Fixture::new();
    fs::write(f.p("a"), b"1").unwrap();
    fs::hard_link(f.p("a"), f.p("b")).unwrap();
    assert_eq!(fs::metadata(f.p("a")).unwrap().nlink(), 2);
    std::os::unix::fs::symlink("a", f.p("l")).unwrap();
    assert_eq!(fs::read_link(f.p("l")).unwrap(), Path::new("a"));
    assert_eq!(fs::read(f.p("l")).unwrap(), b"1");
    fs::create_dir(f.p("dir")).unwrap();
    fs::rename(f.p("b"), f.p("dir/b2")).unwrap();
    assert_eq!(
        errno_of(fs::rename(f.p("dir"), f.p("dir/sub"))),
        libc::EINVAL
    );
    // RENAME_NOREPLACE / RENAME_EXCHANGE through renameat2.
    let (a, l) = (cpath(&f.p("a")), cpath(&f.p("l")));
    let rc = unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            a.as_ptr(),
            libc::AT_FDCWD,
            l.as_ptr(),
            libc::RENAME_NOREPLACE,
        )
    };
    assert_eq!(rc, -1);
    assert_eq!(
        std::io::Error::last_os_error().raw_os_error(),
        Some(libc::EEXIST)
    );
    let rc = unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            a.as_ptr(),
            libc::AT_FDCWD,
            l.as_ptr(),
            libc::RENAME_EXCHANGE,
        )
    };
    assert_eq!(rc, 0);
    assert!(
        fs::symlink_metadata(f.p("a"))
            .unwrap()
            .file_type()
            .is_symlink()
    );
    // fifo and device node.
    let fifo = cpath(&f.p("fifo"));
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o644) }, 0);
    let dev = cpath(&f.p("null"));
    assert_eq!(
        unsafe { libc::mknod(dev.as_ptr(), libc::S_IFCHR | 0o666, libc::makedev(1, 3)) },
        0
    );
    let m = fs::metadata(f.p("null")).unwrap();
    assert_eq!(m.rdev(), libc::makedev(1, 3));
    let mut null = OpenOptions::new().write(true).open(f.p("null")).unwrap();
    null.write_all(b"into the void").unwrap();
}

#[test]
fn modes_owners_times_xattrs_statfs() {
    let f = Fixture::new();
    fs::write(f.p("m"), b"x").unwrap();
    fs::set_permissions(f.p("m"), fs::Permissions::from_mode(0o640)).unwrap();
    assert_eq!(fs::metadata(f.p("m")).unwrap().mode() & 0o7777, 0o640);
    let p = cpath(&f.p("m"));
    assert_eq!(unsafe { libc::chown(p.as_ptr(), 1234, 5678) }, 0);
    let m = fs::metadata(f.p("m")).unwrap();
    assert_eq!((m.uid(), m.gid()), (1234, 5678));
    let times = [
        libc::timespec {
            tv_sec: 1_000_000,
            tv_nsec: 5,
        },
        libc::timespec {
            tv_sec: 2_000_000,
            tv_nsec: 7,
        },
    ];
    assert_eq!(
        unsafe { libc::utimensat(libc::AT_FDCWD, p.as_ptr(), times.as_ptr(), 0) },
        0
    );
    let m = fs::metadata(f.p("m")).unwrap();
    assert_eq!(
        (m.atime(), m.mtime(), m.mtime_nsec()),
        (1_000_000, 2_000_000, 7)
    );
    let (name, val) = (CString::new("user.k").unwrap(), b"v1");
    let rc = unsafe {
        libc::setxattr(
            p.as_ptr(),
            name.as_ptr(),
            val.as_ptr().cast(),
            2,
            libc::XATTR_CREATE,
        )
    };
    assert_eq!(rc, 0);
    let rc = unsafe {
        libc::setxattr(
            p.as_ptr(),
            name.as_ptr(),
            val.as_ptr().cast(),
            2,
            libc::XATTR_CREATE,
        )
    };
    assert_eq!(
        (rc, std::io::Error::last_os_error().raw_os_error()),
        (-1, Some(libc::EEXIST))
    );
    let mut buf = [0u8; 16];
    let n = unsafe { libc::getxattr(p.as_ptr(), name.as_ptr(), buf.as_mut_ptr().cast(), 16) };
    assert_eq!(&buf[..n as usize], b"v1");
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    assert_eq!(
        unsafe { libc::statvfs(cpath(&f.root).as_ptr(), &mut st) },
        0
    );
    assert!(st.f_bavail > 0, "statfs reports the pool's free space");
}

#[test]
fn unlinked_open_file_stays_readable_and_is_freed_on_close() {
    let f = Fixture::new();
    let data = vec![9u8; 200_000];
    fs::write(f.p("tmp"), &data).unwrap();
    let mut file = File::open(f.p("tmp")).unwrap();
    fs::remove_file(f.p("tmp")).unwrap();
    assert!(!f.p("tmp").exists());
    let mut back = Vec::new();
    file.read_to_end(&mut back).unwrap();
    assert_eq!(back, data);
    drop(file);
    // RELEASE is asynchronous: wait for the daemon to free the orphan.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let s = f.engine.pool_stats().unwrap();
        if s.physical_bytes == 0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "orphan not freed: {s:?}"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

#[test]
fn a_file_replaced_by_rename_stays_readable_while_open_and_the_new_one_takes_its_name() {
    let f = Fixture::new();
    // Incompressible, so that its space shows in the pool until it is freed.
    let mut old = vec![0u8; 150_000];
    blake3::Hasher::new()
        .update(b"replaced")
        .finalize_xof()
        .fill(&mut old);
    fs::write(f.p("conf"), &old).unwrap();
    let mut held = File::open(f.p("conf")).unwrap();
    // The atomic-save pattern, many times over: write a temporary file, rename it over.
    for i in 0..200u32 {
        let body = format!("version {i}");
        fs::write(f.p("conf.tmp"), &body).unwrap();
        fs::rename(f.p("conf.tmp"), f.p("conf")).unwrap();
        assert_eq!(fs::read_to_string(f.p("conf")).unwrap(), body);
        assert_eq!(errno_of(fs::metadata(f.p("conf.tmp"))), libc::ENOENT);
        assert_eq!(fs::metadata(f.p("conf")).unwrap().nlink(), 1);
    }
    let names: Vec<_> = fs::read_dir(&f.root)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, vec![std::ffi::OsString::from("conf")]);
    // The first file lost its name but not its bytes while it is open.
    let mut back = Vec::new();
    held.read_to_end(&mut back).unwrap();
    assert_eq!(back, old);
    f.engine
        .flush_volume(f.engine.volume_id("vol").unwrap())
        .unwrap();
    assert!(f.engine.pool_stats().unwrap().physical_bytes > 100_000);
    drop(held);
    // Then it is freed, as is every replaced version.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while f.engine.pool_stats().unwrap().physical_bytes > 4096 {
        assert!(
            std::time::Instant::now() < deadline,
            "replaced files not freed"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

#[test]
fn mmap_shared_writes_reach_the_file() {
    let f = Fixture::new();
    let file = OpenOptions::new()
        .create(true)
        .truncate(true)
        .read(true)
        .write(true)
        .mode(0o644)
        .open(f.p("mm"))
        .unwrap();
    file.set_len(8192).unwrap();
    use std::os::unix::io::AsRawFd;
    let len = 8192;
    let ptr = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED,
            file.as_raw_fd(),
            0,
        )
    };
    assert_ne!(ptr, libc::MAP_FAILED);
    unsafe {
        std::ptr::copy_nonoverlapping(b"mapped!".as_ptr(), (ptr as *mut u8).add(4096), 7);
        assert_eq!(libc::msync(ptr, len, libc::MS_SYNC), 0);
        libc::munmap(ptr, len);
    }
    drop(file);
    let back = fs::read(f.p("mm")).unwrap();
    assert_eq!(&back[4096..4103], b"mapped!");
}

/// Runs a shell command as `nobody` (no CAP_FSETID).
fn as_nobody(cmd: &str) {
    use std::os::unix::process::CommandExt;
    let st = std::process::Command::new("sh")
        .args(["-c", cmd])
        .uid(65534)
        .gid(65534)
        .status()
        .unwrap();
    assert!(st.success(), "{cmd}");
}

fn mode(p: &Path) -> u32 {
    fs::metadata(p).unwrap().mode() & 0o7777
}

#[test]
fn writes_truncates_and_chowns_drop_privileges() {
    // The kernel leaves this to the filesystem (HANDLE_KILLPRIV_V2, which spares a
    // GETXATTR per write): Linux's rules, checked through the mount, including the mode
    // the kernel had cached.
    let fx = Fixture::new();
    let f = fx.root.join("prog");
    fs::write(&f, b"#!/bin/sh\n").unwrap();
    std::os::unix::fs::chown(&f, Some(65534), Some(65534)).unwrap();
    let set = |m: u32| fs::set_permissions(&f, fs::Permissions::from_mode(m)).unwrap();
    // A write by the owner without CAP_FSETID: setuid and (group-executable) setgid go.
    set(0o6755);
    assert_eq!(mode(&f), 0o6755);
    as_nobody(&format!("printf x >> {}", f.display()));
    assert_eq!(mode(&f), 0o755);
    // Setgid without group execute marks mandatory locking, not a privilege: it stays.
    set(0o6745);
    as_nobody(&format!("printf x >> {}", f.display()));
    assert_eq!(mode(&f), 0o2745);
    // File capabilities go too (a valid v2 blob with no capabilities).
    set(0o755);
    let caps: [u8; 20] = {
        let mut c = [0u8; 20];
        c[..4].copy_from_slice(&0x0200_0000u32.to_le_bytes());
        c
    };
    let name = CString::new("security.capability").unwrap();
    let path = cpath(&f);
    // SAFETY: valid NUL-terminated strings and a buffer of the given length.
    let rc = unsafe { libc::setxattr(path.as_ptr(), name.as_ptr(), caps.as_ptr().cast(), 20, 0) };
    assert_eq!(rc, 0, "{}", std::io::Error::last_os_error());
    as_nobody(&format!("printf x >> {}", f.display()));
    let mut buf = [0u8; 64];
    // SAFETY: as above.
    let rc = unsafe {
        libc::getxattr(
            path.as_ptr(),
            name.as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    assert_eq!(rc, -1, "capabilities survived a write");
    assert_eq!(
        std::io::Error::last_os_error().raw_os_error(),
        Some(libc::ENODATA)
    );
    // A truncate by the owner.
    set(0o4755);
    as_nobody(&format!("truncate -s 3 {}", f.display()));
    assert_eq!(mode(&f), 0o755);
    assert_eq!(fs::metadata(&f).unwrap().len(), 3);
    // Root keeps them on write (CAP_FSETID) but not on chown.
    set(0o4755);
    OpenOptions::new()
        .append(true)
        .open(&f)
        .unwrap()
        .write_all(b"y")
        .unwrap();
    assert_eq!(mode(&f), 0o4755);
    std::os::unix::fs::chown(&f, Some(65534), None).unwrap();
    assert_eq!(mode(&f), 0o755);
    // Directories keep setgid on chown.
    let d = fx.root.join("d");
    fs::create_dir(&d).unwrap();
    fs::set_permissions(&d, fs::Permissions::from_mode(0o2775)).unwrap();
    std::os::unix::fs::chown(&d, Some(65534), Some(65534)).unwrap();
    assert_eq!(mode(&d), 0o2775);
}

#[test]
fn mounts_read_ahead_like_the_pools_disk() {
    // The kernel gives FUSE mounts 128 KiB; the daemon sets the pool disk's window (cold
    // sequential reads ran at half speed without it).
    let fx = Fixture::new();
    let dev = |p: &Path| {
        let d = fs::metadata(p).unwrap().dev();
        (libc::major(d), libc::minor(d))
    };
    let (pmaj, pmin) = dev(fx._pool.path());
    let disk = ["queue/", "../queue/"].iter().find_map(|rel| {
        fs::read_to_string(format!("/sys/dev/block/{pmaj}:{pmin}/{rel}read_ahead_kb"))
            .ok()
            .map(|v| v.trim().parse::<u64>().unwrap())
    });
    let want = disk.unwrap_or(4096).max(128);
    let (fmaj, fmin) = dev(&fx.root);
    let got: u64 = fs::read_to_string(format!("/sys/class/bdi/{fmaj}:{fmin}/read_ahead_kb"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_eq!(got, want);
}
