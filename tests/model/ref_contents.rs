//! What the reference filesystem's inodes hold (see reference.rs): file bytes (write,
//! truncate, fallocate punch/zero, copy_file_range, read) and extended attributes.

use libc::{E2BIG, EEXIST, EFBIG, EINVAL, EISDIR, ENODATA, ERANGE};
use tandem::fs::{MAX_FILE_SIZE, XattrMode};

use crate::compare::Stat;
use crate::reference::{Body, Model};

impl Model {
    pub(crate) fn file_mut(&mut self, ino: u64) -> Result<&mut Vec<u8>, i32> {
        match &mut self.node_mut(ino)?.body {
            Body::File(d) => Ok(d),
            Body::Dir { .. } => Err(EISDIR),
            _ => Err(EINVAL),
        }
    }

    pub(crate) fn write(&mut self, ino: u64, off: u64, data: &[u8]) -> Result<u32, i32> {
        let end = off + data.len() as u64;
        if end > MAX_FILE_SIZE {
            return Err(EFBIG);
        }
        let f = self.file_mut(ino)?;
        let end = end as usize;
        if f.len() < end {
            f.resize(end, 0);
        }
        f[off as usize..end].copy_from_slice(data);
        Ok(data.len() as u32)
    }

    pub(crate) fn truncate(&mut self, ino: u64, size: u64) -> Result<Stat, i32> {
        let f = self.file_mut(ino)?;
        if size > MAX_FILE_SIZE {
            return Err(EFBIG);
        }
        f.resize(size as usize, 0);
        self.stat(ino)
    }

    /// fallocate PUNCH_HOLE or ZERO_RANGE: the range inside the file reads zeros; with
    /// `grow` (ZERO_RANGE without KEEP_SIZE) the file grows to cover it.
    pub(crate) fn punch(&mut self, ino: u64, off: u64, len: u64, grow: bool) -> Result<(), i32> {
        let end = off.checked_add(len).ok_or(EFBIG)?;
        if grow && end > MAX_FILE_SIZE {
            return Err(EFBIG);
        }
        let f = self.file_mut(ino)?;
        let stop = (end as usize).min(f.len());
        if (off as usize) < stop {
            f[off as usize..stop].fill(0);
        }
        if grow && end as usize > f.len() {
            f.resize(end as usize, 0);
        }
        Ok(())
    }

    /// copy_file_range: up to `len` bytes (short at the source's end); EINVAL for
    /// overlapping ranges of one file.
    pub(crate) fn copy(
        &mut self,
        src: u64,
        off_in: u64,
        dst: u64,
        off_out: u64,
        len: u64,
    ) -> Result<u64, i32> {
        let size = self.file_mut(src)?.len() as u64;
        self.file_mut(dst)?;
        let len = len.min(size.saturating_sub(off_in));
        if len == 0 {
            return Ok(0);
        }
        if off_out.checked_add(len).is_none_or(|e| e > MAX_FILE_SIZE) {
            return Err(EFBIG);
        }
        if src == dst && off_in < off_out + len && off_out < off_in + len {
            return Err(EINVAL);
        }
        let bytes = self.file_mut(src)?[off_in as usize..(off_in + len) as usize].to_vec();
        self.write(dst, off_out, &bytes)?;
        Ok(len)
    }

    pub(crate) fn read(&self, ino: u64, off: u64, len: u32) -> Result<Vec<u8>, i32> {
        match &self.node(ino)?.body {
            Body::File(d) => {
                let start = (off as usize).min(d.len());
                let end = (off as usize + len as usize).min(d.len());
                Ok(d[start..end].to_vec())
            }
            Body::Dir { .. } => Err(EISDIR),
            _ => Err(EINVAL),
        }
    }

    pub(crate) fn setxattr(
        &mut self,
        ino: u64,
        name: &[u8],
        value: Vec<u8>,
        mode: XattrMode,
    ) -> Result<(), i32> {
        if name.is_empty() {
            return Err(ERANGE);
        }
        if value.len() > 64 * 1024 {
            return Err(E2BIG);
        }
        let n = self.node_mut(ino)?;
        let exists = n.xattrs.contains_key(name);
        match mode {
            XattrMode::Create if exists => return Err(EEXIST),
            XattrMode::Replace if !exists => return Err(ENODATA),
            _ => {}
        }
        n.xattrs.insert(name.to_vec(), value);
        Ok(())
    }

    pub(crate) fn getxattr(&self, ino: u64, name: &[u8]) -> Result<Vec<u8>, i32> {
        if name.is_empty() {
            return Err(ERANGE);
        }
        self.node(ino)?.xattrs.get(name).cloned().ok_or(ENODATA)
    }

    pub(crate) fn removexattr(&mut self, ino: u64, name: &[u8]) -> Result<(), i32> {
        if name.is_empty() {
            return Err(ERANGE);
        }
        self.node_mut(ino)?
            .xattrs
            .remove(name)
            .map(|_| ())
            .ok_or(ENODATA)
    }

    pub(crate) fn logical_bytes(&self) -> u64 {
        self.nodes
            .values()
            .map(|n| {
                if let Body::File(d) = &n.body {
                    d.len() as u64
                } else {
                    0
                }
            })
            .sum()
    }
}
