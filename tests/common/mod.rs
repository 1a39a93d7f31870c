//! Tier-2 harness: the appliance binary started for real, each test in its own network namespace
//! and temp dir, everything it started killed by PID in Drop even when the test panics.
//!
//! Other sessions may run OVS on this machine: nothing here touches /var/run/openvswitch, and
//! only processes this harness started (or that name our temp run_dir) are ever signalled.
#![allow(dead_code)]

pub mod http;
pub mod net;
pub mod scrape;
#[path = "../skip/mod.rs"]
pub mod skip;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_ovs-appliance");

/// True when the test can run; otherwise a skip by the one rule of `tests/skip/mod.rs`
/// (a failure under OVS_APPLIANCE_REQUIRE_ALL=1).
pub fn require_real_ovs() -> bool {
    require_real_ovs_and(&[])
}

/// As `require_real_ovs`, with more programs the test needs (e.g. `prometheus`, `promtool`).
pub fn require_real_ovs_and(extra: &[&str]) -> bool {
    let mut missing = Vec::new();
    for bin in extra {
        if !on_path(bin) {
            missing.push(format!("{bin} not on PATH"));
        }
    }
    if !nix::unistd::Uid::effective().is_root() {
        missing.push("not root".to_string());
    }
    for bin in [
        "ovsdb-server",
        "ovs-vswitchd",
        "ovsdb-tool",
        "ovs-vsctl",
        "ovs-appctl",
        "ip",
        "capsh",
        "ping",
        "iperf3",
        "ethtool",
    ] {
        if !on_path(bin) {
            missing.push(format!("{bin} not on PATH"));
        }
    }
    if !Path::new("/dev/net/tun").exists() {
        missing.push("/dev/net/tun missing".into());
    }
    can_run(missing)
}

/// True when every program in `bins` is on PATH (no OVS or root needed); else as
/// `require_real_ovs`.
pub fn require_programs(bins: &[&str]) -> bool {
    let missing = bins
        .iter()
        .filter(|b| !on_path(b))
        .map(|b| format!("{b} not on PATH"))
        .collect();
    can_run(missing)
}

fn can_run(missing: Vec<String>) -> bool {
    skip::can_run(&missing)
}

fn on_path(bin: &str) -> bool {
    std::env::var("PATH")
        .unwrap_or_default()
        .split(':')
        .any(|d| Path::new(d).join(bin).is_file())
}

/// Runs a command to its end, killed after `timeout`; panics if it cannot be started.
pub fn run(cmd: &mut Command, timeout: Duration) -> std::process::Output {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("failed to start {cmd:?}: {e}"));
    let deadline = Instant::now() + timeout;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("{cmd:?} did not finish within {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    child.wait_with_output().unwrap()
}

/// Polls `f` until it returns Some, or panics with `what` after `timeout`.
pub fn wait_for<T>(timeout: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        if Instant::now() > deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A named network namespace, deleted on drop.
pub struct Netns {
    pub name: String,
}

impl Netns {
    pub fn new() -> Netns {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "ovsa-t{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let out = run(
            Command::new("ip").args(["netns", "add", &name]),
            Duration::from_secs(10),
        );
        assert!(out.status.success(), "ip netns add {name}: {out:?}");
        // Loopback is down in a new namespace: the metrics listener binds 127.0.0.1 there.
        let out = run(
            Command::new("ip").args(["-n", &name, "link", "set", "lo", "up"]),
            Duration::from_secs(10),
        );
        assert!(out.status.success(), "lo up in {name}: {out:?}");
        Netns { name }
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = run(
            Command::new("ip").args(["netns", "del", &self.name]),
            Duration::from_secs(10),
        );
    }
}

/// One appliance: temp run_dir/db_dir/config, its netns, the running binary.
pub struct Appliance {
    pub dir: tempfile::TempDir,
    pub netns: Netns,
    pub child: Option<Child>,
    pub extra_args: Vec<String>,
    /// Environment for the binary (the config may name variables).
    pub env: Vec<(String, String)>,
    /// A config file of the test's own instead of the one `write_config` makes.
    pub shared_config: Option<PathBuf>,
}

impl Appliance {
    /// Prepares (does not start) an appliance whose config is `[ovs]` paths plus `extra_toml`.
    pub fn new(extra_toml: &str) -> Appliance {
        let dir = tempfile::Builder::new().prefix("ovsa-").tempdir().unwrap();
        let app = Appliance {
            dir,
            netns: Netns::new(),
            child: None,
            extra_args: Vec::new(),
            env: Vec::new(),
            shared_config: None,
        };
        app.write_config(extra_toml);
        app
    }

    pub fn write_config(&self, extra_toml: &str) {
        let config = format!(
            "[ovs]\nrun_dir = \"{}\"\ndb_dir = \"{}\"\n{extra_toml}",
            self.run_dir().display(),
            self.db_dir().display()
        );
        fs::write(self.config(), config).unwrap();
    }

