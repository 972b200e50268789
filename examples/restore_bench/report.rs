//! The tables and the verdict the benchmark prints.

use super::*;

fn mark(ok: bool) -> &'static str {
    if ok { "met" } else { "MISSED" }
}

pub fn print_activation(rows: &[ActRow]) {
    if rows.is_empty() {
        return;
    }
    println!();
    println!(
        "1. Activation (Mount::new of each member, View::At(gen), read-only) and deactivation (Mount::try_unmount)."
    );
    println!(
        "   first access = stat + 4 KiB read of a file through the new mount (FUSE handshake included). ms: median / max."
    );
    println!();
    let head = format!(
        "{:<10} {:>10} {:>9} {:>9} | {:>17} | {:>17} | {:>17} | {:>7}",
        "volume",
        "data",
        "files",
        "rows",
        "activate ms",
        "first access ms",
        "deactivate ms",
        "<100ms"
    );
    println!("{head}");
    println!("{}", "-".repeat(head.len()));
    for r in rows {
        println!(
            "{:<10} {:>10} {:>9} {:>9} | {:>7.2} / {:>7.2} | {:>7.2} / {:>7.2} | {:>7.2} / {:>7.2} | {:>7}",
            r.vol,
            size(r.bytes),
            thousands(r.files as u64),
            thousands(r.rows),
            median(&r.activate),
            max(&r.activate),
            median(&r.first_access),
            max(&r.first_access),
            median(&r.deactivate),
            max(&r.deactivate),
            mark(max(&r.activate) < TARGET_ACTIVATE_MS),
        );
    }
}

pub fn print_rounds(rows: &[RoundRow]) {
    if rows.is_empty() {
        return;
    }
    println!();
    println!(
        "2. Restore (snapshot::restore, not mounted) and 4. diff (snapshot::diff, snapshot vs live), after N changed files."
    );
    println!(
        "   index rows = rows in the change index since the snapshot (what both walk); restored = rows rewritten."
    );
    println!(
        "   ms: median / max over the rounds; per change = restore median / changes. freeze = RestoreOutcome.pause_us (restore_generations:"
    );
    println!(
        "   flush + one transaction); the rest of restore ms is mostly the durable store().sync() after the thaw (freed chunks punched)."
    );
    println!(
        "   data2g: changes = 4 KiB writes into that many different 128 KiB blocks of its one file. change ms = engine writes + commit_all."
    );
    println!();
    let head = format!(
        "{:<10} {:>9} {:>9} {:>8} {:>5} {:>4} | {:>8} {:>17} | {:>8} {:>17} {:>9} {:>9} | {:>9}",
        "volume",
        "files",
        "data",
        "changes",
        "undo",
        "n",
        "index",
        "diff ms",
        "restored",
        "restore ms",
        "freeze ms",
        "us/change",
        "change ms"
    );
    println!("{head}");
    println!("{}", "-".repeat(head.len()));
    for r in rows {
        let rm = median(&r.restore_ms);
        println!(
            "{:<10} {:>9} {:>9} {:>8} {:>5} {:>4} | {:>8} {:>8.1} /{:>7.1} | {:>8} {:>8.1} /{:>7.1} {:>9.1} {:>9.1} | {:>9.0}",
            r.vol,
            thousands(r.files as u64),
            size(r.bytes),
            thousands(r.changes as u64),
            if r.undo { "yes" } else { "no" },
            r.restore_ms.len(),
            thousands(r.index_rows as u64),
            median(&r.diff_ms),
            max(&r.diff_ms),
            thousands(r.rows_restored as u64),
            rm,
            max(&r.restore_ms),
            median(&r.restore_tx_ms),
            rm * 1e3 / r.changes as f64,
            median(&r.change_ms),
        );
        let _ = r.diff_entries;
    }
}

pub fn print_clones(rows: &[CloneRow]) {
    if rows.is_empty() {
        return;
    }
    println!();
    println!(
        "3. Clone (snapshot::clone: a layer over the snapshot's generation; the rows it sees are shown, none is copied)."
    );
    println!(
        "   ms: median / max; per row = clone median / rows. delete = engine.delete_volume of the clone, for information."
    );
    println!();
    let head = format!(
        "{:<10} {:>10} {:>9} | {:>8} {:>8} {:>8} {:>9} | {:>17} {:>8} {:>7} | {:>9}",
        "volume",
        "data",
        "files",
        "inodes",
        "dirents",
        "extents",
        "rows",
        "clone ms",
        "us/row",
        "<50ms",
        "delete ms"
    );
    println!("{head}");
    println!("{}", "-".repeat(head.len()));
    for r in rows {
        let cm = median(&r.clone_ms);
        println!(
            "{:<10} {:>10} {:>9} | {:>8} {:>8} {:>8} {:>9} | {:>7.1} / {:>7.1} {:>8.2} {:>7} | {:>9.1}",
            r.vol,
            size(r.bytes),
            thousands(r.files as u64),
            thousands(r.rows.inodes),
            thousands(r.rows.dirents),
            thousands(r.rows.extents),
            thousands(r.rows.total()),
            cm,
            max(&r.clone_ms),
            cm * 1e3 / r.rows.total() as f64,
            mark(max(&r.clone_ms) < TARGET_CLONE_MS),
            median(&r.delete_ms),
        );
    }
}

