//! Crash test of a database-like workload: random 4 KiB page writes into one file of a
//! 64 KiB-block volume, an fsync every few writes, and a buffer limit so small that flushes
//! (which store most pages as patches over their block) happen between the fsyncs. A child
//! process (this test binary, re-invoked) runs it and is killed with SIGKILL at a random
//! moment; the parent reopens the pool (replaying the intent log) and checks each page.
//!
//! What it proves:
//! - a flush between two fsyncs loses nothing the second fsync acknowledged: every page
//!   written before the last fsync the journal records, and not written after it, holds
//!   exactly that write; a page written after it holds one of its writes since then;
//! - such flushes keep fsync on the intent log (they are replayable): the child journals
//!   the engine's fsync counters and the parent checks that the log answered nearly all.
//!
//! `TANDEM_CRASH_PAGES_ROUNDS` sets the number of kills (default 8).

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod common;

use common::Rng;
use tandem::fs::{Ctx, Engine, EngineConfig};
use tandem::store::rows::View;
use tandem::types::{InodeNo, VolumeId};

const ENV: &str = "TANDEM_CRASH_PAGES_CHILD";
const CTX: Ctx = Ctx {
    uid: 0,
    gid: 0,
    umask: 0,
};
const PAGE: u64 = 4096;
const PAGES: u64 = 256;
const BLOCK: u64 = 64 << 10;
const FILE: &[u8] = b"table";
/// Writes between two fsyncs.
const PER_FSYNC: u64 = 8;

/// A page's content for write `serial`: unique, incompressible, its serial in front.
fn page(serial: u64) -> Vec<u8> {
    let mut rng = Rng(serial.wrapping_mul(0x2545_F491_4F6C_DD1D));
    let mut out = Vec::with_capacity(PAGE as usize);
    out.extend_from_slice(&serial.to_le_bytes());
    while out.len() < PAGE as usize {
        out.extend_from_slice(&rng.next().to_le_bytes());
    }
    out.truncate(PAGE as usize);
    out
}

fn file_ino(e: &Engine, vol: VolumeId) -> InodeNo {
    e.lookup(vol, View::Live, InodeNo::ROOT, FILE)
        .expect("the table file")
        .ino
}

#[test]
#[ignore = "the child process of page_writes_survive_a_crash_between_flushes; does nothing on its own"]
fn child_pages() {
    let Ok(spec) = std::env::var(ENV) else { return };
    let mut parts = spec.split('|');
    let pool = PathBuf::from(parts.next().expect("pool"));
    let journal = PathBuf::from(parts.next().expect("journal"));
    let first: u64 = parts
        .next()
        .and_then(|s| s.parse().ok())
        .expect("first serial");
    run_child(&pool, &journal, first);
}

/// Journal lines: `W serial page` before each write; `S serial logged committed` after
/// each fsync (synced), where `serial` is the last write it covers.
fn run_child(pool: &Path, journal: &Path, first: u64) {
    let cfg = EngineConfig {
        commit_interval: Duration::from_secs(3600),
        dirty_limit: 96 << 10,
        log_capacity: 4 << 20,
    };
    let e = Engine::open_with(pool, cfg).expect("open pool");
    let vol = e.volume_id("db").expect("volume");
    let ino = file_ino(&e, vol);
    let mut j = OpenOptions::new()
        .create(true)
        .append(true)
        .open(journal)
        .expect("journal");
    let mut rng = Rng(first);
    let started = Instant::now();
    let mut serial = first;
    while started.elapsed() < Duration::from_secs(30) {
        serial += 1;
        let p = rng.next() % PAGES;
        j.write_all(format!("W {serial} {p}\n").as_bytes())
            .expect("journal");
        e.write(vol, ino, p * PAGE, &page(serial)).expect("write");
        if serial.is_multiple_of(PER_FSYNC) {
            e.fsync(vol, ino).expect("fsync");
            let (logged, committed) = e.fsync_counts();
            j.write_all(format!("S {serial} {logged} {committed}\n").as_bytes())
                .expect("journal");
            j.sync_all().expect("journal sync");
        }
    }
}

