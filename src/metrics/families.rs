//! Building a scrape: samples are added family by family (a family from the catalogue, label
//! pairs, a value) and come out as the `prometheus` crate's families, ready for its text
//! encoder. Nothing is kept between scrapes, so a series whose object is gone is not emitted.

use super::catalogue::{Kind, Spec};
use prometheus::proto::{self, LabelPair, Metric, MetricFamily, MetricType};
use std::collections::BTreeMap;

/// The families of one scrape.
#[derive(Default)]
pub struct Families {
    map: BTreeMap<&'static str, MetricFamily>,
}

fn label_pairs(labels: &[(&str, &str)]) -> Vec<LabelPair> {
    labels
        .iter()
        .map(|(k, v)| {
            let mut pair = LabelPair::default();
            pair.set_name((*k).to_string());
            pair.set_value((*v).to_string());
            pair
        })
        .collect()
}

impl Families {
    fn family(&mut self, spec: &'static Spec) -> &mut MetricFamily {
        self.map.entry(spec.name).or_insert_with(|| {
            let mut mf = MetricFamily::default();
            mf.set_name(spec.name.to_string());
            mf.set_help(spec.help.to_string());
            mf.set_field_type(match spec.kind {
                Kind::Counter => MetricType::COUNTER,
                Kind::Gauge => MetricType::GAUGE,
                Kind::Histogram => MetricType::HISTOGRAM,
            });
            mf
        })
    }

    /// One sample of a counter or gauge.
    pub fn add(&mut self, spec: &'static Spec, labels: &[(&str, &str)], value: f64) {
        let mut metric = Metric::from_label(label_pairs(labels));
        match spec.kind {
            Kind::Counter => {
                let mut c = proto::Counter::default();
                c.set_value(value);
                metric.set_counter(c);
            }
            Kind::Gauge => {
                let mut g = proto::Gauge::default();
                g.set_value(value);
                metric.set_gauge(g);
            }
            Kind::Histogram => unreachable!("histograms come from the registry: {}", spec.name),
        }
        self.family(spec).mut_metric().push(metric);
    }

    /// A family the `prometheus` crate collected (histograms, counters it keeps).
    pub fn merge(&mut self, mut mf: MetricFamily) {
        let Some(spec) = super::catalogue::find(mf.name()) else {
            debug_assert!(false, "{} is not in the catalogue", mf.name());
            return;
        };
        let metrics = mf.take_metric();
        self.family(spec).mut_metric().extend(metrics);
    }

    /// The families with at least one sample, sorted by name (the text encoder refuses empty
    /// families).
    pub fn finish(self) -> Vec<MetricFamily> {
        self.map
            .into_values()
            .filter(|mf| !mf.get_metric().is_empty())
            .collect()
    }
}

/// The text exposition format 0.0.4 of `families`.
pub fn encode(families: &[MetricFamily]) -> String {
    let mut out = String::new();
    // Only empty or nameless families make the encoder fail, and `finish` leaves none.
    if let Err(e) = prometheus::TextEncoder::new().encode_utf8(families, &mut out) {
        tracing::error!(%e, "failed to encode metrics");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::catalogue::{DAEMON_RESTARTS, DAEMON_UP};
    use super::*;

    #[test]
    fn samples_encode_as_text_with_help_and_type() {
        let mut f = Families::default();
        f.add(&DAEMON_UP, &[("daemon", "ovs-vswitchd")], 1.0);
        f.add(&DAEMON_UP, &[("daemon", "ovsdb-server")], 0.0);
        f.add(&DAEMON_RESTARTS, &[("daemon", "a\"b")], 2.0);
        let text = encode(&f.finish());
        assert!(
            text.contains("# TYPE ovs_appliance_daemon_up gauge\n"),
            "{text}"
        );
        assert!(text.contains("ovs_appliance_daemon_up{daemon=\"ovs-vswitchd\"} 1\n"));
        assert!(text.contains("ovs_appliance_daemon_restarts_total{daemon=\"a\\\"b\"} 2\n"));
        assert!(text.contains("# HELP ovs_appliance_daemon_restarts_total Times"));
    }

    #[test]
    fn empty_scrape_encodes_to_nothing() {
        assert_eq!(encode(&Families::default().finish()), "");
    }
}
