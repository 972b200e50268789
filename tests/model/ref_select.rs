//! Path selection over the reference filesystem's tree (see reference.rs): generated
//! operations carry selectors (`P::Existing(i)`, `P::Under(i, n)`, ...) that resolve to
//! real paths of the current tree just before they run.

use tandem::fs::FileKind;

use crate::reference::{Body, Model, Node};
use crate::{NAMES, P, ROOT};

impl Model {
    /// Every path of the tree (as NAMES indices) with its inode, depth-first in name order.
    pub(crate) fn paths(&self) -> Vec<(Vec<u8>, u64)> {
        let mut out = Vec::new();
        let mut stack = vec![(Vec::new(), ROOT)];
        while let Some((path, ino)) = stack.pop() {
            if let Body::Dir { entries, .. } = &self.nodes[&ino].body {
                for (name, &child) in entries.iter().rev() {
                    let mut p = path.clone();
                    let i = NAMES.iter().position(|n| *n == name.as_slice());
                    p.push(i.expect("model names come from NAMES") as u8);
                    stack.push((p, child));
                }
            }
            if ino != ROOT {
                out.push((path, ino));
            }
        }
        out
    }

    /// The i-th path (modulo their number) whose inode satisfies `pred`.
    pub(crate) fn nth_path(&self, i: u16, pred: impl Fn(u64, &Node) -> bool) -> Option<Vec<u8>> {
        let found: Vec<Vec<u8>> = self
            .paths()
            .into_iter()
            .filter(|(_, ino)| pred(*ino, &self.nodes[ino]))
            .map(|(p, _)| p)
            .collect();
        (!found.is_empty()).then(|| found[i as usize % found.len()].clone())
    }

    /// Resolves a path selector against the current tree.
    pub(crate) fn pick(&self, p: &P) -> P {
        let or_pick = |found: Option<Vec<u8>>, fallback: P| {
            found.map(P::Path).unwrap_or_else(|| self.pick(&fallback))
        };
        match *p {
            P::Path(_) => p.clone(),
            P::Existing(i) => P::Path(
                self.nth_path(i, |_, _| true)
                    .unwrap_or_else(|| vec![(i % 4) as u8]),
            ),
            P::File(i) => or_pick(
                self.nth_path(i, |_, n| n.kind() == FileKind::File),
                P::Existing(i),
            ),
            P::Dir(i) => or_pick(
                self.nth_path(i, |_, n| n.kind() == FileKind::Dir),
                P::Existing(i),
            ),
            P::Opened(i) => or_pick(
                self.nth_path(i, |ino, _| self.opens.contains_key(&ino)),
                P::File(i),
            ),
            P::Xattred(i) => or_pick(
                self.nth_path(i, |_, n| !n.xattrs.is_empty()),
                P::Existing(i),
            ),
            // Only the world knows which files were written since their last fsync.
            P::Written(i) => self.pick(&P::File(i)),
            P::Under(i, n) => {
                let mut dirs = vec![Vec::new()];
                dirs.extend(
                    self.paths()
                        .into_iter()
                        .filter(|(p, ino)| p.len() <= 2 && self.nodes[ino].kind() == FileKind::Dir)
                        .map(|(p, _)| p),
                );
                let mut d = dirs[i as usize % dirs.len()].clone();
                d.push(n % 4);
                P::Path(d)
            }
        }
    }
}
