//! Layered clones (`clone_layers`, see [`super::tables`]): a clone is a volume whose rows
//! lie over a lower layer, its origin's view at the snapshot generation it was cloned from.
//! Making one writes O(1) rows (its volume record, the layer, one more hold on the origin's
//! generation), whatever the origin holds.
//!
//! Reading: a view of a clone (live, or one of its own snapshot generations) shows, row by
//! row, the clone's own version if it has one that view sees (a tombstone hides the row),
//! else the lower layer's; the lower layer may be a clone itself (a clone of a clone's
//! snapshot), so a read walks the chain ([`stack`]). Scans merge the layers in key order.
//!
//! Writing: a clone writes rows of its own only. The first write of a row shows the lower
//! version to the writer as its generation 0 (see [`Tx::latest_row`](super::Tx::latest_row)):
//! older than any of the clone's own and never private to it, so the clone takes references
//! of its own on the chunks it keeps of it (copy-up of one row) and never drops it. Deleting
//! a row only the lower layer has writes a tombstone.
//!
//! Invariants:
//! - the clone holds its origin's generation in `snap_gens` (one hold, like a snapshot): the
//!   versions its lower layer shows are kept while it exists, whatever happens to the
//!   snapshot that named the generation (deleting that snapshot gives up only the
//!   snapshot's hold; `df` then counts those bytes as the clone's, shared with its origin);
//! - the clone's own rows hold their own chunk references; the lower layer's are the
//!   origin's;
//! - deleting a clone releases its hold; deleting an origin volume first gives every clone
//!   layered over it its own copy of the rows it reads of it ([`Tx::materialize_layer`],
//!   O(rows), the only O(rows) step of a clone's life), so no clone ever points at a gone
//!   volume;
//! - the change index of a clone records only its own writes: the lower layer never changes,
//!   so a diff or restore between two views of the clone stays O(changes);
//! - a tombstone is never dropped for being a row's oldest version: in a clone it is what
//!   hides the lower layer's row (only [`super::volumes`]' release rule drops versions, and
//!   it drops a version only once a later one supersedes it).

use std::iter::Peekable;

use redb::ReadableTable;

use super::error::StoreError;
use super::keys::{self, RowId};
use super::read::{ReadView, sealed};
use super::rows::{self, RowValue, View};
use super::writer::Tx;
use crate::types::{Generation, VolumeId};

/// How deep clones of clones may nest; a deeper chain is a damaged pool (a cycle).
const MAX_DEPTH: usize = 1024;

fn too_deep(vol: VolumeId) -> StoreError {
    StoreError::Damaged(format!(
        "volume #{vol}: its clone layers nest deeper than {MAX_DEPTH} (a cycle in clone_layers)"
    ))
}

/// The lower layer of `vol`: its origin and the generation it was cloned from.
pub(super) fn layer_of<T: sealed::Tables + ?Sized>(
    t: &T,
    vol: VolumeId,
) -> Result<Option<(VolumeId, Generation)>, StoreError> {
    Ok(t.clone_layers_t()?.get(vol.0)?.map(|v| {
        let (o, g) = v.value();
        (VolumeId(o), Generation(g))
    }))
}

/// The layers a read of `vol` in `view` looks at, top first: the volume itself, then each
/// origin at the generation its clone was made from.
pub(super) fn stack<T: sealed::Tables + ?Sized>(
    t: &T,
    vol: VolumeId,
    view: View,
) -> Result<Vec<(VolumeId, View)>, StoreError> {
    let mut out = vec![(vol, view)];
    let mut cur = vol;
    while let Some((o, g)) = layer_of(t, cur)? {
        if out.len() > MAX_DEPTH {
            return Err(too_deep(vol));
        }
        out.push((o, View::At(g)));
        cur = o;
    }
    Ok(out)
}

fn with_vol(vol: VolumeId, body: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(8 + body.len());
    k.extend_from_slice(&vol.0.to_be_bytes());
    k.extend_from_slice(body);
    k
}

/// Row `body` (a row key without volume and generation) as `view` of `vol` shows it: the
/// volume's own version if the view sees one (a tombstone hides what lies below), else its
/// lower layer's. The layer table is read only when the volume has no version of its own.
pub(super) fn get<T: sealed::Tables + ?Sized>(
    t: &T,
    vol: VolumeId,
    body: &[u8],
    view: View,
) -> Result<Option<RowValue>, StoreError> {
    let rows = t.rows_t()?;
    let (mut v, mut w) = (vol, view);
    for _ in 0..=MAX_DEPTH {
        match rows::version(rows, &with_vol(v, body), w)? {
            Some(RowValue::Tombstone) => return Ok(None),
            Some(x) => return Ok(Some(x)),
            None => match layer_of(t, v)? {
                Some((o, g)) => (v, w) = (o, View::At(g)),
                None => return Ok(None),
            },
        }
    }
    Err(too_deep(vol))
}

