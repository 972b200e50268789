//! The benchmark's volumes: one big file of data that does not deduplicate, or many small
//! files, written through the engine API and fsynced; and the rows a view of one holds.

use anyhow::{Context, Result};
use tandem::fs::Engine;
use tandem::store::ReadView;
use tandem::store::rows::{RowValue, View};
use tandem::types::{InodeNo, VolumeId};

use super::common::{MIB, Rng};
use super::{CTX, PER_DIR, SMALL_FILE};

/// A volume of the benchmark and what it holds.
pub(crate) struct Vol {
    pub(crate) name: String,
    pub(crate) id: VolumeId,
    /// Bytes of file data.
    pub(crate) bytes: u64,
    /// Regular files (not counting directories).
    pub(crate) files: usize,
    /// (name of a file to read through a mount, its size).
    pub(crate) probe: (String, u64),
    /// Inodes of the small files, in creation order (file i is `d{i/1000}/f{i}`).
    pub(crate) small: Vec<InodeNo>,
}

/// Metadata rows a view of a volume sees, by kind.
#[derive(Default, Clone, Copy)]
pub(crate) struct RowCount {
    pub(crate) inodes: u64,
    pub(crate) dirents: u64,
    pub(crate) extents: u64,
    pub(crate) other: u64,
}

impl RowCount {
    pub(crate) fn total(&self) -> u64 {
        self.inodes + self.dirents + self.extents + self.other
    }
}

pub(crate) fn count_rows(engine: &Engine, vol: VolumeId, view: View) -> Result<RowCount> {
    let r = engine.store().read()?;
    let mut c = RowCount::default();
    r.volume_rows(vol, view, |_, v| {
        match v {
            RowValue::Inode(_) => c.inodes += 1,
            RowValue::Dirent { .. } => c.dirents += 1,
            RowValue::Extent { .. } | RowValue::Patched(_) => c.extents += 1,
            _ => c.other += 1,
        }
        Ok(true)
    })?;
    Ok(c)
}

/// A volume holding one file of `mib` MiB of data that does not deduplicate.
pub(crate) fn data_volume(engine: &Engine, name: &str, mib: u64, tag: u64) -> Result<Vol> {
    let id = engine.create_volume(name, None, CTX)?.id;
    let attr = engine.create(id, InodeNo::ROOT, b"data", 0o644, CTX)?;
    let mut rng = Rng::new(0x2545_f491_4f6c_dd1d ^ tag);
    let mut buf = vec![0u8; MIB as usize];
    rng.fill(&mut buf);
    for i in 0..mib {
        // Every 4 KiB different: (tag, MiB, position) at its start.
        for (j, c) in buf.chunks_mut(4096).enumerate() {
            c[..8].copy_from_slice(&tag.to_le_bytes());
            c[8..16].copy_from_slice(&i.to_le_bytes());
            c[16..24].copy_from_slice(&(j as u64).to_le_bytes());
        }
        engine
            .write(id, attr.ino, i * MIB, &buf)
            .with_context(|| format!("write {name}"))?;
    }
    engine.fsync(id, attr.ino)?;
    Ok(Vol {
        name: name.into(),
        id,
        bytes: mib * MIB,
        files: 1,
        probe: ("data".into(), mib * MIB),
        small: Vec::new(),
    })
}

/// Content of small file `i` of a volume, version `round` (0: as created).
pub(crate) fn small_content(vol: &str, i: usize, round: u64) -> [u8; SMALL_FILE] {
    let mut b = [b'.'; SMALL_FILE];
    let mut rng =
        Rng::new((i as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ (round << 40) ^ 0x5bd1_e995);
    rng.fill(&mut b[64..]);
    let head = format!("{vol} file {i} round {round}");
    b[..head.len()].copy_from_slice(head.as_bytes());
    b[SMALL_FILE - 1] = b'\n';
    b
}

/// A volume holding `n` small files, `PER_DIR` per directory.
pub(crate) fn files_volume(engine: &Engine, name: &str, n: usize) -> Result<Vol> {
    let id = engine.create_volume(name, None, CTX)?.id;
    let mut small = Vec::with_capacity(n);
    let mut dir = InodeNo::ROOT;
    for i in 0..n {
        if i.is_multiple_of(PER_DIR) {
            dir = engine
                .mkdir(
                    id,
                    InodeNo::ROOT,
                    format!("d{:03}", i / PER_DIR).as_bytes(),
                    0o755,
                    CTX,
                )?
                .ino;
        }
        let ino = engine
            .create(id, dir, format!("f{i:06}").as_bytes(), 0o644, CTX)?
            .ino;
        engine.write(id, ino, 0, &small_content(name, i, 0))?;
        small.push(ino);
    }
    engine.commit_all()?;
    Ok(Vol {
        name: name.into(),
        id,
        bytes: (n * SMALL_FILE) as u64,
        files: n,
        probe: ("d000/f000000".into(), SMALL_FILE as u64),
        small,
    })
}
