//! Metrics and health: the Prometheus families, the collectors that fill them at scrape time,
//! and the HTTP listener for `/metrics`, `/healthz` and `/readyz`.
//!
//! Reads what the other modules publish (the supervisor's daemon state, reconcile's monitor
//! cache and passes) and asks the daemons' control sockets in the background; it changes
//! nothing anywhere. Every series is built at scrape time from current state, so a deleted
//! interface's series is gone from the next scrape.

pub(crate) mod appctl;
pub mod catalogue;
mod daemons;
mod families;
mod filter;
mod heap;
mod http;
mod interfaces;
mod poll;
mod procfs;
mod telemetry;

pub use http::{Endpoints, Limits, Probe};
pub use telemetry::ReconcileMetrics;

/// The Grafana dashboard (compose/monitoring), also shipped as a Kubernetes ConfigMap.
pub const GRAFANA_DASHBOARD: &str =
    include_str!("../../compose/monitoring/grafana/dashboards/ovs-appliance.json");

use crate::config::MetricsConfig;
use crate::reconcile::TelemetryHandle;
use crate::supervisor::{Daemon, StateRx};
use families::Families;
use filter::Filter;
use poll::{Polled, Poller};
use procfs::Units;
use std::fmt::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Everything a scrape reads.
pub struct Metrics {
    listen: std::net::SocketAddr,
    refresh: Duration,
    filter: Filter,
    run_dir: PathBuf,
    proc_root: PathBuf,
    units: Units,
    state: StateRx,
    reconcile: Arc<ReconcileMetrics>,
    polled: Arc<Mutex<Polled>>,
}

impl Metrics {
    /// `run_dir` holds the daemons' control sockets; `proc_root` is /proc (injected for tests).
    pub fn new(
        config: &MetricsConfig,
        run_dir: PathBuf,
        proc_root: PathBuf,
        state: StateRx,
    ) -> Arc<Metrics> {
        heap::tune();
        Arc::new(Metrics {
            listen: config.listen,
            refresh: config.refresh_interval.0,
            filter: Filter::from_config(config),
            run_dir,
            proc_root,
            units: Units::of_this_host(),
            state,
            reconcile: Arc::new(ReconcileMetrics::default()),
            polled: Arc::new(Mutex::new(Polled::default())),
        })
    }

    /// The handle reconcile reports to.
    pub fn telemetry(&self) -> TelemetryHandle {
        self.reconcile.clone()
    }

    /// Reads the control sockets every `refresh_interval`; to be spawned and owned by the
    /// caller. It returns only when the supervisor's state channel closes.
    pub fn poller(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        Poller::new(
            self.run_dir.clone(),
            self.refresh,
            self.state.clone(),
            self.reconcile.clone(),
            self.polled.clone(),
        )
        .run()
    }

    /// Serves `/metrics`, `/healthz` and `/readyz` on a thread of its own (`http::on_own_thread`),
    /// so neither a flood of connections nor a long render delays the supervisor's runtime.
    /// Resolves, with why, only if that thread ends.
    pub fn serve(
        self: &Arc<Self>,
    ) -> impl std::future::Future<Output = Result<(), String>> + Send + 'static {
        let ep: Arc<dyn Endpoints> = self.clone();
        http::on_own_thread(http::bind_and_serve(self.listen, ep, Limits::default()))
    }

    /// One scrape, text format 0.0.4.
    pub fn render(&self) -> String {
        let mut out = Families::default();
        let state = self.state.borrow().clone();
        daemons::collect(&state, &self.proc_root, self.units, &mut out);
        self.reconcile.collect(&mut out);
        // The cache goes stale while ovsdb-server is down: its interfaces are not current then.
        let counts = self.reconcile.with_cache(|cache| {
            cache
                .filter(|_| state.ovsdb_server.up)
                .map(|c| interfaces::collect(c, &self.filter, &mut out))
        });
        let success = [("collector", "interfaces")];
        out.add(
            &catalogue::COLLECTOR_SUCCESS,
            &success,
            f64::from(u8::from(counts.is_some())),
        );
        let counts = counts.unwrap_or_default();
        // A gauge of this scrape: a counter summed over scrapes grew with the scrape rate, not
        // with anything about the interfaces (issue 14).
        out.add(&catalogue::INTERFACES_DROPPED, &[], counts.dropped as f64);
        out.add(&catalogue::INTERFACES_EXPORTED, &[], counts.exported as f64);
        {
            let polled = self.polled.lock().unwrap_or_else(|e| e.into_inner());
            // Two missed refreshes and a timeout: older figures are not current.
            let max_age = self.refresh * 2 + Duration::from_secs(2);
            poll::collect(&polled, max_age, &mut out);
        }
        out.finish()
    }

    fn daemons_text(&self) -> (bool, String) {
        let state = self.state.borrow();
        let mut text = String::new();
        for daemon in Daemon::ALL {
            let d = state.daemon(daemon);
            // Busy is up (answered late while its main thread works; not restarted before
            // busy_timeout) and said apart, so a slow daemon is not mistaken for a quick one.
            let word = match (d.up, d.busy) {
                (true, true) => "busy",
                (true, false) => "up",
                (false, _) => "down",
            };
            let _ = match d.pid {
                Some(pid) => writeln!(text, "{}: {word} (pid {pid})", daemon.name()),
                None => writeln!(text, "{}: {word}", daemon.name()),
            };
        }
        (state.healthy(), text)
    }
}

