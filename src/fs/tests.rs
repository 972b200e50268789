//! Unit tests of the filesystem model over a real pool in a temporary directory.

use super::*;
use crate::store::rows::View;

pub(super) const ROOT: InodeNo = InodeNo::ROOT;
pub(super) const CTX: Ctx = Ctx {
    uid: 1000,
    gid: 1000,
    umask: 0,
};

pub(super) fn engine() -> (tempfile::TempDir, Engine, VolumeId) {
    let dir = tempfile::tempdir().unwrap();
    let e = Engine::open(dir.path()).unwrap();
    let v = e.create_volume("v", Some(4096), Ctx::default()).unwrap().id;
    (dir, e, v)
}

/// An engine with one volume of 4 KiB blocks and a file `f` of `mode` in its root.
/// Names and inode numbers of `dir` as `view` shows it, sorted by name.
pub(super) fn listing(
    e: &Engine,
    v: VolumeId,
    view: View,
    dir: InodeNo,
) -> Vec<(Vec<u8>, InodeNo)> {
    let mut out: Vec<_> = e
        .readdir(v, view, dir, 0, 10_000)
        .unwrap()
        .into_iter()
        .filter(|d| d.name != b"." && d.name != b"..")
        .map(|d| (d.name, d.ino))
        .collect();
    out.sort();
    out
}

pub(crate) fn engine_with_file(mode: u32) -> (tempfile::TempDir, Engine, VolumeId, InodeNo) {
    let (dir, e, v) = engine();
    let f = e
        .create(v, InodeNo::ROOT, b"f", mode, Ctx::default())
        .unwrap()
        .ino;
    (dir, e, v, f)
}

fn errno<T: std::fmt::Debug>(r: Result<T, FsError>) -> i32 {
    r.expect_err("expected an error").errno()
}

#[test]
fn create_write_read_stat() {
    let (_d, e, v) = engine();
    let f = e.create(v, ROOT, b"a", 0o644, CTX).unwrap();
    assert_eq!(f.kind, FileKind::File);
    assert_eq!((f.uid, f.gid, f.perm), (1000, 1000, 0o644));
    assert_eq!(e.write(v, f.ino, 0, b"hello").unwrap(), 5);
    assert_eq!(e.getattr(v, View::Live, f.ino).unwrap().size, 5);
    assert_eq!(e.read(v, View::Live, f.ino, 0, 100).unwrap(), b"hello");
    e.fsync(v, f.ino).unwrap();
    assert_eq!(e.read(v, View::Live, f.ino, 1, 3).unwrap(), b"ell");
    assert_eq!(e.lookup(v, View::Live, ROOT, b"a").unwrap().ino, f.ino);
    assert_eq!(errno(e.lookup(v, View::Live, ROOT, b"b")), libc::ENOENT);
    assert_eq!(errno(e.create(v, ROOT, b"a", 0o644, CTX)), libc::EEXIST);
    assert_eq!(
        errno(e.create(v, ROOT, &[b'x'; 256], 0o644, CTX)),
        libc::ENAMETOOLONG
    );
}

#[test]
fn sparse_and_large_offsets() {
    let (_d, e, v) = engine();
    let f = e.create(v, ROOT, b"s", 0o644, CTX).unwrap().ino;
    let tib = 1u64 << 40;
    e.write(v, f, tib - 3, b"end").unwrap();
    e.fsync(v, f).unwrap();
    let a = e.getattr(v, View::Live, f).unwrap();
    assert_eq!(a.size, tib);
    assert!(a.blocks <= 16, "a sparse file stores only what was written");
    assert_eq!(e.read(v, View::Live, f, 0, 8).unwrap(), vec![0u8; 8]);
    assert_eq!(e.read(v, View::Live, f, tib - 3, 10).unwrap(), b"end");
    assert_eq!(errno(e.write(v, f, MAX_FILE_SIZE, b"x")), libc::EFBIG);
}

#[test]
fn truncate_both_ways_zeroes_the_tail() {
    let (_d, e, v) = engine();
    let f = e.create(v, ROOT, b"t", 0o644, CTX).unwrap().ino;
    e.write(v, f, 0, &[7u8; 10000]).unwrap();
    e.setattr(
        v,
        f,
        SetAttr {
            size: Some(5000),
            ..Default::default()
        },
    )
    .unwrap();
    e.setattr(
        v,
        f,
        SetAttr {
            size: Some(9000),
            ..Default::default()
        },
    )
    .unwrap();
    let data = e.read(v, View::Live, f, 0, 20000).unwrap();
    assert_eq!(data.len(), 9000);
    assert!(data[..5000].iter().all(|&b| b == 7));
    assert!(
        data[5000..].iter().all(|&b| b == 0),
        "bytes past a truncate read as zero"
    );
}

