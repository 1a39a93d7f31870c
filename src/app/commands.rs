//! `plan`, `apply` and `status`: one-shot commands against the live OVSDB of the config's
//! run_dir, for operators and scripts.

use super::{Error, DATAPATH_KEY};
use crate::config::{Config, DatapathMode};
use crate::ovsdb::Datum;
use crate::preflight::{Datapath, KernelPaths};
use crate::reconcile::{self, Desired, Observed, Session};
use serde_json::json;
use std::path::Path;
use std::time::Duration;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long `plan` and `status` may take in all, whatever the database does: a server that
/// dropped every connection kept them reconnecting for ever (issue 14).
const READ_DEADLINE: Duration = Duration::from_secs(15);
/// How long `apply` may take in all: ovs-vswitchd gets `APPLY_TIMEOUT` to apply a change, and
/// a contended database up to five attempts.
const APPLY_DEADLINE: Duration = Duration::from_secs(120);
const APPLY_TIMEOUT: Duration = Duration::from_secs(60);

/// Runs a one-shot command's work on a fresh runtime within `deadline`.
fn block_on_within<T>(
    command: &'static str,
    deadline: Duration,
    work: impl std::future::Future<Output = Result<T, Error>>,
) -> Result<T, Error> {
    runtime()?.block_on(async {
        tokio::time::timeout(deadline, work)
            .await
            .map_err(|_| Error::Deadline {
                command,
                after: deadline,
            })?
    })
}

fn runtime() -> Result<tokio::runtime::Runtime, Error> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(Error::Runtime)
}

/// The datapath bridges get by default: what `run` resolved and stamped, else what the config
/// and the kernel say now (without loading anything).
fn datapath(config: &Config, observed: &Observed, kernel: &KernelPaths) -> Datapath {
    let stamped = observed
        .root
        .as_ref()
        .and_then(|(_, row)| row.get("external_ids"))
        .and_then(|ids| ids.map_get(DATAPATH_KEY))
        .and_then(|a| a.as_str().map(str::to_string));
    match (stamped.as_deref(), config.ovs.datapath) {
        (Some("system"), _) => Datapath::System,
        (Some("netdev"), _) => Datapath::Netdev,
        (_, DatapathMode::System) => Datapath::System,
        (_, DatapathMode::Netdev) => Datapath::Netdev,
        (_, DatapathMode::Auto) if kernel.sys.join("module/openvswitch").exists() => {
            Datapath::System
        }
        _ => Datapath::Netdev,
    }
}

async fn open(config: &Config) -> Result<Session, Error> {
    let socket = crate::rundir::db_sock(&config.ovs.run_dir);
    // A missing socket, or one nobody accepts on, is known at once: say so rather than wait
    // CONNECT_TIMEOUT and blame a socket that "did not answer".
    if let Err(reason) = std::os::unix::net::UnixStream::connect(&socket) {
        if matches!(
            reason.kind(),
            std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused
        ) {
            return Err(Error::NothingListens { socket, reason });
        }
    }
    Ok(Session::open(&socket, CONNECT_TIMEOUT).await?)
}

/// `plan`: what `run` would send now, as text or JSON.
pub fn plan(config_path: Option<&Path>, kernel: &KernelPaths, as_json: bool) -> Result<(), Error> {
    let config = Config::load(config_path)?;
    block_on_within("plan", READ_DEADLINE, async {
        let session = open(&config).await?;
        let observed = session.observed();
        let desired = Desired::from_config(&config, datapath(&config, &observed, kernel));
        let plan = reconcile::plan(&desired, &observed);
        let ops = reconcile::operations(&plan, &desired, &observed);
        if as_json {
            let out = json!({
                "changes": plan.changes.iter().map(ToString::to_string).collect::<Vec<_>>(),
                "conflicts": plan.conflicts,
                "operations": ops.iter().map(|o| o.to_json()).collect::<Vec<_>>(),
            });
            println!("{}", serde_json::to_string_pretty(&out).unwrap_or_default());
        } else {
            print!("{}", super::expansions_text(&config));
            print_plan(&plan);
        }
        Ok(())
    })
}

fn print_plan(plan: &reconcile::Plan) {
    if plan.is_empty() {
        println!("no changes: the database matches the config");
    }
    for change in &plan.changes {
        println!("~ {change}");
    }
    for conflict in &plan.conflicts {
        println!("! {conflict}");
    }
}

/// `apply`: one reconcile pass, then exit.
pub fn apply(config_path: Option<&Path>, kernel: &KernelPaths) -> Result<(), Error> {
    // The first of the phase events (see `Session::open`): exec to here is the process's start.
    tracing::debug!("phase: started");
    let config = Config::load(config_path)?;
    block_on_within("apply", APPLY_DEADLINE, async {
        let mut session = open(&config).await?;
        let desired = Desired::from_config(&config, datapath(&config, &session.observed(), kernel));
        let applied = reconcile::reconcile_once(&mut session, &desired, APPLY_TIMEOUT).await?;
        print_plan(&applied.plan);
        if let (Some(c), Some(a)) = (applied.committed, applied.applied) {
            println!(
                "applied {} operation(s): committed in {:.1} ms, applied by ovs-vswitchd in {:.1} ms",
                applied.operations,
                c.as_secs_f64() * 1e3,
                a.as_secs_f64() * 1e3
            );
        }
        match crate::netlink::Rtnetlink::new() {
            Ok(netlink) => {
                let record = config.ovs.db_dir.join(super::ADDRESS_RECORD);
                reconcile::Addresses::new(netlink, record)
                    .apply(&desired)
                    .await;
            }
            Err(e) => tracing::warn!(%e, "internal port addresses not set"),
        }
        tracing::debug!("phase: links up");
        Ok(())
    })
}

