//! The Prometheus text format's pieces every metrics route shares: label-value escaping, a
//! family's HELP/TYPE header, and a histogram with fixed bounds (cumulative `_bucket` series,
//! `_sum`, `_count`) as client_golang writes one.

use std::fmt::Write;
use std::sync::Mutex;

/// A label value escaped for the text format.
pub fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// `# HELP name help` and `# TYPE name kind`.
pub fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// `prometheus.ExponentialBuckets(start, factor, count)`.
pub fn exponential(start: f64, factor: f64, count: usize) -> Vec<f64> {
    (0..count)
        .scan(start, |b, _| {
            let v = *b;
            *b *= factor;
            Some(v)
        })
        .collect()
}

#[derive(Debug, Clone, Default)]
struct Counts {
    /// Observations at or under each bound (not cumulative; summed when written).
    buckets: Vec<u64>,
    sum: f64,
    count: u64,
}

/// A histogram with fixed upper bounds.
#[derive(Debug)]
pub struct Histogram {
    bounds: Vec<f64>,
    counts: Mutex<Counts>,
}

impl Histogram {
    pub fn new(bounds: Vec<f64>) -> Histogram {
        let buckets = vec![0; bounds.len()];
        Histogram {
            bounds,
            counts: Mutex::new(Counts {
                buckets,
                ..Counts::default()
            }),
        }
    }

    pub fn observe(&self, v: f64) {
        let mut c = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(i) = self.bounds.iter().position(|b| v <= *b) {
            c.buckets[i] += 1;
        }
        c.sum += v;
        c.count += 1;
    }

    /// The observation count so far.
    pub fn count(&self) -> u64 {
        self.counts.lock().unwrap_or_else(|p| p.into_inner()).count
    }

    /// The samples of `name` with `labels` (`k="v",...`, already escaped, or empty).
    pub fn write(&self, out: &mut String, name: &str, labels: &str) {
        let c = self
            .counts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let sep = if labels.is_empty() { "" } else { "," };
        let mut below = 0;
        for (b, n) in self.bounds.iter().zip(&c.buckets) {
            below += n;
            let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"{b}\"}} {below}");
        }
        let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {}", c.count);
        let braces = |s: &str| {
            if s.is_empty() {
                String::new()
            } else {
                format!("{{{s}}}")
            }
        };
        let _ = writeln!(out, "{name}_sum{} {}", braces(labels), c.sum);
        let _ = writeln!(out, "{name}_count{} {}", braces(labels), c.count);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_cumulative_and_inf_counts_everything() {
        let h = Histogram::new(vec![0.5, 1.0, 2.0]);
        for v in [0.25, 0.5, 0.75, 3.0, 10.0] {
            h.observe(v);
        }
        let mut out = String::new();
        h.write(&mut out, "x_seconds", "op=\"a\"");
        assert_eq!(
            out,
            "x_seconds_bucket{op=\"a\",le=\"0.5\"} 2\n\
             x_seconds_bucket{op=\"a\",le=\"1\"} 3\n\
             x_seconds_bucket{op=\"a\",le=\"2\"} 3\n\
             x_seconds_bucket{op=\"a\",le=\"+Inf\"} 5\n\
             x_seconds_sum{op=\"a\"} 14.5\n\
             x_seconds_count{op=\"a\"} 5\n"
        );
        let mut bare = String::new();
        Histogram::new(vec![1.0]).write(&mut bare, "y", "");
        assert_eq!(
            bare,
            "y_bucket{le=\"1\"} 0\ny_bucket{le=\"+Inf\"} 0\ny_sum 0\ny_count 0\n"
        );
    }

    #[test]
    fn exponential_bounds_as_client_golang() {
        let b = exponential(0.005, 2.5, 14);
        assert_eq!(b.len(), 14);
        assert_eq!(b[0], 0.005);
        assert!((b[1] - 0.0125).abs() < 1e-12);
        assert!((b[13] - 0.005 * 2.5f64.powi(13)).abs() < 1e-6);
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape("a\\b\"c\nd"), "a\\\\b\\\"c\\nd");
    }
}
