//! What the bench times: readiness over the library's OVSDB client and unixctl (no subprocess in
//! a timed loop, every loop polling each 1-2 ms), a process's exit through a pidfd, and the
//! timestamps of the appliance's own JSON log.

use std::fs::File;
use std::io::{BufRead, BufReader, Seek, SeekFrom};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{ensure, Result};
use ovs_appliance::ovsdb::Client;
use serde_json::{json, Value};
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

pub use crate::logtime::parse_utc;
use crate::proc::read_pid;
use crate::{START_TIMEOUT, VSWITCHD};

/// Every poll loop sleeps this long between attempts (tokio's timer makes it 1-2 ms).
const POLL: Duration = Duration::from_millis(1);

/// Ready: an OVSDB echo answers on db.sock AND the Open_vSwitch row's `datapath_types` is not
/// empty, which ovs-vswitchd writes once it has connected (`ovs-vsctl show` answering, and
/// vswitchd connected). One connection is kept while it lasts.
pub async fn until_ready(sock: &Path, stop: &AtomicBool) -> Result<()> {
    let deadline = Instant::now() + START_TIMEOUT;
    let mut client: Option<Client> = None;
    loop {
        if client.as_ref().is_none_or(Client::is_closed) {
            client = Client::connect_unix(sock)
                .await
                .ok()
                .map(|c| c.with_timeout(Duration::from_secs(2)));
        }
        if let Some(c) = &client {
            match has_datapath_types(c).await {
                Ok(true) => return Ok(()),
                Ok(false) => {}
                Err(_) => client = None,
            }
        }
        ensure!(!stop.load(Ordering::Relaxed), "interrupted");
        ensure!(
            Instant::now() < deadline,
            "not ready within {START_TIMEOUT:?}"
        );
        tokio::time::sleep(POLL).await;
    }
}

async fn has_datapath_types(c: &Client) -> Result<bool> {
    c.echo().await?;
    let select = json!({"op": "select", "table": "Open_vSwitch", "where": [],
                        "columns": ["datapath_types"]});
    let reply = c.transact_raw("Open_vSwitch", vec![select]).await?;
    // A set of one is sent as the bare atom, others as ["set", [...]] (RFC 7047 5.1).
    Ok(match &reply[0]["rows"][0]["datapath_types"] {
        Value::String(_) => true,
        Value::Array(set) => set
            .get(1)
            .and_then(Value::as_array)
            .is_some_and(|e| !e.is_empty()),
        _ => false,
    })
}

/// Polls the pidfile for a pid other than `old`, then that daemon's control socket until
/// `version` answers; returns when it does.
pub async fn until_new_vswitchd(run_dir: &Path, old: i32, stop: &AtomicBool) -> Result<Instant> {
    let deadline = Instant::now() + START_TIMEOUT;
    let pidfile = run_dir.join(format!("{VSWITCHD}.pid"));
    loop {
        if let Some(pid) = read_pid(&pidfile).filter(|p| *p != old) {
            let ctl = run_dir.join(format!("{VSWITCHD}.{pid}.ctl"));
            let call = ovs_appliance::unixctl::call(&ctl, "version", &[]);
            if let Ok(Ok(_)) = tokio::time::timeout(Duration::from_secs(2), call).await {
                return Ok(Instant::now());
            }
        }
        ensure!(!stop.load(Ordering::Relaxed), "interrupted");
        ensure!(
            Instant::now() < deadline,
            "vswitchd not back within {START_TIMEOUT:?}"
        );
        tokio::time::sleep(POLL).await;
    }
}

/// A pidfd for `pid`, opened before the kill: it turns readable when the process has exited,
/// which is when its parent gets SIGCHLD.
pub fn pidfd(pid: i32) -> Result<OwnedFd> {
    // SAFETY: pidfd_open takes two integers and returns a new descriptor or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    ensure!(
        fd >= 0,
        "pidfd_open({pid}): {}",
        std::io::Error::last_os_error()
    );
    // SAFETY: `fd` was just opened by the kernel for us and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// When the process behind `fd` exited (both clocks).
pub async fn exited(fd: OwnedFd) -> Result<(Instant, SystemTime)> {
    // SAFETY: the AsyncFd owns the OwnedFd, so the descriptor stays open and the same for as
    // long as it is registered.
    let fd = unsafe { AsyncFd::register_with_interest(fd, Interest::READABLE) }
        .map_err(std::io::Error::from)?;
    let _ready = tokio::time::timeout(START_TIMEOUT, fd.readable()).await??;
    Ok((Instant::now(), SystemTime::now()))
}

/// Blocks this thread until the process behind `fd` has exited.
pub fn wait_exit(fd: &OwnedFd) -> Result<()> {
    let mut pfd = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    let timeout_ms = START_TIMEOUT.as_millis() as libc::c_int;
    // SAFETY: `pfd` is a valid pollfd for the duration of the call, and the count is 1.
    let n = unsafe { libc::poll(&mut pfd, 1, timeout_ms) };
    ensure!(n == 1, "process did not exit: poll returned {n}");
    Ok(())
}

/// The first line of the appliance's JSON log after byte `offset` with this message (and this
/// daemon, if given), as its timestamp.
pub fn logged(log: &Path, offset: u64, message: &str, daemon: Option<&str>) -> Option<SystemTime> {
    let mut f = File::open(log).ok()?;
    f.seek(SeekFrom::Start(offset)).ok()?;
    BufReader::new(f)
        .lines()
        .map_while(Result::ok)
        .find_map(|line| {
            let v: Value = serde_json::from_str(&line).ok()?;
            let daemon_ok = daemon.is_none_or(|d| v["daemon"] == d);
            (v["message"] == message && daemon_ok)
                .then(|| parse_utc(v["timestamp"].as_str()?))
                .flatten()
        })
}

/// The appliance's cold start, step by step, from its own log lines (message, daemon).
pub const MILESTONES: [(&str, &str, Option<&str>); 6] = [
    ("database created", "created the OVS database", None),
    ("ovsdb-server spawned", "started", Some("ovsdb-server")),
    ("ovsdb-server answering", "answering", Some("ovsdb-server")),
    (
        "Open_vSwitch row written",
        "Open_vSwitch row initialised",
        None,
    ),
    ("ovs-vswitchd spawned", "started", Some(VSWITCHD)),
    (
        "ovs-vswitchd answering `version`",
        "answering",
        Some(VSWITCHD),
    ),
];

/// Milliseconds from `spawned` to the first log line, then to each of [`MILESTONES`].
pub fn milestones(log: &Path, spawned: SystemTime) -> Option<Vec<f64>> {
    let first = first_timestamp(log)?;
    let mut out = vec![since(spawned, first)?];
    for (_, message, daemon) in MILESTONES {
        out.push(since(spawned, logged(log, 0, message, daemon)?)?);
    }
    Some(out)
}

fn first_timestamp(log: &Path) -> Option<SystemTime> {
    let line = BufReader::new(File::open(log).ok()?).lines().next()?.ok()?;
    let v: Value = serde_json::from_str(&line).ok()?;
    parse_utc(v["timestamp"].as_str()?)
}

fn since(start: SystemTime, t: SystemTime) -> Option<f64> {
    Some(t.duration_since(start).ok()?.as_secs_f64() * 1000.0)
}
