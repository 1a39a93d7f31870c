//! What every bench reports the same way: a summary of samples (median, interquartile range,
//! min-max, n), the machine's load, and the commit the binary was built from. Included with
//! `#[path]` by the benches that use it.
#![allow(dead_code)]

use std::process::Command;

/// The `p` quantile of `v` with linear interpolation (0.5: the median); NaN when empty.
pub fn quantile(v: &[f64], p: f64) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    if s.is_empty() {
        return f64::NAN;
    }
    let at = p * (s.len() - 1) as f64;
    let (lo, hi) = (at.floor() as usize, at.ceil() as usize);
    s[lo] + (s[hi] - s[lo]) * (at - lo as f64)
}

/// Median, quartiles and range of a set of samples.
#[derive(Debug, Clone, Copy)]
pub struct Summary {
    pub median: f64,
    pub q1: f64,
    pub q3: f64,
    pub min: f64,
    pub max: f64,
    pub n: usize,
}

impl Summary {
    pub fn of(v: &[f64]) -> Summary {
        Summary {
            median: quantile(v, 0.5),
            q1: quantile(v, 0.25),
            q3: quantile(v, 0.75),
            min: v.iter().copied().fold(f64::INFINITY, f64::min),
            max: v.iter().copied().fold(f64::NEG_INFINITY, f64::max),
            n: v.len(),
        }
    }

    /// `| median | q1-q3 | min-max | n |` cells, each value formatted by `f`.
    pub fn cells(&self, f: impl Fn(f64) -> String) -> String {
        format!(
            "{} | {}-{} | {}-{} | {}",
            f(self.median),
            f(self.q1),
            f(self.q3),
            f(self.min),
            f(self.max),
            self.n
        )
    }
}

/// Milliseconds in the unit that reads best.
pub fn ms(v: f64) -> String {
    if v.is_nan() {
        "-".into()
    } else if v >= 1000.0 {
        format!("{:.2} s", v / 1000.0)
    } else if v >= 10.0 {
        format!("{v:.0} ms")
    } else {
        format!("{v:.2} ms")
    }
}

/// The three load averages, as /proc/loadavg has them.
pub fn load() -> String {
    let text = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    text.split(' ').take(3).collect::<Vec<_>>().join(" ")
}

/// `git rev-parse --short HEAD` of the tree the bench was built from, `-dirty` when it has
/// uncommitted changes; "unknown" outside a git checkout.
pub fn commit() -> String {
    let dir = env!("CARGO_MANIFEST_DIR");
    let out = Command::new("git")
        .args(["-C", dir, "rev-parse", "--short", "HEAD"])
        .output();
    let Some(head) = out
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    else {
        return "unknown".into();
    };
    let dirty = Command::new("git")
        .args(["-C", dir, "status", "--porcelain", "--untracked-files=no"])
        .output()
        .map(|o| !o.stdout.is_empty())
        .unwrap_or(false);
    if dirty {
        format!("{head}-dirty")
    } else {
        head
    }
}
