//! What `status` prints and the watch loop logs: owned or foreign bridges and ports, and the
//! errors OVS reports on interfaces (a system port whose device does not exist yet).

use super::model::{name, owned_by, refs, Observed};
use crate::ovsdb::{Datum, Row};
use std::collections::BTreeMap;

/// One interface's trouble, as OVS reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InterfaceError {
    pub interface: String,
    pub ofport: Option<i64>,
    pub error: String,
}

/// Owned interfaces with an error or ofport -1.
pub fn interface_errors(observed: &Observed, owner: &str) -> Vec<InterfaceError> {
    observed
        .interfaces
        .values()
        .filter(|row| owned_by(row, owner))
        .filter_map(|row| {
            let ofport = row.get("ofport").and_then(Datum::as_i64);
            let error = row.get("error").and_then(Datum::as_str).unwrap_or_default();
            (ofport == Some(-1) || !error.is_empty()).then(|| InterfaceError {
                interface: name(row).to_string(),
                ofport,
                error: if error.is_empty() {
                    "ofport is -1".into()
                } else {
                    error.into()
                },
            })
        })
        .collect()
}

/// Logs an interface's error when it appears or changes, and when it clears; not every pass.
#[derive(Default)]
pub struct InterfaceErrors {
    seen: BTreeMap<String, String>,
}

impl InterfaceErrors {
    pub fn report(&mut self, observed: &Observed, owner: &str) {
        let now: BTreeMap<String, String> = interface_errors(observed, owner)
            .into_iter()
            .map(|e| (e.interface, e.error))
            .collect();
        for (iface, error) in &now {
            if self.seen.get(iface) != Some(error) {
                tracing::warn!(interface = %iface, %error, "interface not working (it is configured and will work once the device exists)");
            }
        }
        for iface in self.seen.keys().filter(|i| !now.contains_key(*i)) {
            tracing::info!(interface = %iface, "interface error cleared");
        }
        self.seen = now;
    }
}

/// Human-readable bridges and ports, marking which the appliance owns.
pub fn describe(observed: &Observed, owner: &str) -> Vec<String> {
    let mark = |row: &Row| {
        if owned_by(row, owner) {
            "owned"
        } else {
            "foreign"
        }
    };
    let mut lines = Vec::new();
    let mut bridges: Vec<&Row> = observed.bridges.values().map(|r| &**r).collect();
    bridges.sort_by_key(|r| name(r).to_string());
    for bridge in bridges {
        let dp = bridge
            .get("datapath_type")
            .and_then(Datum::as_str)
            .unwrap_or("");
        lines.push(format!(
            "bridge {} ({}, datapath {})",
            name(bridge),
            mark(bridge),
            if dp.is_empty() { "system" } else { dp }
        ));
        let mut ports: Vec<&Row> = refs(bridge, "ports")
            .iter()
            .filter_map(|p| observed.ports.get(p))
            .map(|r| &**r)
            .collect();
        ports.sort_by_key(|r| name(r).to_string());
        for port in ports {
            let ifaces: Vec<String> = refs(port, "interfaces")
                .iter()
                .filter_map(|i| observed.interfaces.get(i))
                .map(|i| {
                    let kind = i.get("type").and_then(Datum::as_str).unwrap_or("");
                    let ofport = i
                        .get("ofport")
                        .and_then(Datum::as_i64)
                        .map_or("-".into(), |o| o.to_string());
                    format!(
                        "{} type={} ofport={}",
                        name(i),
                        if kind.is_empty() { "system" } else { kind },
                        ofport
                    )
                })
                .collect();
            lines.push(format!(
                "  port {} ({}): {}",
                name(port),
                mark(port),
                ifaces.join("; ")
            ));
        }
    }
    lines
}
