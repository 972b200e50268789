//! Reading the engine's whole tree back and comparing it with a model: every inode's
//! attributes, extended attributes, directory listing (read in pages), file bytes (read in
//! pieces that straddle blocks) and symlink target, in the live view and in every snapshot;
//! the volume's counters; and the teardown that removes everything and checks that the pool
//! keeps no chunk.

use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use tandem::store::rows::View;
use tandem::types::InodeNo;

use crate::compare::{Out, fail, same, stat_of};
use crate::reference::{Body, Model};
use crate::world::World;
use crate::{BS, ROOT, errno};

impl World {
    pub(crate) fn e_read_all(&self, view: View, ino: u64) -> Result<Vec<u8>, i32> {
        // Reads in pieces that straddle block boundaries.
        let mut out = Vec::new();
        loop {
            let piece = self
                .e()
                .read(
                    self.vol,
                    view,
                    InodeNo(ino),
                    out.len() as u64,
                    3 * BS as u32 + 123,
                )
                .map_err(errno)?;
            if piece.is_empty() {
                return Ok(out);
            }
            out.extend_from_slice(&piece);
        }
    }

    pub(crate) fn e_readdir(&self, view: View, ino: u64, page: usize) -> Result<Out, i32> {
        let (mut dot, mut dotdot, mut entries) = (0, 0, Vec::new());
        let mut off = 0;
        for _ in 0..1000 {
            let batch = self
                .e()
                .readdir(self.vol, view, InodeNo(ino), off, page)
                .map_err(errno)?;
            if batch.is_empty() {
                break;
            }
            for d in batch {
                off = d.offset;
                match d.name.as_slice() {
                    b"." => dot = d.ino.0,
                    b".." => dotdot = d.ino.0,
                    _ => entries.push((d.name, d.ino.0, d.kind)),
                }
            }
        }
        entries.sort_by(|a, b| (&a.0, a.1, a.2.code()).cmp(&(&b.0, b.1, b.2.code())));
        Ok(Out::Dir {
            dot,
            dotdot,
            entries,
        })
    }

    pub(crate) fn e_listxattr(&self, view: View, ino: u64) -> Result<Vec<Vec<u8>>, i32> {
        let mut names = self
            .e()
            .listxattr(self.vol, view, InodeNo(ino))
            .map_err(errno)?;
        names.sort();
        Ok(names)
    }

    /// Compares the whole tree a view shows with a model, from the root.
    pub(crate) fn verify_view(
        &self,
        view: View,
        m: &Model,
        what: &str,
    ) -> Result<(), TestCaseError> {
        self.verify_node(view, m, ROOT, "", what)
    }

    pub(crate) fn verify_node(
        &self,
        view: View,
        m: &Model,
        ino: u64,
        path: &str,
        what: &str,
    ) -> Result<(), TestCaseError> {
        let (e, v) = (self.e(), self.vol);
        let at = |s: &str| format!("{what} ({view:?}) {s} of \"{path}/\" (ino {ino})");
        let node = &m.nodes[&ino];
        let got = e
            .getattr(v, view, InodeNo(ino))
            .map_err(errno)
            .map(|a| Out::Stat(stat_of(&a)));
        same(&at("getattr"), got, m.stat(ino).map(Out::Stat))?;
        let names: Vec<Vec<u8>> = node.xattrs.keys().cloned().collect();
        same(
            &at("listxattr"),
            self.e_listxattr(view, ino).map(Out::Names),
            Ok(Out::Names(names)),
        )?;
        for (k, val) in &node.xattrs {
            let got = e
                .getxattr(v, view, InodeNo(ino), k)
                .map_err(errno)
                .map(Out::Data);
            same(&at("getxattr"), got, Ok(Out::Data(val.clone())))?;
        }
        match &node.body {
            Body::Dir { entries, .. } => {
                same(
                    &at("readdir"),
                    self.e_readdir(view, ino, 64),
                    m.readdir(ino),
                )?;
                for (name, &child) in entries {
                    let got = e
                        .lookup(v, view, InodeNo(ino), name)
                        .map(|a| a.ino.0)
                        .map_err(errno);
                    same(&at("lookup"), got.map(Out::Ino), Ok(Out::Ino(child)))?;
                    let sub = format!("{path}/{}", String::from_utf8_lossy(name));
                    self.verify_node(view, m, child, &sub, what)?;
                }
                Ok(())
            }
            Body::File(d) => same(
                &at("read"),
                self.e_read_all(view, ino).map(Out::Data),
                Ok(Out::Data(d.clone())),
            ),
            Body::Symlink(t) => {
                let got = e
                    .readlink(v, view, InodeNo(ino))
                    .map_err(errno)
                    .map(Out::Data);
                same(&at("readlink"), got, Ok(Out::Data(t.clone())))
            }
            Body::Fifo => Ok(()),
        }
    }

