//! The snapshot primitive's cost does not depend on what a volume holds: recording a
//! snapshot writes the same rows for a volume of 10 files as for one of 10,000, and a group
//! of volumes is recorded in one transaction. Listing what changed between two generations
//! costs what changed, not what the volume holds.

use tandem::fs::{Ctx, Engine, SetAttr};
use tandem::store::keys::RowId;
use tandem::store::rows::View;
use tandem::store::{ReadView, StoreError};
use tandem::types::{Generation, InodeNo, VolumeId};

const ROOT: InodeNo = InodeNo::ROOT;
const CTX: Ctx = Ctx {
    uid: 1000,
    gid: 1000,
    umask: 0,
};

fn engine() -> (tempfile::TempDir, Engine) {
    let dir = tempfile::tempdir().expect("tempdir");
    let e = Engine::open(dir.path()).expect("open pool");
    (dir, e)
}

/// A volume with `n` files named f0, f1, ...; every tenth holds a little data.
fn volume_with_files(e: &Engine, name: &str, n: usize) -> (VolumeId, Vec<InodeNo>) {
    let v = e
        .create_volume(name, Some(4096), CTX)
        .expect("create volume")
        .id;
    let mut inos = Vec::with_capacity(n);
    for i in 0..n {
        let ino = e
            .create(v, ROOT, format!("f{i}").as_bytes(), 0o644, CTX)
            .expect("create")
            .ino;
        if i % 10 == 0 {
            e.write(v, ino, 0, format!("file {i} of {name}").as_bytes())
                .expect("write");
        }
        inos.push(ino);
    }
    e.commit_all().expect("commit");
    (v, inos)
}

struct Cost {
    /// Rows the transaction wrote (Tx::rows_written: rows, changes, volumes, snap_gens).
    rows_written: u64,
    /// Change in the length of the `rows` table.
    rows_table_delta: i64,
    /// Length of the `rows` table before.
    rows_table: u64,
    gens: Vec<(VolumeId, Generation)>,
}

/// Records a snapshot of `vols` in one write transaction and measures what it wrote.
fn snapshot(e: &Engine, vols: &[VolumeId]) -> Cost {
    for &v in vols {
        e.flush_volume(v).expect("flush");
    }
    let vols = vols.to_vec();
    e.store()
        .write(true, move |tx| {
            let before = tx.rows_written();
            let rows_table = tx.row_count()?;
            let gens = tx.snapshot_generations(&vols)?;
            Ok::<_, StoreError>(Cost {
                rows_written: tx.rows_written() - before,
                rows_table_delta: tx.row_count()? as i64 - rows_table as i64,
                rows_table,
                gens,
            })
        })
        .expect("snapshot")
}

#[test]
fn snapshot_cost_does_not_depend_on_volume_size() {
    let (_d, e) = engine();
    let (small, _) = volume_with_files(&e, "small", 10);
    let (big, big_inos) = volume_with_files(&e, "big", 10_000);

    let s = snapshot(&e, &[small]);
    let b = snapshot(&e, &[big]);
    eprintln!(
        "snapshot of 10 files: {} rows written, rows table {:+}; of 10,000 files ({} rows): {} rows written, rows table {:+}",
        s.rows_written, s.rows_table_delta, b.rows_table, b.rows_written, b.rows_table_delta
    );
    assert!(
        b.rows_table >= 20_000,
        "the big volume really holds 10,000 files' rows ({})",
        b.rows_table
    );
    assert_eq!(
        s.rows_written, b.rows_written,
        "10 files and 10,000 files cost the same rows"
    );
    assert_eq!(s.rows_written, 2, "one snap_gens row and the volume record");
    assert_eq!(
        (s.rows_table_delta, b.rows_table_delta),
        (0, 0),
        "no metadata row is copied or touched"
    );

    // Again after changes, and for both volumes in one transaction: 2 rows per volume.
    e.write(big, big_inos[7], 0, b"changed").expect("write");
    let both = snapshot(&e, &[small, big]);
    assert_eq!(both.rows_written, 4);
    assert_eq!(both.rows_table_delta, 0);
    assert_eq!(both.gens.len(), 2);
}

/// What one volume of the group looks like: its files' names and contents.
fn listing(e: &Engine, v: VolumeId, view: View) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut out = Vec::new();
    for ent in e.readdir(v, view, ROOT, 0, 1000).expect("readdir") {
        if ent.name == b"." || ent.name == b".." {
            continue;
        }
        let content = e.read(v, view, ent.ino, 0, 1 << 20).expect("read");
        out.push((ent.name, content));
    }
    out.sort();
    out
}

