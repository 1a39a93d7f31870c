//! Docker's remote network driver protocol (libnetwork's `drivers/remote/api`): the request and
//! response bodies, and the network options a user gives `docker network create -o`, checked
//! here so that a bad one is refused before anything is created.
//!
//! Pure: no sockets, no database.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// Where Docker puts `-o KEY=VALUE` (and compose's `driver_opts`) in CreateNetwork's options.
pub const GENERIC: &str = "com.docker.network.generic";
/// Set by Docker for `docker network create --internal`.
pub const INTERNAL: &str = "com.docker.network.internal";

/// The network options this driver understands, as the error for an unknown one lists them.
pub const OPTIONS: [&str; 4] = ["bridge", "vlan", "mtu", "gateway_port"];

/// The address pool Docker's IPAM gave a network, one per family.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct IpamData {
    #[serde(default)]
    pub address_space: String,
    #[serde(default)]
    pub pool: String,
    /// `a.b.c.d/len`: the gateway address with the pool's prefix length.
    #[serde(default)]
    pub gateway: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CreateNetworkRequest {
    #[serde(rename = "NetworkID")]
    pub network_id: String,
    #[serde(default)]
    pub options: Map<String, Value>,
    #[serde(default, rename = "IPv4Data")]
    pub ipv4_data: Option<Vec<IpamData>>,
    #[serde(default, rename = "IPv6Data")]
    pub ipv6_data: Option<Vec<IpamData>>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct NetworkRequest {
    #[serde(rename = "NetworkID")]
    pub network_id: String,
}

/// An endpoint's addresses: in a CreateEndpoint request, what Docker's IPAM chose (and
/// `--mac-address`); in the answer, only what the driver chose where Docker gave nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct EndpointInterface {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub address: String,
    #[serde(
        default,
        rename = "AddressIPv6",
        skip_serializing_if = "String::is_empty"
    )]
    pub address_ipv6: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub mac_address: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct CreateEndpointRequest {
    #[serde(rename = "NetworkID")]
    pub network_id: String,
    #[serde(rename = "EndpointID")]
    pub endpoint_id: String,
    #[serde(default, rename = "Interface")]
    pub interface: Option<EndpointInterface>,
}

