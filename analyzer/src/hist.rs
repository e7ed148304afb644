//! Latency distributions: exact percentiles from the raw values and a BCC-style log2 histogram.
//!
//! Percentiles are exact (the sorted values), not approximated: a capture holds every event, so
//! there is no reason to estimate. hdrhistogram would bound memory for unbounded streams, which an
//! analysis of a finite capture does not need.
use std::fmt::Write;

use serde::Serialize;

/// A log2 bucket, bounds in ns (`low` inclusive, `high` exclusive).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Bucket {
    /// Lower bound, ns.
    pub low: u64,
    /// Upper bound, ns.
    pub high: u64,
    /// Values in the bucket.
    pub count: u64,
}

/// Percentiles in ns.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Percentiles {
    /// Median.
    pub p50: u64,
    /// 90th.
    pub p90: u64,
    /// 99th.
    pub p99: u64,
    /// 99.9th.
    pub p999: u64,
    /// Maximum.
    pub max: u64,
}

/// Summary of a set of durations.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Distribution {
    /// Number of values.
    pub count: u64,
    /// Smallest, ns.
    pub min: u64,
    /// Sum, ns.
    pub total: u64,
    /// Percentiles, ns.
    pub percentiles: Percentiles,
    /// log2 buckets in microseconds, from the first to the last non-empty one, bounds in ns.
    pub histogram: Vec<Bucket>,
}

fn rank(sorted: &[u64], q: f64) -> u64 {
    // Nearest-rank: the smallest value with at least q of the values at or below it.
    let n = sorted.len();
    let r = ((q * n as f64).ceil() as usize).clamp(1, n);
    sorted[r - 1]
}

impl Distribution {
    /// Summarizes `values` (ns), sorting them in place.
    pub fn from_values(values: &mut [u64]) -> Distribution {
        if values.is_empty() {
            return Distribution::default();
        }
        values.sort_unstable();
        let mut buckets: Vec<u64> = Vec::new();
        for &v in values.iter() {
            let us = v / 1000;
            // Bucket i holds [2^i, 2^(i+1)) us, with 0 us in bucket 0, as BCC's log2 histograms.
            let i = if us == 0 {
                0
            } else {
                63 - us.leading_zeros() as usize
            };
            if buckets.len() <= i {
                buckets.resize(i + 1, 0);
            }
            buckets[i] += 1;
        }
        let first = buckets.iter().position(|&c| c > 0).unwrap_or(0);
        let histogram = buckets
            .iter()
            .enumerate()
            .skip(first)
            .map(|(i, &count)| {
                let low_us = if i == 0 { 0 } else { 1u64 << i };
                let high_us = 1u64 << (i + 1);
                Bucket {
                    low: low_us * 1000,
                    high: high_us * 1000,
                    count,
                }
            })
            .collect();
        Distribution {
            count: values.len() as u64,
            min: values[0],
            total: values.iter().sum(),
            percentiles: Percentiles {
                p50: rank(values, 0.50),
                p90: rank(values, 0.90),
                p99: rank(values, 0.99),
                p999: rank(values, 0.999),
                max: values[values.len() - 1],
            },
            histogram,
        }
    }

    /// The histogram as BCC prints it (`usecs : count distribution`) plus the percentiles.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if self.count == 0 {
            out.push_str("     (no events)\n");
            return out;
        }
        let max = self
            .histogram
            .iter()
            .map(|b| b.count)
            .max()
            .unwrap_or(1)
            .max(1);
        let _ = writeln!(out, "{:>24} : {:<8} distribution", "usecs", "count");
        for b in &self.histogram {
            let stars = (b.count * 40).div_ceil(max) as usize;
            let stars = if b.count == 0 { 0 } else { stars.max(1) };
            let _ = writeln!(
                out,
                "{:>10} -> {:<10} : {:<8} |{:<40}|",
                b.low / 1000,
                b.high / 1000 - 1,
                b.count,
                "*".repeat(stars)
            );
        }
        let p = &self.percentiles;
        let _ = writeln!(
            out,
            "count {}  min {}  p50 {}  p90 {}  p99 {}  p99.9 {}  max {}",
            self.count,
            fmt_ns(self.min),
            fmt_ns(p.p50),
            fmt_ns(p.p90),
            fmt_ns(p.p99),
            fmt_ns(p.p999),
            fmt_ns(p.max)
        );
        out
    }
}

/// A duration for people: ns, us, ms or s with three significant digits.
pub fn fmt_ns(ns: u64) -> String {
    match ns {
        0..1_000 => format!("{ns}ns"),
        1_000..1_000_000 => format!("{:.3}us", ns as f64 / 1e3),
        1_000_000..1_000_000_000 => format!("{:.3}ms", ns as f64 / 1e6),
        _ => format!("{:.3}s", ns as f64 / 1e9),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_and_percentiles_of_known_values() {
        // 0.5us, 1.5us, 3us, 3us, 100us
        let mut v = vec![500, 1_500, 3_000, 3_000, 100_000];
        let d = Distribution::from_values(&mut v);
        assert_eq!(d.count, 5);
        assert_eq!(d.min, 500);
        assert_eq!(d.percentiles.p50, 3_000);
        assert_eq!(d.percentiles.max, 100_000);
        let h: Vec<_> = d
            .histogram
            .iter()
            .map(|b| (b.low / 1000, b.count))
            .collect();
        // buckets 0-1, 2-3, 4-7, ..., 64-127 us
        assert_eq!(h[0], (0, 2), "0 us and 1 us fall in the first bucket");
        assert_eq!(h[1], (2, 2));
        assert_eq!(*h.last().unwrap(), (64, 1));
        assert_eq!(h.iter().map(|x| x.1).sum::<u64>(), 5);
        let text = d.render();
        assert!(text.contains("usecs"), "{text}");
        assert!(text.contains("p50 3.000us"), "{text}");
    }

    #[test]
    fn nearest_rank_percentiles() {
        let mut v: Vec<u64> = (1..=1000).collect();
        let d = Distribution::from_values(&mut v);
        assert_eq!(d.percentiles.p50, 500);
        assert_eq!(d.percentiles.p90, 900);
        assert_eq!(d.percentiles.p99, 990);
        assert_eq!(d.percentiles.p999, 999);
        assert_eq!(Distribution::from_values(&mut []).count, 0);
    }
}