impl Endpoints for Metrics {
    fn metrics(&self) -> String {
        let body = self.render();
        // The render's working buffers are freed by now; the body itself is a block of its
        // own (see heap::tune), unmapped once it is sent.
        heap::give_back();
        body
    }

    /// 200 while both daemons answer their health checks.
    fn health(&self) -> Probe {
        let (ok, detail) = self.daemons_text();
        Probe { ok, detail }
    }

    /// 200 once the config is applied and works: both daemons answer, the last reconcile pass
    /// succeeded with no conflict, and no owned interface reports an error. Each interface
    /// that does not work is named, with whether its device is missing or it was refused: a
    /// missing device is 503 too (the switch is not as configured until it appears).
    fn ready(&self) -> Probe {
        let (healthy, mut detail) = self.daemons_text();
        let converged = self.reconcile.is_converged();
        let word = if converged {
            "applied"
        } else {
            "not applied yet (pass pending, failed, or a conflict)"
        };
        let _ = writeln!(detail, "config: {word}");
        let broken = self.reconcile.broken_interfaces();
        for e in &broken {
            let _ = writeln!(detail, "{e}");
        }
        Probe {
            ok: healthy && converged && broken.is_empty(),
            detail,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reconcile::Telemetry;
    use crate::supervisor::State;

    fn metrics() -> (Arc<Metrics>, tokio::sync::watch::Sender<State>) {
        let (tx, rx) = tokio::sync::watch::channel(State::default());
        let m = Metrics::new(
            &MetricsConfig::default(),
            "/nonexistent".into(),
            "/proc".into(),
            rx,
        );
        (m, tx)
    }

    #[test]
    fn every_family_emitted_is_in_the_catalogue_and_has_no_duplicate_series() {
        let (m, _tx) = metrics();
        let text = m.render();
        let mut seen = std::collections::BTreeSet::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let name = rest.split(' ').next().unwrap();
                assert!(
                    catalogue::find(name).is_some(),
                    "{name} not in the catalogue"
                );
            } else if !line.starts_with('#') {
                let series = line.rsplit_once(' ').unwrap().0;
                assert!(seen.insert(series.to_string()), "duplicate {series}");
            }
        }
        // No daemon, no cache, no control socket: those collectors fail, the scrape answers.
        assert!(text.contains("ovs_appliance_collector_success{collector=\"interfaces\"} 0"));
        assert!(text.contains("ovs_appliance_daemon_up{daemon=\"ovs-vswitchd\"} 0"));
    }

    #[test]
    fn probes_follow_the_daemons_and_the_last_pass() {
        let (m, tx) = metrics();
        assert!(!m.health().ok && !m.ready().ok);
        tx.send_modify(|s| {
            s.ovsdb_server.up = true;
            s.vswitchd.up = true;
            s.vswitchd.pid = Some(7);
        });
        let h = m.health();
        assert!(h.ok, "{h:?}");
        assert!(h.detail.contains("ovs-vswitchd: up (pid 7)"), "{h:?}");
        // Busy is up (not restarted, still healthy) and said as its own state.
        tx.send_modify(|s| s.vswitchd.busy = true);
        let h = m.health();
        assert!(h.ok, "{h:?}");
        assert!(h.detail.contains("ovs-vswitchd: busy (pid 7)"), "{h:?}");
        tx.send_modify(|s| s.vswitchd.busy = false);
        assert!(!m.ready().ok);
        m.reconcile.converged(true, 0);
        assert!(m.ready().ok);
        // Applied, but an owned interface does not work: not ready, and named.
        let error = "could not open network device eth9 (No such device)";
        m.reconcile
            .interface_errors(&[crate::reconcile::InterfaceError {
                interface: "eth9".into(),
                ofport: Some(-1),
                error: error.into(),
                trouble: crate::reconcile::Trouble::of(error),
            }]);
        let r = m.ready();
        assert!(!r.ok, "{r:?}");
        assert!(r.detail.contains("config: applied\ninterface eth9: no such device: could not open network device eth9"), "{r:?}");
        m.reconcile.interface_errors(&[]);
        assert!(m.ready().ok);
        tx.send_modify(|s| s.vswitchd.up = false);
        assert!(!m.health().ok && !m.ready().ok);
    }
}
