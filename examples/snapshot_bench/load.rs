//! The write load: one thread per volume writing 64 KiB blocks at random offsets of a
//! 64 MiB file through the mount (plain pwrite, no fsync), with its throughput and the time
//! of every write.

use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Instant;

use super::common::{MIB, Rng, pct, sorted};
use super::{LOAD_BLOCK, LOAD_FILE_MIB, interrupted, stamp};

/// Counters one writer thread keeps.
#[derive(Default)]
pub(crate) struct WriterStats {
    bytes: AtomicU64,
    /// Each write's time since the last reset, microseconds.
    write_us: Mutex<Vec<u32>>,
}

/// Write times of the load over one phase: p99.9 and longest, milliseconds.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct WriteTimes {
    pub(crate) p999: f64,
    pub(crate) max: f64,
}

pub(crate) struct Load {
    stop: Arc<AtomicBool>,
    stats: Vec<Arc<WriterStats>>,
    handles: Vec<JoinHandle<Result<(), String>>>,
}

impl Load {
    /// One writer per file: 64 KiB pwrites at random 64 KiB-aligned offsets, no fsync.
    pub(crate) fn start(files: &[PathBuf]) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let mut stats = Vec::new();
        let mut handles = Vec::new();
        for (w, path) in files.iter().enumerate() {
            let st = Arc::new(WriterStats::default());
            stats.push(st.clone());
            let (stop, path) = (stop.clone(), path.clone());
            handles.push(std::thread::spawn(move || -> Result<(), String> {
                let file = OpenOptions::new()
                    .write(true)
                    .open(&path)
                    .map_err(|e| format!("{}: {e}", path.display()))?;
                let mut rng = Rng::new(0x9e37_79b9_7f4a_7c15 ^ ((w as u64 + 1) << 32));
                let mut buf = vec![0u8; LOAD_BLOCK];
                rng.fill(&mut buf);
                let slots = LOAD_FILE_MIB * MIB / LOAD_BLOCK as u64;
                let mut k = 0u64;
                while !stop.load(Ordering::Relaxed) && !interrupted() {
                    stamp(&mut buf, 0x4c4f_4144 ^ w as u64, k);
                    let off = (rng.next() % slots) * LOAD_BLOCK as u64;
                    let t = Instant::now();
                    file.write_all_at(&buf, off)
                        .map_err(|e| format!("write to {}: {e}", path.display()))?;
                    let us = u32::try_from(t.elapsed().as_micros()).unwrap_or(u32::MAX);
                    if let Ok(mut v) = st.write_us.lock() {
                        v.push(us);
                    }
                    st.bytes.fetch_add(LOAD_BLOCK as u64, Ordering::Relaxed);
                    k += 1;
                }
                Ok(())
            }));
        }
        Load {
            stop,
            stats,
            handles,
        }
    }

    pub(crate) fn bytes(&self) -> u64 {
        self.stats
            .iter()
            .map(|s| s.bytes.load(Ordering::Relaxed))
            .sum()
    }

    /// Write times of all writers since the last call.
    pub(crate) fn take_write_times(&self) -> WriteTimes {
        let mut all: Vec<f64> = Vec::new();
        for s in &self.stats {
            if let Ok(mut v) = s.write_us.lock() {
                all.extend(v.drain(..).map(|us| us as f64 / 1e3));
            }
        }
        let all = sorted(all);
        WriteTimes {
            p999: pct(&all, 99.9),
            max: pct(&all, 100.0),
        }
    }

    pub(crate) fn alive(&self) -> bool {
        self.handles.iter().all(|h| !h.is_finished())
    }

    pub(crate) fn stop(mut self) -> Result<(), String> {
        self.stop.store(true, Ordering::Relaxed);
        for h in std::mem::take(&mut self.handles) {
            h.join().map_err(|_| "a writer panicked".to_string())??;
        }
        Ok(())
    }
}

impl Drop for Load {
    /// Writers must be gone before their mounts are unmounted.
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for h in std::mem::take(&mut self.handles) {
            let _ = h.join();
        }
    }
}

/// Runs `f` while measuring the load's throughput (MB/s, 10^6 bytes) and write times.
pub(crate) fn measured<R>(load: &Load, f: impl FnOnce() -> R) -> (R, f64, WriteTimes) {
    load.take_write_times();
    let (b0, t0) = (load.bytes(), Instant::now());
    let r = f();
    let mbps = (load.bytes() - b0) as f64 / t0.elapsed().as_secs_f64() / 1e6;
    (r, mbps, load.take_write_times())
}
