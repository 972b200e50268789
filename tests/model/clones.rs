//! Layered clones in a case: the volumes operations do not run on now ([`Parked`]), and the
//! operations that make, enter and delete them. A clone is made from a snapshot generation
//! of the current volume; its model is the snapshot's model (inode numbers continue from
//! the origin's live counter, as the engine's clone does). Before leaving a volume every
//! handle is released and every write committed durably, so a crash later in the case has
//! nothing of a parked volume to lose.
//!
//! A clone is only made from a snapshot taken with no file open: one taken with an orphan
//! (unlinked while open) would carry it as an unreachable inode, which the model does not
//! describe.

use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use tandem::store::rows::View;
use tandem::types::{Generation, InodeNo, VolumeId};

use crate::compare::fail;
use crate::reference::Model;
use crate::world::World;

/// A volume of the case other than the current one, with its model and snapshots.
pub(crate) struct Parked {
    pub(crate) vol: VolumeId,
    pub(crate) name: String,
    pub(crate) model: Model,
    pub(crate) snaps: Vec<(Generation, Model)>,
}

impl World {
    /// Releases every handle of the current volume (engine and model).
    fn release_handles(&mut self) -> Result<(), TestCaseError> {
        let v = self.vol;
        for ino in std::mem::take(&mut self.handles) {
            self.model.release(ino);
            self.e()
                .release(v, View::Live, InodeNo(ino))
                .map_err(|e| fail(format!("release: {e}")))?;
        }
        Ok(())
    }

    /// Leaves the current volume: handles released, writes durable. Returns it parked.
    fn leave(&mut self) -> Result<Parked, TestCaseError> {
        self.release_handles()?;
        self.e()
            .commit_all()
            .map_err(|e| fail(format!("commit_all: {e}")))?;
        self.unsynced.clear();
        Ok(Parked {
            vol: self.vol,
            name: std::mem::take(&mut self.name),
            model: std::mem::replace(&mut self.model, Model::new()),
            snaps: std::mem::take(&mut self.snaps),
        })
    }

    fn enter(&mut self, p: Parked) {
        self.vol = p.vol;
        self.name = p.name;
        self.model = p.model;
        self.snaps = p.snaps;
    }

    /// Clones the i-th snapshot of the current volume taken with nothing open (a new
    /// snapshot if there is none) and goes on in the clone.
    pub(crate) fn clone_snapshot(&mut self, i: usize) -> Result<(), TestCaseError> {
        self.release_handles()?;
        let usable: Vec<usize> = (0..self.snaps.len())
            .filter(|&k| self.snaps[k].1.opens.is_empty())
            .collect();
        let (g, snap_model) = if usable.is_empty() {
            let gens = self
                .e()
                .snapshot_generations(&[self.vol])
                .map_err(|e| fail(format!("snapshot: {e}")))?;
            prop_assert_eq!(gens.len(), 1);
            self.snaps.push((gens[0].1, self.model.clone()));
            (gens[0].1, self.model.clone())
        } else {
            self.snaps[usable[i % usable.len()]].clone()
        };
        self.clones_made += 1;
        let name = format!("c{}", self.clones_made);
        let info = self
            .e()
            .clone_generation(self.vol, g, &name)
            .map_err(|e| fail(format!("clone of generation {g:?} as {name}: {e}")))?;
        self.tally.clones += 1;
        let mut model = snap_model;
        model.next_ino = self.model.next_ino;
        let origin = self.leave()?;
        self.parked.push(origin);
        self.enter(Parked {
            vol: info.id,
            name,
            model,
            snaps: Vec::new(),
        });
        self.verify_all("new clone")?;
        self.verify_counts()
    }

    /// Goes on in the i-th parked volume (parking the current one).
    pub(crate) fn switch(&mut self, i: usize) -> Result<(), TestCaseError> {
        if self.parked.is_empty() {
            return Ok(());
        }
        let next = self.parked.remove(i % self.parked.len());
        let cur = self.leave()?;
        self.parked.push(cur);
        self.enter(next);
        self.verify_all("after switching volumes")
    }

    /// Deletes the i-th parked volume, its snapshots first: clones layered over it keep
    /// what they showed.
    pub(crate) fn drop_volume(&mut self, i: usize) -> Result<(), TestCaseError> {
        if self.parked.is_empty() {
            return Ok(());
        }
        let p = self.parked.remove(i % self.parked.len());
        let layered = self.parked.iter().map(|q| q.vol).chain([self.vol]);
        for c in layered {
            if self
                .e()
                .clone_layer(c)
                .map_err(|e| fail(format!("{e}")))?
                .map(|(o, _)| o)
                == Some(p.vol)
            {
                self.tally.origins_deleted += 1;
                break;
            }
        }
        for (g, _) in &p.snaps {
            self.e()
                .release_generation(p.vol, *g)
                .map_err(|e| fail(format!("release_generation: {e}")))?;
        }
        self.e()
            .delete_volume(&p.name)
            .map_err(|e| fail(format!("delete_volume {}: {e}", p.name)))?;
        self.verify_all("after deleting a volume")?;
        self.verify_counts()
    }

    /// Checks every parked volume's live view and snapshots against their models.
    pub(crate) fn verify_parked(&mut self, what: &str) -> Result<(), TestCaseError> {
        let cur = self.vol;
        for k in 0..self.parked.len() {
            self.vol = self.parked[k].vol;
            let r: Result<(), TestCaseError> = (|| {
                let p = &self.parked[k];
                let what = format!("{what}, volume {}", p.name);
                self.verify_view(View::Live, &p.model, &what)?;
                for (g, m) in &p.snaps {
                    self.verify_view(View::At(*g), m, &what)?;
                }
                Ok(())
            })();
            self.vol = cur;
            r?;
        }
        Ok(())
    }

    /// Teardown of every volume: each one's snapshots released and tree removed (see
    /// `World::teardown_current`), then every volume but the last deleted (which releases
    /// the clones' holds on their origins' generations). Returns with the last one current.
    pub(crate) fn teardown_all(&mut self) -> Result<(), TestCaseError> {
        let mut done = Vec::new();
        loop {
            self.teardown_current()?;
            let Some(next) = self.parked.pop() else {
                break;
            };
            done.push(self.leave()?);
            self.enter(next);
        }
        for p in done {
            self.e()
                .delete_volume(&p.name)
                .map_err(|e| fail(format!("delete_volume {}: {e}", p.name)))?;
        }
        Ok(())
    }
}