#[test]
fn directories_links_and_rename() {
    let (_d, e, v) = engine();
    let d = e.mkdir(v, ROOT, b"d", 0o755, CTX).unwrap();
    assert_eq!(d.nlink, 2);
    assert_eq!(e.getattr(v, View::Live, ROOT).unwrap().nlink, 3);
    let f = e.create(v, d.ino, b"f", 0o600, CTX).unwrap();
    let l = e.link(v, f.ino, ROOT, b"hard").unwrap();
    assert_eq!(l.nlink, 2);
    assert_eq!(errno(e.rmdir(v, ROOT, b"d")), libc::ENOTEMPTY);
    assert_eq!(errno(e.unlink(v, ROOT, b"d")), libc::EISDIR);
    assert_eq!(errno(e.rmdir(v, ROOT, b"hard")), libc::ENOTDIR);
    assert_eq!(errno(e.link(v, d.ino, ROOT, b"dl")), libc::EPERM);
    // Moving a directory into its own subtree is refused.
    let sub = e.mkdir(v, d.ino, b"sub", 0o755, CTX).unwrap();
    assert_eq!(
        errno(e.rename(v, ROOT, b"d", sub.ino, b"x", RenameFlags::default())),
        libc::EINVAL
    );
    // Rename across directories fixes the link counts.
    e.rename(v, d.ino, b"sub", ROOT, b"sub2", RenameFlags::default())
        .unwrap();
    assert_eq!(e.getattr(v, View::Live, d.ino).unwrap().nlink, 2);
    assert_eq!(e.getattr(v, View::Live, ROOT).unwrap().nlink, 4);
    // NOREPLACE and EXCHANGE.
    let flags = RenameFlags {
        noreplace: true,
        exchange: false,
    };
    assert_eq!(
        errno(e.rename(v, ROOT, b"hard", ROOT, b"sub2", flags)),
        libc::EEXIST
    );
    let x = RenameFlags {
        noreplace: false,
        exchange: true,
    };
    e.rename(v, ROOT, b"hard", ROOT, b"sub2", x).unwrap();
    assert_eq!(
        e.lookup(v, View::Live, ROOT, b"hard").unwrap().kind,
        FileKind::Dir
    );
    assert_eq!(e.lookup(v, View::Live, ROOT, b"sub2").unwrap().ino, f.ino);
    e.unlink(v, ROOT, b"sub2").unwrap();
    assert_eq!(e.getattr(v, View::Live, f.ino).unwrap().nlink, 1);
}

#[test]
fn readdir_offsets_survive_changes() {
    let (_d, e, v) = engine();
    for i in 0..50 {
        e.create(v, ROOT, format!("f{i}").as_bytes(), 0o644, CTX)
            .unwrap();
    }
    let first = e.readdir(v, View::Live, ROOT, 0, 12).unwrap();
    assert_eq!(first.len(), 12);
    assert_eq!(first[0].name, b".");
    assert_eq!(first[1].name, b"..");
    // Delete an entry already returned and one not yet returned, add one.
    e.unlink(v, ROOT, &first[5].name).unwrap();
    e.create(v, ROOT, b"new", 0o644, CTX).unwrap();
    let mut seen: Vec<Vec<u8>> = first.iter().map(|d| d.name.clone()).collect();
    let mut off = first.last().unwrap().offset;
    loop {
        let more = e.readdir(v, View::Live, ROOT, off, 7).unwrap();
        if more.is_empty() {
            break;
        }
        off = more.last().unwrap().offset;
        seen.extend(more.into_iter().map(|d| d.name));
    }
    for i in 0..50 {
        let n = format!("f{i}").into_bytes();
        if n != first[5].name {
            assert_eq!(
                seen.iter().filter(|s| **s == n).count(),
                1,
                "entry {i} seen exactly once"
            );
        }
    }
}

