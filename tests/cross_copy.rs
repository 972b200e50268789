//! `tandem cp`: an instant copy between volumes (the kernel answers copy_file_range between
//! two mounts with EXDEV, so `cp` copies the bytes). Blocks are shared, not copied: a copy
//! of blocks stored as patches adds nothing, where a copy of the bytes would store each
//! merged; the copy reads back identical, shows through the kernel at once (also over a
//! name it had looked up and over a file it had cached), and a tree copies with -r.

use std::fs::{self, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::PathBuf;

mod common;
use common::*;

/// Block size of a volume created with the defaults.
const BS: u64 = 128 << 10;

#[test]
fn a_copy_across_volumes_shares_blocks_and_reads_back_identical() {
    let (p, mv, mw) = mounted_two();
    let len = (64u64 << 20) + 12345;
    let mut want = bytes("cross", len as usize);
    write_synced(&mv.join("a"), &want);
    // Small writes into 64 blocks: those are stored as patches. A copy of the bytes would
    // store each block merged (8 MiB more); a shared copy stores nothing.
    let a = OpenOptions::new().write(true).open(mv.join("a")).unwrap();
    for k in 0..64u64 {
        let at = k * 4 * BS + 1000;
        a.write_all_at(&[k as u8; 4096], at).unwrap();
        want[at as usize..at as usize + 4096].fill(k as u8);
    }
    drop(a);
    // The kernel looks the name up first: a cached "no such file" must not hide the copy.
    assert!(fs::metadata(mw.join("b")).is_err());
    let before = physical(&p);
    let out = json(
        &p,
        &[
            "cp",
            mv.join("a").to_str().unwrap(),
            mw.to_str().unwrap(),
            "--json",
        ],
    );
    assert_eq!(out["bytes"], len, "{out}");
    assert_eq!(out["files"], 1, "{out}");
    assert!(out["shared_bytes"].as_u64().unwrap() >= len - BS, "{out}");
    assert_eq!(out["dst"], mw.join("a").to_str().unwrap(), "{out}");
    let grown = physical(&p).saturating_sub(before);
    assert!(
        grown < 1 << 20,
        "a 64 MiB copy added {grown} physical bytes"
    );
    assert!(
        fs::read(mw.join("a")).unwrap() == want,
        "the copy reads back different"
    );

    // Onto a file the kernel has cached: truncated, copied, and read back new.
    fs::write(mw.join("b"), b"old contents").unwrap();
    assert_eq!(fs::read(mw.join("b")).unwrap(), b"old contents");
    let text = p.ok(&[
        "cp",
        mv.join("a").to_str().unwrap(),
        mw.join("b").to_str().unwrap(),
    ]);
    assert!(text.starts_with("copied "), "{text}");
    assert!(fs::read(mw.join("b")).unwrap() == want);
    // The source changes; the copies do not.
    fs::write(mv.join("a"), b"short").unwrap();
    assert!(fs::read(mw.join("a")).unwrap() == want);
}

#[test]
fn a_tree_copies_with_r_and_wrong_paths_are_refused() {
    let (p, mv, mw) = mounted_two();
    fs::create_dir_all(mv.join("t/sub")).unwrap();
    fs::write(mv.join("t/one"), bytes("one", 300_000)).unwrap();
    fs::write(mv.join("t/sub/two"), b"two").unwrap();
    std::os::unix::fs::symlink("one", mv.join("t/link")).unwrap();
    let e = p.fails(
        &["cp", mv.join("t").to_str().unwrap(), mw.to_str().unwrap()],
        1,
    );
    assert!(e.contains("tandem cp -r"), "{e}");
    let out = json(
        &p,
        &[
            "cp",
            "-r",
            mv.join("t").to_str().unwrap(),
            mw.join("copy").to_str().unwrap(),
            "--json",
        ],
    );
    assert_eq!(out["files"], 2, "{out}");
    assert_eq!(
        fs::read(mw.join("copy/one")).unwrap(),
        bytes("one", 300_000)
    );
    assert_eq!(fs::read(mw.join("copy/sub/two")).unwrap(), b"two");
    assert_eq!(
        fs::read_link(mw.join("copy/link")).unwrap(),
        PathBuf::from("one")
    );
    // Not on a tandem mount: one line naming the path and the way out.
    let outside = p.path().join("outside");
    fs::write(&outside, b"x").unwrap();
    let e = p.fails(&["cp", outside.to_str().unwrap(), mw.to_str().unwrap()], 1);
    assert!(e.contains("not on a tandem mount"), "{e}");
}
