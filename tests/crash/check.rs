//! The parent's judgement: the journal replayed into every state the workload went through,
//! and the recovered pool checked against it and against the space counters.

use std::collections::{BTreeMap, HashMap};

use tandem::fs::Engine;
use tandem::store::ReadView;
use tandem::store::rows::View;
use tandem::types::{InodeNo, VolumeId};

use super::journal::Op;
use super::{Key, Model, VOLS, hash, volume_ids};

/// The model after replaying one journal: every content each file had and the points known
/// to be committed.
pub(crate) struct Replay {
    /// Namespace after each namespace operation: (journal position, namespace); entry 0 is
    /// the starting state at position 0. Positions of operations start at 1.
    ns: Vec<(usize, BTreeMap<Key, u64>)>,
    /// Every content a file had: (position of the op that made it, hash, length).
    states: HashMap<u64, Vec<(usize, blake3::Hash, u64)>>,
    /// Points where a file's content was committed by the call itself (start, create,
    /// truncate, fsync): (position, index into `states`).
    commits: HashMap<u64, Vec<(usize, usize)>>,
    /// Journal positions of each file's fsync records.
    fsynced: HashMap<u64, Vec<usize>>,
    /// Position of the last fsync record (0: none).
    last_fsync: usize,
}

pub(crate) fn replay(base: &BTreeMap<Key, Vec<u8>>, ops: &[Op]) -> Replay {
    let mut m = Model::from_state(base);
    let mut r = Replay {
        ns: vec![(0, m.ns.clone())],
        states: HashMap::new(),
        commits: HashMap::new(),
        fsynced: HashMap::new(),
        last_fsync: 0,
    };
    for (fid, content) in &m.files {
        r.states
            .insert(*fid, vec![(0, hash(content), content.len() as u64)]);
        r.commits.insert(*fid, vec![(0, 0)]);
    }
    for (i, op) in ops.iter().enumerate() {
        let pos = i + 1;
        if let Op::Synced { fid, len, hash: h } = op {
            let content = &m.files[fid];
            assert_eq!(
                (content.len() as u64, hash(content).to_hex().to_string()),
                (*len, h.clone()),
                "the parent's replay disagrees with the child's model at journal position {pos}"
            );
            let idx = r.states[fid].len() - 1;
            r.commits.get_mut(fid).expect("known file").push((pos, idx));
            r.fsynced.entry(*fid).or_default().push(pos);
            r.last_fsync = pos;
            continue;
        }
        m.apply(op);
        match op {
            Op::Create { fid, .. } => {
                r.states.insert(*fid, vec![(pos, hash(&[]), 0)]);
                r.commits.insert(*fid, vec![(pos, 0)]);
            }
            Op::Write { fid, .. } | Op::Trunc { fid, .. } => {
                let content = &m.files[fid];
                let states = r.states.get_mut(fid).expect("known file");
                states.push((pos, hash(content), content.len() as u64));
                if matches!(op, Op::Trunc { .. }) {
                    let idx = states.len() - 1;
                    r.commits.get_mut(fid).expect("known file").push((pos, idx));
                }
            }
            _ => {}
        }
        if op.is_namespace() {
            r.ns.push((pos, m.ns.clone()));
        }
    }
    r
}

#[derive(Default, Debug)]
pub(crate) struct Stats {
    pub(crate) ops: usize,
    pub(crate) fsync_records: usize,
    pub(crate) rounds_with_fsync: usize,
    /// Rounds whose intent log's unacknowledged tail was cut or garbled before reopening.
    pub(crate) log_cuts: usize,
    /// Files that were fsynced in the round and had exactly one accepted content.
    pub(crate) exact: usize,
    /// Files whose accepted contents were bounded below by an fsync of the round.
    pub(crate) bounded_by_fsync: usize,
    /// Files that had changes after their last fsync that were lost (accepted as not
    /// durable) or kept.
    pub(crate) unsynced_lost: usize,
    pub(crate) unsynced_kept: usize,
}

