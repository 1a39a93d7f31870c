//! One appliance of the metrics bench, in a network namespace and temp dir of its own, stopped
//! and cleaned up in Drop.

use crate::http;
use anyhow::{bail, ensure, Context, Result};
use std::fmt::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_ovs-appliance");
/// The default [metrics] listen port, on the namespace's own loopback.
pub const PORT: u16 = 9476;

pub fn preflight() -> Result<()> {
    ensure!(nix::unistd::Uid::effective().is_root(), "needs root");
    let path = std::env::var("PATH").unwrap_or_default();
    for bin in [
        "ovsdb-server",
        "ovs-vswitchd",
        "ovs-vsctl",
        "ovs-appctl",
        "ip",
    ] {
        let found = path.split(':').any(|d| Path::new(d).join(bin).is_file());
        ensure!(found, "{bin} not on PATH");
    }
    ensure!(Path::new("/dev/net/tun").exists(), "/dev/net/tun missing");
    Ok(())
}

fn ip(args: &[&str]) -> Result<()> {
    let out = Command::new("ip").args(args).output()?;
    ensure!(out.status.success(), "ip {args:?}: {out:?}");
    Ok(())
}

pub struct Instance {
    dir: tempfile::TempDir,
    ns: String,
    child: Option<Child>,
}

/// The kind of port the 1000-interface appliance gets (`BENCH_PORTS`).
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Ports {
    /// Internal ports: a tap device each, datapath ports, as an operator's ports would be.
    Internal,
    /// Patch ports, half on `bra` and their peers on `brb`: statistics in the Interface table
    /// but no device and no datapath port, so `dpctl/show -s` prints less than for real ports.
    Patch,
}

impl Ports {
    pub fn from_env() -> Result<Ports> {
        match std::env::var("BENCH_PORTS").as_deref() {
            Err(_) | Ok("internal") => Ok(Ports::Internal),
            Ok("patch") => Ok(Ports::Patch),
            Ok(other) => bail!("BENCH_PORTS={other}: expected internal or patch"),
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Ports::Internal => "internal",
            Ports::Patch => "patch",
        }
    }
}

/// A config with `ports` interfaces, half on bridge `bra` and half on `brb` (none: no bridge).
fn config(dir: &Path, ports: usize, kind: Ports) -> String {
    let mut c = format!(
        "[ovs]\nrun_dir = \"{}\"\ndb_dir = \"{}\"\ndatapath = \"netdev\"\n",
        dir.join("run").display(),
        dir.join("db").display()
    );
    if ports == 0 {
        return c;
    }
    for (bridge, me, peer) in [("bra", 'a', 'b'), ("brb", 'b', 'a')] {
        let _ = write!(c, "[[bridges]]\nname = \"{bridge}\"\n");
        for i in 0..ports / 2 {
            let _ = match kind {
                Ports::Patch => write!(
                    c,
                    "[[bridges.ports]]\nname = \"p{me}{i:04}\"\ntype = \"patch\"\npeer = \"p{peer}{i:04}\"\n"
                ),
                Ports::Internal => write!(
                    c,
                    "[[bridges.ports]]\nname = \"p{me}{i:04}\"\ntype = \"internal\"\n"
                ),
            };
        }
    }
    c
}

