//! Encoding of versioned metadata keys (`rows` table) and change-index keys (`changes`).
//!
//! A row key is `vol u64 | ino u64 | kind u8 | sub | gen u64`, integers big-endian so that
//! byte order is numeric order. `sub` is empty for the inode row, `block u64` for an extent,
//! `hash u64 | len u8 | name` for a directory entry and `len u8 | name` for an xattr. The
//! part before `gen` (the *row prefix*) names one logical row; its versions sort by gen, so
//! the version a view at generation g sees is the last key in `prefix|0 ..= prefix|g`.
//! Names never contain NUL and are length-prefixed, so no prefix is a prefix of another.

use crate::types::{Generation, InodeNo, VolumeId};

pub const KIND_INODE: u8 = 1;
pub const KIND_XATTR: u8 = 2;
pub const KIND_DIRENT: u8 = 3;
pub const KIND_EXTENT: u8 = 4;

/// The logical row a key names, without volume or generation.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RowId {
    Inode(InodeNo),
    Xattr(InodeNo, Vec<u8>),
    /// A directory entry: parent directory, name hash (see [`name_hash`]), name.
    Dirent(InodeNo, u64, Vec<u8>),
    Extent(InodeNo, u64),
}

impl RowId {
    pub fn ino(&self) -> InodeNo {
        match self {
            RowId::Inode(i) | RowId::Xattr(i, _) | RowId::Dirent(i, _, _) | RowId::Extent(i, _) => {
                *i
            }
        }
    }

    /// `ino | kind | sub`: the row key without volume and generation.
    pub fn encode_body(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.ino().0.to_be_bytes());
        match self {
            RowId::Inode(_) => out.push(KIND_INODE),
            RowId::Xattr(_, name) => {
                out.push(KIND_XATTR);
                out.push(name.len() as u8);
                out.extend_from_slice(name);
            }
            RowId::Dirent(_, hash, name) => {
                out.push(KIND_DIRENT);
                out.extend_from_slice(&hash.to_be_bytes());
                out.push(name.len() as u8);
                out.extend_from_slice(name);
            }
            RowId::Extent(_, block) => {
                out.push(KIND_EXTENT);
                out.extend_from_slice(&block.to_be_bytes());
            }
        }
    }

    /// Parses what [`RowId::encode_body`] wrote; `None` on a malformed key (a corrupt pool).
    pub fn decode_body(b: &[u8]) -> Option<RowId> {
        let ino = InodeNo(u64::from_be_bytes(b.get(0..8)?.try_into().ok()?));
        let kind = *b.get(8)?;
        let rest = &b[9..];
        let named = |r: &[u8]| -> Option<Vec<u8>> {
            let len = *r.first()? as usize;
            (r.len() == 1 + len).then(|| r[1..].to_vec())
        };
        match kind {
            KIND_INODE if rest.is_empty() => Some(RowId::Inode(ino)),
            KIND_XATTR => Some(RowId::Xattr(ino, named(rest)?)),
            KIND_DIRENT => {
                let hash = u64::from_be_bytes(rest.get(0..8)?.try_into().ok()?);
                Some(RowId::Dirent(ino, hash, named(&rest[8..])?))
            }
            KIND_EXTENT if rest.len() == 8 => Some(RowId::Extent(
                ino,
                u64::from_be_bytes(rest.try_into().ok()?),
            )),
            _ => None,
        }
    }

    /// `vol | ino | kind | sub`: the prefix shared by every version of this row.
    pub fn prefix(&self, vol: VolumeId) -> Vec<u8> {
        let mut out = Vec::with_capacity(64);
        out.extend_from_slice(&vol.0.to_be_bytes());
        self.encode_body(&mut out);
        out
    }
}

/// Prefix + generation: the key of one version.
pub fn versioned(prefix: &[u8], generation: Generation) -> Vec<u8> {
    let mut k = Vec::with_capacity(prefix.len() + 8);
    k.extend_from_slice(prefix);
    k.extend_from_slice(&generation.0.to_be_bytes());
    k
}

/// Splits a version key into (row prefix, generation).
pub fn split_version(key: &[u8]) -> Option<(&[u8], Generation)> {
    let at = key.len().checked_sub(8)?;
    let g = u64::from_be_bytes(key[at..].try_into().ok()?);
    Some((&key[..at], Generation(g)))
}

/// `vol | ino | kind`: the prefix of every row of one kind of one inode (e.g. all entries of
/// a directory, all extents of a file).
pub fn kind_prefix(vol: VolumeId, ino: InodeNo, kind: u8) -> Vec<u8> {
    let mut out = Vec::with_capacity(17);
    out.extend_from_slice(&vol.0.to_be_bytes());
    out.extend_from_slice(&ino.0.to_be_bytes());
    out.push(kind);
    out
}

/// `vol | ino`: every row of one inode.
pub fn inode_prefix(vol: VolumeId, ino: InodeNo) -> Vec<u8> {
    let mut out = Vec::with_capacity(16);
    out.extend_from_slice(&vol.0.to_be_bytes());
    out.extend_from_slice(&ino.0.to_be_bytes());
    out
}

/// The smallest key greater than every key starting with `prefix` (for half-open ranges).
pub fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0xff; prefix.len() + 9]
}

/// Change-index key: `vol | gen | row body`.
pub fn change_key(vol: VolumeId, generation: Generation, body: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(16 + body.len());
    k.extend_from_slice(&vol.0.to_be_bytes());
    k.extend_from_slice(&generation.0.to_be_bytes());
    k.extend_from_slice(body);
    k
}

/// `vol | gen`: prefix of every change recorded at one generation.
pub fn change_gen_prefix(vol: VolumeId, generation: Generation) -> Vec<u8> {
    let mut k = Vec::with_capacity(16);
    k.extend_from_slice(&vol.0.to_be_bytes());
    k.extend_from_slice(&generation.0.to_be_bytes());
    k
}

/// Directory-entry hash: 62 bits of blake3(name), offset by 3 so that readdir offsets 0
/// (start), 1 (".") and 2 ("..") are never an entry's. It doubles as the entry's readdir
/// cookie, which therefore stays valid while the directory changes.
pub fn name_hash(name: &[u8]) -> u64 {
    let h = blake3::hash(name);
    let v = u64::from_be_bytes(h.as_bytes()[..8].try_into().unwrap_or([0; 8]));
    (v >> 2) + 3
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_round_trip() {
        let rows = [
            RowId::Inode(InodeNo(7)),
            RowId::Xattr(InodeNo(7), b"user.a".to_vec()),
            RowId::Dirent(InodeNo(1), name_hash(b"x"), b"x".to_vec()),
            RowId::Extent(InodeNo(9), u64::MAX),
        ];
        for r in rows {
            let mut b = Vec::new();
            r.encode_body(&mut b);
            assert_eq!(RowId::decode_body(&b), Some(r));
        }
        assert_eq!(RowId::decode_body(&[1, 2, 3]), None);
    }

    #[test]
    fn versions_sort_by_generation_within_a_row() {
        let p = RowId::Dirent(InodeNo(1), 5, b"ab".to_vec()).prefix(VolumeId(1));
        let longer = RowId::Dirent(InodeNo(1), 5, b"abc".to_vec()).prefix(VolumeId(1));
        let k1 = versioned(&p, Generation(1));
        let k2 = versioned(&p, Generation(2));
        assert!(k1 < k2);
        assert!(k2 < prefix_end(&p));
        assert!(!longer.starts_with(&p), "length prefix keeps rows apart");
        assert_eq!(split_version(&k2), Some((&p[..], Generation(2))));
    }
}
