//! Restore, clone and diff of snapshot generations, each in one write transaction (diff is
//! read-only).
//!
//! Restore walks the change index from the snapshot's generation to now: only rows written
//! since the snapshot can differ, so it costs O(changes), whatever the volume holds. Clone
//! copies the rows the snapshot sees into a new volume and takes a reference on every chunk:
//! no data is copied (O(rows), never O(bytes)).

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::store::keys::RowId;
use crate::store::rows::{RowValue, View};
use crate::store::{ReadView, StoreError, Tx};
use crate::types::{Generation, InodeNo, VolumeId};

use super::attr::{FileKind, Inode};
use super::{FsError, Inner, Timestamp};

fn inode_of(v: &Option<RowValue>) -> Result<Option<Inode>, FsError> {
    match v {
        Some(RowValue::Inode(b)) => Ok(Some(Inode::decode(b)?)),
        _ => Ok(None),
    }
}

/// Makes the live rows of `vol` equal to its view at `s`, adjusting the volume's counters.
/// Returns the rows that changed (for kernel cache invalidation).
pub(crate) fn restore_in_tx(
    tx: &mut Tx<'_>,
    vol: VolumeId,
    s: Generation,
) -> Result<Vec<RowId>, FsError> {
    let mut rec = tx.volume(vol)?;
    let g = rec.gens();
    let changed = tx.changed(vol, s, rec.cur)?;
    let mut done = Vec::new();
    for id in changed {
        let then = tx.row(vol, &id, View::At(s))?;
        let now = tx.row(vol, &id, View::Live)?;
        if then == now {
            continue;
        }
        if let RowId::Inode(_) = id {
            let (old, new) = (inode_of(&now)?, inode_of(&then)?);
            if let Some(o) = &old {
                rec.files = rec.files.saturating_sub(1);
                rec.stored_bytes = rec.stored_bytes.saturating_sub(o.stored);
                if o.kind == FileKind::File {
                    rec.logical_bytes = rec.logical_bytes.saturating_sub(o.size);
                }
            }
            if let Some(n) = &new {
                rec.files += 1;
                rec.stored_bytes += n.stored;
                if n.kind == FileKind::File {
                    rec.logical_bytes += n.size;
                }
            }
        }
        match then {
            Some(v) => {
                for (chunk, _) in v.chunks() {
                    tx.chunk_incref(chunk)?;
                }
                tx.put_row(&g, &id, &v)?;
            }
            None => tx.delete_row(&g, &id)?,
        }
        done.push(id);
    }
    tx.put_volume(&rec)?;
    Ok(done)
}

/// One line of a diff, like `zfs diff`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum DiffEntry {
    Added(String),
    Removed(String),
    Modified(String),
    Renamed { from: String, to: String },
}

impl Inner {
    /// Restores the given members to their snapshot generations in ONE transaction, after
    /// flushing their buffered writes. The caller keeps them frozen (or unmounted).
    pub fn restore_generations(
        &self,
        members: &[(VolumeId, Generation)],
    ) -> Result<Vec<(VolumeId, Vec<RowId>)>, FsError> {
        for (v, _) in members {
            self.flush_volume(*v)?;
        }
        let members = members.to_vec();
        // Logged writes of these volumes predate the restore: replay must never apply them.
        let log_end = self.log.as_ref().map(|l| l.end());
        // Durable once the caller has reopened the gates (`store().sync()`).
        self.store.write(false, move |tx| {
            let mut out = Vec::new();
            for (v, s) in members {
                out.push((v, restore_in_tx(tx, v, s)?));
                if let Some(end) = log_end {
                    tx.log_applied(v, 0, end)?;
                }
            }
            Ok(out)
        })
    }

    /// Creates a writable volume `name` with the contents `origin` had at `s`, sharing
    /// every chunk (no data copied).
    pub fn clone_generation(
        &self,
        origin: VolumeId,
        s: Generation,
        name: &str,
    ) -> Result<super::VolumeInfo, FsError> {
        self.flush_volume(origin)?;
        let name = name.to_string();
        let now = Timestamp::now();
        self.store.write(true, move |tx| {
            let src = tx.volume(origin)?;
            let mut rec = tx.create_volume(&name, src.block_size as u64, now.secs)?;
            let g = rec.gens();
            let mut copied = Vec::new();
            tx.volume_rows(origin, View::At(s), |id, v| {
                copied.push((id, v));
                Ok(true)
            })?;
            for (id, v) in copied {
                match &v {
                    RowValue::Extent { .. } | RowValue::Patched(_) => {
                        for (chunk, _) in v.chunks() {
                            tx.chunk_incref(chunk)?;
                        }
                    }
                    RowValue::Inode(b) => {
                        let i = Inode::decode(b)?;
                        rec.files += 1;
                        rec.stored_bytes += i.stored;
                        if i.kind == FileKind::File {
                            rec.logical_bytes += i.size;
                        }
                    }
                    _ => {}
                }
                tx.put_new_row(&g, &id, &v)?;
            }
            rec.next_ino = src.next_ino;
            tx.put_volume(&rec)?;
            Ok(super::VolumeInfo::from(&rec))
        })
    }

