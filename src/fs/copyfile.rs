//! A whole-file instant copy between any two volumes of the pool (`tandem cp`): the
//! destination is created (or truncated) and filled by [`Inner::copy_range`], so whole
//! blocks are shared, not copied. The kernel refuses copy_file_range between two mounts
//! (EXDEV), so this is how a copy across volumes stays instant.
//!
//! Invariants: the destination is a regular file when this returns Ok, holding the
//! source's bytes as they were when each range was copied; a failure part way leaves a
//! shorter destination (each step of `copy_range` is a prefix).

use crate::store::rows::View;
use crate::types::{InodeNo, VolumeId};

use super::Inner;
use super::attr::{Ctx, FileKind, SetAttr};
use super::copy::{Copied, FileAt};
use super::error::FsError;

impl Inner {
    /// Copies the file `src` to entry `name` of the live directory `parent` of `dst_vol`,
    /// creating it with the source's permission bits owned by `ctx`, or truncating the
    /// regular file there. Returns the destination and what was copied (all of it).
    pub fn copy_file(
        &self,
        src: FileAt,
        dst_vol: VolumeId,
        parent: InodeNo,
        name: &[u8],
        ctx: Ctx,
    ) -> Result<(InodeNo, Copied), FsError> {
        let sattr = self.getattr(src.vol, src.view, src.ino)?;
        match sattr.kind {
            FileKind::File => {}
            FileKind::Dir => return Err(FsError::IsDir),
            _ => return Err(FsError::Invalid("copy of a special file")),
        }
        let dst = match self.lookup(dst_vol, View::Live, parent, name) {
            Ok(a) if a.kind == FileKind::File => {
                if a.ino == src.ino && dst_vol == src.vol && src.view == View::Live {
                    return Err(FsError::Invalid("copy of a file onto itself"));
                }
                let cut = SetAttr {
                    size: Some(0),
                    ..Default::default()
                };
                self.setattr(dst_vol, a.ino, cut)?;
                a.ino
            }
            Ok(a) if a.kind == FileKind::Dir => return Err(FsError::IsDir),
            Ok(_) => return Err(FsError::Invalid("copy onto a special file")),
            Err(FsError::NotFound) => {
                let mode = libc::S_IFREG | (sattr.perm as u32 & 0o7777);
                self.create(dst_vol, parent, name, mode, ctx)?.ino
            }
            Err(e) => return Err(e),
        };
        let mut total = Copied::default();
        while total.bytes < sattr.size {
            let c = self.copy_range(
                src,
                total.bytes,
                dst_vol,
                dst,
                total.bytes,
                sattr.size - total.bytes,
                false,
            )?;
            if c.over_limit {
                self.flush_over_limit(dst_vol)?;
            }
            if c.bytes == 0 {
                break;
            }
            total.bytes += c.bytes;
            total.shared += c.shared;
        }
        Ok((dst, total))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fs::Engine;

    #[test]
    fn a_copy_between_volumes_shares_blocks_and_overwrites_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let e = Engine::open(dir.path()).unwrap();
        let a = e.create_volume("a", Some(4096), Ctx::default()).unwrap().id;
        let b = e.create_volume("b", Some(4096), Ctx::default()).unwrap().id;
        let f = e
            .create(a, InodeNo::ROOT, b"f", 0o640, Ctx::default())
            .unwrap()
            .ino;
        let data: Vec<u8> = (0..10 * 4096 + 100).map(|i| (i * 7 % 251) as u8).collect();
        e.write(a, f, 0, &data).unwrap();
        let src = FileAt {
            vol: a,
            view: View::Live,
            ino: f,
        };
        let ctx = Ctx {
            uid: 5,
            gid: 6,
            umask: 0,
        };
        let (g, c) = e.copy_file(src, b, InodeNo::ROOT, b"g", ctx).unwrap();
        assert_eq!((c.bytes, c.shared), (data.len() as u64, 10 * 4096));
        assert_eq!(e.read(b, View::Live, g, 0, 1 << 20).unwrap(), data);
        let at = e.getattr(b, View::Live, g).unwrap();
        assert_eq!((at.perm, at.uid, at.gid), (0o640, 5, 6));
        // Again, onto the file now there: truncated and copied.
        e.write(b, g, 0, &[9u8; 50 * 4096]).unwrap();
        let (g2, c) = e.copy_file(src, b, InodeNo::ROOT, b"g", ctx).unwrap();
        assert_eq!((g2, c.bytes), (g, data.len() as u64));
        assert_eq!(e.read(b, View::Live, g, 0, 1 << 20).unwrap(), data);
        let onto_self = e.copy_file(src, a, InodeNo::ROOT, b"f", ctx);
        assert_eq!(onto_self.unwrap_err().errno(), libc::EINVAL);
    }
}
