//! Diff of two views of a volume (a snapshot generation against a later one, or live), as
//! paths, like `zfs diff`. Read-only.
//!
//! Paths are bytes end to end ([`PathBytes`]): a file name is whatever bytes the volume
//! stores (any but `/` and NUL), UTF-8 or not, and a diff names it exactly; only the
//! printing side decides how to show it (the CLI escapes it, `crate::escape`).
//!
//! O(changes): only rows in the change index between the two generations are looked at.
//! Naming what changed is where the time goes, so each directory is looked at once per
//! view: its path is computed once ([`Names::dir_path`], walking parent links with the
//! parents' own cached paths), and a directory whose entries must be named by inode (a
//! file modified in place) is scanned once into an inode-to-name map, instead of once per
//! file in it.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;

use serde::de::{self, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::store::keys::RowId;
use crate::store::rows::{RowValue, View};
use crate::store::{ReadView, StoreError};
use crate::types::{Generation, InodeNo, VolumeId};

use super::attr::{FileKind, Inode};
use super::{FsError, Inner};

/// One line of a diff, like `zfs diff`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum DiffEntry {
    Added(PathBytes),
    Removed(PathBytes),
    Modified(PathBytes),
    Renamed { from: PathBytes, to: PathBytes },
}

/// A path in a volume, exactly as stored: bytes, not necessarily UTF-8.
///
/// On the control socket (JSON) it is a string when it is valid UTF-8, as paths were
/// before, and otherwise an array of its bytes (numbers), so no byte is lost or replaced;
/// both forms are read back.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct PathBytes(pub Vec<u8>);

impl PathBytes {
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The path as text, if it is valid UTF-8.
    pub fn to_str(&self) -> Option<&str> {
        std::str::from_utf8(&self.0).ok()
    }

    /// The path as text, invalid bytes replaced by U+FFFD (for display only: not exact).
    pub fn to_string_lossy(&self) -> String {
        String::from_utf8_lossy(&self.0).into_owned()
    }
}

impl From<&str> for PathBytes {
    fn from(s: &str) -> PathBytes {
        PathBytes(s.as_bytes().to_vec())
    }
}

impl From<&[u8]> for PathBytes {
    fn from(b: &[u8]) -> PathBytes {
        PathBytes(b.to_vec())
    }
}

/// Escaped, as people are shown it (`crate::escape`).
impl fmt::Debug for PathBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&crate::escape::Escaped::new(&self.0), f)
    }
}

impl Serialize for PathBytes {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.to_str() {
            Some(t) => s.serialize_str(t),
            None => s.collect_seq(&self.0),
        }
    }
}

impl<'de> Deserialize<'de> for PathBytes {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<PathBytes, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = PathBytes;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a path: a string, or an array of its bytes")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<PathBytes, E> {
                Ok(v.into())
            }
            fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<PathBytes, E> {
                Ok(v.into())
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<PathBytes, A::Error> {
                let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0));
                while let Some(b) = seq.next_element::<u8>()? {
                    out.push(b);
                }
                Ok(PathBytes(out))
            }
        }
        d.deserialize_any(V)
    }
}

/// Paths of one view of a volume, cached per directory.
struct Names<'r, R: ReadView> {
    r: &'r R,
    vol: VolumeId,
    view: View,
    /// Absolute path of each directory named so far.
    paths: HashMap<InodeNo, Vec<u8>>,
    /// Entries of each directory scanned so far, by inode.
    entries: HashMap<InodeNo, HashMap<InodeNo, Vec<u8>>>,
}

impl<'r, R: ReadView> Names<'r, R> {
    fn new(r: &'r R, vol: VolumeId, view: View) -> Self {
        Names {
            r,
            vol,
            view,
            paths: HashMap::new(),
            entries: HashMap::new(),
        }
    }

    /// The name under which `dir` lists `ino` (the directory is read once).
    fn name_in(&mut self, dir: InodeNo, ino: InodeNo) -> Result<Option<Vec<u8>>, FsError> {
        if !self.entries.contains_key(&dir) {
            let mut names = HashMap::new();
            self.r.dirents(self.vol, self.view, dir, 0, |e| {
                // A hard link is listed under several names: the first one names it.
                names.entry(e.ino).or_insert(e.name);
                Ok(true)
            })?;
            self.entries.insert(dir, names);
        }
        Ok(self.entries.get(&dir).and_then(|m| m.get(&ino)).cloned())
    }

    /// Absolute path of a directory (walks parent links up to the first directory whose
    /// path is known, the root at the latest).
    fn dir_path(&mut self, dir: InodeNo) -> Result<Vec<u8>, FsError> {
        if dir == InodeNo::ROOT {
            return Ok(Vec::new());
        }
        if let Some(p) = self.paths.get(&dir) {
            return Ok(p.clone());
        }
        // (directory, its name) from `dir` up to below the first known ancestor.
        let mut chain: Vec<(InodeNo, Vec<u8>)> = Vec::new();
        let mut at = dir;
        let mut base = None;
        for _ in 0..4096 {
            if at == InodeNo::ROOT {
                base = Some(Vec::new());
                break;
            }
            if let Some(p) = self.paths.get(&at) {
                base = Some(p.clone());
                break;
            }
            let Some(b) = self.r.inode(self.vol, self.view, at)? else {
                base = Some(format!("<deleted dir {at}>").into_bytes());
                chain.clear();
                break;
            };
            let parent = Inode::decode(&b)?.parent;
            let name = self
                .name_in(parent, at)?
                .unwrap_or_else(|| format!("<dir {at}>").into_bytes());
            chain.push((at, name));
            at = parent;
        }
        let Some(mut path) = base else {
            return Err(StoreError::Damaged("directory parents form a loop".into()).into());
        };
        if chain.is_empty() {
            // A deleted directory: not cached under its own inode's parent chain.
            self.paths.insert(dir, path.clone());
            return Ok(path);
        }
        for (d, name) in chain.into_iter().rev() {
            path.push(b'/');
            path.extend_from_slice(&name);
            self.paths.insert(d, path.clone());
        }
        Ok(path)
    }

