//! Parsers of the text the control sockets answer (what `ovs-appctl` prints): `dpctl/show`,
//! `memory/show`, `upcall/show`, `coverage/show` and `bridge/dump-flows`. Pure; the shapes are
//! those of OVS 3.1 (ofproto/ofproto-dpif-upcall.c, lib/dpctl.c, lib/coverage.c,
//! lib/memory.c). Lines that do not fit are skipped rather than failing the whole reading.

use std::collections::BTreeMap;

/// One datapath of `dpctl/show`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Datapath {
    /// `netdev@ovs-netdev`, `system@ovs-system`.
    pub name: String,
    pub hit: u64,
    pub missed: u64,
    pub lost: u64,
    pub flows: u64,
    pub ports: u64,
}

/// `key:value` pairs of a line, where a key may hold spaces (`udpif keys:3`).
fn pairs(line: &str) -> Vec<(String, &str)> {
    let mut out = Vec::new();
    let mut pending: Vec<&str> = Vec::new();
    for token in line.split_whitespace() {
        match token.split_once(':') {
            Some((k, v)) => {
                pending.push(k);
                out.push((pending.join(" "), v));
                pending.clear();
            }
            None => pending.push(token),
        }
    }
    out
}

fn number(v: &str) -> Option<u64> {
    v.trim().parse().ok()
}

/// `dpctl/show`: a header per datapath (`netdev@ovs-netdev:` at column 0), then indented
/// `lookups: hit:N missed:N lost:N`, `flows: N` and one `port N: name` line per port.
pub fn parse_dpctl_show(text: &str) -> Vec<Datapath> {
    let mut out: Vec<Datapath> = Vec::new();
    for line in text.lines() {
        if !line.starts_with(' ') {
            if let Some(name) = line.trim_end().strip_suffix(':') {
                out.push(Datapath {
                    name: name.to_string(),
                    ..Datapath::default()
                });
            }
            continue;
        }
        let Some(dp) = out.last_mut() else { continue };
        let line = line.trim();
        if let Some(rest) = line.strip_prefix("lookups:") {
            for (k, v) in pairs(rest) {
                let n = number(v).unwrap_or(0);
                match k.as_str() {
                    "hit" => dp.hit = n,
                    "missed" => dp.missed = n,
                    "lost" => dp.lost = n,
                    _ => {}
                }
            }
        } else if let Some(rest) = line.strip_prefix("flows:") {
            dp.flows = number(rest).unwrap_or(0);
        } else if line.starts_with("port ") {
            dp.ports += 1;
        }
    }
    out
}

/// The datapath names of `dpif/show` (`netdev@ovs-netdev: hit:2 missed:3` at column 0).
/// `dpctl/show` without a name fails as a whole when one datapath type cannot be enumerated
/// (the kernel's, without the openvswitch module), so each datapath is asked by name.
pub fn parse_dpif_show_names(text: &str) -> Vec<String> {
    text.lines()
        .filter(|l| !l.starts_with(' '))
        .filter_map(|l| l.split_once(": ").or_else(|| l.split_once(':')))
        .map(|(name, _)| name.to_string())
        .filter(|name| name.contains('@'))
        .collect()
}

/// `memory/show` of either daemon: `handlers:1 idl-cells-Open_vSwitch:210 ... udpif keys:3`
/// (ovs-vswitchd) or `atoms:231 cells:246 monitors:2 sessions:1` (ovsdb-server).
pub fn parse_memory_show(text: &str) -> BTreeMap<String, u64> {
    text.lines()
        .flat_map(pairs)
        .filter_map(|(k, v)| Some((k, number(v)?)))
        .collect()
}

/// One datapath of `upcall/show`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Upcall {
    pub datapath: String,
    /// `flows : (current 3) (avg 2) (max 3) (limit 10000)`.
    pub flow_limit: Option<u64>,
    /// `dump duration : 1ms`.
    pub dump_duration_seconds: Option<f64>,
}

/// `upcall/show`: a header per datapath, then `name : value` lines and one line per
/// revalidator.
pub fn parse_upcall_show(text: &str) -> Vec<Upcall> {
    let mut out: Vec<Upcall> = Vec::new();
    for line in text.lines() {
        if !line.starts_with(' ') {
            if let Some(name) = line.trim_end().strip_suffix(':') {
                out.push(Upcall {
                    datapath: name.to_string(),
                    ..Upcall::default()
                });
            }
            continue;
        }
        let Some(up) = out.last_mut() else { continue };
        let Some((key, value)) = line.split_once(" : ") else {
            continue;
        };
        match key.trim() {
            "flows" => {
                up.flow_limit = value
                    .split_once("(limit ")
                    .and_then(|(_, rest)| rest.split_once(')'))
                    .and_then(|(n, _)| number(n));
            }
            "dump duration" => {
                up.dump_duration_seconds = value
                    .trim()
                    .strip_suffix("ms")
                    .and_then(|ms| ms.trim().parse::<f64>().ok())
                    .map(|ms| ms / 1000.0);
            }
            _ => {}
        }
    }
    out
}

/// `coverage/show`: `event  0.0/sec 0.000/sec 0.0000/sec   total: N` per event seen.
pub fn parse_coverage_show(text: &str) -> BTreeMap<String, u64> {
    text.lines()
        .filter_map(|line| {
            let (head, total) = line.rsplit_once("total:")?;
            let name = head.split_whitespace().next()?;
            Some((name.to_string(), number(total)?))
        })
        .collect()
}