    /// Every volume of the case, live and in every snapshot, against its model.
    pub(crate) fn verify_all(&mut self, what: &str) -> Result<(), TestCaseError> {
        self.verify_view(View::Live, &self.model, what)?;
        for (g, m) in &self.snaps {
            self.verify_view(View::At(*g), m, what)?;
        }
        self.verify_parked(what)
    }

    /// Each volume's counters: files (inodes, orphans included) and logical bytes.
    pub(crate) fn verify_counts(&self) -> Result<(), TestCaseError> {
        let all = std::iter::once((&self.name, &self.model))
            .chain(self.parked.iter().map(|p| (&p.name, &p.model)));
        for (name, model) in all {
            let info = self
                .e()
                .volume_info(name)
                .map_err(|e| fail(format!("volume_info {name}: {e}")))?;
            prop_assert_eq!(
                info.files,
                model.nodes.len() as u64,
                "files of volume {}",
                name
            );
            prop_assert_eq!(
                info.logical_bytes,
                model.logical_bytes(),
                "logical bytes of volume {}",
                name
            );
        }
        Ok(())
    }

    /// Releases every snapshot and handle and removes the whole tree of every volume, then
    /// deletes all volumes but one: nothing may remain referenced in the pool.
    pub(crate) fn teardown(&mut self) -> Result<(), TestCaseError> {
        self.teardown_all()?;
        let stats = self
            .e()
            .pool_stats()
            .map_err(|e| fail(format!("pool_stats: {e}")))?;
        prop_assert_eq!(
            (stats.physical_bytes, stats.referenced_bytes),
            (0, 0),
            "chunks left in an empty pool"
        );
        Ok(())
    }

    /// Releases the current volume's snapshots and handles and removes its tree.
    pub(crate) fn teardown_current(&mut self) -> Result<(), TestCaseError> {
        let v = self.vol;
        for (g, _) in std::mem::take(&mut self.snaps) {
            self.e()
                .release_generation(v, g)
                .map_err(|e| fail(format!("release_generation: {e}")))?;
        }
        self.verify_view(View::Live, &self.model, "after releasing all snapshots")?;
        for ino in std::mem::take(&mut self.handles) {
            self.model.release(ino);
            self.e()
                .release(v, View::Live, InodeNo(ino))
                .map_err(|e| fail(format!("release: {e}")))?;
        }
        self.remove_tree(ROOT)?;
        self.verify_counts()?;
        let info = self
            .e()
            .volume_info(&self.name)
            .map_err(|e| fail(format!("volume_info: {e}")))?;
        prop_assert_eq!(info.physical_bytes, 0, "stored bytes of an empty volume");
        Ok(())
    }

    pub(crate) fn remove_tree(&mut self, dir: u64) -> Result<(), TestCaseError> {
        let entries = self
            .model
            .entries(dir)
            .map_err(|e| fail(format!("model dir {dir}: {e}")))?
            .clone();
        for (name, child) in entries {
            let r = if self.model.is_dir(child) {
                self.remove_tree(child)?;
                self.model
                    .rmdir(dir, &name)
                    .map_err(|e| fail(format!("model rmdir: {e}")))?;
                self.e().rmdir(self.vol, InodeNo(dir), &name)
            } else {
                self.model
                    .unlink(dir, &name)
                    .map_err(|e| fail(format!("model unlink: {e}")))?;
                self.e().unlink(self.vol, InodeNo(dir), &name)
            };
            r.map_err(|e| {
                fail(format!(
                    "teardown: removing {} in {dir}: {e}",
                    String::from_utf8_lossy(&name)
                ))
            })?;
        }
        Ok(())
    }
}