#[test]
fn group_snapshot_records_every_volume_in_one_transaction() {
    let (_d, e) = engine();
    let mut vols = Vec::new();
    for (i, bs) in [4096u64, 65536, 1 << 20].into_iter().enumerate() {
        let v = e
            .create_volume(&format!("g{i}"), Some(bs), CTX)
            .expect("create volume")
            .id;
        for name in ["keep", "gone", "grow", "cut"] {
            let f = e
                .create(v, ROOT, name.as_bytes(), 0o644, CTX)
                .expect("create")
                .ino;
            let body: Vec<u8> = (0..100_000u32).map(|x| (x % 253) as u8 ^ i as u8).collect();
            e.write(v, f, 0, &body).expect("write");
        }
        // Left in the write buffer: the snapshot must flush it first.
        vols.push(v);
    }
    let before: Vec<_> = vols.iter().map(|&v| listing(&e, v, View::Live)).collect();
    let cur_before: Vec<u64> = vols
        .iter()
        .map(|&v| e.record(v).expect("record").cur.0)
        .collect();

    let cost = snapshot(&e, &vols);
    assert_eq!(cost.rows_written, 2 * 3, "two rows per volume of the group");
    assert_eq!(cost.rows_table_delta, 0);
    assert_eq!(cost.gens.len(), 3);
    {
        let r = e.store().read().expect("read");
        for (i, &(v, g)) in cost.gens.iter().enumerate() {
            assert_eq!(v, vols[i]);
            assert_eq!(
                g.0, cur_before[i],
                "the generation recorded is the one that was live"
            );
            let rec = e.record(v).expect("record");
            assert_eq!(
                (rec.last_snap.0, rec.cur.0),
                (g.0, g.0 + 1),
                "recorded and bumped"
            );
            assert_eq!(
                r.generation_holders(v, g).expect("get"),
                Some(1),
                "held once"
            );
        }
    }

    // Further writes to every volume: overwrite, append, unlink, create, truncate.
    for &v in &vols {
        let ino = |n: &[u8]| e.lookup(v, View::Live, ROOT, n).expect("lookup").ino;
        e.write(v, ino(b"keep"), 10, b"OVERWRITTEN")
            .expect("overwrite");
        e.write(v, ino(b"grow"), 100_000, &[9u8; 5000])
            .expect("append");
        e.setattr(
            v,
            ino(b"cut"),
            SetAttr {
                size: Some(1234),
                ..Default::default()
            },
        )
        .expect("truncate");
        e.unlink(v, ROOT, b"gone").expect("unlink");
        let n = e.create(v, ROOT, b"new", 0o644, CTX).expect("create").ino;
        e.write(v, n, 0, b"born after the snapshot").expect("write");
    }
    for (i, &(v, g)) in cost.gens.iter().enumerate() {
        let at = View::At(g);
        assert_eq!(
            listing(&e, v, at),
            before[i],
            "volume {i} at its generation shows the state at the snapshot"
        );
        let live = listing(&e, v, View::Live);
        assert_ne!(live, before[i]);
        assert_eq!(
            live.iter().map(|(n, _)| n.as_slice()).collect::<Vec<_>>(),
            [&b"cut"[..], b"grow", b"keep", b"new"]
        );
        assert_eq!(
            e.lookup(v, at, ROOT, b"new")
                .expect_err("absent at the snapshot")
                .errno(),
            libc::ENOENT
        );
        let keep = e.lookup(v, at, ROOT, b"keep").expect("keep");
        assert_eq!(keep.size, 100_000);
        assert_eq!(
            e.getattr(v, at, e.lookup(v, at, ROOT, b"cut").expect("cut").ino)
                .expect("getattr")
                .size,
            100_000
        );
    }
}

#[test]
fn changed_rows_costs_changes_not_files() {
    let (_d, e) = engine();
    let mut sizes = Vec::new();
    for (name, n) in [("small", 10usize), ("big", 10_000)] {
        let (v, inos) = volume_with_files(&e, name, n);
        let g1 = e.snapshot_generations(&[v]).expect("snapshot")[0].1;
        let all = e.changed_rows(v, Generation(0), g1).expect("changed rows");
        assert!(
            all.len() >= n,
            "creating {n} files changed at least {n} rows ({})",
            all.len()
        );

        // Change 3 files: an overwrite, an append, a truncate.
        let changed = [inos[0], inos[n / 2], inos[n - 1]];
        e.write(v, changed[0], 0, b"new bytes").expect("overwrite");
        e.write(v, changed[1], 4096, b"appended block")
            .expect("append");
        e.setattr(
            v,
            changed[2],
            SetAttr {
                size: Some(1),
                ..Default::default()
            },
        )
        .expect("truncate");
        let g2 = e.snapshot_generations(&[v]).expect("snapshot")[0].1;

        let rows = e.changed_rows(v, g1, g2).expect("changed rows");
        for id in &rows {
            assert!(
                changed.contains(&id.ino()),
                "{id:?} belongs to a changed file"
            );
        }
        for ino in changed {
            assert!(
                rows.contains(&RowId::Inode(ino)),
                "the inode row of {ino} changed"
            );
        }
        assert!(
            rows.len() <= 3 * 3,
            "3 changed files: an inode row and an extent or two each ({rows:?})"
        );
        // Nothing changed since g2.
        assert!(
            e.changed_rows(v, g2, Generation(g2.0 + 1))
                .expect("changed rows")
                .is_empty()
        );
        eprintln!(
            "{n} files, 3 changed: {} changed rows (creation: {})",
            rows.len(),
            all.len()
        );
        sizes.push(rows.len());
    }
    assert_eq!(
        sizes[0], sizes[1],
        "the same 3 changes give the same rows for 10 and 10,000 files"
    );
}