/// `status`: daemons, bridges and ports (owned or not), drift, interface errors.
pub fn status(config_path: Option<&Path>, kernel: &KernelPaths) -> Result<(), Error> {
    let config = Config::load(config_path)?;
    // Always printed, first, and even when the database is down: ovs-vsctl, ovs-ofctl,
    // ovs-appctl and ovn-controller only find the sockets through these variables when run_dir
    // is not their built-in default, and a line that is always there is one a user can rely on.
    println!("{}", env_line(&config.ovs.run_dir, &config.ovs.db_dir));
    for daemon in ["ovsdb-server", "ovs-vswitchd"] {
        let pidfile = crate::rundir::pidfile(&config.ovs.run_dir, daemon);
        let pid = std::fs::read_to_string(&pidfile)
            .ok()
            .and_then(|t| t.trim().parse::<i32>().ok());
        // The daemon's lock on its pidfile, not /proc: it may run in another PID namespace.
        match (pid, crate::supervisor::pidfile_held(&pidfile)) {
            (Some(p), true) => println!("{daemon}: running (pid {p} in its PID namespace)"),
            (None, true) => println!("{daemon}: running"),
            _ => println!("{daemon}: not running"),
        }
    }
    // From the files, so they show while the daemons are down too.
    for line in snapshot_lines(&config.ovs.db_dir, std::time::SystemTime::now()) {
        println!("{line}");
    }
    // The supervisor's judgment (up, busy or down) is known only inside the running appliance:
    // ask its /healthz, briefly, and say so when nothing answers there.
    let url = healthz_url(config.metrics.listen);
    match super::http_probe::get(&url, Duration::from_secs(1)) {
        Ok((_, body)) => {
            for line in body.lines().filter(|l| !l.is_empty()) {
                println!("appliance: {line}");
            }
        }
        Err(e) => println!("appliance: no answer at {url} ({e})"),
    }
    block_on_within("status", READ_DEADLINE, async {
        let session = open(&config).await?;
        let observed = session.observed();
        let cfg = |col: &str| {
            observed
                .root
                .as_ref()
                .and_then(|(_, r)| r.get(col))
                .and_then(Datum::as_i64)
                .unwrap_or(0)
        };
        println!("next_cfg {} cur_cfg {}", cfg("next_cfg"), cfg("cur_cfg"));
        for line in reconcile::describe(&observed, &config.ovs.instance) {
            println!("{line}");
        }
        let desired = Desired::from_config(&config, datapath(&config, &observed, kernel));
        let plan = reconcile::plan(&desired, &observed);
        if plan.is_empty() {
            println!("drift: none");
            for conflict in &plan.conflicts {
                println!("! {conflict}");
            }
        } else {
            println!("drift: {} change(s) pending", plan.changes.len());
            print_plan(&plan);
        }
        for e in reconcile::interface_errors(&observed, &config.ovs.instance) {
            // "interface eth9: no such device: could not open ..." or "...: refused: ...".
            println!("error: {e} (ofport {:?})", e.ofport);
        }
        Ok(())
    })
}

/// One line per bridge's flow snapshot: its age and flow count, or why it cannot be read.
fn snapshot_lines(db_dir: &Path, now: std::time::SystemTime) -> Vec<String> {
    crate::supervisor::flows::describe(db_dir)
        .into_iter()
        .map(|(bridge, read)| match read {
            Ok((taken, flows)) => {
                let age = now.duration_since(taken).unwrap_or_default().as_secs();
                format!("flow snapshot {bridge}: {flows} flows, written {age} s ago")
            }
            Err(e) => format!("flow snapshot {bridge}: unreadable: {e}"),
        })
        .collect()
}

/// Where the appliance with `listen` answers `/healthz` for a client on the same host.
pub fn healthz_url(listen: std::net::SocketAddr) -> String {
    format!(
        "http://{}/healthz",
        crate::config::MetricsConfig::local(listen)
    )
}

/// The shell line that points OVS's own tools at this appliance's sockets and database.
pub fn env_line(run_dir: &Path, db_dir: &Path) -> String {
    format!(
        "export OVS_RUNDIR={} OVS_DBDIR={}",
        shell_quote(&run_dir.display().to_string()),
        shell_quote(&db_dir.display().to_string())
    )
}

/// Quotes for a POSIX shell only when the text needs it, so the common line stays readable.
fn shell_quote(text: &str) -> String {
    let plain = !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-+:@%".contains(c));
    if plain {
        text.to_string()
    } else {
        format!("'{}'", text.replace('\'', "'\\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn healthz_is_asked_where_the_listener_answers() {
        let url = |s: &str| healthz_url(s.parse().unwrap());
        assert_eq!(url("127.0.0.1:9476"), "http://127.0.0.1:9476/healthz");
        assert_eq!(url("0.0.0.0:9100"), "http://127.0.0.1:9100/healthz");
        assert_eq!(url("[::]:9100"), "http://[::1]:9100/healthz");
        assert_eq!(url("[fd00::5]:80"), "http://[fd00::5]:80/healthz");
    }

    #[test]
    fn env_line_quotes_only_what_the_shell_would_split() {
        assert_eq!(
            env_line(Path::new("/run/ovs"), Path::new("/etc/openvswitch")),
            "export OVS_RUNDIR=/run/ovs OVS_DBDIR=/etc/openvswitch"
        );
        assert_eq!(
            env_line(Path::new("/tmp/a b"), Path::new("/tmp/it's")),
            "export OVS_RUNDIR='/tmp/a b' OVS_DBDIR='/tmp/it'\\''s'"
        );
    }
}
