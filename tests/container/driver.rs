//! The image as Docker's network driver, set up as README says: the appliance container with
//! `-v /run/docker/plugins:/run/docker/plugins` and a restart policy under the same dockerd as
//! the containers it attaches. A second engine of the test's own (its plugin directory is a
//! directory of the test's) gets the image by `docker save` and `docker load`.

use crate::cases::RUN_FLAGS;
use crate::engine::Engine;
use crate::{check, common, Ctx, IMAGE};
use std::time::{Duration, Instant};

const CLIENT: &str = "ovsa-busybox:ct";

pub fn all(ctx: &Ctx, failures: &mut Vec<String>) {
    check(
        ctx,
        failures,
        "docker driver: the image serves `-d ovs` networks, and after a dockerd restart it and its containers come back attached",
        || image_as_driver(ctx),
    );
}

fn image_as_driver(ctx: &Ctx) {
    let netns = common::Netns::new();
    let plugins = ctx.dir.path().join("driver-plugins");
    std::fs::create_dir_all(&plugins).unwrap();
    let dir = ctx.dir.path().join("driver-engine");
    let mut engine = Engine::start_with_plugins(&dir, Some(&netns.name), Some(&plugins));
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        driver_case(ctx, &mut engine, &netns, &plugins, &dir)
    }));
    engine.stop();
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
}

fn driver_case(
    ctx: &Ctx,
    engine: &mut Engine,
    netns: &common::Netns,
    plugins: &std::path::Path,
    dir: &std::path::Path,
) {
    // The image from the tier's engine.
    let tar = ctx.dir.path().join("image.tar");
    ctx.engine
        .docker_ok(&["save", "-o", &tar.display().to_string(), IMAGE]);
    engine.docker_ok(&["load", "-i", &tar.display().to_string()]);
    let _ = std::fs::remove_file(&tar);
    engine.import_busybox(ctx.dir.path(), CLIENT);

    let config = ctx.config_dir(
        "driver-config",
        "[ovs]\ndatapath = \"netdev\"\n[docker]\nnetwork_driver = \"ovs\"\n[[bridges]]\nname = \"br-lan\"\n",
    );
    let mut args: Vec<String> = ["run", "-d", "--name", "ovsa-driver", "--restart", "always"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    args.extend(RUN_FLAGS.iter().map(|s| s.to_string()));
    args.extend([
        "-v".into(),
        format!("{}:/etc/ovs-appliance:ro", config.display()),
        "-v".into(),
        "/run/docker/plugins:/run/docker/plugins".into(),
        IMAGE.into(),
    ]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    engine.docker_ok(&args);
    let socket = plugins.join("ovs.sock");
    common::wait_for(Duration::from_secs(60), "the driver's socket", || {
        socket.exists().then_some(())
    });
    // br-lan made by reconcile before a network may use it.
    common::wait_for(Duration::from_secs(60), "br-lan", || {
        engine
            .docker(&["exec", "ovsa-driver", "ovs-vsctl", "br-exists", "br-lan"])
            .status
            .success()
            .then_some(())
    });
    engine.docker_ok(&[
        "network",
        "create",
        "-d",
        "ovs",
        "--subnet",
        "10.99.0.0/24",
        "-o",
        "bridge=br-lan",
        "-o",
        "vlan=10",
        "lan",
    ]);
    for name in ["ca", "cb"] {
        engine.docker_ok(&[
            "run",
            "-d",
            "--name",
            name,
            "--network",
            "lan",
            "--restart",
            "always",
            CLIENT,
            "sleep",
            "100000",
        ]);
    }
    let ip_b = engine.docker_ok(&[
        "inspect",
        "-f",
        "{{(index .NetworkSettings.Networks \"lan\").IPAddress}}",
        "cb",
    ]);
    let pings = |engine: &Engine, tries: u32| {
        (0..tries).any(|_| {
            engine
                .docker(&["exec", "ca", "ping", "-c", "1", "-W", "1", &ip_b])
                .status
                .success()
        })
    };
    assert!(pings(engine, 10), "ca cannot ping cb");
    let ports = |engine: &Engine| {
        engine.docker_ok(&[
            "exec",
            "ovsa-driver",
            "ovs-vsctl",
            "--bare",
            "--columns=name,tag",
            "find",
            "Port",
            "external_ids:ovs-appliance-docker=default",
        ])
    };
    let before = ports(engine);
    assert_eq!(
        before.split_whitespace().count(),
        4,
        "two ports, VLAN 10: {before}"
    );
    assert!(
        before.split_whitespace().filter(|w| *w == "10").count() == 2,
        "{before}"
    );

    // dockerd restarted (its containers die with it): it starts the appliance and both
    // clients again in one pass; the clients wait for the driver and come back attached.
    engine.stop_daemon();
    let started = Instant::now();
    *engine = Engine::start_with_plugins(dir, Some(&netns.name), Some(plugins));
    let running = |engine: &Engine, name: &str| {
        engine
            .docker(&["inspect", "-f", "{{.State.Running}}", name])
            .stdout
            .starts_with(b"true")
    };
    let back = common::wait_for(Duration::from_secs(90), "all three running", || {
        ["ovsa-driver", "ca", "cb"]
            .iter()
            .all(|n| running(engine, n))
            .then(|| started.elapsed())
    });
    assert!(
        pings(engine, 20),
        "ca cannot ping cb after the dockerd restart"
    );
    let after = ports(engine);
    assert_eq!(after.split_whitespace().count(), 4, "{after}");
    ctx.note(format!(
        "docker driver (image): after a dockerd restart the appliance and two --restart always clients ran again in {:.1} s, attached",
        back.as_secs_f64()
    ));
    for name in ["ca", "cb"] {
        engine.docker_ok(&["rm", "-f", name]);
    }
    engine.docker_ok(&["network", "rm", "lan"]);
    let left = ports(engine);
    assert!(left.is_empty(), "ports left: {left}");
}
