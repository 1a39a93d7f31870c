//! Every metric family the appliance exports: name, type and help, in one place. A scrape may
//! emit only these (a unit test checks it), and a real scrape must emit all of them (a tier-2
//! test checks that, as Firecracker's unused-metrics test does).
//!
//! Names follow ../shared/DESIGN.md: `ovs_appliance_*` for the supervisor and itself, `ovs_*`
//! for ovs-vswitchd, its datapaths, bridges and interfaces, `ovsdb_*` for ovsdb-server.
//! Counters end in `_total`; bytes and seconds are base units.

/// The Prometheus type of a family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
}

/// One metric family.
#[derive(Debug, PartialEq, Eq)]
pub struct Spec {
    pub name: &'static str,
    pub kind: Kind,
    pub help: &'static str,
}

const fn counter(name: &'static str, help: &'static str) -> Spec {
    Spec {
        name,
        kind: Kind::Counter,
        help,
    }
}

const fn gauge(name: &'static str, help: &'static str) -> Spec {
    Spec {
        name,
        kind: Kind::Gauge,
        help,
    }
}

const fn histogram(name: &'static str, help: &'static str) -> Spec {
    Spec {
        name,
        kind: Kind::Histogram,
        help,
    }
}

// The appliance and its supervisor.
pub const BUILD_INFO: Spec = gauge(
    "ovs_appliance_build_info",
    "Always 1; labels carry the appliance version, the OVS version and the database schema version.",
);
pub const DAEMON_UP: Spec = gauge(
    "ovs_appliance_daemon_up",
    "1 while the daemon answers its health checks, else 0.",
);
pub const DAEMON_BUSY: Spec = gauge(
    "ovs_appliance_daemon_busy",
    "1 while the daemon is up but answered its last health check late because its main thread was working (excused up to busy_timeout), else 0.",
);
pub const DAEMON_RESTARTS: Spec = counter(
    "ovs_appliance_daemon_restarts_total",
    "Times the supervisor started the daemon again after its first start.",
);
pub const DAEMON_START_TIME: Spec = gauge(
    "ovs_appliance_daemon_start_time_seconds",
    "When the daemon's current process was started, in seconds since the Unix epoch.",
);
pub const DAEMON_CPU: Spec = counter(
    "ovs_appliance_daemon_cpu_seconds_total",
    "User and system CPU time of the daemon's current process.",
);
pub const DAEMON_RSS: Spec = gauge(
    "ovs_appliance_daemon_resident_memory_bytes",
    "Resident memory of the daemon's current process.",
);
pub const DAEMON_FDS: Spec = gauge(
    "ovs_appliance_daemon_open_fds",
    "Open file descriptors of the daemon's current process.",
);
pub const PROCESS_CPU: Spec = counter(
    "process_cpu_seconds_total",
    "User and system CPU time of the appliance process itself.",
);
pub const PROCESS_RSS: Spec = gauge(
    "process_resident_memory_bytes",
    "Resident memory of the appliance process itself.",
);
pub const HEAP: Spec = gauge(
    "ovs_appliance_heap_in_use_bytes",
    "Heap memory the appliance has allocated and not freed; resident memory beyond it is the binary, stacks and freed memory not yet given back.",
);
pub const PROCESS_FDS: Spec = gauge(
    "process_open_fds",
    "Open file descriptors of the appliance process itself.",
);
pub const PROCESS_START_TIME: Spec = gauge(
    "process_start_time_seconds",
    "When the appliance process started, in seconds since the Unix epoch.",
);
pub const RECONCILE_RUNS: Spec = counter(
    "ovs_appliance_reconcile_runs_total",
    "Reconcile passes run (planned against the database, applied when needed).",
);
pub const RECONCILE_ERRORS: Spec = counter(
    "ovs_appliance_reconcile_errors_total",
    "Reconcile passes that failed and were retried.",
);
pub const RECONCILE_DURATION: Spec = histogram(
    "ovs_appliance_reconcile_duration_seconds",
    "Duration of a reconcile pass, from planning to ovs-vswitchd having applied the change.",
);
pub const DRIFT_REPAIRS: Spec = counter(
    "ovs_appliance_drift_repairs_total",
    "Reconcile passes that put back a change made to owned bridges or ports behind the appliance's back.",
);
pub const RECONCILE_CONVERGED: Spec = gauge(
    "ovs_appliance_reconcile_converged",
    "1 when the last reconcile pass succeeded with no conflict: the host matches the config.",
);
pub const RECONCILE_CONFLICTS: Spec = gauge(
    "ovs_appliance_reconcile_conflicts",
    "Configured names held by rows the appliance does not own, as of the last pass.",
);
pub const OVSDB_TXN_DURATION: Spec = histogram(
    "ovs_appliance_ovsdb_transaction_duration_seconds",
    "Time from sending an OVSDB transaction to its reply.",
);
pub const OVSDB_TXN_ERRORS: Spec = counter(
    "ovs_appliance_ovsdb_transaction_errors_total",
    "OVSDB transactions that failed or got no reply.",
);
pub const COLLECTOR_SUCCESS: Spec = gauge(
    "ovs_appliance_collector_success",
    "1 when the collector's last reading succeeded and is current, else 0 (its series are left out).",
);
pub const COLLECTOR_DURATION: Spec = gauge(
    "ovs_appliance_collector_duration_seconds",
    "How long the collector's last reading took.",
);
pub const INTERFACES_EXPORTED: Spec = gauge(
    "ovs_appliance_metrics_interfaces",
    "Interfaces exported in this scrape, after the include/exclude patterns and the cap.",
);
pub const INTERFACES_DROPPED: Spec = gauge(
    "ovs_appliance_metrics_interfaces_dropped",
    "Interfaces left out of this scrape because of metrics.max_interfaces.",
);
pub const LOG_LINES_DROPPED: Spec = counter(
    "ovs_appliance_log_lines_dropped_total",
    "Log lines (the appliance's own and the daemons') dropped because the reader of the appliance's output did not keep up.",
);
pub const FLOW_RESTORES: Spec = counter(
    "ovs_appliance_flow_restores_total",
    "Bridge flow snapshots put back into a new ovs-vswitchd, by result: restored, failed (refused and moved aside, or past restore_timeout) or interrupted (ovs-vswitchd ended; retried at its next start).",
);
pub const FLOW_SNAPSHOT_WRITES: Spec = counter(
    "ovs_appliance_flow_snapshot_writes_total",
    "Bridge flow snapshots written after a change (written), or not written (failed, e.g. a full disk: the previous one is kept).",
);
pub const FLOW_SNAPSHOT_AGE: Spec = gauge(
    "ovs_appliance_flow_snapshot_age_seconds",
    "Time since the bridge's flow snapshot was written (it is rewritten only when the flows change).",
);
pub const FLOW_SNAPSHOT_SIZE: Spec = gauge(
    "ovs_appliance_flow_snapshot_size_bytes",
    "Size of the bridge's flow snapshot file.",
);
pub const FLOW_SNAPSHOT_FLOWS: Spec = gauge(
    "ovs_appliance_flow_snapshot_flows",
    "OpenFlow flows in the bridge's flow snapshot.",
);