#[test]
fn page_writes_survive_a_crash_between_flushes() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let pool = tmp.path().join("pool");
    {
        let e = Engine::open(&pool).expect("create pool");
        let vol = e.create_volume("db", Some(BLOCK), CTX).expect("volume").id;
        let a = e
            .create(vol, InodeNo::ROOT, FILE, 0o644, CTX)
            .expect("create");
        // Every page written once, so later writes land in stored blocks.
        for p in 0..PAGES {
            e.write(vol, a.ino, p * PAGE, &page(p)).expect("write");
        }
        e.fsync(vol, a.ino).expect("fsync");
    }
    // What each page may hold: the writes to it from the last durable one on.
    let mut pages: Vec<Vec<u64>> = (0..PAGES).map(|p| vec![p]).collect();
    let exe = std::env::current_exe().expect("test binary");
    let rounds = std::env::var("TANDEM_CRASH_PAGES_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(8u64);
    let mut rng = Rng(0x5EED);
    let mut first = 1_000_000u64;
    let (mut logged, mut committed) = (0u64, 0u64);
    for round in 0..rounds {
        let journal = tmp.path().join(format!("journal-{round}"));
        let log = File::create(tmp.path().join(format!("child-{round}.log"))).expect("log");
        let mut child = Command::new(&exe)
            .args(["--exact", "child_pages", "--nocapture", "--ignored"])
            .env(
                ENV,
                format!("{}|{}|{first}", pool.display(), journal.display()),
            )
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("spawn child");
        let since = Instant::now();
        while !journal.exists() && since.elapsed() < Duration::from_secs(30) {
            std::thread::sleep(Duration::from_millis(1));
        }
        std::thread::sleep(Duration::from_millis(150 + rng.next() % 500));
        assert!(
            child.try_wait().expect("child status").is_none(),
            "round {round}: the child exited before the kill"
        );
        child.kill().expect("SIGKILL");
        let _ = child.wait();

        // Replay the journal: writes in order; the last complete fsync line.
        let text = std::fs::read_to_string(&journal).expect("journal");
        let mut writes: Vec<(u64, u64)> = Vec::new();
        let mut synced = 0u64;
        for line in text.lines() {
            let f: Vec<&str> = line.split(' ').collect();
            match f.as_slice() {
                ["W", s, p] => {
                    if let (Ok(s), Ok(p)) = (s.parse(), p.parse()) {
                        writes.push((s, p));
                    }
                }
                ["S", s, l, c] => {
                    if let (Ok(s), Ok(l), Ok(c)) = (s.parse(), l.parse(), c.parse()) {
                        synced = s;
                        (logged, committed) = (l, c);
                    }
                }
                _ => {} // a torn last line
            }
        }
        for &(s, p) in &writes {
            let allowed = &mut pages[p as usize];
            if s <= synced {
                // Acknowledged: the only content the page may have from now on.
                allowed.clear();
            }
            allowed.push(s);
        }
        let e = Engine::open(&pool)
            .unwrap_or_else(|err| panic!("round {round}: the pool does not open: {err}"));
        let vol = e.volume_id("db").expect("volume");
        let ino = file_ino(&e, vol);
        for p in 0..PAGES {
            let got = e
                .read(vol, View::Live, ino, p * PAGE, PAGE as u32)
                .expect("read");
            let serial = got
                .get(..8)
                .and_then(|b| b.try_into().ok())
                .map(u64::from_le_bytes)
                .unwrap_or(u64::MAX);
            let allowed = &mut pages[p as usize];
            assert!(
                allowed.contains(&serial) && got == page(serial),
                "round {round}: page {p} holds write {serial}, expected one of {allowed:?} \
                 (last fsync covered write {synced})"
            );
            // What the pool holds now is durable (the open committed the replay).
            *allowed = vec![serial];
        }
        first = writes.last().map_or(first, |w| w.0) + 1_000_000;
    }
    eprintln!("fsyncs: {logged} by the log, {committed} by a durable commit");
    // Flushes between fsyncs keep the log's fast path: a few fsyncs commit (the first
    // after each opening, a full ring), not every one that follows a flush.
    assert!(
        logged >= 10 * committed.max(1),
        "fsyncs answered by the log {logged}, by a durable commit {committed}: flushes \
         between fsyncs sent fsync to the slow path"
    );
}
