//! Figures for the report: `docker run` until a 10-port bridge exists, and TCP throughput
//! through the containerized OVS against OVS started by the appliance on the host, measured in
//! the same run, alternating.

use crate::cases::RUN_FLAGS;
use crate::common::net::{iperf3, Host};
use crate::common::{self, Appliance};
use crate::{check, Ctx, IMAGE};
use std::process::Command;
use std::time::{Duration, Instant};

const RUNS: usize = 5;
const IPERF_ROUNDS: usize = 5;
const IPERF_SECS: u32 = 4;

pub fn all(ctx: &Ctx, failures: &mut Vec<String>) {
    check(
        ctx,
        failures,
        "measure: docker run to a configured 10-port bridge",
        || run_to_bridge(ctx),
    );
    check(
        ctx,
        failures,
        "measure: iperf3 through the container vs OVS on the host",
        || throughput(ctx),
    );
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn run_to_bridge(ctx: &Ctx) {
    let mut times = Vec::new();
    for i in 0..RUNS {
        let bridge = format!("{}m{i}", ctx.tag);
        let ports: Vec<String> = (0..10).map(|p| format!("{bridge}p{p}")).collect();
        let mut config = format!("[[bridges]]\nname = \"{bridge}\"\n");
        for p in &ports {
            config += &format!("  [[bridges.ports]]\n  name = \"{p}\"\n  type = \"internal\"\n");
        }
        let cfg = ctx.config_dir(&format!("measure-{i}"), &config);
        let mount = format!("{}:/etc/ovs-appliance:ro", cfg.display());
        let name = format!("{}-m{i}", ctx.tag);
        let mut devices = vec![bridge.clone()];
        devices.extend(ports);
        let mut args = vec!["run", "-d", "--rm", "--name", &name];
        args.extend_from_slice(RUN_FLAGS);
        args.extend_from_slice(&["-v", &mount, IMAGE]);
        let start = Instant::now();
        ctx.engine.docker_ok(&args);
        ctx.wait_links(&devices, Duration::from_secs(30));
        times.push(start.elapsed().as_secs_f64() * 1e3);
        ctx.engine.docker_ok(&["stop", &name]);
        ctx.delete_links(&devices);
    }
    let list: Vec<String> = times.iter().map(|t| format!("{t:.0}")).collect();
    ctx.note(format!(
        "docker run -> bridge with 10 internal ports in `ip link`: median {:.0} ms of {RUNS} ({} ms)",
        median(times.clone()),
        list.join(", ")
    ));
}

/// Two hosts (namespaces) on a netdev bridge through system ports, once with OVS in the
/// container (the engine's namespace) and once with OVS run by the appliance binary directly in
/// a namespace of its own; iperf3 alternates between them.
fn throughput(ctx: &Ctx) {
    let t = &ctx.tag;
    let bridge = format!("{t}tb");
    let (a, b) = (format!("{t}ta"), format!("{t}tz"));
    let bridge_toml = format!(
        "[[bridges]]\nname = \"{bridge}\"\ndatapath = \"netdev\"\n  [[bridges.ports]]\n  name = \"{a}\"\n  [[bridges.ports]]\n  name = \"{b}\"\n"
    );
    // In the container.
    let c1 = Host::new(ctx.engine.netns(), &a, "10.77.0.1/24");
    let c2 = Host::new(ctx.engine.netns(), &b, "10.77.0.2/24");
    let cfg = ctx.config_dir(
        "iperf",
        &format!("[ovs]\ndatapath = \"netdev\"\n{bridge_toml}"),
    );
    let mount = format!("{}:/etc/ovs-appliance:ro", cfg.display());
    let name = format!("{t}-iperf");
    let mut args = vec!["run", "-d", "--rm", "--name", &name];
    args.extend_from_slice(RUN_FLAGS);
    args.extend_from_slice(&["-v", &mount, IMAGE]);
    ctx.engine.docker_ok(&args);
    let _stop = Stop(ctx, &name);
    c1.ping(&c2.addr);
    // On the host: the same bridge, through the appliance binary and Debian's OVS.
    let mut host = Appliance::new(&format!("datapath = \"netdev\"\n{bridge_toml}"));
    let h1 = Host::new(&host.netns.name, &a, "10.78.0.1/24");
    let h2 = Host::new(&host.netns.name, &b, "10.78.0.2/24");
    host.start_ready();
    h1.ping(&h2.addr);
    let (mut inside, mut outside) = (Vec::new(), Vec::new());
    for _ in 0..IPERF_ROUNDS {
        inside.push(iperf3(&c1, &c2, IPERF_SECS).expect("iperf3 through the container") / 1e9);
        outside.push(iperf3(&h1, &h2, IPERF_SECS).expect("iperf3 through the host OVS") / 1e9);
    }
    let version = common::run(
        Command::new("ovs-vswitchd").arg("--version"),
        Duration::from_secs(5),
    );
    let host_version = String::from_utf8_lossy(&version.stdout);
    let (mi, mo) = (median(inside.clone()), median(outside.clone()));
    ctx.note(format!(
        "iperf3 TCP, netdev bridge, {IPERF_ROUNDS} x {IPERF_SECS} s alternating: container (OVS 3.5) median {mi:.2} Gbit/s {inside:.2?}; host appliance ({}) median {mo:.2} Gbit/s {outside:.2?}; ratio {:.2}",
        host_version.lines().next().unwrap_or("?"),
        mi / mo
    ));
}

/// Stops the named container when the measurement ends, even on panic.
struct Stop<'a>(&'a Ctx, &'a str);

impl Drop for Stop<'_> {
    fn drop(&mut self) {
        self.0.engine.docker(&["stop", self.1]);
    }
}
