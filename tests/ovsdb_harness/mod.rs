//! Test harness: a private ovsdb-server in a temp dir, on its own unix socket, killed by PID on
//! drop. Other processes on the machine run OVS too, so nothing here touches the system run dir.
//!
//! Included by the tier-2 OVSDB test files with `#[path]`; a directory, so cargo does not build
//! it as a test binary of its own.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const SCHEMA: &str = "/usr/share/openvswitch/vswitch.ovsschema";

/// False when a binary or the schema is missing: a skip by the one rule of
/// `tests/skip/mod.rs` (a failure under OVS_APPLIANCE_REQUIRE_ALL=1).
pub fn require(what: &[&str]) -> bool {
    let mut missing = Vec::new();
    for bin in what {
        if find_bin(bin).is_none() {
            missing.push(format!("binary {bin} not found"));
        }
    }
    if !Path::new(SCHEMA).exists() {
        missing.push(format!("{SCHEMA} not found"));
    }
    skip::can_run(&missing)
}

#[path = "../skip/mod.rs"]
mod skip;

pub fn find_bin(name: &str) -> Option<PathBuf> {
    let path = std::env::var("PATH").unwrap_or_default();
    let found = path
        .split(':')
        .chain(["/usr/sbin", "/usr/bin", "/sbin"])
        .map(|d| Path::new(d).join(name))
        .find(|p| p.is_file());
    found
}

/// A running ovsdb-server with a fresh Open_vSwitch database.
pub struct Server {
    pub dir: tempfile::TempDir,
    pub sock: PathBuf,
    pub ctl: PathBuf,
    child: Option<Child>,
}

impl Server {
    /// Creates the db and starts the server; None when skipped.
    pub fn start() -> Option<Server> {
        if !require(&["ovsdb-server", "ovsdb-tool", "ovs-vsctl"]) {
            return None;
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let db = dir.path().join("conf.db");
        let st = Command::new(find_bin("ovsdb-tool").unwrap())
            .arg("create")
            .arg(&db)
            .arg(SCHEMA)
            .status()
            .expect("run ovsdb-tool");
        assert!(st.success(), "ovsdb-tool create failed");
        let mut s = Server {
            sock: dir.path().join("db.sock"),
            ctl: dir.path().join("ovsdb-server.ctl"),
            dir,
            child: None,
        };
        s.spawn();
        Some(s)
    }

    fn spawn(&mut self) {
        let d = self.dir.path();
        let child = Command::new(find_bin("ovsdb-server").unwrap())
            .arg(d.join("conf.db"))
            .arg(format!("--remote=punix:{}", self.sock.display()))
            .arg(format!(
                "--pidfile={}",
                d.join("ovsdb-server.pid").display()
            ))
            .arg(format!("--unixctl={}", self.ctl.display()))
            .arg(format!(
                "--log-file={}",
                d.join("ovsdb-server.log").display()
            ))
            .arg("-vconsole:off")
            .arg("--no-chdir")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn ovsdb-server");
        self.child = Some(child);
        self.wait_ready();
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if std::os::unix::net::UnixStream::connect(&self.sock).is_ok()
                && std::os::unix::net::UnixStream::connect(&self.ctl).is_ok()
            {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!(
            "ovsdb-server did not open {} within 10 s",
            self.sock.display()
        );
    }

    /// SIGKILL to the server we started (by its PID), and reap it.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Sends `sig` to the server we started (SIGSTOP makes a hung server; SIGCONT revives it).
    pub fn signal(&self, sig: nix::sys::signal::Signal) {
        let pid = self.child.as_ref().expect("server running").id();
        let pid = nix::unistd::Pid::from_raw(i32::try_from(pid).expect("pid fits i32"));
        nix::sys::signal::kill(pid, sig).expect("signal ovsdb-server");
    }

    /// Starts the server again on the same db and socket.
    pub fn restart(&mut self) {
        self.kill9();
        self.spawn();
    }

    /// `ovs-vsctl --db=unix:<sock> --no-wait <args>`, for test setup only; returns stdout.
    pub fn vsctl(&self, args: &[&str]) -> String {
        let out = Command::new(find_bin("ovs-vsctl").unwrap())
            .arg(format!("--db=unix:{}", self.sock.display()))
            .arg("--no-wait")
            .arg("--timeout=10")
            .args(args)
            .output()
            .expect("run ovs-vsctl");
        assert!(
            out.status.success(),
            "ovs-vsctl {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// Bounds every await in a test so a bug shows as a failure, not a hung CI run.
pub async fn within<T>(what: &str, fut: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(20), fut)
        .await
        .unwrap_or_else(|_| panic!("{what} took more than 20 s"))
}
