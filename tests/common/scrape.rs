//! Reading the appliance's metrics in tier-2 tests: scrapes through the namespace's loopback,
//! and the text exposition format parsed into samples.

use super::http;
use super::{wait_for, Appliance};
use std::collections::BTreeMap;
use std::time::Duration;

/// One sample line: name, labels, value.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// Parses `name{a="x",b="y"} 1` lines; comments are skipped. Label values hold no escaped
/// quotes in what these tests look at.
pub fn samples(text: &str) -> Vec<Sample> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|line| {
            let (series, value) = line.rsplit_once(' ').expect("series and value");
            let (name, labels) = match series.split_once('{') {
                Some((n, rest)) => (n, rest.trim_end_matches('}')),
                None => (series, ""),
            };
            let labels = labels
                .split("\",")
                .filter(|p| !p.is_empty())
                .filter_map(|p| p.split_once("=\""))
                .map(|(k, v)| (k.to_string(), v.trim_end_matches('"').to_string()))
                .collect();
            let value = match value {
                "+Inf" => f64::INFINITY,
                "-Inf" => f64::NEG_INFINITY,
                v => v.parse().unwrap_or(f64::NAN),
            };
            Sample {
                name: name.to_string(),
                labels,
                value,
            }
        })
        .collect()
}

/// The value of the first sample called `name` whose labels include `labels`.
pub fn value(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    samples(text)
        .into_iter()
        .find(|s| {
            s.name == name
                && labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|s| s.value)
}

/// `/metrics` of `app` on `port`, waiting up to 20 s for the listener.
pub fn scrape(app: &Appliance, port: u16) -> String {
    let ns = app.netns.name.clone();
    wait_for(Duration::from_secs(20), "GET /metrics", || {
        http::get(&ns, port, "/metrics")
            .filter(|r| r.status == 200)
            .map(|r| r.body)
    })
}
