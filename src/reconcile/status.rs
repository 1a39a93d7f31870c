//! What `status` prints and the watch loop logs: owned or foreign bridges and ports, and the
//! errors OVS reports on interfaces (a system port whose device does not exist yet, or an
//! interface OVS or the kernel refused).

use super::model::{name, owned_by, refs, Observed};
use crate::ovsdb::{Datum, Row};
use std::collections::BTreeMap;

/// One interface's trouble, as OVS reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InterfaceError {
    pub interface: String,
    pub ofport: Option<i64>,
    pub error: String,
    pub trouble: Trouble,
}

/// What kind of trouble: one that ends by itself, or one that needs the config changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Trouble {
    /// A system port whose device does not exist (yet): it works once the device appears.
    MissingDevice,
    /// OVS or the kernel refused the interface (a name the kernel will not take, one another
    /// device holds, bad options): it stays broken until the config changes.
    Refused,
}

impl Trouble {
    /// Reads OVS's `Interface.error`, the only account of the failure there is (vswitchd's
    /// "could not open network device eth9 (No such device)": strerror of ENODEV, in the C
    /// locale vswitchd runs in); everything else is a refusal.
    pub fn of(error: &str) -> Trouble {
        if error.ends_with("(No such device)") {
            Trouble::MissingDevice
        } else {
            Trouble::Refused
        }
    }

    pub fn describe(self) -> &'static str {
        match self {
            Trouble::MissingDevice => "no such device",
            Trouble::Refused => "refused",
        }
    }
}

impl std::fmt::Display for InterfaceError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "interface {}: {}: {}",
            self.interface,
            self.trouble.describe(),
            self.error
        )
    }
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
            (ofport == Some(-1) || !error.is_empty()).then(|| {
                let error = if error.is_empty() {
                    "ofport is -1".to_string()
                } else {
                    error.to_string()
                };
                InterfaceError {
                    interface: name(row).to_string(),
                    ofport,
                    trouble: Trouble::of(&error),
                    error,
                }
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
    /// Logs what changed, and returns the errors there are now.
    pub fn report(&mut self, observed: &Observed, owner: &str) -> Vec<InterfaceError> {
        let errors = interface_errors(observed, owner);
        let mut now = BTreeMap::new();
        for e in &errors {
            if self.seen.get(&e.interface) != Some(&e.error) {
                let (iface, error) = (&e.interface, &e.error);
                match e.trouble {
                    Trouble::MissingDevice => {
                        tracing::warn!(interface = %iface, %error, "interface not working: its device does not exist (it is configured and will work once the device exists)")
                    }
                    Trouble::Refused => {
                        tracing::error!(interface = %iface, %error, "interface refused by OVS or the kernel: it will not work until the config changes")
                    }
                }
            }
            now.insert(e.interface.clone(), e.error.clone());
        }
        for iface in self.seen.keys().filter(|i| !now.contains_key(*i)) {
            tracing::info!(interface = %iface, "interface error cleared");
        }
        self.seen = now;
        errors
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_device_is_told_from_a_refusal() {
        let cases = [
            (
                "could not open network device eth9 (No such device)",
                Trouble::MissingDevice,
            ),
            (
                "could not open network device taken0 (Invalid argument)",
                Trouble::Refused,
            ),
            (
                "could not add network device x to ofproto (File exists)",
                Trouble::Refused,
            ),
            ("ofport is -1", Trouble::Refused),
        ];
        for (error, want) in cases {
            assert_eq!(Trouble::of(error), want, "{error}");
        }
    }
}