// ovs-vswitchd: datapaths, bridges, the daemon.
pub const DATAPATH_LOOKUPS: Spec = counter(
    "ovs_datapath_lookups_total",
    "Datapath flow table lookups by result: hit (a datapath flow matched), missed (upcall to ovs-vswitchd) and lost (upcall dropped).",
);
pub const DATAPATH_FLOWS: Spec = gauge("ovs_datapath_flows", "Flows in the datapath's flow table.");
pub const DATAPATH_PORTS: Spec = gauge("ovs_datapath_ports", "Ports of the datapath.");
pub const UPCALL_FLOW_LIMIT: Spec = gauge(
    "ovs_datapath_upcall_flow_limit",
    "The datapath flow limit ovs-vswitchd currently enforces.",
);
pub const UPCALL_DUMP_DURATION: Spec = gauge(
    "ovs_datapath_upcall_dump_duration_seconds",
    "How long the revalidators' last dump of the datapath flows took.",
);
pub const HANDLER_THREADS: Spec = gauge(
    "ovs_vswitchd_handler_threads",
    "Upcall handler threads of ovs-vswitchd.",
);
pub const REVALIDATOR_THREADS: Spec = gauge(
    "ovs_vswitchd_revalidator_threads",
    "Revalidator threads of ovs-vswitchd.",
);
pub const OPENFLOW_RULES: Spec = gauge(
    "ovs_vswitchd_openflow_rules",
    "OpenFlow rules in all bridges, hidden ones included (memory/show).",
);
pub const UDPIF_KEYS: Spec = gauge(
    "ovs_vswitchd_udpif_keys",
    "Datapath flow keys the revalidators track.",
);
pub const COVERAGE: Spec = counter(
    "ovs_vswitchd_coverage_events_total",
    "Selected ovs-vswitchd coverage counters (0 for events not yet seen).",
);
pub const BRIDGE_INFO: Spec = gauge(
    "ovs_bridge_info",
    "Always 1; labels carry the bridge's datapath type and fail mode.",
);
pub const BRIDGE_PORTS: Spec = gauge("ovs_bridge_ports", "Ports of the bridge.");
pub const BRIDGE_FLOWS: Spec = gauge(
    "ovs_bridge_openflow_flows",
    "OpenFlow flows in the bridge, as `ovs-ofctl dump-flows` lists them (hidden flows left out).",
);

