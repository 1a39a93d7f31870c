//! The `[[bridges]]` and `[[bridges.ports]]` tables: the bridges and ports the host should have.

use serde::Deserialize;
use std::collections::BTreeMap;

/// A bridge's datapath when set explicitly (default: the resolved `[ovs].datapath`).
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum BridgeDatapath {
    System,
    Netdev,
}

/// What a bridge does with no controller reachable (Bridge.fail_mode).
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum FailMode {
    /// Acts as a learning switch.
    Standalone,
    /// Forwards only by the flows it has.
    Secure,
}

impl FailMode {
    pub fn as_ovs(self) -> &'static str {
        match self {
            Self::Standalone => "standalone",
            Self::Secure => "secure",
        }
    }
}

/// One bridge.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Bridge {
    /// The bridge's name (also the name of its own internal interface): at most 15 bytes.
    pub name: String,
    /// system (kernel) or netdev (userspace); default: the resolved `[ovs].datapath`.
    #[serde(default)]
    pub datapath: Option<BridgeDatapath>,
    /// standalone or secure; unset leaves OVS's default (standalone).
    #[serde(default)]
    pub fail_mode: Option<FailMode>,
    /// OpenFlow versions, e.g. ["OpenFlow13"]; empty: OVS's default.
    #[serde(default)]
    pub protocols: Vec<String>,
    /// OpenFlow controller targets, e.g. ["tcp:127.0.0.1:6653"].
    #[serde(default)]
    pub controllers: Vec<String>,
    /// Bridge.other_config keys (e.g. hwaddr, datapath-id).
    #[serde(default)]
    pub other_config: BTreeMap<String, String>,
    /// Bridge.external_ids keys.
    #[serde(default)]
    pub external_ids: BTreeMap<String, String>,
    /// The bridge's ports (its own internal port is implicit).
    #[serde(default)]
    pub ports: Vec<Port>,
}

/// The type of a port's interface.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum PortType {
    /// An existing host device (OVS type "").
    #[default]
    System,
    /// A device OVS creates on the host.
    Internal,
    /// A tap device OVS opens (netdev datapath).
    Tap,
    /// One end of a patch cable to another bridge.
    Patch,
    Vxlan,
    Geneve,
    Gre,
}

impl PortType {
    /// The Interface.type value.
    pub fn as_ovs(self) -> &'static str {
        match self {
            Self::System => "",
            Self::Internal => "internal",
            Self::Tap => "tap",
            Self::Patch => "patch",
            Self::Vxlan => "vxlan",
            Self::Geneve => "geneve",
            Self::Gre => "gre",
        }
    }

    pub fn is_tunnel(self) -> bool {
        matches!(self, Self::Vxlan | Self::Geneve | Self::Gre)
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::System => "system",
            other => other.as_ovs(),
        }
    }
}

/// VLAN membership of a port.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(tag = "mode", rename_all = "lowercase", deny_unknown_fields)]
pub enum Vlan {
    /// Untagged on the wire, member of one VLAN.
    Access { tag: u32 },
    /// Carries these VLANs tagged (empty: all).
    Trunk {
        #[serde(default)]
        trunks: Vec<u32>,
    },
}

/// Bond balancing (Port.bond_mode).
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum BondMode {
    ActiveBackup,
    BalanceSlb,
    BalanceTcp,
}

impl BondMode {
    pub fn as_ovs(self) -> &'static str {
        match self {
            Self::ActiveBackup => "active-backup",
            Self::BalanceSlb => "balance-slb",
            Self::BalanceTcp => "balance-tcp",
        }
    }
}

/// LACP negotiation on a bond (Port.lacp).
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Lacp {
    Active,
    Passive,
    Off,
}

impl Lacp {
    pub fn as_ovs(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Passive => "passive",
            Self::Off => "off",
        }
    }
}

/// One port of a bridge.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Port {
    /// The port's name; for a single-interface port also the interface's (at most 15 bytes).
    pub name: String,
    /// system (default), internal, tap, patch, vxlan, geneve or gre.
    #[serde(default, rename = "type")]
    pub kind: PortType,
    /// patch only: the name of the patch port at the other end.
    #[serde(default)]
    pub peer: Option<String>,
    /// Interface.options (tunnels: remote_ip is required; key, dst_port, ...).
    #[serde(default)]
    pub options: BTreeMap<String, String>,
    /// Access tag or trunk list.
    #[serde(default)]
    pub vlan: Option<Vlan>,
    /// Bond members (system devices); two or more make this port a bond.
    #[serde(default)]
    pub interfaces: Vec<String>,
    /// Bonds only.
    #[serde(default)]
    pub bond_mode: Option<BondMode>,
    /// Bonds only.
    #[serde(default)]
    pub lacp: Option<Lacp>,
    /// Internal ports only: addresses with prefix, set on the device.
    #[serde(default)]
    pub addresses: Vec<String>,
    /// Internal ports only: Interface.mtu_request.
    #[serde(default)]
    pub mtu: Option<u32>,
}

impl Port {
    pub fn is_bond(&self) -> bool {
        !self.interfaces.is_empty()
    }
}