impl Instance {
    /// Starts `ovs-appliance run` and waits until every port is exported, the config applied
    /// and every collector has a reading.
    pub fn start(ports: usize, kind: Ports) -> Result<Instance> {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let ns = format!(
            "ovsa-mb{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let dir = tempfile::Builder::new().prefix("ovsa-mbench-").tempdir()?;
        ip(&["netns", "add", &ns])?;
        let mut inst = Instance {
            dir,
            ns,
            child: None,
        };
        ip(&["-n", &inst.ns, "link", "set", "lo", "up"])?;
        let config_path = inst.dir.path().join("config.toml");
        std::fs::write(&config_path, config(inst.dir.path(), ports, kind))?;
        let log = std::fs::File::create(inst.dir.path().join("appliance.log"))?;
        let child = Command::new("ip")
            .args(["netns", "exec", &inst.ns, BIN, "run", "--config"])
            .arg(&config_path)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()?;
        inst.child = Some(child);
        // Each bridge's own internal port comes with it.
        let interfaces = if ports > 0 { ports + 2 } else { 0 };
        inst.wait_settled(interfaces)?;
        Ok(inst)
    }

    fn wait_settled(&mut self, interfaces: usize) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(300);
        let exported = format!("ovs_appliance_metrics_interfaces {interfaces}\n");
        loop {
            if let Some(Ok(Some(status))) = self.child.as_mut().map(Child::try_wait) {
                bail!("the appliance exited ({status}):\n{}", self.log());
            }
            if let Some(r) = http::get(&self.ns, PORT, "/metrics") {
                let settled = r.body.contains(&exported)
                    && r.body.contains("ovs_appliance_reconcile_converged 1\n")
                    && r.body.contains("ovs_appliance_collector_success{")
                    && !r.body.lines().any(|l| {
                        l.starts_with("ovs_appliance_collector_success") && l.ends_with(" 0")
                    });
                if settled {
                    return Ok(());
                }
            }
            ensure!(
                Instant::now() < deadline,
                "not settled within 300 s:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("appliance.log")).unwrap_or_default()
    }

    pub fn ns(&self) -> &str {
        &self.ns
    }

    fn run_dir(&self) -> PathBuf {
        self.dir.path().join("run")
    }

    pub fn db_sock(&self) -> PathBuf {
        self.run_dir().join("db.sock")
    }

    fn daemon_pid(&self, daemon: &str) -> Option<i32> {
        let text = std::fs::read_to_string(self.run_dir().join(format!("{daemon}.pid"))).ok()?;
        let pid: i32 = text.trim().parse().ok()?;
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
        (comm.trim() == daemon).then_some(pid)
    }

    pub fn vswitchd_ctl(&self) -> Result<String> {
        let pid = self
            .daemon_pid("ovs-vswitchd")
            .context("ovs-vswitchd not running")?;
        Ok(self
            .run_dir()
            .join(format!("ovs-vswitchd.{pid}.ctl"))
            .display()
            .to_string())
    }

    fn appliance_pid(&self) -> Result<u32> {
        Ok(self.child.as_ref().context("not started")?.id())
    }

    /// utime + stime of the appliance process.
    pub fn appliance_cpu_seconds(&self) -> Result<f64> {
        cpu_seconds(self.appliance_pid()? as i32)
    }

    /// utime + stime of ovsdb-server and ovs-vswitchd together.
    pub fn daemons_cpu_seconds(&self) -> Result<f64> {
        let mut total = 0.0;
        for daemon in ["ovsdb-server", "ovs-vswitchd"] {
            let pid = self
                .daemon_pid(daemon)
                .with_context(|| format!("{daemon} not running"))?;
            total += cpu_seconds(pid)?;
        }
        Ok(total)
    }

    /// Fields of the appliance's /proc/PID/status (given in kB there), in bytes.
    fn appliance_status_bytes<const N: usize>(&self, names: [&str; N]) -> Result<[u64; N]> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.appliance_pid()?))?;
        let mut out = [0; N];
        for (value, name) in out.iter_mut().zip(names) {
            let line = status
                .lines()
                .find(|l| l.starts_with(name))
                .with_context(|| format!("{name} in status"))?;
            let kb: u64 = line.split_whitespace().nth(1).context("value")?.parse()?;
            *value = kb * 1024;
        }
        Ok(out)
    }

    /// VmRSS and VmHWM of the appliance process, in bytes.
    pub fn appliance_memory(&self) -> Result<(u64, u64)> {
        let [rss, peak] = self.appliance_status_bytes(["VmRSS:", "VmHWM:"])?;
        Ok((rss, peak))
    }

    /// The appliance's resident memory split as the kernel counts it: anonymous (heap, stacks)
    /// and file-backed (the binary and libraries), in bytes.
    pub fn appliance_rss_split(&self) -> Result<(u64, u64)> {
        let [anon, file] = self.appliance_status_bytes(["RssAnon:", "RssFile:"])?;
        Ok((anon, file))
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let pid = nix::unistd::Pid::from_raw(child.id() as i32);
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
            let deadline = Instant::now() + Duration::from_secs(30);
            while matches!(child.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        for daemon in ["ovs-vswitchd", "ovsdb-server"] {
            if let Some(pid) = self.daemon_pid(daemon) {
                let pid = nix::unistd::Pid::from_raw(pid);
                let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
            }
        }
        let _ = Command::new("ip").args(["netns", "del", &self.ns]).output();
    }
}

/// utime + stime of `pid`, from /proc/<pid>/stat.
fn cpu_seconds(pid: i32) -> Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let rest = &stat[stat.rfind(')').context("stat")? + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    // Fields 14 and 15 (utime, stime); `rest` starts at field 3.
    let ticks: u64 = fields[11].parse::<u64>()? + fields[12].parse::<u64>()?;
    let hz = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)?.unwrap_or(100);
    Ok(ticks as f64 / hz as f64)
}