// Interfaces, from the OVSDB Interface table.
pub const IF_INFO: Spec = gauge(
    "ovs_interface_info",
    "Always 1; labels carry the interface's type, OpenFlow port number and MAC address.",
);
pub const IF_LINK_UP: Spec = gauge(
    "ovs_interface_link_up",
    "1 when the interface's link is up (link_state), else 0.",
);
pub const IF_ADMIN_UP: Spec = gauge(
    "ovs_interface_admin_up",
    "1 when the interface is administratively up (admin_state), else 0.",
);
pub const IF_MTU: Spec = gauge("ovs_interface_mtu_bytes", "The interface's MTU.");
pub const IF_SPEED: Spec = gauge(
    "ovs_interface_link_speed_bytes_per_second",
    "The interface's negotiated link speed (OVS reports bits per second; bytes are the base unit).",
);
pub const IF_LINK_RESETS: Spec = counter(
    "ovs_interface_link_resets_total",
    "Times the interface's link state changed (link flaps).",
);
pub const IF_RX_PACKETS: Spec = counter("ovs_interface_receive_packets_total", "Packets received.");
pub const IF_RX_BYTES: Spec = counter("ovs_interface_receive_bytes_total", "Bytes received.");
pub const IF_RX_DROPPED: Spec = counter(
    "ovs_interface_receive_dropped_total",
    "Received packets dropped.",
);
pub const IF_RX_ERRORS: Spec = counter(
    "ovs_interface_receive_errors_total",
    "Receive errors of any kind.",
);
pub const IF_RX_CRC: Spec = counter(
    "ovs_interface_receive_crc_errors_total",
    "Received packets with a CRC error.",
);
pub const IF_RX_FRAME: Spec = counter(
    "ovs_interface_receive_frame_errors_total",
    "Received packets with a frame alignment error.",
);
pub const IF_RX_OVER: Spec = counter(
    "ovs_interface_receive_over_errors_total",
    "Received packets lost to an overrun.",
);
pub const IF_RX_MISSED: Spec = counter(
    "ovs_interface_receive_missed_errors_total",
    "Received packets the device missed.",
);
pub const IF_RX_MULTICAST: Spec = counter(
    "ovs_interface_receive_multicast_packets_total",
    "Multicast packets received.",
);
pub const IF_TX_PACKETS: Spec = counter(
    "ovs_interface_transmit_packets_total",
    "Packets transmitted.",
);
pub const IF_TX_BYTES: Spec = counter("ovs_interface_transmit_bytes_total", "Bytes transmitted.");
pub const IF_TX_DROPPED: Spec = counter(
    "ovs_interface_transmit_dropped_total",
    "Packets dropped instead of transmitted.",
);
pub const IF_TX_ERRORS: Spec = counter("ovs_interface_transmit_errors_total", "Transmit errors.");
pub const IF_COLLISIONS: Spec = counter("ovs_interface_collisions_total", "Collisions seen.");

