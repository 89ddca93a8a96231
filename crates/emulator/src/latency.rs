//! Latency recording in constant memory: a log-linear histogram (32 steps per power of two, so a
//! reported percentile is within about 3% above the true value) that a million-operation run can
//! feed without growing.

use std::fmt;
use std::time::Duration;

const SUB_BITS: u32 = 5;
const SUB: u64 = 1 << SUB_BITS;
const BUCKETS: usize = (SUB as usize) * (64 - SUB_BITS as usize + 1);

/// Nanosecond latencies in fixed buckets.
#[derive(Clone)]
pub struct LatencyHistogram {
    counts: Box<[u64; BUCKETS]>,
    total: u64,
    max_ns: u64,
    sum_ns: u128,
}

impl fmt::Debug for LatencyHistogram {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LatencyHistogram")
            .field("count", &self.total)
            .field("p50", &self.percentile(50.0))
            .field("p99", &self.percentile(99.0))
            .field("max", &self.max())
            .finish()
    }
}

impl Default for LatencyHistogram {
    fn default() -> Self {
        Self::new()
    }
}

fn bucket_of(ns: u64) -> usize {
    if ns < SUB {
        return ns as usize;
    }
    let exp = 63 - ns.leading_zeros();
    let shift = exp - SUB_BITS;
    let mantissa = (ns >> shift) - SUB;
    (SUB + u64::from(shift) * SUB + mantissa) as usize
}

/// The largest value that falls in `bucket`.
fn bucket_upper(bucket: usize) -> u64 {
    let b = bucket as u64;
    if b < SUB {
        return b;
    }
    let shift = (b - SUB) / SUB;
    let mantissa = (b - SUB) % SUB;
    ((SUB + mantissa) << shift) + ((1u64 << shift) - 1)
}

impl LatencyHistogram {
    pub fn new() -> Self {
        LatencyHistogram {
            counts: Box::new([0; BUCKETS]),
            total: 0,
            max_ns: 0,
            sum_ns: 0,
        }
    }

    pub fn record(&mut self, latency: Duration) {
        let ns = u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX);
        self.counts[bucket_of(ns)] += 1;
        self.total += 1;
        self.max_ns = self.max_ns.max(ns);
        self.sum_ns += u128::from(ns);
    }

    pub fn merge(&mut self, other: &LatencyHistogram) {
        for (a, b) in self.counts.iter_mut().zip(other.counts.iter()) {
            *a += b;
        }
        self.total += other.total;
        self.max_ns = self.max_ns.max(other.max_ns);
        self.sum_ns += other.sum_ns;
    }

    pub fn count(&self) -> u64 {
        self.total
    }

    pub fn max(&self) -> Duration {
        Duration::from_nanos(self.max_ns)
    }

    pub fn mean(&self) -> Duration {
        match self.total {
            0 => Duration::ZERO,
            n => {
                Duration::from_nanos(u64::try_from(self.sum_ns / u128::from(n)).unwrap_or(u64::MAX))
            }
        }
    }

    /// The smallest bucket bound at or below which `pct` percent of the samples lie (never above
    /// the maximum seen); zero when empty.
    pub fn percentile(&self, pct: f64) -> Duration {
        if self.total == 0 {
            return Duration::ZERO;
        }
        let rank = ((pct / 100.0) * self.total as f64).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (bucket, &count) in self.counts.iter().enumerate() {
            seen += count;
            if seen >= rank {
                return Duration::from_nanos(bucket_upper(bucket).min(self.max_ns));
            }
        }
        self.max()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_monotonic_and_cover_their_values() {
        let mut previous = 0;
        for ns in [
            0u64,
            1,
            31,
            32,
            33,
            63,
            64,
            100,
            1_000,
            123_456,
            10_000_000_000,
            u64::MAX,
        ] {
            let b = bucket_of(ns);
            assert!(b >= previous, "bucket of {ns} went backwards");
            assert!(bucket_upper(b) >= ns, "bucket {b} upper bound below {ns}");
            assert!(b < BUCKETS);
            previous = b;
        }
        assert_eq!(bucket_upper(bucket_of(u64::MAX)), u64::MAX);
    }

    #[test]
    fn percentiles_are_within_the_bucket_precision() {
        let mut h = LatencyHistogram::new();
        for us in 1..=1000u64 {
            h.record(Duration::from_micros(us));
        }
        let p50 = h.percentile(50.0).as_nanos() as f64;
        let p99 = h.percentile(99.0).as_nanos() as f64;
        assert!((500_000.0..=500_000.0 * 1.04).contains(&p50), "p50 {p50}");
        assert!((990_000.0..=990_000.0 * 1.04).contains(&p99), "p99 {p99}");
        assert_eq!(h.percentile(100.0), Duration::from_micros(1000));
        assert_eq!(h.count(), 1000);
        assert_eq!(h.mean(), Duration::from_nanos(500_500));
    }

    #[test]
    fn merge_adds_counts() {
        let mut a = LatencyHistogram::new();
        let mut b = LatencyHistogram::new();
        a.record(Duration::from_micros(1));
        b.record(Duration::from_micros(9));
        a.merge(&b);
        assert_eq!(a.count(), 2);
        assert_eq!(a.max(), Duration::from_micros(9));
        assert_eq!(LatencyHistogram::new().percentile(99.0), Duration::ZERO);
    }
}
