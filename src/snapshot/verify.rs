//! A snapshot's Merkle root and `snapshot verify`. The root is computed after the thaw (the
//! daemon's root worker, or here on first need), never inside the pause, and recorded
//! beside the snapshot; verify re-reads and re-hashes every chunk the snapshot references,
//! recomputes the root and compares it with the recorded one.

use std::ops::ControlFlow;

use serde::{Deserialize, Serialize};

use crate::fs::Engine;
use crate::fs::groups::SnapError;
use crate::fs::treehash::{DamagedPath, Member};
use crate::store::catalog::SnapshotRecord;
use crate::store::snapmeta::RootRecord;
use crate::store::verify::VerifyProgress;

/// A hash as shown to users: lowercase hex.
pub fn hex(h: &[u8; 32]) -> String {
    blake3::Hash::from_bytes(*h).to_hex().to_string()
}

fn members(s: &SnapshotRecord) -> Vec<Member> {
    s.members.iter().map(|m| (m.vol, m.generation)).collect()
}

/// The recorded root of `s`, computed and recorded first if it is not yet.
pub fn root(engine: &Engine, s: &SnapshotRecord) -> Result<RootRecord, SnapError> {
    if let Some(r) = engine.recorded_root(s.id)? {
        return Ok(r);
    }
    let r = engine.compute_snapshot_root(&members(s))?;
    engine.record_root(&s.name, s.id, r.clone())?;
    Ok(r)
}

/// Computes and records the root of every snapshot that has none yet; returns how many.
/// `stop` is asked between two snapshots.
pub fn record_missing_roots(engine: &Engine, stop: &dyn Fn() -> bool) -> Result<usize, SnapError> {
    let mut n = 0;
    for s in engine.snapshots()? {
        if stop() {
            break;
        }
        if engine.recorded_root(s.id)?.is_none() {
            let r = engine.compute_snapshot_root(&members(&s))?;
            if engine.record_root(&s.name, s.id, r)? {
                n += 1;
            }
        }
    }
    Ok(n)
}

/// One member's part of a verify.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberCheck {
    pub volume: String,
    /// The member's root as recorded.
    pub root: String,
    /// As recomputed now.
    pub computed: String,
    /// Files whose chunks are missing or no longer hash to their ids.
    pub damaged: Vec<DamagedPath>,
}

/// What `snapshot verify` found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotVerifyReport {
    pub snapshot: String,
    /// The snapshot's root as recorded.
    pub root: String,
    /// As recomputed now from the snapshot's rows.
    pub computed: String,
    /// The root was recorded by this verify (none was recorded before).
    pub recorded_now: bool,
    pub members: Vec<MemberCheck>,
    /// Distinct chunks re-read and re-hashed, and their bytes.
    pub chunks: u64,
    pub bytes: u64,
    pub elapsed_ms: u64,
}

impl SnapshotVerifyReport {
    pub fn ok(&self) -> bool {
        self.root == self.computed && self.members.iter().all(|m| m.damaged.is_empty())
    }
}

/// Verifies snapshot `name`; `None` when `progress` broke it off.
pub fn verify(
    engine: &Engine,
    name: &str,
    progress: &mut dyn FnMut(&VerifyProgress) -> ControlFlow<()>,
) -> Result<Option<SnapshotVerifyReport>, SnapError> {
    let started = std::time::Instant::now();
    let s = engine.snapshot(name)?;
    let recorded = engine.recorded_root(s.id)?;
    let Some(check) = engine.verify_snapshot(&members(&s), progress)? else {
        return Ok(None);
    };
    let recorded_now = recorded.is_none();
    let recorded = match recorded {
        Some(r) => r,
        None => {
            engine.record_root(&s.name, s.id, check.roots.clone())?;
            check.roots.clone()
        }
    };
    let members = s
        .members
        .iter()
        .zip(check.damaged)
        .enumerate()
        .map(|(k, (m, damaged))| MemberCheck {
            volume: m.name.clone(),
            root: recorded.members.get(k).map(hex).unwrap_or_default(),
            computed: check.roots.members.get(k).map(hex).unwrap_or_default(),
            damaged,
        })
        .collect();
    Ok(Some(SnapshotVerifyReport {
        snapshot: s.name.clone(),
        root: hex(&recorded.root),
        computed: hex(&check.roots.root),
        recorded_now,
        members,
        chunks: check.chunks,
        bytes: check.bytes,
        elapsed_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
    }))
}
