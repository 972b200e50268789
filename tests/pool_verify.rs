//! `tandem pool verify` re-reads every chunk and names each damaged file by volume and path,
//! telling the live file from versions only snapshots keep; it exits 1 when anything is wrong.

mod common;

use std::fs;
use std::os::unix::fs::FileExt;

use common::{Pool, bytes, write_synced};

/// Flips one byte of the stored copy of `data`'s first block in the pool's packs.
fn damage(pool: &Pool, data: &[u8]) {
    let needle = &data[..64];
    for e in fs::read_dir(pool.path().join("packs")).unwrap() {
        let path = e.unwrap().path();
        if !path.to_string_lossy().ends_with(".pack") {
            continue;
        }
        let pack = fs::read(&path).unwrap();
        if let Some(at) = pack.windows(64).position(|w| w == needle) {
            let f = fs::OpenOptions::new().write(true).open(&path).unwrap();
            f.write_all_at(&[pack[at + 10] ^ 0xff], (at + 10) as u64)
                .unwrap();
            f.sync_all().unwrap();
            return;
        }
    }
    panic!("the data is not in any pack");
}

#[test]
fn damaged_files_are_named_by_volume_and_path() {
    let mut p = Pool::new();
    let mnt = p.mnt();
    p.ok(&["volume", "create", "v"]);
    p.ok(&["mount", "v", mnt.to_str().unwrap()]);
    fs::create_dir(mnt.join("dir")).unwrap();
    let a = bytes("a", 300_000);
    let old_b = bytes("old b", 200_000);
    write_synced(&mnt.join("a"), &a);
    write_synced(&mnt.join("dir/b"), &old_b);
    write_synced(&mnt.join("c"), &bytes("c", 100_000));
    p.ok(&["snapshot", "create", "s1", "v"]);
    write_synced(&mnt.join("dir/b"), &bytes("new b", 200_000));
    p.ok(&["snapshot", "create", "s2", "v"]);

    let out = p.ok(&["pool", "verify"]);
    assert!(out.contains("verified"), "{out}");
    let json: serde_json::Value =
        serde_json::from_str(&p.ok(&["pool", "verify", "--json"])).unwrap();
    assert!(json["damaged"].as_array().unwrap().is_empty(), "{json}");
    assert!(json["chunks"].as_u64().unwrap() > 0);

    damage(&p, &a);
    damage(&p, &old_b);
    let o = p.run(&["pool", "verify"]);
    assert_eq!(o.status.code(), Some(1));
    let out = String::from_utf8_lossy(&o.stdout);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("2 damaged files"), "{err}");
    assert!(out.contains("damaged: v:/a (the live file)"), "{out}");
    assert!(
        out.contains("damaged: v:/dir/b (only versions kept for snapshots"),
        "{out}"
    );
    assert!(!out.contains("v:/c"), "{out}");
    let o = p.run(&["pool", "verify", "--json"]);
    assert_eq!(o.status.code(), Some(1));
    let json: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(json["damaged"].as_array().unwrap().len(), 2, "{json}");
    assert_eq!(json["bad_chunks"].as_array().unwrap().len(), 2, "{json}");
}