/// Counts the OpenFlow flows of `bridge/dump-flows`, leaving out the hidden ones
/// `ovs-ofctl dump-flows` does not show: the internal table 254 and priorities above 65535
/// (in-band control).
pub fn count_openflow_flows(text: &str) -> u64 {
    text.lines()
        .filter(|line| line.contains("priority="))
        .filter(|line| !line.contains("table_id=254,"))
        .filter(|line| {
            let priority = line
                .split([',', ' '])
                .find_map(|f| f.strip_prefix("priority="))
                .and_then(|p| p.parse::<u64>().ok());
            priority.is_some_and(|p| p <= 65535)
        })
        .count() as u64
}

/// The coverage events exported, a bounded allowlist: bridge and OpenFlow reconfiguration,
/// revalidation, upcalls and datapath flow changes, MAC learning, packet I/O through netdevs,
/// OVSDB transactions and the main loop's wakeups.
pub const COVERAGE_EVENTS: &[&str] = &[
    "bridge_reconfigure",
    "ofproto_flush",
    "ofproto_recv_openflow",
    "ofproto_update_port",
    "rev_reconfigure",
    "rev_flow_table",
    "rev_mac_learning",
    "upcall_flow_limit_hit",
    "upcall_ukey_contention",
    "upcall_ukey_replace",
    "xlate_actions",
    "xlate_actions_oversize",
    "dpif_flow_put",
    "dpif_flow_del",
    "dpif_execute",
    "dpif_port_add",
    "dpif_port_del",
    "mac_learning_learned",
    "mac_learning_expired",
    "mac_learning_moved",
    "netdev_received",
    "netdev_sent",
    "txn_success",
    "txn_error",
    "txn_try_again",
    "poll_zero_timeout",
    "unixctl_received",
];

#[cfg(test)]
mod tests {
    use super::*;

    const DPCTL: &str = "netdev@ovs-netdev:\n  lookups: hit:2 missed:3 lost:1\n  flows: 3\n  \
        port 0: ovs-netdev (tap)\n  port 1: br0 (tap)\n  port 2: v1\n\
        system@ovs-system:\n  lookups: hit:10 missed:0 lost:0\n  flows: 0\n  \
        masks: hit:0 total:0 hit/pkt:0.00\n  port 0: ovs-system (internal)\n";

    #[test]
    fn dpctl_show_per_datapath() {
        let dps = parse_dpctl_show(DPCTL);
        assert_eq!(
            dps,
            [
                Datapath {
                    name: "netdev@ovs-netdev".into(),
                    hit: 2,
                    missed: 3,
                    lost: 1,
                    flows: 3,
                    ports: 3
                },
                Datapath {
                    name: "system@ovs-system".into(),
                    hit: 10,
                    missed: 0,
                    lost: 0,
                    flows: 0,
                    ports: 1
                }
            ]
        );
        assert!(parse_dpctl_show("").is_empty());
        assert!(parse_dpctl_show("  lookups: hit:1\n").is_empty());
    }

    #[test]
    fn dpif_show_names() {
        let text = "netdev@ovs-netdev: hit:2 missed:3\n  br0:\n    br0 65534/1: (tap)\n\
            system@ovs-system: hit:0 missed:0\n";
        assert_eq!(
            parse_dpif_show_names(text),
            ["netdev@ovs-netdev", "system@ovs-system"]
        );
        assert!(parse_dpif_show_names("").is_empty());
    }

    #[test]
    fn memory_show_keys_may_hold_spaces() {
        let m = parse_memory_show(
            "handlers:1 idl-cells-Open_vSwitch:210 ports:3 revalidators:1 rules:5 udpif keys:3\n",
        );
        assert_eq!(m["handlers"], 1);
        assert_eq!(m["idl-cells-Open_vSwitch"], 210);
        assert_eq!(m["udpif keys"], 3);
        assert_eq!(m["rules"], 5);
        let db = parse_memory_show("atoms:231 cells:246 monitors:2 n-weak-refs:0 sessions:1");
        assert_eq!(
            (db["atoms"], db["cells"], db["monitors"], db["sessions"]),
            (231, 246, 2, 1)
        );
        assert!(parse_memory_show("garbage words").is_empty());
    }

    #[test]
    fn upcall_show_limit_and_dump_duration() {
        let text =
            "netdev@ovs-netdev:\n  flows         : (current 3) (avg 2) (max 3) (limit 10000)\n  \
            dump duration : 12ms\n  ufid enabled : true\n\n  5: (keys 3)\n";
        let up = parse_upcall_show(text);
        assert_eq!(up.len(), 1);
        assert_eq!(up[0].datapath, "netdev@ovs-netdev");
        assert_eq!(up[0].flow_limit, Some(10000));
        assert_eq!(up[0].dump_duration_seconds, Some(0.012));
    }

    #[test]
    fn coverage_totals() {
        let text = "Event coverage, avg rate over last: 5 seconds, last minute, last hour,  hash=6376518c:\n\
            bridge_reconfigure         0.0/sec     0.000/sec        0.0000/sec   total: 10\n\
            netdev_sent                0.2/sec     0.000/sec        0.0000/sec   total: 8\n\
            108 events never hit\n";
        let c = parse_coverage_show(text);
        assert_eq!(c.len(), 2);
        assert_eq!(c["bridge_reconfigure"], 10);
        assert_eq!(c["netdev_sent"], 8);
    }

    #[test]
    fn openflow_flows_leave_out_hidden_ones() {
        let text = "duration=2s, n_packets=4, n_bytes=336, priority=0,actions=NORMAL\n\
            table_id=254, duration=2s, n_packets=0, n_bytes=0, priority=2,recirc_id=0,actions=drop\n\
            duration=2s, n_packets=0, n_bytes=0, priority=180008,tcp,actions=NORMAL\n\
            table_id=3, duration=1s, n_packets=0, n_bytes=0, priority=100,ip,actions=drop\n";
        assert_eq!(count_openflow_flows(text), 2);
        assert_eq!(count_openflow_flows(""), 0);
    }
}
