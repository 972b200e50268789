//! Write pacing: how long a write waits before it is let in, so that a volume's writers
//! slow down smoothly to the speed its flushes store at.
//!
//! Without it a writer faster than the flush fills the buffer to the dirty limit and then
//! waits for a whole flush (megabytes hashed, appended and committed): one write in a few
//! hundred stalls for that long, while the others take microseconds. Pacing spreads the
//! same wait over every write, as Linux's dirty throttling does for a disk.
//!
//! Below three quarters of the dirty limit a write does not wait (the flusher thread starts
//! at half of it: a flush that keeps up never slows a writer down). Past that the pause
//! grows linearly with the buffer's fill, from nothing to `len /
//! PACE_FLOOR` at the limit (8 ms for 64 KiB), capped at [`MAX_PAUSE`]. A writer faster
//! than the flush settles at the fill where its pauses match what the flush stores; the
//! limit itself (where a writer flushes) is reached only when the flushes store less than
//! `PACE_FLOOR` per writer. While a snapshot is being prepared (`VolState::tight`) the
//! bytes written since its pre-flush took the buffer are paced against the tight limit
//! instead, so the freeze finds little to take, and nobody waits for the pre-flush.
//!
//! The pause is taken before the request enters the volume's gate (see `fuse::request`),
//! so a freeze never waits for it, and it is never taken while holding a lock.

use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::types::VolumeId;

use super::Inner;

/// The write rate (bytes per second) a writer is paced down to at the dirty limit.
pub const PACE_FLOOR: u64 = 8 << 20;

/// The longest pause of one write.
pub const MAX_PAUSE: Duration = Duration::from_millis(10);

/// The pause of a write of `len` bytes into a buffer holding `bytes` of `limit`.
pub(crate) fn pause_for(bytes: usize, limit: usize, len: usize) -> Option<Duration> {
    let start = limit / 4 * 3;
    if bytes <= start || limit == 0 {
        return None;
    }
    let fill = ((bytes - start) as f64 / (limit - start) as f64).min(1.0);
    let secs = fill * len as f64 / PACE_FLOOR as f64;
    Some(Duration::from_secs_f64(secs).min(MAX_PAUSE))
}

impl Inner {
    /// How long a write of `len` bytes into the volume should wait before it is let in
    /// (see the module docs); `None`: at once.
    pub fn write_pause(&self, vol: VolumeId, len: usize) -> Option<Duration> {
        let vs = self.vol_state(vol).ok()?;
        let d = vs.dirty.lock();
        if vs.tight.load(Ordering::Acquire) {
            // What the snapshot's pre-flush already took is on its way: pace what came
            // after it, against the tight limit.
            let fresh = d.bytes.saturating_sub(d.in_flight_bytes);
            pause_for(fresh, super::TIGHT_DIRTY_LIMIT, len)
        } else {
            pause_for(d.bytes, self.cfg.dirty_limit, len)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_write_waits_only_past_three_quarters_of_the_limit_and_more_as_the_buffer_fills() {
        let limit = 16 << 20;
        assert_eq!(pause_for(0, limit, 65536), None);
        assert_eq!(pause_for(limit / 4 * 3, limit, 65536), None);
        let quarter = pause_for(limit / 4 * 3 + limit / 16, limit, 65536).unwrap();
        let full = pause_for(limit, limit, 65536).unwrap();
        assert!(quarter < full, "{quarter:?} < {full:?}");
        // At the limit a 64 KiB write is paced to the floor rate: 1/128 s.
        assert_eq!(full, Duration::from_nanos(7_812_500));
        // Past it, and for big writes, the pause is capped.
        assert_eq!(pause_for(2 * limit, limit, 1 << 20), Some(MAX_PAUSE));
    }
}