// ovsdb-server.
pub const OVSDB_ATOMS: Spec = gauge("ovsdb_server_atoms", "Atoms held by ovsdb-server.");
pub const OVSDB_CELLS: Spec = gauge("ovsdb_server_cells", "Cells held by ovsdb-server.");
pub const OVSDB_MONITORS: Spec = gauge(
    "ovsdb_server_monitors",
    "Monitors clients of ovsdb-server hold.",
);
pub const OVSDB_SESSIONS: Spec = gauge("ovsdb_server_sessions", "Client sessions of ovsdb-server.");

/// Every family, in no particular order.
pub const ALL: &[&Spec] = &[
    &BUILD_INFO,
    &DAEMON_UP,
    &DAEMON_BUSY,
    &DAEMON_RESTARTS,
    &DAEMON_START_TIME,
    &DAEMON_CPU,
    &DAEMON_RSS,
    &DAEMON_FDS,
    &PROCESS_CPU,
    &PROCESS_RSS,
    &HEAP,
    &PROCESS_FDS,
    &PROCESS_START_TIME,
    &RECONCILE_RUNS,
    &RECONCILE_ERRORS,
    &RECONCILE_DURATION,
    &DRIFT_REPAIRS,
    &RECONCILE_CONVERGED,
    &RECONCILE_CONFLICTS,
    &OVSDB_TXN_DURATION,
    &OVSDB_TXN_ERRORS,
    &COLLECTOR_SUCCESS,
    &COLLECTOR_DURATION,
    &INTERFACES_EXPORTED,
    &INTERFACES_DROPPED,
    &LOG_LINES_DROPPED,
    &FLOW_RESTORES,
    &FLOW_SNAPSHOT_WRITES,
    &FLOW_SNAPSHOT_AGE,
    &FLOW_SNAPSHOT_SIZE,
    &FLOW_SNAPSHOT_FLOWS,
    &DATAPATH_LOOKUPS,
    &DATAPATH_FLOWS,
    &DATAPATH_PORTS,
    &UPCALL_FLOW_LIMIT,
    &UPCALL_DUMP_DURATION,
    &HANDLER_THREADS,
    &REVALIDATOR_THREADS,
    &OPENFLOW_RULES,
    &UDPIF_KEYS,
    &COVERAGE,
    &BRIDGE_INFO,
    &BRIDGE_PORTS,
    &BRIDGE_FLOWS,
    &IF_INFO,
    &IF_LINK_UP,
    &IF_ADMIN_UP,
    &IF_MTU,
    &IF_SPEED,
    &IF_LINK_RESETS,
    &IF_RX_PACKETS,
    &IF_RX_BYTES,
    &IF_RX_DROPPED,
    &IF_RX_ERRORS,
    &IF_RX_CRC,
    &IF_RX_FRAME,
    &IF_RX_OVER,
    &IF_RX_MISSED,
    &IF_RX_MULTICAST,
    &IF_TX_PACKETS,
    &IF_TX_BYTES,
    &IF_TX_DROPPED,
    &IF_TX_ERRORS,
    &IF_COLLISIONS,
    &OVSDB_ATOMS,
    &OVSDB_CELLS,
    &OVSDB_MONITORS,
    &OVSDB_SESSIONS,
];

/// The family called `name`.
pub fn find(name: &str) -> Option<&'static Spec> {
    ALL.iter().copied().find(|s| s.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn names_are_unique_and_follow_the_conventions() {
        let names: BTreeSet<&str> = ALL.iter().map(|s| s.name).collect();
        assert_eq!(names.len(), ALL.len(), "duplicate family names");
        for spec in ALL {
            let n = spec.name;
            assert!(
                n.starts_with("ovs_") || n.starts_with("ovsdb_") || n.starts_with("process_"),
                "{n}"
            );
            assert!(n
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'));
            assert_eq!(spec.kind == Kind::Counter, n.ends_with("_total"), "{n}");
            assert!(!spec.help.is_empty(), "{n}");
            assert!(
                !n.contains("milli") && !n.contains("kilo"),
                "{n}: base units"
            );
        }
    }
}
