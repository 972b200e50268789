//! [`Histogram`]: a Prometheus histogram whose `observe` is a few relaxed atomic adds, for
//! the hot path (a FUSE request, a commit batch). prometheus-client's own histogram takes a
//! mutex per observation; this one keeps fixed bounds and one atomic counter per bucket,
//! and is encoded through prometheus-client's encoder like any of its metrics.
//!
//! Values are whole units (nanoseconds for durations, items for sizes); the exported value
//! is the unit times `scale` (seconds: 1e-9). Buckets and the sum are read one by one at a
//! scrape, so a scrape racing observations may see a count one ahead of the sum: Prometheus
//! tolerates that.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use prometheus_client::encoding::{EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::{MetricType, TypedMetric};

/// Latency bounds in nanoseconds: 10 µs to 10 s.
const LATENCY_NS: &[u64] = &[
    10_000,
    25_000,
    50_000,
    100_000,
    250_000,
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    25_000_000,
    50_000_000,
    100_000_000,
    250_000_000,
    500_000_000,
    1_000_000_000,
    2_500_000_000,
    5_000_000_000,
    10_000_000_000,
];

/// Size bounds (items): powers of two up to 4096.
const SIZES: &[u64] = &[1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096];

#[derive(Debug)]
struct Inner {
    /// Upper bounds (inclusive), ascending, in units.
    bounds: &'static [u64],
    /// What one unit is worth in the exported value.
    scale: f64,
    /// One counter per bound, then the +Inf bucket (not cumulative).
    buckets: Box<[AtomicU64]>,
    /// Sum of the observed units.
    sum: AtomicU64,
}

/// A histogram with fixed bounds; clones share their counts.
#[derive(Debug, Clone)]
pub struct Histogram(Arc<Inner>);

impl Histogram {
    fn with(bounds: &'static [u64], scale: f64) -> Histogram {
        Histogram(Arc::new(Inner {
            bounds,
            scale,
            buckets: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum: AtomicU64::new(0),
        }))
    }

    /// Durations, exported in seconds (10 µs to 10 s buckets).
    pub fn seconds() -> Histogram {
        Histogram::with(LATENCY_NS, 1e-9)
    }

    /// Sizes in items (1 to 4096 buckets, powers of two).
    pub fn sizes() -> Histogram {
        Histogram::with(SIZES, 1.0)
    }

    /// Records one value, in units.
    pub fn observe(&self, v: u64) {
        let i = self.0.bounds.partition_point(|&b| b < v);
        self.0.buckets[i].fetch_add(1, Ordering::Relaxed);
        self.0.sum.fetch_add(v, Ordering::Relaxed);
    }

    /// Records a duration (a histogram made by [`Histogram::seconds`]).
    pub fn observe_duration(&self, d: Duration) {
        self.observe(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
    }

    /// Observations so far.
    pub fn count(&self) -> u64 {
        self.0
            .buckets
            .iter()
            .map(|b| b.load(Ordering::Relaxed))
            .sum()
    }
}

impl Default for Histogram {
    /// A latency histogram (what a family of them holds).
    fn default() -> Self {
        Histogram::seconds()
    }
}

impl TypedMetric for Histogram {
    const TYPE: MetricType = MetricType::Histogram;
}

impl EncodeMetric for Histogram {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        let inner = &self.0;
        let buckets: Vec<(f64, u64)> = inner
            .bounds
            .iter()
            .map(|&b| b as f64 * inner.scale)
            .chain(std::iter::once(f64::INFINITY))
            .zip(inner.buckets.iter().map(|c| c.load(Ordering::Relaxed)))
            .collect();
        let count = buckets.iter().map(|(_, c)| c).sum();
        let sum = inner.sum.load(Ordering::Relaxed) as f64 * inner.scale;
        encoder.encode_histogram::<NoLabelSet>(sum, count, &buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Histogram
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_lands_in_the_first_bucket_whose_bound_holds_it() {
        let h = Histogram::sizes();
        for v in [0, 1, 2, 3, 4096, 4097] {
            h.observe(v);
        }
        let counts: Vec<u64> =
            h.0.buckets
                .iter()
                .map(|b| b.load(Ordering::Relaxed))
                .collect();
        // le=1: 0 and 1; le=2: 2; le=4: 3; le=4096: 4096; +Inf: 4097.
        assert_eq!(counts[0], 2);
        assert_eq!(counts[1], 1);
        assert_eq!(counts[2], 1);
        assert_eq!(counts[SIZES.len() - 1], 1);
        assert_eq!(counts[SIZES.len()], 1);
        assert_eq!(h.count(), 6);
        assert_eq!(h.0.sum.load(Ordering::Relaxed), 1 + 2 + 3 + 4096 + 4097);
    }

    #[test]
    fn durations_are_exported_in_seconds() {
        let h = Histogram::seconds();
        h.observe_duration(Duration::from_millis(3));
        let mut reg = prometheus_client::registry::Registry::default();
        reg.register("t", "test", h);
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &reg).expect("encodes");
        assert!(out.contains("t_bucket{le=\"0.0025\"} 0"), "{out}");
        assert!(out.contains("t_bucket{le=\"0.005\"} 1"), "{out}");
        assert!(out.contains("t_sum 0.003"), "{out}");
        assert!(out.contains("t_count 1"), "{out}");
    }
}
