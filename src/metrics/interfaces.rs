//! Bridge and interface series, built from reconcile's monitor cache at scrape time: no OVSDB
//! round trip, and an interface that is gone from the cache is gone from the scrape. Interfaces
//! are labelled by bridge, port and interface name, never by uuid.

use super::catalogue::{self as c, Spec};
use super::families::{Families, Labels, Slot};
use super::filter::Filter;
use crate::ovsdb::{Atom, Cache, Datum, Row};

/// The `statistics` keys of the Interface table (vswitch.xml) that are exported, and their
/// families. Keys OVS does not report for an interface are left out, not exported as 0; keys
/// not listed (per-size packet counts, driver-specific ones) are not exported.
const STATISTICS: [(&str, &Spec); 14] = [
    ("rx_packets", &c::IF_RX_PACKETS),
    ("rx_bytes", &c::IF_RX_BYTES),
    ("rx_dropped", &c::IF_RX_DROPPED),
    ("rx_errors", &c::IF_RX_ERRORS),
    ("rx_crc_err", &c::IF_RX_CRC),
    ("rx_frame_err", &c::IF_RX_FRAME),
    ("rx_over_err", &c::IF_RX_OVER),
    ("rx_missed_errors", &c::IF_RX_MISSED),
    ("rx_multicast_packets", &c::IF_RX_MULTICAST),
    ("tx_packets", &c::IF_TX_PACKETS),
    ("tx_bytes", &c::IF_TX_BYTES),
    ("tx_dropped", &c::IF_TX_DROPPED),
    ("tx_errors", &c::IF_TX_ERRORS),
    ("collisions", &c::IF_COLLISIONS),
];

/// The slot of every interface family, looked up once per scrape.
struct Slots {
    statistics: [Slot; 14],
    link_up: Slot,
    admin_up: Slot,
    mtu: Slot,
    speed: Slot,
    resets: Slot,
    info: Slot,
}

impl Slots {
    fn new(out: &mut Families, interfaces: usize) -> Slots {
        let statistics = STATISTICS.map(|(_, spec)| out.slot(spec));
        let slots = Slots {
            statistics,
            link_up: out.slot(&c::IF_LINK_UP),
            admin_up: out.slot(&c::IF_ADMIN_UP),
            mtu: out.slot(&c::IF_MTU),
            speed: out.slot(&c::IF_SPEED),
            resets: out.slot(&c::IF_LINK_RESETS),
            info: out.slot(&c::IF_INFO),
        };
        // A sample line is the family name, ~60 bytes of labels and a number.
        for slot in slots.statistics.iter().chain([&slots.link_up, &slots.mtu]) {
            out.reserve(*slot, interfaces * 112);
        }
        slots
    }
}

/// What the interface part of a scrape did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub exported: usize,
    /// Wanted by the patterns but over the cap.
    pub dropped: usize,
}

fn name(row: &Row) -> &str {
    text(row, "name")
}

fn text<'a>(row: &'a Row, column: &str) -> &'a str {
    row.get(column).and_then(Datum::as_str).unwrap_or_default()
}

fn integer(row: &Row, column: &str) -> Option<i64> {
    row.get(column).and_then(Datum::as_i64)
}

/// The rows a set-of-references column points to, in `table`.
fn children<'a>(cache: &'a Cache, row: &Row, column: &str, table: &str) -> Vec<&'a Row> {
    row.get(column)
        .map(|d| {
            d.atoms()
                .iter()
                .filter_map(Atom::as_uuid)
                .filter_map(|u| cache.row(table, &u))
                .collect()
        })
        .unwrap_or_default()
}

/// Adds the bridge and interface families from `cache`.
pub fn collect(cache: &Cache, filter: &Filter, out: &mut Families) -> Counts {
    let mut wanted: Vec<(&str, &str, &str, &Row)> = Vec::new();
    for (_, bridge) in cache.table("Bridge") {
        let b = name(bridge);
        let ports = children(cache, bridge, "ports", "Port");
        let datapath = match text(bridge, "datapath_type") {
            "" => "system",
            other => other,
        };
        let fail_mode = match text(bridge, "fail_mode") {
            "" => "standalone",
            other => other,
        };
        let info = [
            ("bridge", b),
            ("datapath_type", datapath),
            ("fail_mode", fail_mode),
        ];
        out.add(&c::BRIDGE_INFO, &info, 1.0);
        out.add(&c::BRIDGE_PORTS, &[("bridge", b)], ports.len() as f64);
        for port in ports {
            for iface in children(cache, port, "interfaces", "Interface") {
                let i = name(iface);
                if filter.wants(i) {
                    wanted.push((b, name(port), i, iface));
                }
            }
        }
    }
    wanted.sort_unstable_by(|x, y| (x.0, x.1, x.2).cmp(&(y.0, y.1, y.2)));
    let dropped = wanted.len().saturating_sub(filter.max);
    wanted.truncate(filter.max);
    if !wanted.is_empty() {
        let slots = Slots::new(out, wanted.len());
        for (bridge, port, name, row) in &wanted {
            interface(bridge, port, name, row, &slots, out);
        }
    }
    Counts {
        exported: wanted.len(),
        dropped,
    }
}

