//! What reconcile reports, kept for scrapes: its latest monitor cache (shared rows, so keeping
//! it costs little), pass and transaction counts and durations, and whether the host matches
//! the config.

use super::catalogue as c;
use super::families::Families;
use crate::ovsdb::Cache;
use crate::reconcile::{InterfaceError, PassOutcome, PassReport, Telemetry};
use prometheus::{Histogram, HistogramOpts, IntCounter};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// Reconcile's figures.
pub struct ReconcileMetrics {
    cache: Mutex<Option<Cache>>,
    runs: IntCounter,
    errors: IntCounter,
    duration: Histogram,
    drift: IntCounter,
    txn_duration: Histogram,
    txn_errors: IntCounter,
    converged: AtomicBool,
    conflicts: AtomicU64,
    broken: Mutex<Vec<InterfaceError>>,
}

fn histogram(spec: &c::Spec, buckets: Vec<f64>) -> Histogram {
    Histogram::with_opts(HistogramOpts::new(spec.name, spec.help).buckets(buckets))
        .expect("valid histogram options")
}

fn counter(spec: &c::Spec) -> IntCounter {
    IntCounter::new(spec.name, spec.help).expect("valid counter options")
}

impl Default for ReconcileMetrics {
    fn default() -> Self {
        // A pass that changes nothing takes well under a millisecond; one that waits for
        // ovs-vswitchd to add a thousand ports takes seconds.
        let pass = vec![
            0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
            30.0,
        ];
        let txn = vec![
            0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
            5.0,
        ];
        ReconcileMetrics {
            cache: Mutex::new(None),
            runs: counter(&c::RECONCILE_RUNS),
            errors: counter(&c::RECONCILE_ERRORS),
            duration: histogram(&c::RECONCILE_DURATION, pass),
            drift: counter(&c::DRIFT_REPAIRS),
            txn_duration: histogram(&c::OVSDB_TXN_DURATION, txn),
            txn_errors: counter(&c::OVSDB_TXN_ERRORS),
            converged: AtomicBool::new(false),
            conflicts: AtomicU64::new(0),
            broken: Mutex::new(Vec::new()),
        }
    }
}

impl ReconcileMetrics {
    /// The latest monitor cache, if reconcile has one yet.
    pub fn with_cache<T>(&self, f: impl FnOnce(Option<&Cache>) -> T) -> T {
        let guard = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        f(guard.as_ref())
    }

    /// The last pass succeeded with no conflict.
    pub fn is_converged(&self) -> bool {
        self.converged.load(Ordering::Relaxed)
    }

    /// The owned interfaces that do not work, as last reported.
    pub fn broken_interfaces(&self) -> Vec<InterfaceError> {
        self.broken
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Adds reconcile's families.
    pub fn collect(&self, out: &mut Families) {
        use prometheus::core::Collector;
        for collector in [
            &self.runs as &dyn Collector,
            &self.errors,
            &self.duration,
            &self.drift,
            &self.txn_duration,
            &self.txn_errors,
        ] {
            for mf in collector.collect() {
                out.merge(mf);
            }
        }
        let converged = if self.is_converged() { 1.0 } else { 0.0 };
        out.add(&c::RECONCILE_CONVERGED, &[], converged);
        let conflicts = self.conflicts.load(Ordering::Relaxed) as f64;
        out.add(&c::RECONCILE_CONFLICTS, &[], conflicts);
    }
}

impl Telemetry for ReconcileMetrics {
    fn observed(&self, cache: &Cache) {
        let copy = cache.clone();
        let mut guard = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        let old = guard.replace(copy);
        drop(guard);
        // Freed after the lock is released, so a scrape never waits on it.
        drop(old);
    }

    fn transaction(&self, elapsed: Duration, ok: bool) {
        self.txn_duration.observe(elapsed.as_secs_f64());
        if !ok {
            self.txn_errors.inc();
        }
    }

    fn pass(&self, report: &PassReport) {
        self.runs.inc();
        self.duration.observe(report.duration.as_secs_f64());
        match report.outcome {
            PassOutcome::Failed => self.errors.inc(),
            PassOutcome::Applied { drift: true } => self.drift.inc(),
            _ => {}
        }
    }

    fn interface_errors(&self, errors: &[InterfaceError]) {
        *self.broken.lock().unwrap_or_else(|e| e.into_inner()) = errors.to_vec();
    }

    fn converged(&self, converged: bool, conflicts: usize) {
        self.converged
            .store(converged && conflicts == 0, Ordering::Relaxed);
        self.conflicts.store(conflicts as u64, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passes_and_transactions_are_counted() {
        let m = ReconcileMetrics::default();
        let pass = |outcome| PassReport {
            duration: Duration::from_millis(3),
            outcome,
        };
        m.pass(&pass(PassOutcome::Applied { drift: false }));
        m.pass(&pass(PassOutcome::Applied { drift: true }));
        m.pass(&pass(PassOutcome::Failed));
        m.pass(&pass(PassOutcome::Unchanged));
        m.transaction(Duration::from_micros(300), true);
        m.transaction(Duration::from_micros(300), false);
        m.converged(true, 1);
        assert!(!m.is_converged(), "a conflict is not converged");
        let mut f = Families::default();
        m.collect(&mut f);
        let text = f.finish();
        for want in [
            "ovs_appliance_reconcile_runs_total 4\n",
            "ovs_appliance_reconcile_errors_total 1\n",
            "ovs_appliance_drift_repairs_total 1\n",
            "ovs_appliance_reconcile_duration_seconds_count 4\n",
            "ovs_appliance_ovsdb_transaction_duration_seconds_bucket{le=\"0.0005\"} 2\n",
            "ovs_appliance_ovsdb_transaction_errors_total 1\n",
            "ovs_appliance_reconcile_converged 0\n",
            "ovs_appliance_reconcile_conflicts 1\n",
        ] {
            assert!(text.contains(want), "missing {want} in\n{text}");
        }
        m.converged(true, 0);
        assert!(m.is_converged());
    }
}
