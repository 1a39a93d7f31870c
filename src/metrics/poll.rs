//! The datapath and daemon figures that only the control sockets know, read in the background
//! every `refresh_interval` (and at once when a daemon restarts) over persistent unixctl
//! connections, never by running ovs-appctl.
//!
//! Why in the background: a scrape must not wait on ovs-vswitchd, which may be busy (adding a
//! thousand ports takes it seconds) or hung; the scrape then reports the last reading, or a
//! failed collector when that reading is too old. Interface statistics, which OVS refreshes
//! only every 5 s anyway, come from the monitor cache instead.

use super::appctl::{self, Datapath, Upcall};
use super::catalogue as c;
use super::families::Families;
use super::telemetry::ReconcileMetrics;
use crate::supervisor::{Daemon, StateRx};
use crate::unixctl::{self, Conn};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Why a reading failed, by kind: what to log and whether to reconnect is decided on the kind,
/// never on the words of a message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PollError {
    /// The supervisor does not report the daemon up: nothing to read.
    #[error("{0} is not running")]
    NotRunning(&'static str),
    /// Its control socket is gone or closed on us: the daemon exited or restarts, which the
    /// supervisor reports.
    #[error("{0}")]
    Gone(String),
    /// The daemon does not know the command yet (dpif/show and upcall/show come with the first
    /// bridge).
    #[error("{0}")]
    NotYet(String),
    /// The daemon did not accept or answer in time: it is busy or hung.
    #[error("{what} got no answer within {after:?}")]
    NoAnswer { what: String, after: Duration },
    /// `bridge/dump-flows` of a bridge deleted since the cache was read.
    #[error("{0}")]
    NoSuchBridge(String),
    /// Anything else the daemon said or did.
    #[error("{0}")]
    Failed(String),
}

impl PollError {
    /// Nothing the collector should warn about (the supervisor reports the daemon's state).
    fn is_quiet(&self) -> bool {
        matches!(
            self,
            PollError::NotRunning(_) | PollError::Gone(_) | PollError::NotYet(_)
        )
    }
}

impl From<unixctl::Error> for PollError {
    fn from(e: unixctl::Error) -> PollError {
        use unixctl::Error as U;
        match e {
            U::Connect { .. } | U::Disconnected { .. } => PollError::Gone(e.to_string()),
            _ if e.is_unknown_command() => PollError::NotYet(e.to_string()),
            _ if e.is_no_such_bridge() => PollError::NoSuchBridge(e.to_string()),
            _ => PollError::Failed(e.to_string()),
        }
    }
}

/// One reading of one collector.
#[derive(Debug, Clone)]
pub struct Reading<T> {
    pub value: Result<T, PollError>,
    pub took: Duration,
    pub at: Instant,
}

/// The latest reading of each collector.
#[derive(Debug, Default)]
pub struct Polled {
    pub datapaths: Option<Reading<Vec<Datapath>>>,
    pub upcall: Option<Reading<Vec<Upcall>>>,
    pub vswitchd_memory: Option<Reading<BTreeMap<String, u64>>>,
    pub coverage: Option<Reading<BTreeMap<String, u64>>>,
    pub flows: Option<Reading<Vec<(String, u64)>>>,
    pub ovsdb_memory: Option<Reading<BTreeMap<String, u64>>>,
}

/// Reads the control sockets of both daemons until dropped.
pub struct Poller {
    pub run_dir: PathBuf,
    pub interval: Duration,
    pub timeout: Duration,
    pub state: StateRx,
    pub reconcile: Arc<ReconcileMetrics>,
    pub out: Arc<Mutex<Polled>>,
    conns: BTreeMap<&'static str, (u32, Conn)>,
}

impl Poller {
    pub fn new(
        run_dir: PathBuf,
        interval: Duration,
        state: StateRx,
        reconcile: Arc<ReconcileMetrics>,
        out: Arc<Mutex<Polled>>,
    ) -> Poller {
        Poller {
            run_dir,
            interval,
            timeout: Duration::from_secs(2).min(interval),
            state,
            reconcile,
            out,
            conns: BTreeMap::new(),
        }
    }

    pub async fn run(mut self) {
        let mut pids = (None, None);
        loop {
            self.poll_once().await;
            super::heap::give_back();
            let deadline = tokio::time::Instant::now() + self.interval;
            // Poll again at once when a daemon got a new pid or came up (a restart), else at
            // the interval.
            loop {
                tokio::select! {
                    _ = tokio::time::sleep_until(deadline) => break,
                    changed = self.state.changed() => {
                        if changed.is_err() {
                            return;
                        }
                        let s = self.state.borrow_and_update();
                        let now = (
                            s.ovsdb_server.up.then_some(s.ovsdb_server.pid),
                            s.vswitchd.up.then_some(s.vswitchd.pid),
                        );
                        if std::mem::replace(&mut pids, now) != now {
                            break;
                        }
                    }
                }
            }
        }
    }