pub fn print_verdict(acts: &[ActRow], rounds: &[RoundRow], clones: &[CloneRow]) {
    println!();
    println!("Verdict");
    for r in acts {
        let m = max(&r.activate);
        let over = if m < TARGET_ACTIVATE_MS {
            String::new()
        } else {
            format!(" (over by {:.1} ms)", m - TARGET_ACTIVATE_MS)
        };
        println!(
            "  activation {:<10} {:>9}: max {:>7.2} ms, target < {TARGET_ACTIVATE_MS} ms: {}{over}",
            r.vol,
            size(r.bytes),
            m,
            mark(m < TARGET_ACTIVATE_MS)
        );
    }
    let data: Vec<&ActRow> = acts.iter().filter(|r| r.vol.starts_with("data")).collect();
    if let (Some(a), Some(b)) = (
        data.iter().min_by_key(|r| r.bytes),
        data.iter().max_by_key(|r| r.bytes),
    ) && a.bytes != b.bytes
    {
        println!(
            "  activation {} -> {}: x{:.2} data, activate median x{:.2}",
            size(a.bytes),
            size(b.bytes),
            b.bytes as f64 / a.bytes as f64,
            median(&b.activate) / median(&a.activate)
        );
    }
    for r in clones {
        let m = max(&r.clone_ms);
        let over = if m < TARGET_CLONE_MS {
            String::new()
        } else {
            format!(
                " (over by {:.1} ms, x{:.1})",
                m - TARGET_CLONE_MS,
                m / TARGET_CLONE_MS
            )
        };
        println!(
            "  clone {:<10} {:>9}, {:>7} rows: max {:>7.1} ms, target < {TARGET_CLONE_MS} ms: {}{over}",
            r.vol,
            size(r.bytes),
            thousands(r.rows.total()),
            m,
            mark(m < TARGET_CLONE_MS)
        );
    }
    // Restore: proportional to changes, not to volume size.
    let plain: Vec<&RoundRow> = rounds.iter().filter(|r| !r.undo).collect();
    let mut by_vol: Vec<&str> = plain.iter().map(|r| r.vol.as_str()).collect();
    by_vol.dedup();
    for v in by_vol {
        let rs: Vec<&&RoundRow> = plain.iter().filter(|r| r.vol == v).collect();
        if let (Some(a), Some(b)) = (
            rs.iter().min_by_key(|r| r.changes),
            rs.iter().max_by_key(|r| r.changes),
        ) && a.changes != b.changes
        {
            println!(
                "  restore on {v}: {} -> {} changes (x{:.0}): restore x{:.1}, diff x{:.1}",
                thousands(a.changes as u64),
                thousands(b.changes as u64),
                b.changes as f64 / a.changes as f64,
                median(&b.restore_ms) / median(&a.restore_ms),
                median(&b.diff_ms) / median(&a.diff_ms),
            );
        }
    }
    let k0 = plain.iter().map(|r| r.changes).min().unwrap_or(0);
    let same_k: Vec<&&RoundRow> = plain
        .iter()
        .filter(|r| r.changes == k0 && !r.vol.starts_with("data"))
        .collect();
    if let (Some(a), Some(b)) = (
        same_k.iter().min_by_key(|r| r.files),
        same_k.iter().max_by_key(|r| r.files),
    ) && a.files != b.files
    {
        println!(
            "  restore of {} changes: {} -> {} files in the volume (x{:.0}): restore x{:.2}, diff x{:.2}",
            thousands(k0 as u64),
            thousands(a.files as u64),
            thousands(b.files as u64),
            b.files as f64 / a.files as f64,
            median(&b.restore_ms) / median(&a.restore_ms),
            median(&b.diff_ms) / median(&a.diff_ms),
        );
    }
    let data: Vec<&&RoundRow> = plain
        .iter()
        .filter(|r| r.changes == k0 && r.vol.starts_with("data"))
        .collect();
    if let (Some(d), Some(f)) = (data.first(), same_k.iter().max_by_key(|r| r.files)) {
        println!(
            "  restore of {} changes: {} volume ({} rows restored) {:.1} ms vs {}-file volume ({} rows restored) {:.1} ms",
            thousands(k0 as u64),
            size(d.bytes),
            thousands(d.rows_restored as u64),
            median(&d.restore_ms),
            thousands(f.files as u64),
            thousands(f.rows_restored as u64),
            median(&f.restore_ms),
        );
    }
}
