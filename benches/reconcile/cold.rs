//! Measure 4, cold start to applied: a fresh, empty database each run, one netdev bridge `br0`
//! with one internal port `p0`, from just before the launcher is spawned until the bench's own
//! monitor sees `br0` and `p0` and `cur_cfg == next_cfg >= 1` (ovs-vswitchd connected and has
//! applied them). Three launchers, alternating: `ovs-appliance run`, `ovs-ctl start` plus one
//! `ovs-vsctl`, and a hand-written launch script.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};

use crate::proc::{kill_daemon, secs, stop_child, wait_for, Netns, OVSDB, VSWITCHD};
use crate::raw::Raw;
use crate::{Bench, BIN};

const OVS_CTL: &str = "/usr/share/openvswitch/scripts/ovs-ctl";
const ADD_BR: &str = "add-br br0 -- set bridge br0 datapath_type=netdev \
                      -- add-port br0 p0 -- set interface p0 type=internal";

/// The launch people write by hand, after OVS's "Starting Open vSwitch" steps, with the daemon
/// flags the appliance and ovs-ctl use (nice -10, --mlockall, the db: remotes).
const HAND: &str = r#"set -euo pipefail
run=$1 db=$2
export OVS_RUNDIR=$run OVS_DBDIR=$db OVS_LOGDIR=$run
ovsdb-tool create "$db/conf.db" /usr/share/openvswitch/vswitch.ovsschema
nice -n -10 ovsdb-server "$db/conf.db" --remote="punix:$run/db.sock" \
  --remote=db:Open_vSwitch,Open_vSwitch,manager_options \
  --private-key=db:Open_vSwitch,SSL,private_key --certificate=db:Open_vSwitch,SSL,certificate \
  --bootstrap-ca-cert=db:Open_vSwitch,SSL,ca_cert \
  --pidfile="$run/ovsdb-server.pid" --detach --no-chdir --log-file="$run/ovsdb-server.log"
ovs-vsctl --db="unix:$run/db.sock" --no-wait init
nice -n -10 ovs-vswitchd "unix:$run/db.sock" --mlockall \
  --pidfile="$run/ovs-vswitchd.pid" --detach --no-chdir --log-file="$run/ovs-vswitchd.log"
ovs-vsctl --db="unix:$run/db.sock" "#;

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Launch {
    Appliance,
    OvsCtl,
    Hand,
}

pub const LAUNCHES: [Launch; 3] = [Launch::Appliance, Launch::OvsCtl, Launch::Hand];

impl Launch {
    pub fn label(self) -> &'static str {
        match self {
            Launch::Appliance => "`ovs-appliance run` (config: br0 + p0)",
            Launch::OvsCtl => "`ovs-ctl start` + `ovs-vsctl add-br ... add-port ...`",
            Launch::Hand => {
                "hand-written script (ovsdb-tool, ovsdb-server, init, vswitchd, add-br)"
            }
        }
    }
}

/// Milliseconds per launcher (in LAUNCHES order), one unrecorded warm-up round first.
pub fn run(b: &Bench) -> Result<[Vec<f64>; 3]> {
    for how in LAUNCHES {
        start(how)?;
    }
    let mut took: [Vec<f64>; 3] = Default::default();
    for run in 1..=b.runs {
        for (i, how) in LAUNCHES.into_iter().enumerate() {
            b.interrupted()?;
            let t = crate::report::ms(start(how)?);
            eprintln!("cold start {run}/{}: {how:?} {t:.1} ms", b.runs);
            took[i].push(t);
        }
    }
    Ok(took)
}

/// Temp dirs, namespace and everything started for one cold start; Drop cleans up.
struct Cold {
    dir: tempfile::TempDir,
    netns: Option<Netns>,
    child: Option<(Launch, Child)>,
}