    pub fn run_dir(&self) -> PathBuf {
        self.dir.path().join("run")
    }
    pub fn db_dir(&self) -> PathBuf {
        self.dir.path().join("db")
    }
    pub fn config(&self) -> PathBuf {
        match &self.shared_config {
            Some(path) => path.clone(),
            None => self.dir.path().join("config.toml"),
        }
    }
    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("appliance.log")
    }
    pub fn log(&self) -> String {
        fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// The command that starts the binary inside the namespace, optionally under a wrapper.
    pub fn command(&self, wrapper: &[&str], subcommand: &str) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.netns.name]);
        cmd.envs(self.env.iter().map(|(k, v)| (k, v)));
        cmd.args(wrapper);
        let mut line = vec![BIN.to_string(), subcommand.into(), "--config".into()];
        line.push(self.config().display().to_string());
        line.extend(self.extra_args.iter().cloned());
        if wrapper.is_empty() {
            cmd.args(&line);
        } else {
            // capsh and similar take a shell command line.
            let quoted: Vec<String> = line.iter().map(|a| format!("'{a}'")).collect();
            cmd.args(["-c", &format!("exec {}", quoted.join(" "))]);
        }
        cmd
    }

    /// Starts `run` in the background, logging to the temp dir.
    pub fn start(&mut self) {
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .unwrap();
        let child = self
            .command(&[], "run")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
    }

    /// Starts and waits until both daemons answer.
    pub fn start_ready(&mut self) {
        self.start();
        self.wait_ready();
    }

    pub fn wait_ready(&mut self) {
        wait_for(
            Duration::from_secs(20),
            "ovs-vsctl show and ovs-vswitchd",
            || {
                assert!(self.still_running(), "appliance exited:\n{}", self.log());
                // Only this appliance's own daemons count: after a kill -9 its predecessor's
                // go on answering until the new one has stopped them.
                let me = self.appliance_pid() as i32;
                let vswitchd = self
                    .pid("ovs-vswitchd")
                    .filter(|p| parent(*p) == Some(me))?;
                self.pid("ovsdb-server")
                    .filter(|p| parent(*p) == Some(me))?;
                (self.vsctl_ok(&["show"]) && self.appctl_ok(vswitchd, "ovs-vswitchd", &["version"]))
                    .then_some(())
            },
        );
    }

    pub fn still_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(c) => c.try_wait().unwrap().is_none(),
            None => false,
        }
    }

    /// Waits for the appliance to exit and returns its status.
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let child = self.child.as_mut().expect("started");
        wait_for(timeout, "the appliance to exit", || {
            child.try_wait().unwrap()
        })
    }

    /// Runs a subcommand to its end (e.g. `check`), returning status and output.
    pub fn oneshot(&self, wrapper: &[&str], subcommand: &str) -> std::process::Output {
        run(
            &mut self.command(wrapper, subcommand),
            Duration::from_secs(60),
        )
    }

    pub fn appliance_pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    /// The live pid of a daemon, from its pidfile, if it is running.
    pub fn pid(&self, daemon: &str) -> Option<i32> {
        let text = fs::read_to_string(self.run_dir().join(format!("{daemon}.pid"))).ok()?;
        let pid: i32 = text.trim().parse().ok()?;
        is_process(pid, daemon).then_some(pid)
    }

    pub fn vsctl(&self, args: &[&str]) -> std::process::Output {
        let mut cmd = Command::new("ovs-vsctl");
        cmd.env("OVS_RUNDIR", self.run_dir())
            .arg("--timeout=5")
            .args(args);
        run(&mut cmd, Duration::from_secs(10))
    }

    pub fn vsctl_ok(&self, args: &[&str]) -> bool {
        self.vsctl(args).status.success()
    }

    pub fn vsctl_stdout(&self, args: &[&str]) -> String {
        let out = self.vsctl(args);
        assert!(out.status.success(), "ovs-vsctl {args:?}: {out:?}");
        String::from_utf8(out.stdout).unwrap()
    }

    pub fn appctl_ok(&self, pid: i32, daemon: &str, args: &[&str]) -> bool {
        let ctl = self.run_dir().join(format!("{daemon}.{pid}.ctl"));
        let mut cmd = Command::new("ovs-appctl");
        cmd.arg("-t").arg(ctl).arg("--timeout=2").args(args);
        run(&mut cmd, Duration::from_secs(5)).status.success()
    }

    /// Children of the appliance that are zombies (exited, not reaped).
    pub fn zombie_children(&self) -> Vec<i32> {
        let ppid = self.appliance_pid() as i32;
        processes()
            .into_iter()
            .filter(|p| p.ppid == ppid && p.state == 'Z')
            .map(|p| p.pid)
            .collect()
    }

    pub fn signal(&self, signal: nix::sys::signal::Signal) {
        let pid = nix::unistd::Pid::from_raw(self.appliance_pid() as i32);
        nix::sys::signal::kill(pid, signal).unwrap();
    }
}

impl Drop for Appliance {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
        // Daemons are killed by the pids they wrote into our own temp run_dir, only when
        // /proc says they are that program.
        for daemon in ["ovs-vswitchd", "ovsdb-server"] {
            if let Some(pid) = self.pid(daemon) {
                kill(pid, nix::sys::signal::Signal::SIGKILL);
            }
        }
        if std::thread::panicking() {
            eprintln!("--- appliance log ---\n{}", self.log());
        }
    }
}

pub fn kill(pid: i32, signal: nix::sys::signal::Signal) {
    let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), signal);
}

/// Whether `pid` exists and runs the program `comm`.
pub fn is_process(pid: i32, comm: &str) -> bool {
    fs::read_to_string(format!("/proc/{pid}/comm"))
        .map(|c| c.trim() == comm)
        .unwrap_or(false)
}

/// The parent of `pid`, from /proc.
pub fn parent(pid: i32) -> Option<i32> {
    proc_stat(pid).map(|p| p.ppid)
}

pub struct Proc {
    pub pid: i32,
    pub ppid: i32,
    pub state: char,
}

/// Every process, from /proc/*/stat.
pub fn processes() -> Vec<Proc> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| proc_stat(e.file_name().to_str()?.parse().ok()?))
        .collect()
}

/// One process's state and parent, from /proc/<pid>/stat.
fn proc_stat(pid: i32) -> Option<Proc> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may hold spaces: split after the last ')'.
    let mut fields = stat[stat.rfind(')')? + 2..].split(' ');
    let state = fields.next()?.chars().next()?;
    let ppid = fields.next()?.parse().ok()?;
    Some(Proc { pid, ppid, state })
}
