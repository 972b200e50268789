//! What the benchmark programs share: their random data, the mounts they serve in-process,
//! small units and argument parsers for clap. Each example includes this module with
//! `#[path = "common/mod.rs"] mod common;` and uses what it needs.

#![allow(dead_code)] // each example uses a different part

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use rand::rngs::SmallRng;
use rand::{Rng as _, SeedableRng};
use tandem::fuse::{Gate, Mount};
use tandem::snapshot::MountView;
use tandem::types::VolumeId;

pub const MIB: u64 = 1 << 20;

/// A seeded, fast, deterministic generator (rand's `SmallRng`): the same seed gives the
/// same bytes, so a tandem run and its native twin write the same data. Good enough to
/// defeat deduplication; not for anything secret.
pub struct Rng(SmallRng);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(SmallRng::seed_from_u64(seed))
    }

    pub fn next(&mut self) -> u64 {
        self.0.next_u64()
    }

    pub fn fill(&mut self, buf: &mut [u8]) {
        self.0.fill_bytes(buf);
    }
}

/// The mounts a benchmark serves in this process, as the snapshot coordinator sees them
/// (the daemon's mount table plays this part in `tandem daemon`). Empty: volumes nobody
/// serves, e.g. while they are restored offline.
#[derive(Default)]
pub struct Mounts {
    pub mounts: Vec<(VolumeId, String, Mount)>,
}

impl MountView for Mounts {
    fn gates(&self, vol: VolumeId) -> Vec<Arc<Gate>> {
        self.mounts
            .iter()
            .filter(|(v, _, _)| *v == vol)
            .map(|(_, _, m)| m.gate())
            .collect()
    }
    fn mountpoints(&self, volume: &str) -> Vec<PathBuf> {
        self.mounts
            .iter()
            .filter(|(_, n, _)| n == volume)
            .map(|(_, _, m)| m.spec.mountpoint.clone())
            .collect()
    }
}

/// A duration in milliseconds.
pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// The 1, 5 and 15 minute load averages, as /proc/loadavg shows them ("?" if unreadable).
pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

/// A size in bytes, for clap: "4096", "64K", "1M".
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let (num, mul) = match t.chars().last() {
        Some('k' | 'K') => (&t[..t.len() - 1], 1024),
        Some('m' | 'M') => (&t[..t.len() - 1], MIB),
        _ => (t, 1),
    };
    num.parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(mul))
        .ok_or_else(|| format!("'{s}' is not a size (4096, 64K, 1M)"))
}

/// A count of at least 1, for clap.
pub fn positive(s: &str) -> Result<usize, String> {
    match s.trim().parse::<usize>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(format!("'{s}' is not a number of at least 1")),
    }
}

/// An existing directory, for clap (where a benchmark puts its pools).
pub fn directory(s: &str) -> Result<PathBuf, String> {
    let p = PathBuf::from(s);
    if p.is_dir() {
        Ok(p)
    } else {
        Err(format!("'{s}' is not a directory"))
    }
}

/// CPU seconds (user + system, all threads) of this process so far.
pub fn cpu_seconds() -> f64 {
    // SAFETY: getrusage fills the zeroed struct we pass.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(u.ru_utime) + tv(u.ru_stime)
}

/// Nearest-rank percentile of sorted values (NaN for none).
pub fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// The values in ascending order.
pub fn sorted(mut v: Vec<f64>) -> Vec<f64> {
    v.sort_by(|a, b| a.total_cmp(b));
    v
}