/// Checks the recovered files against the replayed journal; panics with the reason.
pub(crate) fn check(
    round: u64,
    r: &Replay,
    got: &BTreeMap<Key, (InodeNo, Vec<u8>)>,
    stats: &mut Stats,
) {
    let got_hash: BTreeMap<&Key, (blake3::Hash, u64)> = got
        .iter()
        .map(|(k, (_, c))| (k, (hash(c), c.len() as u64)))
        .collect();
    let newest = r.ns.len() - 1;
    // Every namespace operation before the last fsync is durable.
    let lowest =
        r.ns.iter()
            .rposition(|(pos, _)| *pos < r.last_fsync.max(1))
            .unwrap_or(0);
    let mut reasons = Vec::new();
    for k in lowest..=newest {
        let (ns_pos, ns) = &r.ns[k];
        if !ns.keys().eq(got_hash.keys().copied()) {
            reasons.push(format!("k={k}: namespace differs"));
            continue;
        }
        // Everything committed before this point is durable.
        let durable_point = r.last_fsync.max(*ns_pos);
        // Nothing committed after the next namespace operation is.
        let limit = r.ns.get(k + 1).map_or(usize::MAX, |(p, _)| *p);
        let mut ok = true;
        let mut local = Stats::default();
        for (key, fid) in ns {
            let states = &r.states[fid];
            let lo = r.commits[fid]
                .iter()
                .filter(|(p, _)| *p <= durable_point)
                .map(|(_, i)| *i)
                .max()
                .unwrap_or(0);
            let hi = states.iter().rposition(|(p, _, _)| *p < limit).unwrap_or(0);
            let (h, len) = got_hash[key];
            if hi < lo {
                reasons.push(format!(
                    "k={k}: {key:?} (file {fid}) was committed after namespace operation {}",
                    k + 1
                ));
                ok = false;
                break;
            }
            match states[lo..=hi]
                .iter()
                .position(|(_, sh, sl)| *sh == h && *sl == len)
            {
                Some(i) => {
                    if r.fsynced
                        .get(fid)
                        .is_some_and(|ps| ps.iter().any(|p| *p <= durable_point))
                    {
                        local.bounded_by_fsync += 1;
                        if lo == hi {
                            local.exact += 1;
                        }
                    }
                    if hi > lo {
                        if lo + i == hi {
                            local.unsynced_kept += 1;
                        } else {
                            local.unsynced_lost += 1;
                        }
                    }
                }
                None => {
                    let newer = states.iter().position(|(_, sh, sl)| *sh == h && *sl == len);
                    reasons.push(format!(
                        "k={k}: {key:?} (file {fid}) has {len} bytes {}, accepted states {lo}..={hi} \
                         (positions {}..={}, lengths {:?}); matches state {newer:?} of {}",
                        &h.to_hex()[..12],
                        states[lo].0,
                        states[hi].0,
                        states[lo..=hi].iter().map(|s| s.2).collect::<Vec<_>>(),
                        states.len()
                    ));
                    ok = false;
                    break;
                }
            }
        }
        if ok {
            stats.exact += local.exact;
            stats.bounded_by_fsync += local.bounded_by_fsync;
            stats.unsynced_kept += local.unsynced_kept;
            stats.unsynced_lost += local.unsynced_lost;
            return;
        }
    }
    panic!(
        "round {round}: the recovered pool is not a state the workload went through, or lost \
         fsynced data (last fsync at journal position {}, namespace ops at {:?}):\n{}",
        r.last_fsync,
        r.ns.iter().map(|(p, _)| *p).collect::<Vec<_>>(),
        reasons.join("\n")
    );
}

/// Bytes the engine stores for one file: each block with its trailing zeros trimmed.
/// Non-zero bytes of a file: each lies in some chunk its extents reference.
fn nonzero_bytes(content: &[u8]) -> u64 {
    content.iter().filter(|&&b| b != 0).count() as u64
}

/// Every chunk the live extent rows of `vol` reference (with its length), once per mention.
fn live_chunks(e: &Engine, vol: VolumeId) -> Vec<([u8; 32], u64)> {
    let r = e.store().read().expect("read");
    let mut out = Vec::new();
    r.volume_rows(vol, View::Live, |_, v| {
        out.extend(v.chunks().into_iter().map(|(c, l)| (c.0, l as u64)));
        Ok(true)
    })
    .expect("scan rows");
    out
}

/// The volume and pool counters agree with the files and the rows (and orphans were
/// purged). A block may be stored as a base with patches, so what a volume stores is
/// counted from its extent rows, and is at least its files' non-zero bytes.
pub(crate) fn check_counters(e: &Engine, got: &BTreeMap<Key, (InodeNo, Vec<u8>)>, round: u64) {
    let mut referenced = 0u64;
    let mut distinct: HashMap<[u8; 32], u64> = HashMap::new();
    let ids = volume_ids(e);
    for (vi, (name, _)) in VOLS.iter().enumerate() {
        let info = e.volume_info(name).expect("volume info");
        let files: Vec<&Vec<u8>> = got
            .iter()
            .filter(|(k, _)| k.0 == vi)
            .map(|(_, (_, c))| c)
            .collect();
        let chunks = live_chunks(e, ids[vi]);
        let stored: u64 = chunks.iter().map(|(_, l)| l).sum();
        distinct.extend(chunks.iter().copied());
        referenced += stored;
        let least: u64 = files.iter().map(|c| nonzero_bytes(c)).sum();
        assert!(
            stored >= least,
            "round {round}: volume {name} stores {stored} bytes, less than its files hold ({least})"
        );
        let logical: u64 = files.iter().map(|c| c.len() as u64).sum();
        assert_eq!(
            (info.files, info.logical_bytes, info.physical_bytes),
            (files.len() as u64 + 2, logical, stored),
            "round {round}: volume {name}'s (files, logical, stored) counters after recovery"
        );
    }
    let s = e.pool_stats().expect("pool stats");
    assert_eq!(
        (s.referenced_bytes, s.physical_bytes),
        (referenced, distinct.values().sum::<u64>()),
        "round {round}: pool (referenced, physical) bytes after recovery"
    );
}
