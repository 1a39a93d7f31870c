//! The supervisor's view at scrape time: each daemon's health, restarts and start time as the
//! supervisor published them, its CPU, memory and descriptors from /proc of its pid, the
//! appliance's own process, and the build.

use super::catalogue as c;
use super::families::Families;
use super::procfs::{self, Units};
use crate::supervisor::{Daemon, FlowsState, State};
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

/// Adds the daemon, process and build families. /proc that cannot be read (a daemon that just
/// ended) leaves that process's figures out and fails the `process` collector.
pub fn collect(state: &State, proc_root: &Path, units: Units, out: &mut Families) {
    let version = env!("CARGO_PKG_VERSION");
    let build = [
        ("version", version),
        ("ovs_version", state.ovs_version.as_str()),
        ("db_schema_version", state.db_version.as_str()),
    ];
    out.add(&c::BUILD_INFO, &build, 1.0);
    let mut all_read = true;
    for daemon in Daemon::ALL {
        let d = state.daemon(daemon);
        let labels = [("daemon", daemon.name())];
        out.add(&c::DAEMON_UP, &labels, f64::from(u8::from(d.up)));
        out.add(&c::DAEMON_BUSY, &labels, f64::from(u8::from(d.busy)));
        out.add(&c::DAEMON_RESTARTS, &labels, d.restarts as f64);
        if let Some(at) = d.started_at.and_then(|t| t.duration_since(UNIX_EPOCH).ok()) {
            out.add(&c::DAEMON_START_TIME, &labels, at.as_secs_f64());
        }
        let Some(pid) = d.pid else { continue };
        match procfs::read(proc_root, &pid.to_string(), units) {
            Ok(p) => {
                out.add(&c::DAEMON_CPU, &labels, p.cpu_seconds);
                out.add(&c::DAEMON_RSS, &labels, p.resident_bytes as f64);
                out.add(&c::DAEMON_FDS, &labels, p.open_fds as f64);
            }
            Err(_) => all_read = false,
        }
    }
    match procfs::read(proc_root, "self", units) {
        Ok(me) => {
            out.add(&c::PROCESS_CPU, &[], me.cpu_seconds);
            out.add(&c::PROCESS_RSS, &[], me.resident_bytes as f64);
            out.add(&c::PROCESS_FDS, &[], me.open_fds as f64);
            if let Some(bytes) = super::heap::in_use() {
                out.add(&c::HEAP, &[], bytes as f64);
            }
            if let Some(boot) = procfs::boot_time(proc_root) {
                let start = boot as f64 + me.start_ticks as f64 / units.ticks_per_second as f64;
                out.add(&c::PROCESS_START_TIME, &[], start);
            }
        }
        Err(_) => all_read = false,
    }
    let success = f64::from(u8::from(all_read));
    out.add(&c::COLLECTOR_SUCCESS, &[("collector", "process")], success);
    let dropped = crate::supervisor::log_lines_dropped_total();
    out.add(&c::LOG_LINES_DROPPED, &[], dropped as f64);
    flows(&state.flows, SystemTime::now(), out);
}

/// Restores and snapshot writes (every result, 0 included), and each bridge's snapshot.
fn flows(f: &FlowsState, now: SystemTime, out: &mut Families) {
    for (result, n) in [
        ("restored", f.restored),
        ("failed", f.failed),
        ("interrupted", f.interrupted),
    ] {
        out.add(&c::FLOW_RESTORES, &[("result", result)], n as f64);
    }
    for (result, n) in [("written", f.written), ("failed", f.write_failed)] {
        out.add(&c::FLOW_SNAPSHOT_WRITES, &[("result", result)], n as f64);
    }
    for (bridge, s) in &f.snapshots {
        let labels = [("bridge", bridge.as_str())];
        let age = now.duration_since(s.taken).unwrap_or_default();
        out.add(&c::FLOW_SNAPSHOT_AGE, &labels, age.as_secs_f64());
        out.add(&c::FLOW_SNAPSHOT_SIZE, &labels, s.bytes as f64);
        out.add(&c::FLOW_SNAPSHOT_FLOWS, &labels, s.flows as f64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::supervisor::DaemonState;
    use std::time::{Duration, SystemTime};

    #[test]
    fn daemons_from_state_and_proc() {
        let state = State {
            ovsdb_server: DaemonState {
                pid: Some(std::process::id()),
                up: true,
                busy: true,
                restarts: 0,
                started_at: Some(UNIX_EPOCH + Duration::from_secs(1_700_000_000)),
            },
            vswitchd: DaemonState {
                pid: None,
                up: false,
                busy: false,
                restarts: 3,
                started_at: Some(SystemTime::now()),
            },
            ovs_version: "3.1.0".into(),
            db_version: "8.3.1".into(),
            flows: FlowsState {
                failed: 2,
                snapshots: [(
                    "br0".to_string(),
                    crate::supervisor::SnapshotInfo {
                        taken: SystemTime::now() - Duration::from_secs(30),
                        bytes: 512,
                        flows: 3,
                    },
                )]
                .into(),
                ..FlowsState::default()
            },
        };
        let mut f = Families::default();
        collect(&state, Path::new("/proc"), Units::of_this_host(), &mut f);
        let text = f.finish();
        for want in [
            "ovs_appliance_daemon_up{daemon=\"ovsdb-server\"} 1\n",
            "ovs_appliance_daemon_up{daemon=\"ovs-vswitchd\"} 0\n",
            "ovs_appliance_daemon_busy{daemon=\"ovsdb-server\"} 1\n",
            "ovs_appliance_daemon_busy{daemon=\"ovs-vswitchd\"} 0\n",
            "ovs_appliance_daemon_restarts_total{daemon=\"ovs-vswitchd\"} 3\n",
            "ovs_appliance_daemon_start_time_seconds{daemon=\"ovsdb-server\"} 1700000000\n",
            "ovs_appliance_daemon_resident_memory_bytes{daemon=\"ovsdb-server\"}",
            "ovs_appliance_build_info{version=\"",
            "ovs_version=\"3.1.0\",db_schema_version=\"8.3.1\"} 1\n",
            "process_resident_memory_bytes ",
            "process_start_time_seconds ",
            "ovs_appliance_collector_success{collector=\"process\"} 1\n",
            "ovs_appliance_log_lines_dropped_total ",
            "ovs_appliance_flow_restores_total{result=\"failed\"} 2\n",
            "ovs_appliance_flow_restores_total{result=\"restored\"} 0\n",
            "ovs_appliance_flow_snapshot_writes_total{result=\"failed\"} 0\n",
            "ovs_appliance_flow_snapshot_size_bytes{bridge=\"br0\"} 512\n",
            "ovs_appliance_flow_snapshot_flows{bridge=\"br0\"} 3\n",
            "ovs_appliance_flow_snapshot_age_seconds{bridge=\"br0\"} 30",
        ] {
            assert!(text.contains(want), "missing {want} in\n{text}");
        }
        // No pid, no process figures.
        assert!(!text.contains("ovs_appliance_daemon_open_fds{daemon=\"ovs-vswitchd\"}"));
    }
}