    async fn conn(&mut self, daemon: Daemon, pid: u32) -> Result<Conn, PollError> {
        if let Some((p, conn)) = self.conns.get(daemon.name()) {
            if *p == pid && !conn.is_closed() {
                return Ok(conn.clone());
            }
        }
        let path = crate::rundir::ctl_socket(&self.run_dir, daemon.name(), pid);
        let conn = tokio::time::timeout(self.timeout, Conn::connect(&path))
            .await
            .map_err(|_| PollError::NoAnswer {
                what: format!("connecting to {}", path.display()),
                after: self.timeout,
            })??;
        self.conns.insert(daemon.name(), (pid, conn.clone()));
        Ok(conn)
    }

    async fn poll_once(&mut self) {
        let state = self.state.borrow().clone();
        let vswitchd = match state.vswitchd.pid.filter(|_| state.vswitchd.up) {
            Some(pid) => self.conn(Daemon::Vswitchd, pid).await,
            None => Err(PollError::NotRunning(Daemon::Vswitchd.name())),
        };
        let ovsdb = match state.ovsdb_server.pid.filter(|_| state.ovsdb_server.up) {
            Some(pid) => self.conn(Daemon::OvsdbServer, pid).await,
            None => Err(PollError::NotRunning(Daemon::OvsdbServer.name())),
        };
        let bridges: Vec<String> = self.reconcile.with_cache(|cache| {
            cache
                .into_iter()
                .flat_map(|c| c.table("Bridge"))
                .filter_map(|(_, r)| r.get("name").and_then(|d| d.as_str()))
                .map(str::to_string)
                .collect()
        });
        let t = self.timeout;
        let vs = vswitchd.as_ref();
        let (datapaths, upcall, memory, coverage, flows, db_memory) = tokio::join!(
            read_datapaths(vs, t),
            read(vs, t, "upcall/show", &[], appctl::parse_upcall_show),
            read(vs, t, "memory/show", &[], appctl::parse_memory_show),
            read(vs, t, "coverage/show", &[], appctl::parse_coverage_show),
            read_flows(vs, t, &bridges),
            read(
                ovsdb.as_ref(),
                t,
                "memory/show",
                &[],
                appctl::parse_memory_show
            ),
        );
        // A daemon that did not answer in time gets a fresh connection next time, so replies
        // still owed on this one do not pile up while it is stopped or hung.
        if stuck(&datapaths) || stuck(&memory) {
            self.conns.remove(Daemon::Vswitchd.name());
        }
        if stuck(&db_memory) {
            self.conns.remove(Daemon::OvsdbServer.name());
        }
        let mut out = self.out.lock().unwrap_or_else(|e| e.into_inner());
        log_change("datapath", &out.datapaths, &datapaths);
        log_change("upcall", &out.upcall, &upcall);
        log_change("vswitchd_memory", &out.vswitchd_memory, &memory);
        log_change("coverage", &out.coverage, &coverage);
        log_change("openflow", &out.flows, &flows);
        log_change("ovsdb_memory", &out.ovsdb_memory, &db_memory);
        *out = Polled {
            datapaths: Some(datapaths),
            upcall: Some(upcall),
            vswitchd_memory: Some(memory),
            coverage: Some(coverage),
            flows: Some(flows),
            ovsdb_memory: Some(db_memory),
        };
    }
}

/// The reading timed out.
fn stuck<T>(r: &Reading<T>) -> bool {
    matches!(&r.value, Err(PollError::NoAnswer { .. }))
}

/// Logs a collector's failure when it starts or its reason changes, and its recovery. A daemon
/// that is down is the supervisor's news, not ours: that is only a debug line.
fn log_change<T>(name: &str, old: &Option<Reading<T>>, new: &Reading<T>) {
    let old = old.as_ref().map(|r| r.value.as_ref().err());
    match (&new.value, old) {
        (Err(e), Some(Some(before))) if before == e => {}
        // A daemon that is down or going away, or a vswitchd that has not registered a command
        // yet, is not the collector's failure to report.
        (Err(e), _) if e.is_quiet() => {
            tracing::debug!(collector = name, error = %e, "metrics collector has nothing to read")
        }
        (Err(e), _) => tracing::warn!(collector = name, error = %e, "metrics collector failed"),
        (Ok(_), Some(Some(_))) => tracing::info!(collector = name, "metrics collector recovered"),
        (Ok(_), _) => {}
    }
}