    /// What changed in `vol` between view `a` and view `b` (`b` may be Live), as paths.
    /// O(changes): only rows in the change index between the two generations are looked at.
    pub fn diff(&self, vol: VolumeId, a: Generation, b: View) -> Result<Vec<DiffEntry>, FsError> {
        self.flush_volume(vol)?;
        // Unlinks answered but not committed yet are part of the live view.
        self.store.settle()?;
        let r = self.store.read()?;
        let upto = match b {
            View::At(g) => g,
            View::Live => self.record(vol)?.cur,
        };
        let va = View::At(a);
        let changed = r.changed(vol, a, upto)?;
        // Directory entries added and removed, by inode.
        let mut added: BTreeMap<InodeNo, Vec<(InodeNo, Vec<u8>)>> = BTreeMap::new();
        let mut removed: BTreeMap<InodeNo, Vec<(InodeNo, Vec<u8>)>> = BTreeMap::new();
        let mut modified: BTreeSet<InodeNo> = BTreeSet::new();
        for id in &changed {
            let before = r.row(vol, id, va)?;
            let after = r.row(vol, id, b)?;
            if before == after {
                continue;
            }
            match id {
                RowId::Dirent(dir, _, name) => {
                    if let Some(RowValue::Dirent { ino, .. }) = before {
                        removed.entry(ino).or_default().push((*dir, name.clone()));
                    }
                    if let Some(RowValue::Dirent { ino, .. }) = after {
                        added.entry(ino).or_default().push((*dir, name.clone()));
                    }
                }
                other => {
                    modified.insert(other.ino());
                }
            }
        }
        let path = |view: View, dir: InodeNo, name: &[u8]| -> Result<String, FsError> {
            Ok(format!(
                "{}/{}",
                dir_path(&r, vol, view, dir)?,
                String::from_utf8_lossy(name)
            )
            .replacen("//", "/", 1))
        };
        let mut out = Vec::new();
        for (ino, adds) in &added {
            let rems = removed.remove(ino).unwrap_or_default();
            let mut rems = rems.into_iter();
            for (dir, name) in adds {
                match rems.next() {
                    Some((odir, oname)) => out.push(DiffEntry::Renamed {
                        from: path(va, odir, &oname)?,
                        to: path(b, *dir, name)?,
                    }),
                    None => out.push(DiffEntry::Added(path(b, *dir, name)?)),
                }
            }
            for (odir, oname) in rems {
                out.push(DiffEntry::Removed(path(va, odir, &oname)?));
            }
        }
        for (_, rems) in removed {
            for (dir, name) in rems {
                out.push(DiffEntry::Removed(path(va, dir, &name)?));
            }
        }
        for ino in modified {
            if added.contains_key(&ino) || ino == InodeNo::ROOT {
                continue;
            }
            // Modified in place: it exists on both sides; name it as it is now.
            let after = r.inode(vol, b, ino)?;
            let before = r.inode(vol, va, ino)?;
            let (Some(ab), Some(_)) = (after, before) else {
                continue;
            };
            let inode = Inode::decode(&ab)?;
            if inode.kind == FileKind::Dir {
                continue; // a directory's own change is its entries', listed above
            }
            if let Some(name) = name_in(&r, vol, b, inode.parent, ino)? {
                out.push(DiffEntry::Modified(path(b, inode.parent, &name)?));
            }
        }
        out.sort();
        Ok(out)
    }
}

/// The name under which `dir` lists `ino` in a view.
fn name_in(
    r: &impl ReadView,
    vol: VolumeId,
    view: View,
    dir: InodeNo,
    ino: InodeNo,
) -> Result<Option<Vec<u8>>, FsError> {
    let mut found = None;
    r.dirents(vol, view, dir, 0, |e| {
        if e.ino == ino {
            found = Some(e.name);
            return Ok(false);
        }
        Ok(true)
    })?;
    Ok(found)
}

/// Absolute path of a directory in a view (walks parent links up to the root).
fn dir_path(
    r: &impl ReadView,
    vol: VolumeId,
    view: View,
    mut dir: InodeNo,
) -> Result<String, FsError> {
    let mut parts: Vec<String> = Vec::new();
    for _ in 0..4096 {
        if dir == InodeNo::ROOT {
            parts.reverse();
            return Ok(format!("/{}", parts.join("/")));
        }
        let Some(b) = r.inode(vol, view, dir)? else {
            return Ok(format!("<deleted dir {dir}>"));
        };
        let parent = Inode::decode(&b)?.parent;
        let name = name_in(r, vol, view, parent, dir)?
            .unwrap_or_else(|| format!("<dir {dir}>").into_bytes());
        parts.push(String::from_utf8_lossy(&name).into_owned());
        dir = parent;
    }
    Err(StoreError::Damaged("directory parents form a loop".into()).into())
}
