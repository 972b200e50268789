//! Unit tests of layered clones (see `crate::store::layers`) over a real pool: what a clone
//! shows, what its first writes copy up, and what deleting its origin's snapshot or volume
//! leaves it.

use super::*;
use crate::store::rows::View;

const ROOT: InodeNo = InodeNo::ROOT;
const CTX: Ctx = Ctx {
    uid: 1000,
    gid: 1000,
    umask: 0,
};
const BS: u64 = 128 << 10;
const PAGE: usize = 4096;

fn pattern(len: usize, seed: u32) -> Vec<u8> {
    (0..len as u32)
        .map(|i| (i.wrapping_add(seed).wrapping_mul(2_654_435_761) >> 13) as u8 | 1)
        .collect()
}

#[test]
fn a_clone_shares_its_origin_rows_until_it_writes_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let e = Engine::open(dir.path()).unwrap();
    let v = e.create_volume("o", Some(BS), Ctx::default()).unwrap().id;
    let f = e.create(v, ROOT, b"f", 0o644, CTX).unwrap().ino;
    let d = e.mkdir(v, ROOT, b"d", 0o755, CTX).unwrap().ino;
    e.create(v, d, b"x", 0o644, CTX).unwrap();
    let data = pattern(8 * BS as usize, 1);
    e.write(v, f, 0, &data).unwrap();
    e.setxattr(v, f, b"user.k", b"val", XattrMode::Any).unwrap();
    let g = e.snapshot_generations(&[v]).unwrap()[0].1;
    let before = e.pool_stats().unwrap();

    let c = e.clone_generation(v, g, "c").unwrap();
    assert_eq!(
        (c.files, c.logical_bytes, c.physical_bytes),
        (4, 8 * BS, 8 * BS)
    );
    let c = c.id;
    assert_eq!(e.clone_layer(c).unwrap(), Some((v, g)));
    assert_eq!(
        e.pool_stats().unwrap().referenced_bytes,
        before.referenced_bytes,
        "a clone takes no chunk reference until it writes"
    );
    assert_eq!(e.read(c, View::Live, f, 0, 8 * BS as u32).unwrap(), data);
    assert_eq!(e.getxattr(c, View::Live, f, b"user.k").unwrap(), b"val");

    // A page into a block only the origin has: a patch over the origin's chunk.
    let mut cdata = data.clone();
    let page = pattern(PAGE, 7);
    e.write(c, f, 2 * BS + 8192, &page).unwrap();
    cdata[2 * BS as usize + 8192..][..PAGE].copy_from_slice(&page);
    e.flush_volume(c).unwrap();
    assert_eq!(e.read(c, View::Live, f, 0, 8 * BS as u32).unwrap(), cdata);
    assert_eq!(
        e.volume_info("c").unwrap().physical_bytes,
        8 * BS + PAGE as u64
    );
    // Unlink, rename, xattr removal in the clone hide the origin's rows from it only.
    e.unlink(c, d, b"x").unwrap();
    e.rename(c, ROOT, b"d", ROOT, b"e", RenameFlags::default())
        .unwrap();
    e.removexattr(c, f, b"user.k").unwrap();
    e.setattr(
        c,
        f,
        SetAttr {
            size: Some(3 * BS),
            ..Default::default()
        },
    )
    .unwrap();
    cdata.truncate(3 * BS as usize);
    assert_eq!(e.read(c, View::Live, f, 0, 8 * BS as u32).unwrap(), cdata);
    assert!(e.lookup(c, View::Live, ROOT, b"d").is_err());
    assert!(e.lookup(c, View::Live, ROOT, b"e").is_ok());
    assert_eq!(e.readdir(c, View::Live, d, 0, 100).unwrap().len(), 2);
    // The origin is untouched, and its own writes do not reach the clone.
    assert_eq!(e.read(v, View::Live, f, 0, 8 * BS as u32).unwrap(), data);
    assert!(e.lookup(v, View::Live, d, b"x").is_ok());
    assert_eq!(e.getxattr(v, View::Live, f, b"user.k").unwrap(), b"val");
    e.write(v, f, 0, &pattern(BS as usize, 9)).unwrap();
    e.create(v, ROOT, b"new", 0o644, CTX).unwrap();
    e.flush_volume(v).unwrap();
    assert!(e.lookup(c, View::Live, ROOT, b"new").is_err());
    assert_eq!(e.read(c, View::Live, f, 0, 8 * BS as u32).unwrap(), cdata);

    // The origin's snapshot goes: the clone's hold keeps its rows.
    e.release_generation(v, g).unwrap();
    assert_eq!(e.read(c, View::Live, f, 0, 8 * BS as u32).unwrap(), cdata);
    // The origin volume goes: the clone gets its own copy of what it read of it.
    e.delete_volume("o").unwrap();
    assert_eq!(e.clone_layer(c).unwrap(), None);
    assert_eq!(e.read(c, View::Live, f, 0, 8 * BS as u32).unwrap(), cdata);
    assert!(e.lookup(c, View::Live, ROOT, b"e").is_ok());
    assert_eq!(
        e.volume_info("c").unwrap().physical_bytes,
        3 * BS + PAGE as u64
    );
    drop(e);
    let e = Engine::open(dir.path()).unwrap();
    assert_eq!(e.read(c, View::Live, f, 0, 8 * BS as u32).unwrap(), cdata);
    e.unlink(c, ROOT, b"f").unwrap();
    let p = e.pool_stats().unwrap();
    assert_eq!(
        (p.physical_bytes, p.referenced_bytes),
        (0, 0),
        "no chunk leaked"
    );
}

#[test]
fn clones_of_clones_and_their_snapshots_read_through_every_layer() {
    let dir = tempfile::tempdir().unwrap();
    let e = Engine::open(dir.path()).unwrap();
    let v = e.create_volume("o", Some(4096), Ctx::default()).unwrap().id;
    let f = e.create(v, ROOT, b"f", 0o644, CTX).unwrap().ino;
    e.write(v, f, 0, b"origin").unwrap();
    let g = e.snapshot_generations(&[v]).unwrap()[0].1;
    let c1 = e.clone_generation(v, g, "c1").unwrap().id;
    e.write(c1, f, 0, b"C1").unwrap();
    let t = e.snapshot_generations(&[c1]).unwrap()[0].1;
    e.write(c1, f, 0, b"c1 later").unwrap();
    let c2 = e.clone_generation(c1, t, "c2").unwrap().id;
    assert_eq!(e.read(c2, View::Live, f, 0, 100).unwrap(), b"C1igin");
    assert_eq!(e.read(c1, View::At(t), f, 0, 100).unwrap(), b"C1igin");
    assert_eq!(e.read(c1, View::Live, f, 0, 100).unwrap(), b"c1 later");
    assert_eq!(e.read(v, View::Live, f, 0, 100).unwrap(), b"origin");
    // The middle one goes (its snapshot first): c2 keeps what it showed.
    e.release_generation(c1, t).unwrap();
    e.delete_volume("c1").unwrap();
    assert_eq!(e.read(c2, View::Live, f, 0, 100).unwrap(), b"C1igin");
    assert_eq!(e.clone_layer(c2).unwrap(), None);
    e.release_generation(v, g).unwrap();
    e.delete_volume("o").unwrap();
    e.delete_volume("c2").unwrap();
    let p = e.pool_stats().unwrap();
    assert_eq!(
        (p.physical_bytes, p.referenced_bytes),
        (0, 0),
        "no chunk leaked"
    );
}