async fn call(
    conn: Result<&Conn, &PollError>,
    timeout: Duration,
    method: &str,
    params: &[&str],
) -> Result<String, PollError> {
    let conn = conn.map_err(Clone::clone)?;
    match tokio::time::timeout(timeout, conn.call(method, params)).await {
        Ok(result) => Ok(result?),
        Err(_) => Err(PollError::NoAnswer {
            what: method.to_string(),
            after: timeout,
        }),
    }
}

async fn read<T>(
    conn: Result<&Conn, &PollError>,
    timeout: Duration,
    method: &str,
    params: &[&str],
    parse: fn(&str) -> T,
) -> Reading<T> {
    let began = Instant::now();
    let value = call(conn, timeout, method, params).await.map(|t| parse(&t));
    Reading {
        value,
        took: began.elapsed(),
        at: Instant::now(),
    }
}

/// Each datapath `dpif/show` names, through `dpctl/show <name>`.
async fn read_datapaths(
    conn: Result<&Conn, &PollError>,
    timeout: Duration,
) -> Reading<Vec<Datapath>> {
    let began = Instant::now();
    let value = async {
        let names = appctl::parse_dpif_show_names(&call(conn, timeout, "dpif/show", &[]).await?);
        let mut all = Vec::new();
        for name in names {
            let text = call(conn, timeout, "dpctl/show", &[&name]).await?;
            all.extend(appctl::parse_dpctl_show(&text));
        }
        Ok(all)
    }
    .await;
    Reading {
        value,
        took: began.elapsed(),
        at: Instant::now(),
    }
}

async fn read_flows(
    conn: Result<&Conn, &PollError>,
    timeout: Duration,
    bridges: &[String],
) -> Reading<Vec<(String, u64)>> {
    let began = Instant::now();
    let mut counts = Vec::new();
    let mut value = Ok(());
    for bridge in bridges {
        match call(conn, timeout, "bridge/dump-flows", &[bridge]).await {
            Ok(text) => counts.push((bridge.clone(), appctl::count_openflow_flows(&text))),
            // A bridge created or deleted since the cache was read: not a failure.
            Err(PollError::NoSuchBridge(_)) => {}
            Err(e) => {
                value = Err(e);
                break;
            }
        }
    }
    Reading {
        value: value.map(|()| counts),
        took: began.elapsed(),
        at: Instant::now(),
    }
}

