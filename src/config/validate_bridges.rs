//! Checks on `[[bridges]]`: names, uniqueness, VLANs, patch pairs, tunnels, bonds, addresses.
//! Every error names the field path and the offending value; nothing is sent while any remain.

use super::bridges::{Bridge, Port, PortType, Vlan};
use super::validate::Errors;
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

/// Linux's IFNAMSIZ less the terminating NUL.
const MAX_NAME: usize = 15;

const PROTOCOLS: &[&str] = &[
    "OpenFlow10",
    "OpenFlow11",
    "OpenFlow12",
    "OpenFlow13",
    "OpenFlow14",
    "OpenFlow15",
];

/// Controller target prefixes ovs-vswitchd accepts (ovs-vswitchd.conf.db(5), Controller.target).
const CONTROLLER_PREFIXES: &[&str] = &["tcp:", "ssl:", "unix:", "ptcp:", "pssl:", "punix:"];

/// A bridge's field path, by name (`bridges["br-ex"]`), or by index when it has none.
pub(super) fn bridge_path(index: usize, name: &str) -> String {
    by_name("bridges", index, name)
}

/// A port's field path under its bridge's, by name (`bridges["br-ex"].ports["eth1"]`).
pub(super) fn port_path(bridge: &str, index: usize, name: &str) -> String {
    by_name(&format!("{bridge}.ports"), index, name)
}

/// `list["name"]`, quoted and escaped as a Rust string (a NUL shows as `\0`), or `list[index]`
/// for an empty name.
fn by_name(list: &str, index: usize, name: &str) -> String {
    if name.is_empty() {
        format!("{list}[{index}]")
    } else {
        format!("{list}[{name:?}]")
    }
}

pub(super) fn bridges(bridges: &[Bridge], errors: &mut Errors) {
    // Bridges, ports and bond members share one namespace: each becomes a device or an
    // Interface row whose name OVS indexes.
    let mut names: BTreeMap<String, String> = BTreeMap::new();
    let mut claim = |name: &str, path: String, errors: &mut Errors| match names.get(name) {
        Some(first) => errors.push(
            path,
            format!("\"{name}\" is already used by {first}: names must be unique"),
        ),
        None => {
            names.insert(name.to_string(), path);
        }
    };
    for (b, bridge) in bridges.iter().enumerate() {
        let path = bridge_path(b, &bridge.name);
        name(&bridge.name, &format!("{path}.name"), errors);
        claim(&bridge.name, format!("{path}.name"), errors);
        bridge_fields(bridge, &path, errors);
        for (p, port) in bridge.ports.iter().enumerate() {
            let path = port_path(&path, p, &port.name);
            name(&port.name, &format!("{path}.name"), errors);
            claim(&port.name, format!("{path}.name"), errors);
            for (i, iface) in port.interfaces.iter().enumerate() {
                let ipath = format!("{path}.interfaces[{i}]");
                name(iface, &ipath, errors);
                claim(iface, ipath, errors);
            }
            port_fields(port, &path, errors);
        }
    }
    patch_pairs(bridges, errors);
}

/// Why the kernel would refuse `name` as a device name (the first reason), if it would.
pub(crate) fn device_name_problem(name: &str) -> Option<String> {
    let mut errors = Errors::default();
    self::name(name, "", &mut errors);
    errors.into_first().map(|e| e.message)
}

fn name(name: &str, path: &str, errors: &mut Errors) {
    if name.is_empty() {
        errors.push(path, "must not be empty");
    } else if name.len() > MAX_NAME {
        errors.push(
            path,
            format!("\"{name}\" is longer than {MAX_NAME} bytes (IFNAMSIZ)"),
        );
    }
    // Linux's dev_valid_name (net/core/dev.c) refuses ".", "..", '/', ':' and white space;
    // a NUL would cut the name short in the kernel's C string and OVS's.
    if name == "." || name == ".." {
        errors.push(
            path,
            format!("\"{name}\" is not a device name the kernel accepts"),
        );
    }
    if name.contains(['/', ':', '\0']) || name.chars().any(char::is_whitespace) {
        errors.push(
            path,
            format!("{name:?} contains '/', ':', NUL or white space, which device names cannot"),
        );
    }
}

/// The mark reconcile writes on every row it owns (`reconcile::model::OWNER_KEY`): a config
/// that sets it would be silently overridden, so it is refused.
pub(super) const OWNER_KEY: &str = "ovs-appliance-owner";

fn bridge_fields(bridge: &Bridge, path: &str, errors: &mut Errors) {
    if bridge.external_ids.contains_key(OWNER_KEY) {
        errors.push(
            format!("{path}.external_ids.{OWNER_KEY}"),
            "is the appliance's own ownership mark and cannot be set in the config",
        );
    }
    for (i, proto) in bridge.protocols.iter().enumerate() {
        if !PROTOCOLS.contains(&proto.as_str()) {
            errors.push(
                format!("{path}.protocols[{i}]"),
                format!("\"{proto}\" is not one of {}", PROTOCOLS.join(", ")),
            );
        }
    }
    for (i, target) in bridge.controllers.iter().enumerate() {
        if !CONTROLLER_PREFIXES.iter().any(|p| target.starts_with(p)) {
            errors.push(
                format!("{path}.controllers[{i}]"),
                format!(
                    "\"{target}\" is not a controller target (expected {})",
                    CONTROLLER_PREFIXES.join(" ")
                ),
            );
        }
    }
}

