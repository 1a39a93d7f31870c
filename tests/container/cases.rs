//! The checks of what the README promises about `docker run` and the compose stack (by compose
//! v1 and by compose v2).

use crate::{check, Ctx, IMAGE};
use std::process::Command;
use std::time::{Duration, Instant};

/// The README's one-liner, minus the config mount and image.
pub const RUN_FLAGS: &[&str] = &[
    "--net",
    "host",
    "--cap-add",
    "NET_ADMIN",
    "--cap-add",
    "SYS_MODULE",
    "--cap-add",
    "SYS_NICE",
    "--device",
    "/dev/net/tun",
];

pub fn all(ctx: &Ctx, failures: &mut Vec<String>) {
    check(
        ctx,
        failures,
        "without NET_ADMIN: exit 77 naming --cap-add NET_ADMIN",
        || without_net_admin(ctx),
    );
    lifecycle(ctx, failures);
    check(
        ctx,
        failures,
        "datapath = \"system\" without modules: exit 69 naming -v /lib/modules",
        || system_datapath_unavailable(ctx),
    );
    check(
        ctx,
        failures,
        "compose v1 (docker-compose): up -d brings the bridge up, healthy; down removes the stack",
        || compose_up_down(ctx, Compose::V1),
    );
    check(
        ctx,
        failures,
        "compose v2 (docker compose): up -d brings the bridge up, healthy; down removes the stack",
        || compose_up_down(ctx, Compose::V2),
    );
}

/// Compose v1 (Python, Debian 12's `docker-compose`) or v2 (Go, the `docker compose` plugin:
/// Debian trixie's, from the root scripts/trixie-tools makes).
#[derive(Clone, Copy, Debug)]
enum Compose {
    V1,
    V2,
}

impl Compose {
    /// The command that runs this compose against the tier's engine; None after a skip.
    fn command(self, ctx: &Ctx) -> Option<Command> {
        match self {
            Compose::V1 => {
                let mut cmd = Command::new("docker-compose");
                ctx.engine.env(&mut cmd);
                Some(cmd)
            }
            Compose::V2 => {
                let root = crate::deploy::trixie_tools()?;
                crate::deploy::install_compose_v2(&ctx.engine.dir.join("client"), &root);
                let mut cmd = ctx.engine.docker_cmd();
                cmd.arg("compose");
                Some(cmd)
            }
        }
    }

    fn short(self) -> &'static str {
        match self {
            Compose::V1 => "v1",
            Compose::V2 => "v2",
        }
    }
}

fn config_mount(dir: &std::path::Path) -> String {
    format!("{}:/etc/ovs-appliance:ro", dir.display())
}

fn without_net_admin(ctx: &Ctx) {
    let cfg = ctx.config_dir("no-net-admin", "");
    let name = format!("{}-nocap", ctx.tag);
    let mount = config_mount(&cfg);
    ctx.engine.docker_ok(&[
        "run",
        "-d",
        "--name",
        &name,
        "--net",
        "host",
        "--device",
        "/dev/net/tun",
        "-v",
        &mount,
        IMAGE,
    ]);
    let code = ctx.wait_exit(&name, Duration::from_secs(30));
    let logs = ctx.logs(&name);
    ctx.engine.docker(&["rm", "-v", &name]);
    assert_eq!(code, 77, "{logs}");
    assert!(logs.contains("--cap-add NET_ADMIN"), "{logs}");
}

fn system_datapath_unavailable(ctx: &Ctx) {
    let cfg = ctx.config_dir("system", "[ovs]\ndatapath = \"system\"\n");
    let name = format!("{}-system", ctx.tag);
    let mount = config_mount(&cfg);
    let mut args = vec!["run", "-d", "--name", &name];
    args.extend_from_slice(RUN_FLAGS);
    args.extend_from_slice(&["-v", &mount, IMAGE]);
    ctx.engine.docker_ok(&args);
    let code = ctx.wait_exit(&name, Duration::from_secs(30));
    let logs = ctx.logs(&name);
    ctx.engine.docker(&["rm", "-v", &name]);
    assert_eq!(code, 69, "{logs}");
    assert!(logs.contains("-v /lib/modules:/lib/modules:ro"), "{logs}");
}