impl Cold {
    fn new(how: Launch) -> Result<Cold> {
        let dir = tempfile::Builder::new().prefix("ovsa-rb-cold-").tempdir()?;
        for sub in ["run", "db", "etc", "log"] {
            fs::create_dir(dir.path().join(sub))?;
        }
        // ovs-ctl gets a network namespace of its own from `unshare -n`.
        let netns = (how != Launch::OvsCtl)
            .then(|| Netns::new("ovsa-rb"))
            .transpose()?;
        Ok(Cold {
            dir,
            netns,
            child: None,
        })
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn command(&self, how: Launch) -> Result<Command> {
        let d = self.dir.path().display();
        let ns = || {
            self.netns
                .as_ref()
                .map(|n| n.name.clone())
                .context("no netns")
        };
        let mut cmd = match how {
            Launch::Appliance => {
                let config = format!(
                    "[ovs]\nrun_dir = \"{d}/run\"\ndb_dir = \"{d}/db\"\ndatapath = \"netdev\"\n\
                     [[bridges]]\nname = \"br0\"\n[[bridges.ports]]\nname = \"p0\"\ntype = \"internal\"\n"
                );
                fs::write(self.path("config.toml"), config)?;
                let mut cmd = Command::new("ip");
                cmd.args(["netns", "exec", &ns()?, BIN, "run", "--config"])
                    .arg(self.path("config.toml"));
                cmd
            }
            Launch::OvsCtl => {
                let script = format!(
                    "mount --bind {d}/run /var/run/openvswitch && mount --bind {d}/etc /etc/openvswitch \
                     && mount --bind {d}/log /var/log/openvswitch \
                     && {OVS_CTL} start --system-id=random && ovs-vsctl {ADD_BR}"
                );
                let mut cmd = Command::new("unshare");
                cmd.args(["-m", "-n", "--propagation", "private", "sh", "-c", &script]);
                cmd
            }
            Launch::Hand => {
                let mut cmd = Command::new("ip");
                cmd.args([
                    "netns",
                    "exec",
                    &ns()?,
                    "bash",
                    "-c",
                    &format!("{HAND}{ADD_BR}"),
                ])
                .arg("bash")
                .arg(self.path("run"))
                .arg(self.path("db"));
                cmd
            }
        };
        let log = fs::File::create(self.path("launcher.log"))?;
        cmd.stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        Ok(cmd)
    }

    fn log(&self) -> String {
        fs::read_to_string(self.path("launcher.log")).unwrap_or_default()
    }
}

impl Drop for Cold {
    fn drop(&mut self) {
        if let Some((how, mut child)) = self.child.take() {
            match how {
                Launch::Appliance => stop_child(&mut child, secs(15)),
                _ => {
                    let _ = child.kill();
                    let _ = child.wait();
                }
            }
        }
        for daemon in [VSWITCHD, OVSDB] {
            kill_daemon(&self.path("run"), daemon);
        }
    }
}

/// One cold start; the time from spawn to applied.
fn start(how: Launch) -> Result<Duration> {
    if how == Launch::OvsCtl {
        // ovs-ctl's fixed paths must exist on the host to bind our dirs over them.
        for dir in [
            "/var/run/openvswitch",
            "/var/log/openvswitch",
            "/etc/openvswitch",
        ] {
            fs::create_dir_all(dir).with_context(|| format!("mkdir {dir}"))?;
        }
    }
    let mut cold = Cold::new(how)?;
    let mut cmd = cold.command(how)?;
    let t0 = Instant::now();
    cold.child = Some((how, cmd.spawn().with_context(|| format!("spawn {cmd:?}"))?));
    let ready = until_ready(&cold.path("run/db.sock"), secs(60))
        .with_context(|| format!("{how:?} not ready: {}", cold.log()))?;
    let took = ready - t0;
    if let Some((Launch::OvsCtl | Launch::Hand, child)) = cold.child.as_mut() {
        let status = wait_for(secs(30), || child.try_wait().ok().flatten());
        let ok = status.is_some_and(|s| s.success());
        ensure!(ok, "{how:?} launcher failed ({status:?}): {}", cold.log());
    }
    Ok(took)
}

/// Connects (retrying every 1 ms until db.sock answers), monitors, and returns when the
/// update that makes the instance applied was read.
fn until_ready(db_sock: &Path, timeout: Duration) -> Result<Instant> {
    let deadline = Instant::now() + timeout;
    loop {
        match try_ready(db_sock, timeout) {
            Ok(at) => return Ok(at),
            Err(e) if Instant::now() > deadline => bail!("{e:#}"),
            Err(_) => std::thread::sleep(Duration::from_millis(1)),
        }
    }
}

fn try_ready(db_sock: &Path, timeout: Duration) -> Result<Instant> {
    let mut c = Raw::connect(db_sock, timeout)?;
    let tables: [(&str, &[&str]); 3] = [
        ("Open_vSwitch", &["cur_cfg", "next_cfg"]),
        ("Bridge", &["name"]),
        ("Port", &["name"]),
    ];
    let mut seen = c.monitor(&tables)?;
    c.until(&mut seen, |s| {
        s.has("Bridge", "br0") && s.has("Port", "p0") && s.next_cfg >= 1 && s.settled()
    })
}