    /// Path of the entry `name` in `dir`.
    fn path(&mut self, dir: InodeNo, name: &[u8]) -> Result<PathBytes, FsError> {
        let mut path = self.dir_path(dir)?;
        path.push(b'/');
        path.extend_from_slice(name);
        Ok(PathBytes(path))
    }
}

impl Inner {
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
        let mut old = Names::new(&r, vol, va);
        let mut new = Names::new(&r, vol, b);
        let mut out = Vec::new();
        for (ino, adds) in &added {
            let rems = removed.remove(ino).unwrap_or_default();
            let mut rems = rems.into_iter();
            for (dir, name) in adds {
                match rems.next() {
                    Some((odir, oname)) => out.push(DiffEntry::Renamed {
                        from: old.path(odir, &oname)?,
                        to: new.path(*dir, name)?,
                    }),
                    None => out.push(DiffEntry::Added(new.path(*dir, name)?)),
                }
            }
            for (odir, oname) in rems {
                out.push(DiffEntry::Removed(old.path(odir, &oname)?));
            }
        }
        for (_, rems) in removed {
            for (dir, name) in rems {
                out.push(DiffEntry::Removed(old.path(dir, &name)?));
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
            if let Some(name) = new.name_in(inode.parent, ino)? {
                out.push(DiffEntry::Modified(new.path(inode.parent, &name)?));
            }
        }
        out.sort();
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fs::{Ctx, Engine, RenameFlags};

    const ROOT: InodeNo = InodeNo::ROOT;
    const CTX: Ctx = Ctx {
        uid: 0,
        gid: 0,
        umask: 0,
    };

    #[test]
    fn names_each_change_by_its_path_in_the_view_it_belongs_to() {
        let dir = tempfile::tempdir().unwrap();
        let e = Engine::open(dir.path()).unwrap();
        let v = e.create_volume("v", Some(4096), CTX).unwrap().id;
        let a = e.mkdir(v, ROOT, b"a", 0o755, CTX).unwrap().ino;
        let b = e.mkdir(v, a, b"b", 0o755, CTX).unwrap().ino;
        let mut files = Vec::new();
        for k in 0..50 {
            let name = format!("f{k}");
            let f = e.create(v, b, name.as_bytes(), 0o644, CTX).unwrap().ino;
            e.write(v, f, 0, b"old").unwrap();
            files.push(f);
        }
        e.create(v, ROOT, b"gone", 0o644, CTX).unwrap();
        e.create(v, a, b"moved", 0o644, CTX).unwrap();
        let g = e.snapshot_generations(&[v]).unwrap()[0].1;
        // Modified in place, deep, several in one directory.
        for &f in &files[10..13] {
            e.write(v, f, 0, b"new").unwrap();
        }
        e.unlink(v, ROOT, b"gone").unwrap();
        e.create(v, b, b"added", 0o644, CTX).unwrap();
        e.rename(v, a, b"moved", b, b"there", RenameFlags::default())
            .unwrap();
        // A directory renamed: the old view names its entries by the old path.
        e.rename(v, ROOT, b"a", ROOT, b"z", RenameFlags::default())
            .unwrap();
        let got = e.diff(v, g, View::Live).unwrap();
        let want = vec![
            DiffEntry::Added("/z/b/added".into()),
            DiffEntry::Removed("/gone".into()),
            DiffEntry::Modified("/z/b/f10".into()),
            DiffEntry::Modified("/z/b/f11".into()),
            DiffEntry::Modified("/z/b/f12".into()),
            DiffEntry::Renamed {
                from: "/a".into(),
                to: "/z".into(),
            },
            DiffEntry::Renamed {
                from: "/a/moved".into(),
                to: "/z/b/there".into(),
            },
        ];
        assert_eq!(got, want);
    }

    #[test]
    fn names_that_are_not_utf8_come_back_exact() {
        let dir = tempfile::tempdir().unwrap();
        let e = Engine::open(dir.path()).unwrap();
        let v = e.create_volume("v", Some(4096), CTX).unwrap().id;
        let d = e.mkdir(v, ROOT, b"d\xfe", 0o755, CTX).unwrap().ino;
        let g = e.snapshot_generations(&[v]).unwrap()[0].1;
        e.create(v, d, b"f\xff\nx", 0o644, CTX).unwrap();
        let got = e.diff(v, g, View::Live).unwrap();
        assert_eq!(
            got,
            vec![DiffEntry::Added(PathBytes(b"/d\xfe/f\xff\nx".to_vec()))]
        );
    }

    #[test]
    fn paths_go_on_the_wire_as_text_when_they_are_utf8_and_as_bytes_otherwise() {
        let text = DiffEntry::Added("/a\nb".into());
        let json = serde_json::to_string(&text).unwrap();
        assert_eq!(json, r#"{"Added":"/a\nb"}"#);
        assert_eq!(serde_json::from_str::<DiffEntry>(&json).unwrap(), text);
        let raw = DiffEntry::Renamed {
            from: PathBytes(b"/\xff".to_vec()),
            to: "/ok".into(),
        };
        let json = serde_json::to_string(&raw).unwrap();
        assert_eq!(json, r#"{"Renamed":{"from":[47,255],"to":"/ok"}}"#);
        assert_eq!(serde_json::from_str::<DiffEntry>(&json).unwrap(), raw);
    }
}
