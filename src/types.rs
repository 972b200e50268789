//! Identity newtypes and the validated [`Name`] type.
//!
//! Invariant: every identity that crosses a module boundary is one of these types, so a
//! volume id can never be passed where an inode number is expected.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A blake3 hash of a chunk's stored bytes: the chunk's identity in the pool.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ChunkId(pub [u8; 32]);

impl ChunkId {
    pub fn of(bytes: &[u8]) -> Self {
        ChunkId(*blake3::hash(bytes).as_bytes())
    }
}

impl fmt::Debug for ChunkId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in &self.0[..8] {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Display for ChunkId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in &self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

macro_rules! id_type {
    ($(#[$m:meta])* $name:ident) => {
        $(#[$m])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug, Serialize, Deserialize)]
        pub struct $name(pub u64);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}", self.0)
            }
        }
    };
}

id_type!(
    /// An inode number, unique within one volume. The root directory is [`InodeNo::ROOT`].
    InodeNo
);
id_type!(
    /// A volume's identity in the pool; never reused.
    VolumeId
);
id_type!(
    /// A snapshot's identity in the pool; never reused.
    SnapshotId
);
id_type!(
    /// A metadata generation of one volume. A snapshot records a generation; rows written at
    /// generation g are visible to every view at generation >= g until superseded.
    Generation
);

impl InodeNo {
    pub const ROOT: InodeNo = InodeNo(1);
}

impl Generation {
    /// The generation after this one.
    pub fn next(self) -> Generation {
        Generation(self.0 + 1)
    }
}

/// Longest name a volume, group, snapshot or directory entry may have, in bytes.
pub const NAME_MAX: usize = 255;

/// Why a name was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("the name is empty")]
    Empty,
    #[error("the name is longer than {NAME_MAX} bytes")]
    TooLong,
    #[error("the name contains '/' or a NUL byte")]
    BadChar,
    #[error("'.' and '..' are reserved")]
    Reserved,
}

/// A validated name: 1..=255 bytes, no '/', no NUL, not "." or "..".
///
/// Used for directory entries (as raw bytes: Linux names need not be UTF-8) and for volume,
/// group and snapshot names (which are additionally UTF-8, see [`Name::as_str`]).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Name(Vec<u8>);

impl Name {
    pub fn new(bytes: impl Into<Vec<u8>>) -> Result<Self, NameError> {
        let bytes = bytes.into();
        if bytes.is_empty() {
            return Err(NameError::Empty);
        }
        if bytes.len() > NAME_MAX {
            return Err(NameError::TooLong);
        }
        if bytes.iter().any(|&b| b == b'/' || b == 0) {
            return Err(NameError::BadChar);
        }
        if bytes == b"." || bytes == b".." {
            return Err(NameError::Reserved);
        }
        Ok(Name(bytes))
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The name as text, lossily (volume names are created from `&str`, so lossless there).
    pub fn to_string_lossy(&self) -> String {
        String::from_utf8_lossy(&self.0).into_owned()
    }
}

impl fmt::Debug for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.to_string_lossy())
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_string_lossy())
    }
}

impl TryFrom<&str> for Name {
    type Error = NameError;
    fn try_from(s: &str) -> Result<Self, NameError> {
        Name::new(s.as_bytes().to_vec())
    }
}

impl TryFrom<&[u8]> for Name {
    type Error = NameError;
    fn try_from(s: &[u8]) -> Result<Self, NameError> {
        Name::new(s.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Identities are newtype structs: postcard (the pool's record encoding) and JSON (the
    /// control protocol) write them exactly as the bare integer, so typing a field that was
    /// a `u64` changes no byte on disk or on the wire.
    #[test]
    fn identities_encode_as_their_integer() {
        #[derive(Serialize)]
        struct Typed(VolumeId, InodeNo, SnapshotId, Generation);
        let plain = (u64::MAX, 1u64 << 40, 3u64, 0u64);
        let typed = Typed(
            VolumeId(plain.0),
            InodeNo(plain.1),
            SnapshotId(plain.2),
            Generation(plain.3),
        );
        assert_eq!(
            postcard::to_stdvec(&typed).expect("postcard"),
            postcard::to_stdvec(&plain).expect("postcard")
        );
        assert_eq!(
            serde_json::to_string(&typed).expect("json"),
            serde_json::to_string(&plain).expect("json")
        );
        assert_eq!(
            postcard::from_bytes::<Generation>(&postcard::to_stdvec(&9u64).expect("postcard"))
                .expect("decode"),
            Generation(9)
        );
    }

    #[test]
    fn names_are_validated() {
        assert!(Name::try_from("db-data").is_ok());
        assert_eq!(Name::try_from(""), Err(NameError::Empty));
        assert_eq!(Name::try_from("a/b"), Err(NameError::BadChar));
        assert_eq!(Name::new(b"a\0b".to_vec()), Err(NameError::BadChar));
        assert_eq!(Name::try_from("."), Err(NameError::Reserved));
        assert_eq!(Name::try_from(".."), Err(NameError::Reserved));
        assert!(Name::new(vec![b'x'; 255]).is_ok());
        assert_eq!(Name::new(vec![b'x'; 256]), Err(NameError::TooLong));
        assert!(
            Name::new(vec![0xff, 0xfe]).is_ok(),
            "non-UTF-8 file names are allowed"
        );
    }

    #[test]
    fn chunk_id_is_blake3() {
        let id = ChunkId::of(b"abc");
        assert_eq!(id.0, *blake3::hash(b"abc").as_bytes());
        assert_eq!(format!("{id}").len(), 64);
    }
}