fn port_fields(port: &Port, path: &str, errors: &mut Errors) {
    let kind = port.kind.name();
    let only = |errors: &mut Errors, field: &str, set: bool, allowed: bool, what: &str| {
        if set && !allowed {
            errors.push(
                format!("{path}.{field}"),
                format!("is only for {what}, not a {kind} port"),
            );
        }
    };
    only(
        errors,
        "peer",
        port.peer.is_some(),
        port.kind == PortType::Patch,
        "patch ports",
    );
    let internal = port.kind == PortType::Internal;
    only(
        errors,
        "addresses",
        !port.addresses.is_empty(),
        internal,
        "internal ports",
    );
    only(
        errors,
        "mtu",
        port.mtu.is_some(),
        internal,
        "internal ports",
    );
    only(
        errors,
        "interfaces",
        port.is_bond(),
        port.kind == PortType::System,
        "system ports (bonds)",
    );
    only(
        errors,
        "options",
        !port.options.is_empty(),
        port.kind != PortType::Patch,
        "ports other than patch (use peer)",
    );
    if port.is_bond() && port.interfaces.len() < 2 {
        errors.push(
            format!("{path}.interfaces"),
            format!(
                "a bond needs at least two interfaces, got {}",
                port.interfaces.len()
            ),
        );
    }
    if !port.is_bond() {
        let bond_only = port.bond_mode.is_some() || port.lacp.is_some();
        only(
            errors,
            "bond_mode",
            bond_only,
            false,
            "bonds (set interfaces)",
        );
    }
    if port.kind == PortType::Patch && port.peer.is_none() {
        errors.push(format!("{path}.peer"), "a patch port needs its peer");
    }
    if port.kind.is_tunnel() {
        match port.options.get("remote_ip") {
            None => errors.push(
                format!("{path}.options.remote_ip"),
                format!("a {kind} tunnel needs remote_ip"),
            ),
            Some(ip) if ip != "flow" && ip.parse::<IpAddr>().is_err() => errors.push(
                format!("{path}.options.remote_ip"),
                format!("\"{ip}\" is not an IP address (or \"flow\")"),
            ),
            Some(_) => {}
        }
    }
    vlan(port.vlan.as_ref(), path, errors);
    for (i, address) in port.addresses.iter().enumerate() {
        if let Err(e) = address.parse::<crate::netlink::IpCidr>() {
            errors.push(format!("{path}.addresses[{i}]"), e.to_string());
        }
    }
    if let Some(mtu) = port.mtu.filter(|m| !(68..=65535).contains(m)) {
        errors.push(
            format!("{path}.mtu"),
            format!("{mtu} is outside 68..=65535"),
        );
    }
}

fn vlan(vlan: Option<&Vlan>, path: &str, errors: &mut Errors) {
    let check = |errors: &mut Errors, field: String, id: u32| {
        // 4095 is reserved by 802.1Q; OVS's schema admits it, the wire does not.
        if id > 4094 {
            errors.push(field, format!("VLAN {id} is outside 0..=4094"));
        }
    };
    match vlan {
        Some(Vlan::Access { tag }) => check(errors, format!("{path}.vlan.tag"), *tag),
        Some(Vlan::Trunk { trunks }) => {
            for (i, id) in trunks.iter().enumerate() {
                check(errors, format!("{path}.vlan.trunks[{i}]"), *id);
            }
        }
        None => {}
    }
}

/// Every patch port's peer exists, is a patch port, and names it back.
fn patch_pairs(bridges: &[Bridge], errors: &mut Errors) {
    let mut patches: BTreeMap<&str, (String, Option<&str>)> = BTreeMap::new();
    for (b, bridge) in bridges.iter().enumerate() {
        for (p, port) in bridge.ports.iter().enumerate() {
            if port.kind == PortType::Patch {
                let path = port_path(&bridge_path(b, &bridge.name), p, &port.name);
                let path = format!("{path}.peer");
                patches.insert(&port.name, (path, port.peer.as_deref()));
            }
        }
    }
    let mut reported = BTreeSet::new();
    for (name, (path, peer)) in &patches {
        let Some(peer) = peer else { continue };
        if peer == name {
            errors.push(
                path.clone(),
                format!("\"{name}\" names itself as its peer: a patch port needs another"),
            );
            continue;
        }
        match patches.get(peer) {
            None => errors.push(
                path.clone(),
                format!("\"{peer}\" is not a patch port in this config"),
            ),
            Some((_, back)) if *back != Some(*name) && reported.insert(*name) => errors.push(
                path.clone(),
                format!(
                    "\"{peer}\" names \"{}\" as its peer, not \"{name}\": patch peers must be mutual",
                    back.unwrap_or("nothing")
                ),
            ),
            Some(_) => {}
        }
    }
}