/// A row of one layer: its body and the encoded version the view sees, if any.
type LayerRow = (Vec<u8>, Option<Vec<u8>>);

/// One layer's rows in key order, one item per row: its body and the encoded version the
/// view sees (`None`: the layer has the row only at generations the view does not see).
struct Versions<'a> {
    range: Peekable<redb::Range<'a, &'static [u8], &'static [u8]>>,
    view: View,
}

impl Versions<'_> {
    fn sees(&self, g: Generation) -> bool {
        match self.view {
            View::Live => true,
            View::At(s) => g <= s,
        }
    }

    fn next_row(&mut self) -> Result<Option<LayerRow>, StoreError> {
        let short = || StoreError::Damaged("short row key".into());
        let Some(first) = self.range.next() else {
            return Ok(None);
        };
        let (k, v) = first?;
        let (p, g) = keys::split_version(k.value()).ok_or_else(short)?;
        let prefix = p.to_vec();
        let mut seen = self.sees(g).then(|| v.value().to_vec());
        loop {
            let same = match self.range.peek() {
                Some(Ok((k2, _))) => {
                    keys::split_version(k2.value()).is_some_and(|(p2, _)| p2 == prefix.as_slice())
                }
                _ => false,
            };
            if !same {
                break;
            }
            let Some(next) = self.range.next() else {
                break;
            };
            let (k2, v2) = next?;
            let (_, g2) = keys::split_version(k2.value()).ok_or_else(short)?;
            if self.sees(g2) {
                seen = Some(v2.value().to_vec());
            }
        }
        let body = prefix.get(8..).ok_or_else(short)?.to_vec();
        Ok(Some((body, seen)))
    }
}

/// Visits, in key order, every row whose body starts with `body_prefix` and is >= `body_start`
/// as the top of `layers` shows it (see [`get`]), with the index of the layer it comes from;
/// hidden and tombstoned rows are skipped. `visit` returns false to stop.
pub(super) fn scan<T: sealed::Tables + ?Sized>(
    t: &T,
    layers: &[(VolumeId, View)],
    body_prefix: &[u8],
    body_start: &[u8],
    mut visit: impl FnMut(usize, RowId, RowValue) -> Result<bool, StoreError>,
) -> Result<(), StoreError> {
    let rows = t.rows_t()?;
    let start = body_start.max(body_prefix);
    let mut its = Vec::with_capacity(layers.len());
    for &(v, w) in layers {
        let lo = with_vol(v, start);
        let hi = keys::prefix_end(&with_vol(v, body_prefix));
        its.push(Versions {
            range: rows
                .range::<&[u8]>(lo.as_slice()..hi.as_slice())?
                .peekable(),
            view: w,
        });
    }
    let mut heads = Vec::with_capacity(its.len());
    for it in &mut its {
        heads.push(it.next_row()?);
    }
    loop {
        let Some(min) = heads.iter().flatten().map(|(b, _)| b).min().cloned() else {
            return Ok(());
        };
        let mut chosen: Option<(usize, Vec<u8>)> = None;
        for (i, head) in heads.iter_mut().enumerate() {
            if head.as_ref().is_some_and(|(b, _)| *b == min) {
                if let Some((_, Some(raw))) = head.take()
                    && chosen.is_none()
                {
                    chosen = Some((i, raw));
                }
                *head = its[i].next_row()?;
            }
        }
        let Some((layer, raw)) = chosen else {
            continue;
        };
        match RowValue::decode(&raw)? {
            RowValue::Tombstone => {}
            v => {
                let id = RowId::decode_body(&min)
                    .ok_or_else(|| StoreError::Damaged("malformed row key".into()))?;
                if !visit(layer, id, v)? {
                    return Ok(());
                }
            }
        }
    }
}

/// [`scan`] from the volume's own prefix and start keys (both with the volume), over its
/// whole stack: one lookup of the layer table, and the plain one-layer scan when the
/// volume is not a clone.
pub(super) fn scan_view<T: sealed::Tables + ?Sized>(
    t: &T,
    vol: VolumeId,
    prefix: &[u8],
    start: &[u8],
    view: View,
    mut visit: impl FnMut(usize, RowId, RowValue) -> Result<bool, StoreError>,
) -> Result<(), StoreError> {
    let layers = stack(t, vol, view)?;
    if layers.len() == 1 {
        return rows::scan(t.rows_t()?, prefix, start, view, |id, v| visit(0, id, v));
    }
    let body = |k: &[u8]| k.get(8..).map(<[u8]>::to_vec).unwrap_or_default();
    scan(t, &layers, &body(prefix), &body(start), visit)
}

