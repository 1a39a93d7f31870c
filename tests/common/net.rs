//! Test hosts: network namespaces joined to the appliance's namespace by veth pairs whose
//! switch end lives in the appliance's namespace (so it can be a `system` port), and traffic
//! between them. Nothing is ever created in the root namespace.

use super::{run, wait_for, Netns};
use std::process::Command;
use std::time::Duration;

/// A host: its own namespace, one veth `eth0`-like end with an address, the other end named
/// `switch_end` inside the appliance's namespace.
pub struct Host {
    pub netns: Netns,
    pub dev: String,
    pub switch_end: String,
    pub addr: String,
}

/// Runs `args` inside namespace `ns`; panics on failure.
pub fn ns_ok(ns: &str, args: &[&str]) -> String {
    let out = ns_run(ns, args, Duration::from_secs(30));
    assert!(out.status.success(), "ip netns exec {ns} {args:?}: {out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn ns_run(ns: &str, args: &[&str], timeout: Duration) -> std::process::Output {
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", ns]).args(args);
    run(&mut cmd, timeout)
}

impl Host {
    /// A host with `addr` (CIDR) whose switch end is `switch_end` in namespace `switch_ns`.
    pub fn new(switch_ns: &str, switch_end: &str, addr: &str) -> Host {
        let netns = Netns::new();
        let dev = format!("h{}", &switch_end[switch_end.len().saturating_sub(6)..]);
        let out = run(
            Command::new("ip").args([
                "-n",
                switch_ns,
                "link",
                "add",
                switch_end,
                "type",
                "veth",
                "peer",
                "name",
                &dev,
                "netns",
                &netns.name,
            ]),
            Duration::from_secs(10),
        );
        assert!(out.status.success(), "veth {switch_end}: {out:?}");
        ns_ok(switch_ns, &["ip", "link", "set", switch_end, "up"]);
        ns_ok(&netns.name, &["ip", "link", "set", "lo", "up"]);
        ns_ok(&netns.name, &["ip", "link", "set", &dev, "up"]);
        ns_ok(&netns.name, &["ip", "addr", "add", addr, "dev", &dev]);
        Host {
            netns,
            dev,
            switch_end: switch_end.into(),
            addr: addr.split('/').next().unwrap().into(),
        }
    }

    /// Adds a VLAN sub-interface `<dev>.<id>` with `addr`; returns its name.
    pub fn vlan(&self, id: u16, addr: &str) -> String {
        let name = format!("{}.{id}", self.dev);
        let ns = &self.netns.name;
        ns_ok(
            ns,
            &[
                "ip",
                "link",
                "add",
                "link",
                &self.dev,
                "name",
                &name,
                "type",
                "vlan",
                "id",
                &id.to_string(),
            ],
        );
        ns_ok(ns, &["ip", "addr", "add", addr, "dev", &name]);
        ns_ok(ns, &["ip", "link", "set", &name, "up"]);
        name
    }

    /// One ping to `to`, true when answered within a second.
    pub fn ping_once(&self, to: &str) -> bool {
        let out = ns_run(
            &self.netns.name,
            &["ping", "-c", "1", "-W", "1", to],
            Duration::from_secs(5),
        );
        out.status.success()
    }

    /// Pings until answered (forwarding may take a moment to settle) or panics.
    pub fn ping(&self, to: &str) {
        wait_for(
            Duration::from_secs(15),
            &format!("ping {} -> {to}", self.addr),
            || self.ping_once(to).then_some(()),
        );
    }

    /// No answer in `tries` pings.
    pub fn cannot_ping(&self, to: &str, tries: u32) -> bool {
        (0..tries).all(|_| !self.ping_once(to))
    }

    pub fn tx_off(&self) {
        ns_ok(&self.netns.name, &["ethtool", "-K", &self.dev, "tx", "off"]);
    }
}

/// TCP throughput from `client` to `server` with iperf3 for `secs`: bits per second received.
pub fn iperf3(client: &Host, server: &Host, secs: u32) -> Result<f64, String> {
    let mut daemon = Command::new("ip")
        .args([
            "netns",
            "exec",
            &server.netns.name,
            "iperf3",
            "-s",
            "-1",
            "-B",
            &server.addr,
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .map_err(|e| e.to_string())?;
    std::thread::sleep(Duration::from_millis(300));
    let out = ns_run(
        &client.netns.name,
        &[
            "iperf3",
            "-c",
            &server.addr,
            "-t",
            &secs.to_string(),
            "-J",
            "--connect-timeout",
            "3000",
        ],
        Duration::from_secs(u64::from(secs) + 20),
    );
    let _ = daemon.kill();
    let _ = daemon.wait();
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).map_err(|e| e.to_string())?;
    if let Some(err) = json["error"].as_str() {
        return Err(err.to_string());
    }
    json["end"]["sum_received"]["bits_per_second"]
        .as_f64()
        .filter(|bps| *bps > 0.0)
        .ok_or_else(|| format!("no throughput in {json}"))
}
