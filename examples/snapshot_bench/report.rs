//! The tables and the verdict the benchmark prints.

use super::*;

pub fn print_table(results: &[CaseResult], btrfs: bool) {
    println!();
    println!(
        "Pause = first gate closed .. gates reopened (CreateOutcome.snapshot.pause_us); create = wall time of snapshot::create."
    );
    println!(
        "Throughput: the N writers together, MB/s (10^6 B/s), without snapshots vs while snapshotting; write ms = p99.9 and longest of every 64 KiB pwrite of all writers."
    );
    println!();
    let mut head = format!(
        "{:>3} {:>9} | {:>27} | {:>27} | {:>8} {:>8} {:>6} | {:>31}",
        "N",
        "MiB/vol",
        "pause ms p50 / p99 / max",
        "create ms p50 / p99 / max",
        "base",
        "w/snaps",
        "ratio",
        "write ms p99.9/max: base | snaps",
    );
    if btrfs {
        head.push_str(&format!(" | {:>27}", "btrfs N snaps ms p50/p99/max"));
    }
    println!("{head}");
    println!("{}", "-".repeat(head.len()));
    for r in results {
        let p = sorted(r.pause_ms.clone());
        let c = sorted(r.create_ms.clone());
        let mut line = format!(
            "{:>3} {:>9} | {:>7.2} / {:>7.2} / {:>7.2} | {:>7.2} / {:>7.2} / {:>7.2} | {:>8.1} {:>8.1} {:>6.2} | {:>6.1} / {:>6.1} | {:>6.1} / {:>6.1}",
            r.n,
            r.size_mib,
            pct(&p, 50.0),
            pct(&p, 99.0),
            pct(&p, 100.0),
            pct(&c, 50.0),
            pct(&c, 99.0),
            pct(&c, 100.0),
            r.base_mbps,
            r.snap_mbps,
            r.snap_mbps / r.base_mbps,
            r.base_writes.p999,
            r.base_writes.max,
            r.snap_writes.p999,
            r.snap_writes.max,
        );
        match &r.btrfs {
            Some(Ok(rounds)) => {
                let b = sorted(rounds.clone());
                line.push_str(&format!(
                    " | {:>7.2} / {:>7.2} / {:>7.2}",
                    pct(&b, 50.0),
                    pct(&b, 99.0),
                    pct(&b, 100.0)
                ));
            }
            Some(Err(e)) => line.push_str(&format!(" | failed: {e}")),
            None => {}
        }
        println!("{line}");
    }
    if let Some(r) = results.first()
        && r.pause_ms.len() < 100
    {
        println!(
            "(p99 is by nearest rank: with {} samples per row it is the largest sample, the same as max)",
            r.pause_ms.len()
        );
    }
}

pub fn print_breakdown(results: &[CaseResult]) {
    if results.iter().all(|r| r.breakdown.steps.is_empty()) {
        return;
    }
    println!();
    println!(
        "Where the pause goes: the coordinator's own timing of each create (CreateOutcome.steps), ms, each step's p50/p99."
    );
    println!(
        "  pre-flush: the members' buffers flushed in parallel, before the freeze | close+drain: gates closed, in-flight requests done"
    );
    println!(
        "  commit: inside the freeze, take what came in since (buffers shared, copy on write) and queue the one transaction (snapshot_seal) | finish: after the thaw, hash it and wait for the transaction"
    );
    println!(
        "  post-sync: store().sync() after the thaw | excl.bytes: snapshot_exclusive_bytes (create computes it after the thaw)"
    );
    println!();
    println!(
        "{:>3} {:>9} | {:>13} {:>13} {:>13} {:>13} | {:>13} {:>9} | {:>13} | {:>10}",
        "N",
        "MiB/vol",
        "pre-flush",
        "close+drain",
        "commit",
        "finish",
        "pause",
        "pause max",
        "post-sync",
        "excl.bytes"
    );
    for r in results {
        let rows = &r.breakdown.steps;
        if rows.is_empty() {
            continue;
        }
        let col = |k: usize| sorted(rows.iter().map(|s| s[k]).collect());
        let both = |k: usize| {
            let c = col(k);
            format!("{:.2}/{:.2}", pct(&c, 50.0), pct(&c, 99.0))
        };
        println!(
            "{:>3} {:>9} | {:>13} {:>13} {:>13} {:>13} | {:>13} {:>9.2} | {:>13} | {:>10.2}",
            r.n,
            r.size_mib,
            both(0),
            both(1),
            both(2),
            both(3),
            both(4),
            pct(&col(4), 100.0),
            both(5),
            pct(&sorted(r.breakdown.exclusive_ms.clone()), 50.0),
        );
    }
}

pub fn print_verdict(results: &[CaseResult]) {
    println!();
    println!(
        "Targets: p99 pause <= {TARGET_PAUSE_P99_MS} ms, create round trip (p99) <= {TARGET_CREATE_MS} ms, no growth with data size; write p99.9 <= {TARGET_WRITE_P999_MS} ms."
    );
    for r in results {
        let p99 = pct(&sorted(r.pause_ms.clone()), 99.0);
        let c99 = pct(&sorted(r.create_ms.clone()), 99.0);
        let mark = |ok: bool| if ok { "met" } else { "MISSED" };
        println!(
            "  N={:<2} {:>6} MiB/vol: pause p99 {:>7.2} ms {:<6}  create p99 {:>7.2} ms {:<6}  write p99.9 {:>6.1} ms {:<6}  (fill {:.1} s; CPU {:.1} s of this process in the snapshot phase)",
            r.n,
            r.size_mib,
            p99,
            mark(p99 <= TARGET_PAUSE_P99_MS),
            c99,
            mark(c99 <= TARGET_CREATE_MS),
            r.snap_writes.p999.max(r.base_writes.p999),
            mark(r.snap_writes.p999.max(r.base_writes.p999) <= TARGET_WRITE_P999_MS),
            r.fill_secs,
            r.cpu_secs_snap_phase,
        );
    }
    let mut groups: Vec<usize> = results.iter().map(|r| r.n).collect();
    groups.dedup();
    for n in groups {
        let rows: Vec<&CaseResult> = results.iter().filter(|r| r.n == n).collect();
        if let (Some(small), Some(big)) = (
            rows.iter().min_by_key(|r| r.size_mib),
            rows.iter().max_by_key(|r| r.size_mib),
        ) && small.size_mib != big.size_mib
        {
            let m = |v: &[f64]| pct(&sorted(v.to_vec()), 50.0);
            println!(
                "  N={n}: {} MiB -> {} MiB per volume: pause p50 x{:.2}, create p50 x{:.2}",
                small.size_mib,
                big.size_mib,
                m(&big.pause_ms) / m(&small.pause_ms),
                m(&big.create_ms) / m(&small.create_ms),
            );
        }
    }
}
