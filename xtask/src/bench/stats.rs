//! Small statistics over repeated measurements.

use std::time::Duration;

use serde_json::{Value, json};

/// A duration in milliseconds.
pub(crate) fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

/// Order statistics of a sample.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Summary {
    pub(crate) n: usize,
    pub(crate) min: f64,
    pub(crate) median: f64,
    pub(crate) p99: f64,
    pub(crate) max: f64,
    pub(crate) mean: f64,
}

impl Summary {
    /// The summary of `values` (all NaN for an empty sample).
    pub(crate) fn of(values: &[f64]) -> Self {
        let mut sorted = values.to_vec();
        sorted.sort_by(f64::total_cmp);
        let n = sorted.len();
        if n == 0 {
            return Self {
                n,
                min: f64::NAN,
                median: f64::NAN,
                p99: f64::NAN,
                max: f64::NAN,
                mean: f64::NAN,
            };
        }
        let median = if n % 2 == 1 {
            sorted[n / 2]
        } else {
            (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
        };
        Self {
            n,
            min: sorted[0],
            median,
            p99: nearest_rank(&sorted, 0.99),
            max: sorted[n - 1],
            mean: sorted.iter().sum::<f64>() / n as f64,
        }
    }

    /// As JSON.
    pub(crate) fn json(&self) -> Value {
        json!({
            "n": self.n, "min": self.min, "median": self.median,
            "p99": self.p99, "max": self.max, "mean": self.mean,
        })
    }
}

/// Nearest rank: the smallest value of `sorted` (ascending, not empty) with at least the
/// fraction `q` of the sample at or below it.
fn nearest_rank(sorted: &[f64], q: f64) -> f64 {
    let n = sorted.len();
    let rank = (q * n as f64).ceil() as usize;
    sorted[rank.clamp(1, n) - 1]
}

/// The nearest-rank percentile `q` (0 < q ≤ 1) of `values`; NaN for an empty sample.
pub(crate) fn percentile(values: &[f64], q: f64) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    if sorted.is_empty() {
        return f64::NAN;
    }
    nearest_rank(&sorted, q)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_and_nearest_rank_p99() {
        let values: Vec<f64> = (1..=100).rev().map(f64::from).collect();
        let s = Summary::of(&values);
        assert_eq!((s.min, s.median, s.p99, s.max), (1.0, 50.5, 99.0, 100.0));
        let s = Summary::of(&[3.0, 1.0, 2.0]);
        assert_eq!((s.median, s.p99), (2.0, 3.0));
    }

    #[test]
    fn p95_by_nearest_rank() {
        let values: Vec<f64> = (1..=20).rev().map(f64::from).collect();
        assert_eq!(percentile(&values, 0.95), 19.0);
        assert_eq!(percentile(&[5.0, 1.0], 0.95), 5.0);
        assert!(percentile(&[], 0.95).is_nan());
    }
}