#[test]
fn xattrs_with_flags() {
    let (_d, e, v) = engine();
    let f = e.create(v, ROOT, b"x", 0o644, CTX).unwrap().ino;
    e.setxattr(v, f, b"user.a", b"1", XattrMode::Create)
        .unwrap();
    assert_eq!(
        errno(e.setxattr(v, f, b"user.a", b"2", XattrMode::Create)),
        libc::EEXIST
    );
    assert_eq!(
        errno(e.setxattr(v, f, b"user.b", b"2", XattrMode::Replace)),
        libc::ENODATA
    );
    e.setxattr(v, f, b"user.a", b"3", XattrMode::Replace)
        .unwrap();
    assert_eq!(e.getxattr(v, View::Live, f, b"user.a").unwrap(), b"3");
    assert_eq!(
        e.listxattr(v, View::Live, f).unwrap(),
        vec![b"user.a".to_vec()]
    );
    e.removexattr(v, f, b"user.a").unwrap();
    assert_eq!(
        errno(e.getxattr(v, View::Live, f, b"user.a")),
        libc::ENODATA
    );
    assert_eq!(errno(e.removexattr(v, f, b"user.a")), libc::ENODATA);
}

#[test]
fn special_files_and_symlinks() {
    let (_d, e, v) = engine();
    let fifo = e
        .mknod(v, ROOT, b"p", libc::S_IFIFO | 0o644, 0, CTX)
        .unwrap();
    assert_eq!(fifo.kind, FileKind::Fifo);
    let dev = e
        .mknod(v, ROOT, b"c", libc::S_IFCHR | 0o600, 0x0103, CTX)
        .unwrap();
    assert_eq!((dev.kind, dev.rdev), (FileKind::CharDev, 0x0103));
    let s = e.symlink(v, ROOT, b"l", b"/some/where", CTX).unwrap();
    assert_eq!(s.size, 11);
    assert_eq!(e.readlink(v, View::Live, s.ino).unwrap(), b"/some/where");
    assert_eq!(
        errno(e.symlink(v, ROOT, b"m", &[b'a'; 5000], CTX)),
        libc::ENAMETOOLONG
    );
}

#[test]
fn dedup_and_space_reclaim() {
    let (_d, e, v) = engine();
    let data: Vec<u8> = (0..64 * 1024).map(|i| (i % 251) as u8).collect();
    let a = e.create(v, ROOT, b"a", 0o644, CTX).unwrap().ino;
    let b = e.create(v, ROOT, b"b", 0o644, CTX).unwrap().ino;
    e.write(v, a, 0, &data).unwrap();
    e.write(v, b, 0, &data).unwrap();
    let s = e.pool_stats().unwrap();
    assert_eq!(
        s.physical_bytes,
        64 * 1024,
        "identical blocks are stored once"
    );
    assert_eq!(s.referenced_bytes, 128 * 1024);
    assert!((s.dedup_ratio() - 2.0).abs() < 1e-9);
    e.unlink(v, ROOT, b"a").unwrap();
    e.unlink(v, ROOT, b"b").unwrap();
    let s = e.pool_stats().unwrap();
    assert_eq!(
        (s.physical_bytes, s.referenced_bytes),
        (0, 0),
        "unreferenced chunks are freed"
    );
    let info = e.volume_info("v").unwrap();
    assert_eq!(
        (info.files, info.logical_bytes, info.physical_bytes),
        (1, 0, 0)
    );
}

#[test]
fn snapshot_view_keeps_old_state_and_costs_o_volumes() {
    let (_d, e, v) = engine();
    let f = e.create(v, ROOT, b"f", 0o644, CTX).unwrap().ino;
    e.write(v, f, 0, b"before").unwrap();
    let snaps = e.snapshot_generations(&[v]).unwrap();
    let g = snaps[0].1;
    e.write(v, f, 0, b"AFTER!").unwrap();
    e.create(v, ROOT, b"new", 0o644, CTX).unwrap();
    e.unlink(v, ROOT, b"f").unwrap();
    let at = View::At(g);
    assert_eq!(e.read(v, at, f, 0, 100).unwrap(), b"before");
    assert_eq!(e.lookup(v, at, ROOT, b"f").unwrap().ino, f);
    assert_eq!(errno(e.lookup(v, at, ROOT, b"new")), libc::ENOENT);
    assert_eq!(errno(e.lookup(v, View::Live, ROOT, b"f")), libc::ENOENT);
    // Releasing the snapshot frees what only it held.
    e.release_generation(v, g).unwrap();
    let s = e.pool_stats().unwrap();
    assert_eq!(s.physical_bytes, 0);
}