/// One appliance through its life: programmed, seen from the host, exec'd into, healthy,
/// stopped; then a new container on the same database volume.
fn lifecycle(ctx: &Ctx, failures: &mut Vec<String>) {
    let t = &ctx.tag;
    let bridge = format!("{t}b0");
    let ports = [format!("{t}p0"), format!("{t}p1")];
    let config = format!(
        "[[bridges]]\nname = \"{bridge}\"\n  [[bridges.ports]]\n  name = \"{}\"\n  type = \"internal\"\n  [[bridges.ports]]\n  name = \"{}\"\n  type = \"internal\"\n",
        ports[0], ports[1]
    );
    let cfg = ctx.config_dir("lifecycle", &config);
    let run_dir = ctx.dir.path().join("lifecycle-run");
    std::fs::create_dir_all(&run_dir).unwrap();
    let volume = format!("{t}-db");
    let first = format!("{t}-first");
    let mounts = [
        config_mount(&cfg),
        format!("{}:/var/run/openvswitch", run_dir.display()),
        format!("{volume}:/etc/openvswitch"),
    ];
    let start = |name: &str| {
        let mut args = vec!["run", "-d", "--name", name];
        args.extend_from_slice(RUN_FLAGS);
        for m in &mounts {
            args.extend_from_slice(&["-v", m]);
        }
        args.push(IMAGE);
        ctx.engine.docker_ok(&args);
    };
    let mut devices = vec![bridge.clone()];
    devices.extend(ports.iter().cloned());
    let vsctl_host = |args: &[&str]| -> String {
        let db = format!("--db=unix:{}/db.sock", run_dir.display());
        let out = crate::common::run(
            Command::new("ovs-vsctl")
                .arg(db)
                .arg("--timeout=5")
                .args(args),
            Duration::from_secs(10),
        );
        assert!(out.status.success(), "host ovs-vsctl {args:?}: {out:?}");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    let exec = |name: &str, args: &[&str]| -> String {
        let mut all = vec!["exec", name, "ovs-vsctl"];
        all.extend_from_slice(args);
        ctx.engine.docker_ok(&all)
    };
    let mut system_id = String::new();
    let mut bridge_uuid = String::new();

    check(ctx, failures, "docker run programs the bridges; the host sees them (ip link, ovs-vsctl on the shared run dir)", || {
        start(&first);
        ctx.wait_links(&devices, Duration::from_secs(30));
        let mut listed: Vec<String> =
            vsctl_host(&["list-ports", &bridge]).lines().map(String::from).collect();
        listed.sort();
        assert_eq!(listed, ports);
    });
    check(
        ctx,
        failures,
        "docker exec ovs-vsctl show works with no flags",
        || {
            let show = exec(&first, &["show"]);
            assert!(show.contains(&format!("Bridge {bridge}")), "{show}");
            system_id = exec(
                &first,
                &["get", "Open_vSwitch", ".", "external_ids:system-id"],
            );
            bridge_uuid = exec(&first, &["get", "Bridge", &bridge, "_uuid"]);
        },
    );
    check(
        ctx,
        failures,
        "no kernel module: auto runs netdev and says so",
        || {
            let logs = ctx.logs(&first);
            assert!(
                logs.contains("falling back to the userspace (netdev) datapath"),
                "{logs}"
            );
            assert_eq!(
                exec(&first, &["get", "Bridge", &bridge, "datapath_type"]),
                "netdev"
            );
        },
    );
    check(
        ctx,
        failures,
        "the container turns healthy (needs /healthz from the metrics server)",
        || {
            crate::common::wait_for(Duration::from_secs(60), "health status healthy", || {
                let s = ctx.engine.docker_ok(&[
                    "inspect",
                    "--format",
                    "{{.State.Health.Status}}",
                    &first,
                ]);
                (s == "healthy").then_some(())
            });
        },
    );
    check(
        ctx,
        failures,
        "docker stop: under 2 s, exit status 0",
        || {
            let t0 = Instant::now();
            ctx.engine.docker_ok(&["stop", &first]);
            let took = t0.elapsed();
            let code = ctx.wait_exit(&first, Duration::from_secs(5));
            ctx.note(format!(
                "docker stop took {:.0} ms, exit status {code}",
                took.as_secs_f64() * 1e3
            ));
            assert_eq!(code, 0, "{}", ctx.logs(&first));
            assert!(took < Duration::from_secs(2), "{took:?}");
        },
    );
    ctx.engine.docker(&["rm", &first]);
    let second = format!("{t}-second");
    check(
        ctx,
        failures,
        "the database volume outlives the container: same system-id and bridge, no duplicate rows",
        || {
            start(&second);
            ctx.wait_links(&devices, Duration::from_secs(30));
            crate::common::wait_for(
                Duration::from_secs(20),
                "ovs-vsctl in the second container",
                || {
                    ctx.engine
                        .docker(&["exec", &second, "ovs-vsctl", "show"])
                        .status
                        .success()
                        .then_some(())
                },
            );
            assert!(!system_id.is_empty());
            assert_eq!(
                exec(
                    &second,
                    &["get", "Open_vSwitch", ".", "external_ids:system-id"]
                ),
                system_id
            );
            assert_eq!(
                exec(&second, &["get", "Bridge", &bridge, "_uuid"]),
                bridge_uuid
            );
            for (table, rows) in [("Bridge", 1), ("Port", 3), ("Interface", 3)] {
                let names = exec(&second, &["--bare", "--columns=name", "list", table]);
                let mut names: Vec<&str> = names.split_whitespace().collect();
                let all = names.len();
                names.sort();
                names.dedup();
                assert_eq!(names.len(), all, "{table} has duplicate rows: {names:?}");
                assert_eq!(all, rows, "{table}: {names:?}");
            }
        },
    );
    ctx.engine.docker(&["rm", "-f", &second]);
    ctx.engine.docker(&["volume", "rm", &volume]);
    ctx.delete_links(&devices);
}

/// The compose stack under the tier's engine, as README says to run it: `up -d`, the bridge of
/// its config appears and the container turns healthy; `stop` exits 0; `down --volumes` leaves
/// no container, volume or network of the project.
fn compose_up_down(ctx: &Ctx, which: Compose) {
    let v = which.short();
    let Some(mut probe) = which.command(ctx) else {
        return;
    };
    let version = crate::common::run(probe.arg("version"), Duration::from_secs(30));
    let version = String::from_utf8_lossy(&version.stdout);
    let version = version
        .lines()
        .next()
        .unwrap_or_default()
        .trim()
        .to_string();
    let major = if version.contains("version 1.") {
        "v1"
    } else {
        "v2"
    };
    assert_eq!(major, v, "{version}");
    let bridge = format!("{}c{v}", ctx.tag);
    let cfg = ctx.config_dir(
        &format!("compose-{v}"),
        &format!("[[bridges]]\nname = \"{bridge}\"\n"),
    );
    let modules = ctx.dir.path().join("no-modules");
    std::fs::create_dir_all(&modules).unwrap();
    let project = format!("{}c{v}", ctx.tag);
    let file = crate::deploy::repo().join("compose/ovs-appliance/compose.yaml");
    let compose = |args: &[&str]| {
        let mut cmd = which.command(ctx).unwrap();
        cmd.arg("--file")
            .arg(&file)
            .args(["--project-name", &project])
            .args(args)
            .env("OVS_APPLIANCE_IMAGE", IMAGE)
            .env("OVS_APPLIANCE_CONFIG_DIR", &cfg)
            // This machine has no /lib/modules; the engine would create it on the host.
            .env("OVS_APPLIANCE_MODULES", &modules);
        let out = crate::common::run(&mut cmd, Duration::from_secs(120));
        assert!(out.status.success(), "compose {v} {args:?}: {out:?}");
    };
    let name = "ovs-appliance";
    let began = Instant::now();
    compose(&["up", "-d"]);
    let up = began.elapsed();
    let took = ctx.wait_links(std::slice::from_ref(&bridge), Duration::from_secs(30));
    crate::common::wait_for(Duration::from_secs(60), "health status healthy", || {
        let s = ctx
            .engine
            .docker_ok(&["inspect", "--format", "{{.State.Health.Status}}", name]);
        (s == "healthy").then_some(())
    });
    ctx.note(format!(
        "compose {v} ({version}): `up -d` returned in {:.1} s, bridge present {:.0} ms later, healthy {:.1} s after `up -d`",
        up.as_secs_f64(),
        took.as_secs_f64() * 1e3,
        began.elapsed().as_secs_f64()
    ));
    compose(&["stop"]);
    let code = ctx.wait_exit(name, Duration::from_secs(20));
    assert_eq!(code, 0, "{}", ctx.logs(name));
    compose(&["down", "--volumes"]);
    let label = format!("label=com.docker.compose.project={project}");
    assert_eq!(ctx.engine.docker_ok(&["ps", "-aq", "--filter", &label]), "");
    assert_eq!(
        ctx.engine
            .docker_ok(&["network", "ls", "-q", "--filter", &label]),
        ""
    );
    assert_eq!(
        ctx.engine
            .docker_ok(&["volume", "ls", "-q", "--filter", "name=ovs-appliance-db"]),
        ""
    );
    ctx.delete_links(&[bridge]);
}