/// Every clone layered directly over volume `origin`.
fn clones_over(
    t: &impl ReadableTable<u64, (u64, u64)>,
    origin: VolumeId,
) -> Result<Vec<VolumeId>, StoreError> {
    let mut out = Vec::new();
    for e in t.iter()? {
        let (k, v) = e?;
        if v.value().0 == origin.0 {
            out.push(VolumeId(k.value()));
        }
    }
    Ok(out)
}

impl Tx<'_> {
    /// Makes the new, empty volume `clone` a layer over `origin`'s view at snapshot
    /// generation `s`, and holds that generation. O(1): three rows.
    pub fn add_clone_layer(
        &mut self,
        clone: VolumeId,
        origin: VolumeId,
        s: Generation,
    ) -> Result<(), StoreError> {
        let holders = self
            .snap_gens
            .get((origin.0, s.0))?
            .map(|v| v.value())
            .ok_or(StoreError::NoSuchGeneration {
                vol: origin,
                generation: s,
            })?;
        self.snap_gens.insert((origin.0, s.0), holders + 1)?;
        self.clone_layers.insert(clone.0, (origin.0, s.0))?;
        self.rows_written += 2;
        Ok(())
    }

    /// The value the lower layer of `vol` shows for row `id` (`None`: `vol` is not a clone,
    /// or its lower layer has no such row).
    pub(crate) fn lower_row(
        &self,
        vol: VolumeId,
        id: &RowId,
    ) -> Result<Option<RowValue>, StoreError> {
        match layer_of(self, vol)? {
            Some((o, s)) => self.row(o, id, View::At(s)),
            None => Ok(None),
        }
    }

    /// Gives the layered clone `clone` its own copy of every row its lower layer shows any
    /// of its views, then drops the layer (the caller releases the origin's generation, or
    /// deletes the origin). Each copied row is written at generation 1, the clone's first,
    /// where nothing of its own hides it from every view (so each view of the clone shows
    /// what it showed), with its change recorded there and a reference on each chunk, as a
    /// clone made by copying would have it. O(rows of the lower layer).
    pub(super) fn materialize_layer(&mut self, clone: VolumeId) -> Result<(), StoreError> {
        let Some((o, s)) = layer_of(self, clone)? else {
            return Ok(());
        };
        let mut lower = Vec::new();
        self.volume_rows(o, View::At(s), |id, v| {
            lower.push((id, v));
            Ok(true)
        })?;
        let first_snap = self
            .snap_gens
            .range((clone.0, 0)..=(clone.0, u64::MAX))?
            .next()
            .transpose()?
            .map(|(k, _)| k.value().1);
        let one = Generation(1);
        for (id, v) in lower {
            let prefix = id.prefix(clone);
            let lo = keys::versioned(&prefix, Generation(0));
            let hi = keys::prefix_end(&prefix);
            let first_own = match self
                .rows
                .range::<&[u8]>(lo.as_slice()..hi.as_slice())?
                .next()
            {
                Some(e) => {
                    let (k, _) = e?;
                    keys::split_version(k.value()).map(|(_, g)| g.0)
                }
                None => None,
            };
            // Seen: by the live view (nothing of its own), or by a snapshot of the clone
            // taken before its first own version.
            let seen = match first_own {
                None => true,
                Some(h) => first_snap.is_some_and(|f| f < h),
            };
            if !seen {
                continue;
            }
            for (chunk, _) in v.chunks() {
                self.chunk_incref(chunk)?;
            }
            self.rows.insert(
                keys::versioned(&prefix, one).as_slice(),
                v.encode().as_slice(),
            )?;
            let mut body = Vec::with_capacity(48);
            id.encode_body(&mut body);
            self.changes
                .insert(keys::change_key(clone, one, &body).as_slice(), ())?;
            self.rows_written += 2;
        }
        self.clone_layers.remove(clone.0)?;
        self.rows_written += 1;
        Ok(())
    }

    /// Before volume `vol` is deleted: every clone layered over it gets its own rows
    /// ([`Tx::materialize_layer`]). After: its own layer goes and its hold on its origin's
    /// generation is released. Called by [`Tx::delete_volume`].
    pub(super) fn detach_layers_before_delete(&mut self, vol: VolumeId) -> Result<(), StoreError> {
        for c in clones_over(&self.clone_layers, vol)? {
            self.materialize_layer(c)?;
        }
        Ok(())
    }

    pub(super) fn drop_layer_after_delete(&mut self, vol: VolumeId) -> Result<(), StoreError> {
        if let Some((o, s)) = layer_of(self, vol)? {
            self.clone_layers.remove(vol.0)?;
            if self.volumes.get(o.0)?.is_some() {
                self.release_generation(o, s)?;
            }
        }
        Ok(())
    }
}
