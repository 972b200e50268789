//! Opening a pool never destroys bytes it cannot account for: a missing, emptied, damaged
//! or older index and a deleted pack are refused with one line, pack bytes untouched; the
//! unfinished tail of the last run is set aside (not cut) and the pool opens. Everything
//! runs through the real binary: create, mount, write, shutdown, damage, start again.

mod common;

use std::collections::BTreeMap;
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::PathBuf;

use common::{Pool, bytes, is_mounted, wait_until, write_synced};

/// Every `*.pack` file: name -> (length, blake3).
fn packs(pool: &Pool) -> BTreeMap<String, (u64, String)> {
    let mut out = BTreeMap::new();
    for e in fs::read_dir(pool.path().join("packs")).unwrap() {
        let e = e.unwrap();
        let name = e.file_name().to_string_lossy().into_owned();
        if name.ends_with(".pack") {
            let data = fs::read(e.path()).unwrap();
            out.insert(
                name,
                (data.len() as u64, blake3::hash(&data).to_hex().to_string()),
            );
        }
    }
    out
}

/// The packs that held bytes before are all there, byte for byte.
fn assert_kept(pool: &Pool, before: &BTreeMap<String, (u64, String)>) {
    let now = packs(pool);
    for (name, v) in before.iter().filter(|(_, v)| v.0 > 0) {
        assert_eq!(now.get(name), Some(v), "pack {name} changed");
    }
}

struct Written {
    mnt: PathBuf,
    f: Vec<u8>,
    g: Vec<u8>,
    /// pool.redb as the first run left it.
    old_index: Vec<u8>,
}

/// Two daemon runs, each writing one file (so two packs), then a clean shutdown.
fn two_runs(pool: &mut Pool) -> Written {
    let mnt = pool.mnt();
    pool.ok(&["volume", "create", "v"]);
    pool.ok(&["mount", "v", mnt.to_str().unwrap()]);
    let f = bytes("f", 3_000_000);
    write_synced(&mnt.join("f"), &f);
    pool.ok(&["shutdown"]);
    let old_index = fs::read(pool.path().join("pool.redb")).unwrap();
    pool.ok(&["status"]);
    wait_until("the remembered mount", || is_mounted(&mnt));
    let g = bytes("g", 2_000_000);
    write_synced(&mnt.join("g"), &g);
    pool.ok(&["shutdown"]);
    Written {
        mnt,
        f,
        g,
        old_index,
    }
}

/// Starts the daemon again and checks both files through the remembered mount.
fn reopen_and_read(pool: &Pool, w: &Written) {
    pool.ok(&["status"]);
    wait_until("the remembered mount", || is_mounted(&w.mnt));
    assert!(fs::read(w.mnt.join("f")).unwrap() == w.f, "f differs");
    assert!(fs::read(w.mnt.join("g")).unwrap() == w.g, "g differs");
}

#[test]
fn missing_or_empty_index_is_refused_and_packs_are_kept() {
    let mut pool = Pool::new();
    let _w = two_runs(&mut pool);
    let before = packs(&pool);
    let db = pool.path().join("pool.redb");

    fs::File::create(&db).unwrap(); // truncate -s 0
    let err = pool.fails(&["status"], 1);
    assert!(err.contains("pool.redb is missing or empty"), "{err}");
    assert_eq!(fs::metadata(&db).unwrap().len(), 0, "no fresh index");
    assert_kept(&pool, &before);

    fs::remove_file(&db).unwrap();
    let err = pool.fails(&["status"], 1);
    assert!(err.contains("pool.redb is missing or empty"), "{err}");
    assert!(!db.exists(), "no fresh index is created beside packs");
    assert_kept(&pool, &before);
    let err = pool.fails(&["pool", "check"], 1);
    assert!(err.contains("would be refused"), "{err}");
}