#[test]
fn link_checks_the_new_name_before_the_source() {
    // Linux order: ENOTDIR/EEXIST of the new name come before EPERM for a directory source.
    let (_d, e, v) = engine();
    let d = e.mkdir(v, ROOT, b"d", 0o755, CTX).unwrap().ino;
    let g = e.create(v, ROOT, b"g", 0o644, CTX).unwrap().ino;
    assert_eq!(errno(e.link(v, d, ROOT, b"g")), libc::EEXIST);
    assert_eq!(errno(e.link(v, d, g, b"x")), libc::ENOTDIR);
    assert_eq!(errno(e.link(v, d, ROOT, b"new")), libc::EPERM);
}

#[test]
fn rename_onto_an_ancestor_is_enotempty() {
    // rename("d/f", "d") and rename("d/s/f", "d"): the target contains the source.
    let (_d, e, v) = engine();
    let d = e.mkdir(v, ROOT, b"d", 0o755, CTX).unwrap().ino;
    let s = e.mkdir(v, d, b"s", 0o755, CTX).unwrap().ino;
    e.create(v, d, b"f", 0o644, CTX).unwrap();
    e.create(v, s, b"f", 0o644, CTX).unwrap();
    let plain = RenameFlags::default();
    assert_eq!(
        errno(e.rename(v, d, b"f", ROOT, b"d", plain)),
        libc::ENOTEMPTY
    );
    assert_eq!(
        errno(e.rename(v, s, b"f", ROOT, b"d", plain)),
        libc::ENOTEMPTY
    );
    assert_eq!(
        errno(e.rename(v, d, b"s", ROOT, b"d", plain)),
        libc::ENOTEMPTY
    );
    let x = RenameFlags {
        noreplace: false,
        exchange: true,
    };
    assert_eq!(errno(e.rename(v, d, b"f", ROOT, b"d", x)), libc::EINVAL);
}

#[test]
fn empty_xattr_name_is_erange() {
    let (_d, e, v) = engine();
    let f = e.create(v, ROOT, b"x", 0o644, CTX).unwrap().ino;
    assert_eq!(
        errno(e.setxattr(v, f, b"", b"v", XattrMode::Any)),
        libc::ERANGE
    );
    assert_eq!(errno(e.getxattr(v, View::Live, f, b"")), libc::ERANGE);
    assert_eq!(errno(e.removexattr(v, f, b"")), libc::ERANGE);
}

#[test]
fn attributes_never_miss_a_concurrent_flush() {
    // A flush commits a file's size and drops its buffer; getattr and link read the committed
    // inode before such a flush and the (then empty) buffer after it: a stale size.
    let (_d, e, v) = engine();
    let f = e.create(v, ROOT, b"f", 0o644, CTX).unwrap().ino;
    let done = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|s| {
        s.spawn(|| {
            for i in 1..=2000u64 {
                e.write(v, f, i - 1, b"x").unwrap();
                e.flush_inode(v, f).unwrap();
            }
            done.store(true, std::sync::atomic::Ordering::SeqCst);
        });
        let (mut last, mut n) = (0, 0u64);
        while !done.load(std::sync::atomic::Ordering::SeqCst) {
            n += 1;
            // link returns the attributes too, from the same committed-plus-buffered state.
            let (op, size) = if n % 2 == 0 {
                ("getattr", e.getattr(v, View::Live, f).unwrap().size)
            } else {
                let a = e.link(v, f, ROOT, b"l").unwrap();
                e.unlink(v, ROOT, b"l").unwrap();
                ("link", a.size)
            };
            assert!(size >= last, "{op} went back from {last} to {size}");
            last = size;
        }
    });
}