fn interface(bridge: &str, port: &str, name: &str, row: &Row, slots: &Slots, out: &mut Families) {
    let pairs = [("bridge", bridge), ("port", port), ("interface", name)];
    let labels = Labels::new(&pairs);
    if let Some(Datum::Map(stats)) = row.get("statistics") {
        for (key, value) in stats {
            let (Some(key), Some(value)) = (key.as_str(), value.as_i64()) else {
                continue;
            };
            let known = STATISTICS.iter().position(|(k, _)| *k == key);
            if let (Some(i), true) = (known, value >= 0) {
                out.add_at(slots.statistics[i], &labels, value as f64);
            }
        }
    }
    for (column, slot) in [
        ("link_state", slots.link_up),
        ("admin_state", slots.admin_up),
    ] {
        match text(row, column) {
            "up" => out.add_at(slot, &labels, 1.0),
            "down" => out.add_at(slot, &labels, 0.0),
            _ => {}
        }
    }
    // link_speed is in bits per second; Prometheus' base unit is bytes.
    let numbers = [
        ("mtu", slots.mtu, 1.0),
        ("link_speed", slots.speed, 8.0),
        ("link_resets", slots.resets, 1.0),
    ];
    for (column, slot, divisor) in numbers {
        if let Some(n) = integer(row, column).filter(|n| *n >= 0) {
            out.add_at(slot, &labels, n as f64 / divisor);
        }
    }
    let kind = match text(row, "type") {
        "" => "system",
        other => other,
    };
    let ofport = integer(row, "ofport")
        .map(|n| n.to_string())
        .unwrap_or_default();
    let [b, p, i] = pairs;
    let info = [
        b,
        p,
        i,
        ("type", kind),
        ("ofport", &ofport),
        ("mac", text(row, "mac_in_use")),
    ];
    out.add_at(slots.info, &Labels::new(&info), 1.0);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ovsdb::{parse_updates2, MonitorRequests, Schema};
    use serde_json::json;
    use std::sync::Arc;

    const BR: &str = "00000000-0000-0000-0000-0000000000b0";
    const P1: &str = "00000000-0000-0000-0000-0000000000a1";
    const P2: &str = "00000000-0000-0000-0000-0000000000a2";
    const I1: &str = "00000000-0000-0000-0000-0000000000c1";
    const I2: &str = "00000000-0000-0000-0000-0000000000c2";

    fn schema() -> Arc<Schema> {
        let refs = |t: &str| json!({"type": {"key": {"type": "uuid", "refTable": t}, "min": 0, "max": "unlimited"}});
        let opt_int = json!({"type": {"key": "integer", "min": 0, "max": 1}});
        let opt_str = json!({"type": {"key": "string", "min": 0, "max": 1}});
        let v = json!({"name": "Open_vSwitch", "version": "1", "tables": {
            "Bridge": {"columns": {"name": {"type": "string"}, "ports": refs("Port"),
                "datapath_type": {"type": "string"}, "fail_mode": opt_str}},
            "Port": {"columns": {"name": {"type": "string"}, "interfaces": refs("Interface")}},
            "Interface": {"columns": {"name": {"type": "string"}, "type": {"type": "string"},
                "statistics": {"type": {"key": "string", "value": "integer", "min": 0, "max": "unlimited"}},
                "link_state": opt_str, "admin_state": opt_str, "mac_in_use": opt_str,
                "mtu": opt_int, "link_speed": opt_int, "link_resets": opt_int, "ofport": opt_int}}}});
        Arc::new(Schema::from_json(&v).unwrap())
    }

    fn cache() -> Cache {
        let reqs: MonitorRequests = ["Bridge", "Port", "Interface"]
            .into_iter()
            .map(|t| (t.to_string(), Default::default()))
            .collect();
        let mut cache = Cache::new(schema(), &reqs);
        let updates = parse_updates2(&json!({
            "Bridge": {BR: {"initial": {"name": "br0", "datapath_type": "netdev",
                "ports": ["set", [["uuid", P1], ["uuid", P2]]]}}},
            "Port": {P1: {"initial": {"name": "s1", "interfaces": ["uuid", I1]}},
                     P2: {"initial": {"name": "br0", "interfaces": ["uuid", I2]}}},
            "Interface": {
                I1: {"initial": {"name": "s1", "link_state": "up", "admin_state": "up",
                    "mtu": 1500, "link_speed": 10000000000i64, "link_resets": 2, "ofport": 1,
                    "mac_in_use": "aa:bb:cc:dd:ee:ff",
                    "statistics": ["map", [["rx_packets", 7], ["rx_bytes", 700],
                        ["tx_errors", 0], ["rx_1_to_64_packets", 3], ["rx_crc_err", -1]]]}},
                I2: {"initial": {"name": "br0", "type": "internal", "link_state": "down",
                    "ofport": 65534}}}
        }))
        .unwrap();
        cache.apply(&updates).unwrap();
        cache
    }

    fn all(max: usize) -> Filter {
        Filter {
            max,
            ..Filter::default()
        }
    }

    #[test]
    fn interfaces_by_name_with_their_bridge_and_port() {
        let mut f = Families::default();
        let counts = collect(&cache(), &all(100), &mut f);
        assert_eq!(
            counts,
            Counts {
                exported: 2,
                dropped: 0
            }
        );
        let text = f.finish();
        let l = "bridge=\"br0\",port=\"s1\",interface=\"s1\"";
        for want in [
            format!("ovs_interface_receive_packets_total{{{l}}} 7\n"),
            format!("ovs_interface_receive_bytes_total{{{l}}} 700\n"),
            format!("ovs_interface_transmit_errors_total{{{l}}} 0\n"),
            format!("ovs_interface_link_up{{{l}}} 1\n"),
            format!("ovs_interface_mtu_bytes{{{l}}} 1500\n"),
            format!("ovs_interface_link_speed_bytes_per_second{{{l}}} 1250000000\n"),
            format!("ovs_interface_link_resets_total{{{l}}} 2\n"),
            format!("ovs_interface_info{{{l},type=\"system\",ofport=\"1\",mac=\"aa:bb:cc:dd:ee:ff\"}} 1\n"),
            "ovs_interface_link_up{bridge=\"br0\",port=\"br0\",interface=\"br0\"} 0\n".into(),
            "ovs_bridge_info{bridge=\"br0\",datapath_type=\"netdev\",fail_mode=\"standalone\"} 1\n".into(),
            "ovs_bridge_ports{bridge=\"br0\"} 2\n".into(),
        ] {
            assert!(text.contains(&want), "missing {want} in\n{text}");
        }
        // Unknown keys and values OVS marks as unsupported (negative) are left out; no uuid
        // appears anywhere.
        assert!(
            !text.contains("crc") && !text.contains("64_packets"),
            "{text}"
        );
        assert!(!text.contains("0000-0000"), "{text}");
    }

    #[test]
    fn patterns_and_cap() {
        let mut f = Families::default();
        let only = Filter {
            exclude: vec!["br*".into()],
            max: 100,
            ..Filter::default()
        };
        assert_eq!(collect(&cache(), &only, &mut f).exported, 1);
        let text = f.finish();
        assert!(!text.contains("interface=\"br0\""), "{text}");
        let mut f = Families::default();
        // Sorted by bridge, port, name: port "br0" comes before "s1" and is the one kept.
        assert_eq!(
            collect(&cache(), &all(1), &mut f),
            Counts {
                exported: 1,
                dropped: 1
            }
        );
        assert!(!f.finish().contains("interface=\"s1\""));
    }

    #[test]
    fn a_deleted_interface_disappears() {
        let mut cache = cache();
        let gone = parse_updates2(&json!({
            "Interface": {I1: {"delete": null}},
            "Port": {P1: {"delete": null}},
            "Bridge": {BR: {"modify": {"ports": ["uuid", P1]}}}}))
        .unwrap();
        cache.apply(&gone).unwrap();
        let mut f = Families::default();
        collect(&cache, &all(100), &mut f);
        let text = f.finish();
        assert!(!text.contains("\"s1\""), "{text}");
        assert!(text.contains("ovs_bridge_ports{bridge=\"br0\"} 1"));
    }
}
