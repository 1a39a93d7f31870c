//! What is applied: N internal ports on one netdev bridge, or B bridges of one internal port each,
//! written four ways (the appliance's config, a per-port ovs-vsctl loop, one batched ovs-vsctl,
//! and the floor's raw transaction), all producing the same bridges, ports and interfaces.

use serde_json::{json, Value};

/// The bench's owner mark: the running appliance (instance "default") leaves these rows alone.
pub const INSTANCE: &str = "bench";

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Shape {
    /// N internal ports on the bridge `rb`.
    Ports(usize),
    /// B bridges `rbb<i>`, each with the internal port `rbp<i>`.
    Bridges(usize),
}

/// One bridge and its ports.
pub struct Bridge {
    pub name: String,
    pub ports: Vec<String>,
}

impl Shape {
    pub fn label(self) -> String {
        match self {
            Shape::Ports(n) => format!("{n} ports, 1 bridge"),
            Shape::Bridges(b) => format!("{b} bridges x 1 port"),
        }
    }

    pub fn bridges(self) -> Vec<Bridge> {
        match self {
            Shape::Ports(n) => vec![Bridge {
                name: "rb".into(),
                ports: (0..n).map(|i| format!("rp{i}")).collect(),
            }],
            Shape::Bridges(b) => (0..b)
                .map(|i| Bridge {
                    name: format!("rbb{i}"),
                    ports: vec![format!("rbp{i}")],
                })
                .collect(),
        }
    }

    /// The appliance's desired state, as a config file.
    pub fn config_toml(self) -> String {
        let mut toml = format!("[ovs]\ninstance = \"{INSTANCE}\"\ndatapath = \"netdev\"\n");
        for b in self.bridges() {
            toml += &format!(
                "\n[[bridges]]\nname = \"{}\"\ndatapath = \"netdev\"\n",
                b.name
            );
            for p in &b.ports {
                toml += &format!("[[bridges.ports]]\nname = \"{p}\"\ntype = \"internal\"\n");
            }
        }
        toml
    }

    /// The per-port loop: one ovs-vsctl invocation per bridge (`add-br`, datapath) and one per
    /// port (`add-port`, type), as a shell loop over a list would do.
    pub fn vsctl_loop(self) -> Vec<Vec<String>> {
        let mut calls = Vec::new();
        for b in self.bridges() {
            calls.push(add_br(&b.name));
            calls.extend(b.ports.iter().map(|p| add_port(&b.name, p)));
        }
        calls
    }

    /// One ovs-vsctl invocation for everything, chained with `--`.
    pub fn vsctl_batched(self) -> Vec<String> {
        let mut args = Vec::new();
        for b in self.bridges() {
            args.push("--".to_string());
            args.extend(add_br(&b.name));
            for p in &b.ports {
                args.push("--".to_string());
                args.extend(add_port(&b.name, p));
            }
        }
        args
    }

    /// One ovs-vsctl invocation that deletes every bridge of the shape.
    pub fn vsctl_delete(self) -> Vec<String> {
        let mut args = Vec::new();
        for b in self.bridges() {
            args.extend(["--", "--if-exists", "del-br", &b.name].map(String::from));
        }
        args
    }

    /// The floor's single transaction: the same rows the appliance inserts (owner mark included,
    /// each bridge's own internal port too), `next_cfg += 1` and a read of `next_cfg`.
    pub fn floor_ops(self) -> Vec<Value> {
        let ids = json!(["map", [["ovs-appliance-owner", INSTANCE]]]);
        let mut ops = Vec::new();
        let mut bridges = Vec::new();
        for (bi, b) in self.bridges().iter().enumerate() {
            let mut ports = Vec::new();
            for (pi, p) in std::iter::once(&b.name).chain(&b.ports).enumerate() {
                let (iface, port) = (format!("i{bi}_{pi}"), format!("p{bi}_{pi}"));
                ops.push(
                    json!({"op": "insert", "table": "Interface", "uuid-name": iface,
                    "row": {"name": p, "type": "internal", "external_ids": ids}}),
                );
                ops.push(json!({"op": "insert", "table": "Port", "uuid-name": port,
                    "row": {"name": p, "interfaces": ["named-uuid", iface], "external_ids": ids}}));
                ports.push(json!(["named-uuid", port]));
            }
            let bridge = format!("b{bi}");
            ops.push(
                json!({"op": "insert", "table": "Bridge", "uuid-name": bridge,
                "row": {"name": b.name, "datapath_type": "netdev",
                        "ports": ["set", ports], "external_ids": ids}}),
            );
            bridges.push(json!(["named-uuid", bridge]));
        }
        ops.push(json!({"op": "mutate", "table": "Open_vSwitch", "where": [],
            "mutations": [["bridges", "insert", ["set", bridges]], ["next_cfg", "+=", 1]]}));
        ops.push(json!({"op": "select", "table": "Open_vSwitch", "where": [],
            "columns": ["next_cfg"]}));
        ops
    }
}

fn add_br(bridge: &str) -> Vec<String> {
    let args = ["add-br", bridge, "--", "set", "bridge", bridge];
    let mut v: Vec<String> = args.map(String::from).to_vec();
    v.push("datapath_type=netdev".into());
    v
}

fn add_port(bridge: &str, port: &str) -> Vec<String> {
    let args = ["add-port", bridge, port, "--", "set", "interface", port];
    let mut v: Vec<String> = args.map(String::from).to_vec();
    v.push("type=internal".into());
    v
}