#[test]
fn older_index_is_refused_until_its_unknown_bytes_are_set_aside() {
    let mut pool = Pool::new();
    let w = two_runs(&mut pool);
    let before = packs(&pool);
    fs::write(pool.path().join("pool.redb"), &w.old_index).unwrap();

    let err = pool.fails(&["status"], 1);
    assert!(err.contains("older than the packs"), "{err}");
    assert!(err.contains("00000002.pack"), "{err}");
    assert_kept(&pool, &before);

    // The explicit way out: move what the index does not know aside, open at the index.
    let out = pool.ok(&["pool", "check", "--set-aside"]);
    assert!(out.contains("moved to"), "{out}");
    pool.ok(&["status"]);
    wait_until("the remembered mount", || is_mounted(&w.mnt));
    assert!(fs::read(w.mnt.join("f")).unwrap() == w.f);
    assert!(!w.mnt.join("g").exists(), "g came after that index");
    let aside: Vec<_> = fs::read_dir(pool.path().join("packs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().contains("00000002.pack.unindexed-"))
        .collect();
    assert_eq!(aside.len(), 1, "{aside:?}");
    let kept = fs::read(&aside[0]).unwrap();
    assert_eq!(
        blake3::hash(&kept).to_hex().to_string(),
        before["00000002.pack"].1
    );
}

#[test]
fn a_zeroed_index_page_never_cuts_packs() {
    let mut pool = Pool::new();
    let w = two_runs(&mut pool);
    let before = packs(&pool);
    let db = pool.path().join("pool.redb");
    let good = fs::read(&db).unwrap();
    let pages: Vec<usize> = (0..good.len() / 4096)
        .filter(|&i| good[i * 4096..(i + 1) * 4096].iter().any(|&b| b != 0))
        .collect();
    assert!(!pages.is_empty());
    let (mut refused, mut opened) = (0, 0);
    for page in pages {
        let mut bad = good.clone();
        bad[page * 4096..(page + 1) * 4096].fill(0);
        fs::write(&db, &bad).unwrap();
        let o = pool.run(&["status"]);
        if o.status.success() {
            // It opened: what it serves must be the data, or an error, never other bytes.
            opened += 1;
            wait_until("the remembered mount", || is_mounted(&w.mnt));
            for (name, want) in [("f", &w.f), ("g", &w.g)] {
                if let Ok(got) = fs::read(w.mnt.join(name)) {
                    assert!(&got == want, "page {page}: {name} differs");
                }
            }
            pool.ok(&["shutdown"]);
        } else {
            refused += 1;
            let err = String::from_utf8_lossy(&o.stderr);
            assert_eq!(err.trim_end().lines().count(), 1, "page {page}: {err}");
        }
        assert_kept(&pool, &before);
    }
    eprintln!("zeroed pages: {refused} refused, {opened} opened");
}

#[test]
fn a_deleted_pack_is_refused_by_name() {
    let mut pool = Pool::new();
    let _w = two_runs(&mut pool);
    let before = packs(&pool);
    let out = pool.ok(&["pool", "check"]);
    assert!(out.contains("opens"), "{out}");
    let first = pool.path().join("packs/00000001.pack");
    fs::remove_file(&first).unwrap();
    let err = pool.fails(&["status"], 1);
    assert!(
        err.contains("pack 00000001.pack is missing: referenced by"),
        "{err}"
    );
    let o = pool.run(&["pool", "check"]);
    assert_eq!(o.status.code(), Some(1));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("problem: pack 00000001.pack is missing"),
        "{out}"
    );
    assert!(!first.exists(), "a new pack took the missing one's id");
    let mut rest = before.clone();
    rest.remove("00000001.pack");
    assert_kept(&pool, &rest);
}

#[test]
fn the_unfinished_tail_of_the_last_run_is_set_aside_and_the_pool_opens() {
    let mut pool = Pool::new();
    let w = two_runs(&mut pool);
    let before = packs(&pool);
    let newest = pool.path().join("packs/00000002.pack");
    let committed = before["00000002.pack"].0;
    let garbage = bytes("torn", 10_000);
    OpenOptions::new()
        .append(true)
        .open(&newest)
        .unwrap()
        .write_all(&garbage)
        .unwrap();

    reopen_and_read(&pool, &w);
    let tails: Vec<_> = fs::read_dir(pool.path().join("packs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().contains("00000002.pack.tail-"))
        .collect();
    assert_eq!(tails.len(), 1, "the tail is kept aside: {tails:?}");
    let tail = fs::read(&tails[0]).unwrap();
    assert!(!tail.is_empty() && garbage.ends_with(&tail));
    let cut = fs::metadata(&newest).unwrap().len();
    assert!(cut >= committed && cut + tail.len() as u64 == committed + 10_000);
    pool.ok(&["shutdown"]);

    // Bytes past the end of a pack the last run did not append to are not a torn tail.
    let before = packs(&pool);
    OpenOptions::new()
        .append(true)
        .open(pool.path().join("packs/00000001.pack"))
        .unwrap()
        .write_all(&garbage)
        .unwrap();
    let mut after = packs(&pool);
    let err = pool.fails(&["status"], 1);
    assert!(
        err.contains("00000001.pack holds") && err.contains("older than the packs"),
        "{err}"
    );
    after.retain(|k, _| before.contains_key(k));
    assert_kept(&pool, &after);
}