#[test]
fn unlink_is_visible_before_its_commit_and_lands_in_the_next_snapshot() {
    let (_d, e, v) = engine();
    let dir = e.mkdir(v, ROOT, b"d", 0o755, CTX).unwrap().ino;
    let a = e.create(v, dir, b"a", 0o644, CTX).unwrap().ino;
    e.link(v, a, dir, b"b").unwrap();
    e.create(v, dir, b"c", 0o644, CTX).unwrap();
    let before = e.getattr(v, View::Live, dir).unwrap().mtime;
    std::thread::sleep(std::time::Duration::from_millis(2));
    for _ in 0..50 {
        // Answered before the commit: every read already sees it.
        e.unlink(v, dir, b"b").unwrap();
        assert_eq!(errno(e.lookup(v, View::Live, dir, b"b")), libc::ENOENT);
        assert_eq!(errno(e.unlink(v, dir, b"b")), libc::ENOENT);
        assert_eq!(e.getattr(v, View::Live, a).unwrap().nlink, 1);
        assert_eq!(e.lookup(v, View::Live, dir, b"a").unwrap().nlink, 1);
        let names: Vec<Vec<u8>> = e
            .readdir(v, View::Live, dir, 0, 100)
            .unwrap()
            .into_iter()
            .map(|d| d.name)
            .collect();
        assert_eq!(names.len(), 4, "., .., a, c: {names:?}");
        assert!(!names.contains(&b"b".to_vec()));
        assert!(e.getattr(v, View::Live, dir).unwrap().mtime > before);
        // A later mutation sees it committed.
        e.link(v, a, dir, b"b").unwrap();
        assert_eq!(e.getattr(v, View::Live, a).unwrap().nlink, 2);
    }
    assert_eq!(errno(e.unlink(v, dir, b"missing")), libc::ENOENT);
    assert_eq!(errno(e.unlink(v, ROOT, b"d")), libc::EISDIR);
    // A snapshot taken right after an unlink holds it.
    e.unlink(v, dir, b"c").unwrap();
    let g = e.snapshot_generations(&[v]).unwrap()[0].1;
    assert_eq!(errno(e.lookup(v, View::At(g), dir, b"c")), libc::ENOENT);
    assert_eq!(e.lookup(v, View::At(g), dir, b"b").unwrap().nlink, 2);
    // rm -rf: the directory is empty once its last name is unlinked.
    e.unlink(v, dir, b"a").unwrap();
    e.unlink(v, dir, b"b").unwrap();
    e.rmdir(v, ROOT, b"d").unwrap();
    assert_eq!(e.volume_info("v").unwrap().files, 1);
}

#[test]
fn readers_never_see_an_unlink_twice_or_not_at_all() {
    // Readers race the write-behind commit: the link count of a file with two names must
    // read 2 before the unlink and 1 after it, never 0 (counted twice) and never 2 once
    // the unlink has returned (counted nowhere).
    let (_d, e, v) = engine();
    let e = std::sync::Arc::new(e);
    let a = e.create(v, ROOT, b"a", 0o644, CTX).unwrap().ino;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let (e, stop) = (e.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut n = 0u64;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let nlink = e.getattr(v, View::Live, a).unwrap().nlink;
                    assert!(nlink == 1 || nlink == 2, "nlink {nlink}");
                    n += 1;
                }
                n
            })
        })
        .collect();
    for _ in 0..2000 {
        e.link(v, a, ROOT, b"b").unwrap();
        e.unlink(v, ROOT, b"b").unwrap();
        assert_eq!(e.getattr(v, View::Live, a).unwrap().nlink, 1);
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for r in readers {
        assert!(r.join().unwrap() > 0);
    }
}

/// Bytes appended to the pool's pack files so far (punched holes keep a file's length).
fn pack_bytes(pool: &std::path::Path) -> u64 {
    std::fs::read_dir(pool.join("packs"))
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum()
}