/// DeleteEndpoint, EndpointOperInfo, Join and Leave name the endpoint this way (Join's
/// sandbox key and options are not needed).
#[derive(Debug, Clone, Deserialize)]
pub struct EndpointRequest {
    #[serde(rename = "NetworkID")]
    pub network_id: String,
    #[serde(rename = "EndpointID")]
    pub endpoint_id: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct InterfaceName {
    #[serde(rename = "SrcName")]
    pub src_name: String,
    #[serde(rename = "DstPrefix")]
    pub dst_prefix: String,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct JoinResponse {
    pub interface_name: InterfaceName,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub gateway: String,
    #[serde(rename = "GatewayIPv6", skip_serializing_if = "String::is_empty")]
    pub gateway_ipv6: String,
    /// An internal network has no way out: Docker must not add its gateway bridge either.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub disable_gateway_service: bool,
}

/// The body of a failure Docker shows the user (`Error response from daemon: remote: ...`).
pub fn err_body(message: &str) -> Value {
    serde_json::json!({ "Err": message })
}

/// A network as this driver keeps it (in the bridge's `external_ids`, see `store`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkSpec {
    pub bridge: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vlan: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u32>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub gateway_port: bool,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub internal: bool,
    /// IPv4 gateway with its prefix length (`10.1.0.1/24`), as IPAM gave it.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub gateway4: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub gateway6: String,
}

impl NetworkSpec {
    /// The gateway addresses without their prefix, as Join answers them.
    pub fn gateway_ips(&self) -> (String, String) {
        let ip = |cidr: &str| cidr.split('/').next().unwrap_or_default().to_string();
        (ip(&self.gateway4), ip(&self.gateway6))
    }
}

/// A refused option, named as the user wrote it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("option {option}: {message}")]
pub struct OptionError {
    pub option: String,
    pub message: String,
}

fn refuse(option: &str, message: impl Into<String>) -> OptionError {
    OptionError {
        option: option.to_string(),
        message: message.into(),
    }
}

/// Reads CreateNetwork's options into a spec: every `-o` key must be one of [`OPTIONS`], with a
/// value of the right form; `bridge` is required and must be a device name the kernel takes.
/// Returns every problem, the first of which Docker shows.
pub fn network_spec(req: &CreateNetworkRequest) -> Result<NetworkSpec, Vec<OptionError>> {
    let mut errors = Vec::new();
    let mut spec = NetworkSpec::default();
    let generic: BTreeMap<String, Value> = match req.options.get(GENERIC) {
        None | Some(Value::Null) => BTreeMap::new(),
        Some(Value::Object(map)) => map.clone().into_iter().collect(),
        Some(other) => {
            errors.push(refuse(
                GENERIC,
                format!("expected a map of options, got {other}"),
            ));
            BTreeMap::new()
        }
    };
    for (key, value) in &generic {
        let Some(text) = value.as_str() else {
            errors.push(refuse(key, format!("expected a string, got {value}")));
            continue;
        };
        let text = text.trim();
        match key.as_str() {
            "bridge" => match crate::config::device_name_problem(text) {
                None => spec.bridge = text.to_string(),
                Some(why) => errors.push(refuse(key, format!("not a valid bridge name: {why}"))),
            },
            "vlan" => match text.parse::<u16>() {
                Ok(v) if (1..=4094).contains(&v) => spec.vlan = Some(v),
                _ => errors.push(refuse(key, format!("`{text}` is not a VLAN id (1-4094)"))),
            },
            "mtu" => match text.parse::<u32>() {
                Ok(m) if (68..=65535).contains(&m) => spec.mtu = Some(m),
                _ => errors.push(refuse(key, format!("`{text}` is not an MTU (68-65535)"))),
            },
            "gateway_port" => match text {
                "true" => spec.gateway_port = true,
                "false" => spec.gateway_port = false,
                _ => errors.push(refuse(key, format!("`{text}` is not true or false"))),
            },
            _ => errors.push(refuse(
                key,
                format!("unknown option; this driver takes {}", OPTIONS.join(", ")),
            )),
        }
    }
    if !generic.contains_key("bridge") {
        errors.push(refuse(
            "bridge",
            "required: the OVS bridge to attach to (`-o bridge=NAME`)",
        ));
    }
    spec.internal = match req.options.get(INTERNAL) {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => s == "true",
        _ => false,
    };
    let first = |data: &Option<Vec<IpamData>>| {
        data.as_ref()
            .and_then(|d| d.iter().find(|d| !d.gateway.is_empty()))
            .map(|d| d.gateway.clone())
            .unwrap_or_default()
    };
    spec.gateway4 = first(&req.ipv4_data);
    spec.gateway6 = first(&req.ipv6_data);
    for (family, gw) in [("IPv4Data", &spec.gateway4), ("IPv6Data", &spec.gateway6)] {
        if !gw.is_empty() && gw.parse::<crate::netlink::IpCidr>().is_err() {
            errors.push(refuse(
                family,
                format!("gateway `{gw}` is not an address/prefix"),
            ));
        }
    }
    if spec.gateway_port && spec.gateway4.is_empty() && spec.gateway6.is_empty() {
        errors.push(refuse(
            "gateway_port",
            "the network has no gateway address to put on the port",
        ));
    }
    if errors.is_empty() {
        Ok(spec)
    } else {
        Err(errors)
    }
}

/// A MAC address for an endpoint Docker gave none: locally administered and unicast.
///
/// With an IPv4 address it is `02:42` and the address's four bytes, as Docker's bridge driver
/// makes them: a container that gets an address another one had before also gets its MAC, so
/// the neighbours' ARP caches stay right. An endpoint id derived MAC (new for every container)
/// left peers sending to the old MAC for up to a minute (measured: 53 s until the first reply,
/// the peer's REACHABLE entry timing out, then DELAY and PROBE). Without an IPv4 address: from
/// the endpoint id, the same for a retried CreateEndpoint.
pub fn mac_for(endpoint_id: &str, address: &str) -> String {
    let v4 = address
        .split('/')
        .next()
        .and_then(|a| a.parse::<std::net::Ipv4Addr>().ok());
    if let Some(ip) = v4 {
        let o = ip.octets();
        return format!("02:42:{:02x}:{:02x}:{:02x}:{:02x}", o[0], o[1], o[2], o[3]);
    }
    let mut bytes = [0x02u8, 0, 0, 0, 0, 0];
    let hex: Vec<u8> = endpoint_id
        .as_bytes()
        .chunks(2)
        .filter_map(|c| std::str::from_utf8(c).ok())
        .filter_map(|c| u8::from_str_radix(c, 16).ok())
        .collect();
    if hex.len() >= 5 {
        bytes[1..].copy_from_slice(&hex[..5]);
    } else {
        // Not hex (Docker's ids are): a digest of whatever it is.
        let digest = sha1_smol::Sha1::from(endpoint_id).digest().bytes();
        bytes[1..].copy_from_slice(&digest[..5]);
    }
    bytes
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// Whether `text` is a MAC address Docker may have sent (`aa:bb:cc:dd:ee:ff`).
pub fn parse_mac(text: &str) -> Option<[u8; 6]> {
    let parts: Vec<&str> = text.split(':').collect();
    if parts.len() != 6 {
        return None;
    }
    let mut mac = [0u8; 6];
    for (byte, part) in mac.iter_mut().zip(parts) {
        if part.len() != 2 {
            return None;
        }
        *byte = u8::from_str_radix(part, 16).ok()?;
    }
    Some(mac)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn create(options: Value, v4: Value) -> CreateNetworkRequest {
        serde_json::from_value(json!({
            "NetworkID": "n1",
            "Options": options,
            "IPv4Data": v4,
        }))
        .unwrap()
    }

    fn v4() -> Value {
        json!([{"AddressSpace": "LocalDefault", "Pool": "10.9.0.0/24", "Gateway": "10.9.0.1/24"}])
    }

    #[test]
    fn options_become_a_spec() {
        let req = create(
            json!({GENERIC: {"bridge": "br-lan", "vlan": "10", "mtu": "1400", "gateway_port": "true"},
                   INTERNAL: false, "com.docker.network.enable_ipv6": false}),
            v4(),
        );
        let spec = network_spec(&req).unwrap();
        assert_eq!(
            spec,
            NetworkSpec {
                bridge: "br-lan".into(),
                vlan: Some(10),
                mtu: Some(1400),
                gateway_port: true,
                internal: false,
                gateway4: "10.9.0.1/24".into(),
                gateway6: String::new(),
            }
        );
        assert_eq!(spec.gateway_ips().0, "10.9.0.1");
    }

    #[test]
    fn every_bad_option_is_named() {
        let req = create(
            json!({GENERIC: {"bridge": "a/b", "vlan": "4095", "mtu": "9x", "color": "red", "gateway_port": "yes"}}),
            v4(),
        );
        let errors = network_spec(&req).unwrap_err();
        let named: Vec<&str> = errors.iter().map(|e| e.option.as_str()).collect();
        assert_eq!(named, ["bridge", "color", "gateway_port", "mtu", "vlan"]);
        let text = errors[1].to_string();
        assert!(text.starts_with("option color: unknown option"), "{text}");
        assert!(errors[4].to_string().contains("`4095` is not a VLAN id"));
    }

    #[test]
    fn bridge_is_required_and_a_device_name() {
        let errors = network_spec(&create(json!({}), v4())).unwrap_err();
        assert_eq!(errors[0].option, "bridge");
        assert!(errors[0].message.contains("required"));
        let long = create(json!({GENERIC: {"bridge": "a-very-long-bridge"}}), v4());
        assert!(network_spec(&long).unwrap_err()[0]
            .message
            .contains("longer than 15"));
        for vlan in ["0", "-1", "", "10.5"] {
            let req = create(json!({GENERIC: {"bridge": "br0", "vlan": vlan}}), v4());
            assert_eq!(
                network_spec(&req).unwrap_err()[0].option,
                "vlan",
                "{vlan:?}"
            );
        }
    }

    #[test]
    fn gateway_port_needs_a_gateway_and_internal_is_read() {
        let req = create(
            json!({GENERIC: {"bridge": "br0", "gateway_port": "true"}}),
            json!([]),
        );
        assert_eq!(network_spec(&req).unwrap_err()[0].option, "gateway_port");
        let req = create(json!({GENERIC: {"bridge": "br0"}, INTERNAL: true}), v4());
        assert!(network_spec(&req).unwrap().internal);
        let req = create(json!({GENERIC: {"bridge": "br0", "vlan": 7}}), v4());
        assert!(network_spec(&req).unwrap_err()[0]
            .message
            .contains("expected a string"));
    }

    #[test]
    fn macs_are_local_unicast_and_stable() {
        let id = "3f1a9c0b22d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e";
        assert_eq!(mac_for(id, ""), "02:3f:1a:9c:0b:22");
        assert_eq!(mac_for(id, "fd00::5/64"), "02:3f:1a:9c:0b:22");
        assert_eq!(mac_for(id, ""), mac_for(id, ""));
        // With an IPv4 address, the address decides: a new endpoint on an old address keeps
        // the old MAC.
        assert_eq!(mac_for(id, "10.95.0.3/24"), "02:42:0a:5f:00:03");
        assert_eq!(mac_for("0123456789ab", "10.95.0.3/24"), "02:42:0a:5f:00:03");
        let odd = mac_for("not-hex", "");
        let mac = parse_mac(&odd).unwrap();
        assert_eq!(mac[0], 0x02);
        assert_eq!(parse_mac("02:00:00:00:00:0g"), None);
        assert_eq!(parse_mac("02:00:00:00:00"), None);
    }

    #[test]
    fn join_answer_leaves_out_what_is_empty() {
        let answer = JoinResponse {
            interface_name: InterfaceName {
                src_name: "ovc123".into(),
                dst_prefix: "eth".into(),
            },
            gateway: "10.9.0.1".into(),
            gateway_ipv6: String::new(),
            disable_gateway_service: false,
        };
        assert_eq!(
            serde_json::to_value(answer).unwrap(),
            json!({"InterfaceName": {"SrcName": "ovc123", "DstPrefix": "eth"}, "Gateway": "10.9.0.1"})
        );
    }
}