/// Adds the polled families, and each collector's success and duration. A reading older than
/// `max_age` counts as failed: its figures are not current.
pub fn collect(polled: &Polled, max_age: Duration, out: &mut Families) {
    fn fresh<'a, T>(
        name: &str,
        r: &'a Option<Reading<T>>,
        max_age: Duration,
        out: &mut Families,
    ) -> Option<&'a T> {
        let current = r.as_ref().filter(|r| r.at.elapsed() <= max_age);
        let value = current.and_then(|r| r.value.as_ref().ok());
        let labels = [("collector", name)];
        out.add(
            &c::COLLECTOR_SUCCESS,
            &labels,
            f64::from(u8::from(value.is_some())),
        );
        if let Some(r) = r {
            out.add(&c::COLLECTOR_DURATION, &labels, r.took.as_secs_f64());
        }
        value
    }
    if let Some(dps) = fresh("datapath", &polled.datapaths, max_age, out) {
        for dp in dps {
            let d = dp.name.as_str();
            for (result, n) in [("hit", dp.hit), ("missed", dp.missed), ("lost", dp.lost)] {
                out.add(
                    &c::DATAPATH_LOOKUPS,
                    &[("datapath", d), ("result", result)],
                    n as f64,
                );
            }
            out.add(&c::DATAPATH_FLOWS, &[("datapath", d)], dp.flows as f64);
            out.add(&c::DATAPATH_PORTS, &[("datapath", d)], dp.ports as f64);
        }
    }
    if let Some(ups) = fresh("upcall", &polled.upcall, max_age, out) {
        for up in ups {
            let labels = [("datapath", up.datapath.as_str())];
            if let Some(limit) = up.flow_limit {
                out.add(&c::UPCALL_FLOW_LIMIT, &labels, limit as f64);
            }
            if let Some(secs) = up.dump_duration_seconds {
                out.add(&c::UPCALL_DUMP_DURATION, &labels, secs);
            }
        }
    }
    if let Some(m) = fresh("vswitchd_memory", &polled.vswitchd_memory, max_age, out) {
        for (key, spec) in [
            ("handlers", &c::HANDLER_THREADS),
            ("revalidators", &c::REVALIDATOR_THREADS),
            ("rules", &c::OPENFLOW_RULES),
            ("udpif keys", &c::UDPIF_KEYS),
        ] {
            if let Some(n) = m.get(key) {
                out.add(spec, &[], *n as f64);
            }
        }
    }
    if let Some(cov) = fresh("coverage", &polled.coverage, max_age, out) {
        for event in appctl::COVERAGE_EVENTS {
            let n = cov.get(*event).copied().unwrap_or(0);
            out.add(&c::COVERAGE, &[("event", event)], n as f64);
        }
    }
    if let Some(flows) = fresh("openflow", &polled.flows, max_age, out) {
        for (bridge, n) in flows {
            out.add(&c::BRIDGE_FLOWS, &[("bridge", bridge)], *n as f64);
        }
    }
    if let Some(m) = fresh("ovsdb_memory", &polled.ovsdb_memory, max_age, out) {
        for (key, spec) in [
            ("atoms", &c::OVSDB_ATOMS),
            ("cells", &c::OVSDB_CELLS),
            ("monitors", &c::OVSDB_MONITORS),
            ("sessions", &c::OVSDB_SESSIONS),
        ] {
            if let Some(n) = m.get(key) {
                out.add(spec, &[], *n as f64);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok<T>(value: T) -> Option<Reading<T>> {
        Some(Reading {
            value: Ok(value),
            took: Duration::from_millis(1),
            at: Instant::now(),
        })
    }

    fn failed(e: PollError) -> Reading<()> {
        Reading {
            value: Err(e),
            took: Duration::ZERO,
            at: Instant::now(),
        }
    }

    #[test]
    fn failures_are_judged_by_kind_not_by_their_words() {
        let command = |message: &str| unixctl::Error::Command {
            method: "bridge/dump-flows".into(),
            message: message.into(),
        };
        let closed = unixctl::Error::Disconnected {
            method: "memory/show".into(),
            reason: "connection closed by peer".into(),
        };
        assert!(matches!(PollError::from(closed), PollError::Gone(_)));
        let unknown = command("\"dpif/show\" is not a valid command");
        assert!(matches!(PollError::from(unknown), PollError::NotYet(_)));
        let gone = command("no bridge named br9");
        assert!(matches!(PollError::from(gone), PollError::NoSuchBridge(_)));
        // A daemon's message that happens to say "no answer" or "is not running" is a plain
        // failure: neither a timeout (which drops the connection) nor a quiet one.
        for words in [
            "no answer from the datapath",
            "the revalidator is not running",
        ] {
            let e = PollError::from(command(words));
            assert!(matches!(e, PollError::Failed(_)), "{e:?}");
            assert!(!e.is_quiet());
            assert!(!stuck(&failed(e)));
        }
        let timeout = PollError::NoAnswer {
            what: "memory/show".into(),
            after: Duration::from_secs(2),
        };
        assert!(stuck(&failed(timeout.clone())) && !timeout.is_quiet());
        assert!(PollError::NotRunning("ovs-vswitchd").is_quiet());
        assert_eq!(
            PollError::NotRunning("ovs-vswitchd").to_string(),
            "ovs-vswitchd is not running"
        );
    }

    #[test]
    fn failed_or_stale_readings_leave_their_series_out() {
        let polled = Polled {
            datapaths: ok(appctl::parse_dpctl_show(
                "netdev@ovs-netdev:\n  lookups: hit:2 missed:3 lost:0\n  flows: 3\n",
            )),
            coverage: ok(BTreeMap::from([("netdev_sent".to_string(), 8)])),
            ovsdb_memory: Some(Reading {
                value: Err(PollError::NotRunning("ovsdb-server")),
                took: Duration::ZERO,
                at: Instant::now(),
            }),
            ..Polled::default()
        };
        let mut f = Families::default();
        collect(&polled, Duration::from_secs(10), &mut f);
        let text = f.finish();
        for want in [
            "ovs_datapath_lookups_total{datapath=\"netdev@ovs-netdev\",result=\"missed\"} 3\n",
            "ovs_datapath_flows{datapath=\"netdev@ovs-netdev\"} 3\n",
            "ovs_vswitchd_coverage_events_total{event=\"netdev_sent\"} 8\n",
            "ovs_vswitchd_coverage_events_total{event=\"bridge_reconfigure\"} 0\n",
            "ovs_appliance_collector_success{collector=\"datapath\"} 1\n",
            "ovs_appliance_collector_success{collector=\"ovsdb_memory\"} 0\n",
            "ovs_appliance_collector_success{collector=\"upcall\"} 0\n",
        ] {
            assert!(text.contains(want), "missing {want} in\n{text}");
        }
        assert!(!text.contains("ovsdb_server_"), "{text}");
        // The same readings, too old.
        std::thread::sleep(Duration::from_millis(2));
        let mut f2 = Families::default();
        collect(&polled, Duration::from_millis(1), &mut f2);
        let text = f2.finish();
        assert!(!text.contains("ovs_datapath_flows"), "{text}");
        assert!(text.contains("ovs_appliance_collector_success{collector=\"datapath\"} 0\n"));
    }
}
