//! The compared sides, each one process (or, for "ovs-vsctl + ip", two in a row) timed from just
//! before its spawn until it has exited:
//! - `ovs-appliance apply --config F`;
//! - one batched `ovs-vsctl` (`add-br`, `set bridge`, `add-port`, `set interface` for every port,
//!   chained with `--`), which waits for ovs-vswitchd as apply does;
//! - the same `ovs-vsctl`, then `ip -batch` setting every port up, as apply also does;
//! - the floor: this bench's own binary in `floor` mode (see [`floor`]).

use std::fs::{self, File};
use std::io::{BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{bail, ensure, Context, Result};
use serde_json::{json, Value};

use crate::fresh::{links_up_batch, Fresh};
use crate::workload::Shape;

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Side {
    Apply,
    Vsctl,
    VsctlLinks,
    Floor,
}

pub const SIDES: [Side; 4] = [Side::Apply, Side::Vsctl, Side::VsctlLinks, Side::Floor];

/// What apply logs at debug level for its phases (module filters, so that no other debug line
/// is written: at 1000 ports some are one per port).
const PHASE_LOG: &str = "info,ovs_appliance::app::commands=debug,\
                         ovs_appliance::reconcile::session=debug,ovs_appliance::reconcile::apply=debug";

impl Side {
    pub fn label(self) -> &'static str {
        match self {
            Side::Apply => "`ovs-appliance apply`",
            Side::Vsctl => "batched `ovs-vsctl`",
            Side::VsctlLinks => "batched `ovs-vsctl`, then `ip -batch` links up",
            Side::Floor => "floor (raw JSON-RPC process)",
        }
    }
}

/// One timed run of `side` on fresh daemons, applying `ports` internal ports; the time, and when
/// it was spawned (wall clock, for apply's log timestamps).
pub fn run(side: Side, fresh: &Fresh, ports: usize) -> Result<(Duration, SystemTime)> {
    let shape = Shape::Ports(ports);
    let out = fresh.path("side.log");
    let mut cmds = match side {
        Side::Apply => {
            let d = fresh.dir.path().display();
            let toml = shape.config_toml().replacen(
                "[ovs]\n",
                &format!("[ovs]\nrun_dir = \"{d}/run\"\ndb_dir = \"{d}/db\"\n"),
                1,
            );
            fs::write(fresh.path("config.toml"), toml)?;
            let mut cmd = fresh.command(crate::BIN);
            cmd.args(["--log-format", "json", "apply", "--config"])
                .arg(fresh.path("config.toml"))
                .env("OVS_APPLIANCE_LOG", PHASE_LOG);
            vec![cmd]
        }
        Side::Vsctl | Side::VsctlLinks => {
            let mut vsctl = fresh.vsctl(&[]);
            vsctl.args(shape.vsctl_batched());
            let mut cmds = vec![vsctl];
            if side == Side::VsctlLinks {
                let mut ip = fresh.command("ip");
                ip.arg("-batch")
                    .arg(links_up_batch(fresh.dir.path(), ports)?);
                cmds.push(ip);
            }
            cmds
        }
        Side::Floor => {
            let request = fresh.path("floor.json");
            fs::write(&request, floor_request(shape)?)?;
            let mut cmd = fresh.command(std::env::current_exe()?);
            cmd.arg("floor").arg(fresh.db_sock()).arg(&request);
            vec![cmd]
        }
    };
    for cmd in &mut cmds {
        let log = File::options().create(true).append(true).open(&out)?;
        cmd.stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
    }
    let wall = SystemTime::now();
    let t0 = Instant::now();
    for cmd in &mut cmds {
        let status = cmd.status().with_context(|| format!("spawn {cmd:?}"))?;
        if !status.success() {
            let log = fs::read_to_string(&out).unwrap_or_default();
            bail!("{side:?}: {cmd:?}: {status}: {log}");
        }
    }
    Ok((t0.elapsed(), wall))
}

/// The floor's bytes: a `monitor` of `cur_cfg` alone, then the transaction the appliance sends
/// (`Shape::floor_ops`: the rows, owner mark included, `next_cfg += 1`, a select of `next_cfg`),
/// both written at once. No schema, no snapshot of the tables: the floor knows the database is
/// empty, where a client that must plan has to read it first.
fn floor_request(shape: Shape) -> Result<Vec<u8>> {
    let monitor = json!({"id": 0, "method": "monitor",
        "params": ["Open_vSwitch", "floor", {"Open_vSwitch": {"columns": ["cur_cfg"]}}]});
    let mut params = vec![json!("Open_vSwitch")];
    params.extend(shape.floor_ops());
    let transact = json!({"id": 1, "method": "transact", "params": params});
    let mut bytes = serde_json::to_vec(&monitor)?;
    bytes.extend(serde_json::to_vec(&transact)?);
    Ok(bytes)
}

/// `apply_cold floor DB_SOCK REQUEST`: the floor process. Reads the request file, connects,
/// writes it, and reads until the transaction's reply has given its `next_cfg` and the monitor
/// has shown `cur_cfg` reach it (ovs-vswitchd applied the change), as apply and ovs-vsctl wait.
pub fn floor(db_sock: &Path, request: &Path) -> Result<()> {
    let mut bytes = Vec::new();
    File::open(request)?.read_to_end(&mut bytes)?;
    let mut sock = UnixStream::connect(db_sock)?;
    sock.set_read_timeout(Some(Duration::from_secs(120)))?;
    sock.write_all(&bytes)?;
    let reader = BufReader::with_capacity(1 << 16, sock.try_clone()?);
    let mut values = serde_json::Deserializer::from_reader(reader).into_iter::<Value>();
    let (mut cur_cfg, mut next_cfg) = (None, None);
    loop {
        if let (Some(cur), Some(next)) = (cur_cfg, next_cfg) {
            if cur >= next {
                return Ok(());
            }
        }
        let msg = values
            .next()
            .context("ovsdb-server closed the connection")??;
        let cur_in = |updates: &Value| {
            let rows = updates["Open_vSwitch"].as_object()?;
            rows.values().find_map(|r| r["new"]["cur_cfg"].as_i64())
        };
        if msg["method"] == "echo" {
            let reply = json!({"id": msg["id"], "result": msg["params"], "error": null});
            sock.write_all(&serde_json::to_vec(&reply)?)?;
        } else if msg["method"] == "update" {
            cur_cfg = cur_in(&msg["params"][1]).or(cur_cfg);
        } else if msg["id"] == 0 {
            ensure!(msg["error"].is_null(), "monitor: {}", msg["error"]);
            cur_cfg = cur_in(&msg["result"]).or(cur_cfg);
        } else if msg["id"] == 1 {
            let results = msg["result"].as_array().context("transact: no result")?;
            if let Some(e) = results.iter().find(|r| r.get("error").is_some()) {
                bail!("transact failed: {e}");
            }
            let last = results.last().context("transact: no results")?;
            next_cfg = Some(
                last["rows"][0]["next_cfg"]
                    .as_i64()
                    .context("no next_cfg")?,
            );
        }
    }
}