#[test]
fn small_writes_into_large_blocks_store_what_they_wrote() {
    const BS: u64 = 128 << 10;
    const PAGE: usize = 4096;
    let dir = tempfile::tempdir().unwrap();
    let e = Engine::open(dir.path()).unwrap();
    let v = e.create_volume("db", Some(BS), Ctx::default()).unwrap().id;
    let f = e.create(v, ROOT, b"t", 0o644, CTX).unwrap().ino;
    let mut model: Vec<u8> = (0..8 * BS as u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8 | 1)
        .collect();
    e.write(v, f, 0, &model).unwrap();
    e.flush_volume(v).unwrap();
    let write = |e: &Engine, model: &mut Vec<u8>, off: usize, seed: u8| {
        let page: Vec<u8> = (0..PAGE)
            .map(|i| (i as u8).wrapping_mul(seed) | 1)
            .collect();
        e.write(v, f, off as u64, &page).unwrap();
        model[off..off + PAGE].copy_from_slice(&page);
    };

    // One page into each of the 8 blocks: 8 pages reach the packs, not 8 blocks.
    let before = pack_bytes(dir.path());
    for b in 0..8 {
        write(
            &e,
            &mut model,
            b * BS as usize + (b + 1) * 8192,
            3 + b as u8,
        );
    }
    e.flush_volume(v).unwrap();
    let grown = pack_bytes(dir.path()) - before;
    assert_eq!(grown, 8 * PAGE as u64, "a small write stores what it wrote");
    let stored = |e: &Engine| e.volume_info("db").unwrap().physical_bytes;
    assert_eq!(
        stored(&e),
        8 * BS + 8 * PAGE as u64,
        "each block: its base and one patch"
    );
    assert_eq!(e.read(v, View::Live, f, 0, 8 * BS as u32).unwrap(), model);

    // A page rewritten replaces its patch; past the patch bound the block is whole again.
    write(&e, &mut model, 8192, 99);
    e.flush_volume(v).unwrap();
    assert_eq!(
        stored(&e),
        8 * BS + 8 * PAGE as u64,
        "the covered patch was dropped"
    );
    assert_eq!(
        e.pool_stats().unwrap().referenced_bytes,
        stored(&e),
        "and its chunk released"
    );
    for i in 0..20 {
        write(&e, &mut model, i * 6000, 7 + i as u8);
        e.flush_volume(v).unwrap();
        assert_eq!(e.read(v, View::Live, f, 0, 8 * BS as u32).unwrap(), model);
    }
    let s = stored(&e);
    assert!(
        s < 8 * BS + 8 * PAGE as u64 + 16 * PAGE as u64,
        "block 0 was folded back into one chunk ({s} bytes stored)"
    );
    drop(e);
    let e = Engine::open(dir.path()).unwrap();
    assert_eq!(e.read(v, View::Live, f, 0, 8 * BS as u32).unwrap(), model);
    assert_eq!(e.volume_info("db").unwrap().physical_bytes, s);
    e.unlink(v, ROOT, b"t").unwrap();
    let p = e.pool_stats().unwrap();
    assert_eq!(
        (p.physical_bytes, p.referenced_bytes),
        (0, 0),
        "no chunk leaked"
    );
}

#[test]
fn writes_during_a_flush_stay_buffered_and_are_never_lost() {
    const BS: u64 = 16 << 10;
    const PAGE: usize = 4096;
    const PAGES: usize = 64;
    let dir = tempfile::tempdir().unwrap();
    let e = Engine::open(dir.path()).unwrap();
    let v = e.create_volume("db", Some(BS), Ctx::default()).unwrap().id;
    let f = e.create(v, ROOT, b"t", 0o644, CTX).unwrap().ino;
    let page = |serial: u32| -> Vec<u8> {
        (0..PAGE as u32)
            .map(|i| (i.wrapping_mul(31) ^ serial.wrapping_mul(2_654_435_761)) as u8 | 1)
            .collect()
    };
    // Every page written once first: the file's size stays put.
    let mut model: Vec<u8> = (0..PAGES as u32)
        .flat_map(|p| page(1_000_000 + p))
        .collect();
    e.write(v, f, 0, &model).unwrap();
    let done = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|s| {
        // Whole-volume flushes let go of the buffer lock while they hash and commit.
        s.spawn(|| {
            while !done.load(std::sync::atomic::Ordering::Acquire) {
                e.flush_volume(v).unwrap();
            }
        });
        // Stops the flushing thread even when an assertion below fails.
        struct Done<'a>(&'a std::sync::atomic::AtomicBool);
        impl Drop for Done<'_> {
            fn drop(&mut self) {
                self.0.store(true, std::sync::atomic::Ordering::Release);
            }
        }
        let _done = Done(&done);
        let mut x = 7u32;
        for serial in 0..3000u32 {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            let p = x as usize % PAGES;
            let bytes = page(serial);
            e.write(v, f, (p * PAGE) as u64, &bytes).unwrap();
            model[p * PAGE..(p + 1) * PAGE].copy_from_slice(&bytes);
            if serial % 97 == 0 {
                let got = e.read(v, View::Live, f, 0, model.len() as u32).unwrap();
                if let Some(at) = (0..model.len()).find(|&i| got[i] != model[i]) {
                    panic!(
                        "after write {serial}: byte {at} (page {}) differs",
                        at / PAGE
                    );
                }
            }
        }
    });
    assert_eq!(
        e.read(v, View::Live, f, 0, model.len() as u32).unwrap(),
        model
    );
    e.flush_volume(v).unwrap();
    drop(e);
    let e = Engine::open(dir.path()).unwrap();
    assert_eq!(
        e.read(v, View::Live, f, 0, model.len() as u32).unwrap(),
        model
    );
}
