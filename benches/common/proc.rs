//! Processes and namespaces, shared by the supervisor and reconcile benches (each includes this
//! file with `#[path]`). Only what a bench started is ever signalled: children it spawned, and
//! daemons named by pidfiles in its own temp dirs whose /proc/<pid>/comm matches.
#![allow(dead_code)]

use std::fs;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use nix::sys::signal::Signal;

pub const VSWITCHD: &str = "ovs-vswitchd";
pub const OVSDB: &str = "ovsdb-server";

/// A network namespace `<prefix>-<our pid>-<n>`, deleted on drop (also when unwinding a panic).
pub struct Netns {
    pub name: String,
}

impl Netns {
    pub fn new(prefix: &str) -> Result<Netns> {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let name = format!("{prefix}-{}-{n}", std::process::id());
        let out = run(Command::new("ip").args(["netns", "add", &name]), secs(10))?;
        ensure!(out.status.success(), "ip netns add {name}: {out:?}");
        Ok(Netns { name })
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let del = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
        if !del.is_ok_and(|o| o.status.success()) {
            eprintln!("warning: ip netns del {} failed", self.name);
        }
    }
}

pub fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

pub fn signal(pid: i32, sig: Signal) -> Result<()> {
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), sig)
        .with_context(|| format!("kill -{sig} {pid}"))
}

pub fn comm(pid: i32) -> Option<String> {
    let text = fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
    Some(text.trim_end().to_string())
}

/// (state, ppid) from /proc/<pid>/stat.
pub fn stat(pid: i32) -> Option<(char, i32)> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may hold spaces: split after the last ')'.
    let mut fields = text.get(text.rfind(')')? + 2..)?.split(' ');
    let state = fields.next()?.chars().next()?;
    Some((state, fields.next()?.parse().ok()?))
}

pub fn alive(pid: i32) -> bool {
    matches!(stat(pid), Some((state, _)) if state != 'Z')
}

pub fn read_pid(pidfile: &Path) -> Option<i32> {
    fs::read_to_string(pidfile).ok()?.trim().parse().ok()
}

/// The pid in `<run_dir>/<daemon>.pid` when that process is alive and is `daemon`.
pub fn live_pid(run_dir: &Path, daemon: &str) -> Option<i32> {
    let pid = read_pid(&run_dir.join(format!("{daemon}.pid")))?;
    (alive(pid) && comm(pid).as_deref() == Some(daemon)).then_some(pid)
}

/// SIGKILL to the daemon our pidfile names, and first to its parent when that is an OVS
/// `--monitor` process (ovs-ctl's default), which would restart it.
pub fn kill_daemon(run_dir: &Path, daemon: &str) {
    let Some(pid) = live_pid(run_dir, daemon) else {
        return;
    };
    if let Some((_, ppid)) = stat(pid) {
        if comm(ppid).as_deref() == Some("monitor") {
            let _ = signal(ppid, Signal::SIGKILL);
        }
    }
    let _ = signal(pid, Signal::SIGKILL);
    if wait_for(secs(5), || (!alive(pid)).then_some(())).is_none() {
        eprintln!("warning: {daemon} {pid} still alive after SIGKILL");
    }
}

/// SIGTERM to a child we spawned (the appliance's orderly stop), SIGKILL after `grace`.
pub fn stop_child(child: &mut Child, grace: Duration) {
    let _ = signal(child.id() as i32, Signal::SIGTERM);
    if wait_for(grace, || child.try_wait().ok().flatten()).is_none() {
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// Runs a command to its end with output captured; killed after `timeout`.
pub fn run(cmd: &mut Command, timeout: Duration) -> Result<Output> {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("spawn {cmd:?}"))?;
    if wait_for(timeout, || child.try_wait().ok().flatten()).is_none() {
        let _ = child.kill();
        let _ = child.wait();
        bail!("{cmd:?} did not finish within {timeout:?}");
    }
    Ok(child.wait_with_output()?)
}

/// Runs a command that must succeed; returns its stdout.
pub fn check(cmd: &mut Command, timeout: Duration) -> Result<String> {
    let out = run(cmd, timeout)?;
    ensure!(
        out.status.success(),
        "{cmd:?}: {}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Polls `f` every 2 ms until it returns Some, or None after `timeout`. Not for timed paths.
pub fn wait_for<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// What every bench here needs before it starts: root, `bins` on PATH, /dev/net/tun.
pub fn require(bins: &[&str]) -> Result<()> {
    ensure!(nix::unistd::Uid::effective().is_root(), "needs root");
    let path = std::env::var("PATH").unwrap_or_default();
    for bin in bins {
        let found = path.split(':').any(|d| Path::new(d).join(bin).is_file());
        ensure!(found, "{bin} not on PATH");
    }
    ensure!(Path::new("/dev/net/tun").exists(), "/dev/net/tun missing");
    Ok(())
}
