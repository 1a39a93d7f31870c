//! The compose files: each matches the compose specification's schema and passes `config` of
//! compose v1 (`docker-compose`) and of compose v2 (`docker compose`, Debian trixie's, from the
//! root scripts/trixie-tools makes), and the resolved services carry what the appliance needs
//! (host network, capabilities, the tun device, the volumes, a health check, loopback
//! listeners).
//! Bringing the stack up under a real engine is in tests/container.

mod deploy;

use deploy::{
    compose_validator, docker_client, install_compose_v2, on_path, repo, require, schema_errors,
    yaml_file,
};
use serde_json::Value;
use std::path::PathBuf;
use std::process::Command;

fn compose_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(repo().join("compose"))
        .unwrap()
        .map(|e| e.unwrap().path().join("compose.yaml"))
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

#[test]
fn every_stack_is_there() {
    let names: Vec<String> = compose_files()
        .iter()
        .map(|p| {
            p.parent()
                .unwrap()
                .file_name()
                .unwrap()
                .to_string_lossy()
                .into()
        })
        .collect();
    assert_eq!(names, ["containers-on-ovs", "monitoring", "ovs-appliance"]);
}

#[test]
fn every_compose_file_matches_the_compose_spec() {
    let validator = compose_validator();
    for file in compose_files() {
        let doc = yaml_file(&file);
        let errors = schema_errors(&validator, &doc);
        assert!(
            errors.is_empty(),
            "{}:\n{}",
            file.display(),
            errors.join("\n")
        );
    }
    // Not vacuous: a misspelt service key is refused.
    let mut doc = yaml_file(&repo().join("compose/ovs-appliance/compose.yaml"));
    doc["services"]["ovs-appliance"]["network-mode"] = Value::from("host");
    assert!(!schema_errors(&validator, &doc).is_empty());
}

/// The two compose implementations users have: v1 (Python, Debian 12's `docker-compose`) and
/// v2 (Go, the `docker compose` CLI plugin; Debian trixie's, from scripts/trixie-tools).
#[derive(Clone, Copy, Debug)]
enum Compose {
    V1,
    V2,
}

/// `config` of a file by one compose, resolved (variables, `extends`, relative paths), as JSON;
/// None after a skip when that compose is not here.
fn resolved(file: &std::path::Path, compose: Compose) -> Option<Value> {
    let client = tempfile::tempdir().unwrap();
    let mut cmd = match compose {
        Compose::V1 => {
            if !require(&missing_compose()) {
                return None;
            }
            Command::new("docker-compose")
        }
        Compose::V2 => {
            let root = deploy::trixie_tools()?;
            if !require(&missing_docker()) {
                return None;
            }
            install_compose_v2(client.path(), &root);
            let mut cmd = Command::new(docker_client());
            cmd.env("DOCKER_CONFIG", client.path()).arg("compose");
            let version = Command::new(docker_client())
                .env("DOCKER_CONFIG", client.path())
                .args(["compose", "version", "--short"])
                .output()
                .unwrap();
            let version = String::from_utf8_lossy(&version.stdout);
            assert!(
                version.starts_with("2."),
                "docker compose version: {version}"
            );
            cmd
        }
    };
    let out = cmd
        .arg("--file")
        .arg(file)
        .args(["--project-directory"])
        .arg(file.parent().unwrap())
        .arg("config")
        .env_remove("OVS_APPLIANCE_IMAGE")
        .env_remove("OVS_APPLIANCE_CONFIG_DIR")
        .env_remove("OVS_APPLIANCE_MODULES")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{compose:?} config {}: {}",
        file.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("resolved.yaml");
    std::fs::write(&path, &out.stdout).unwrap();
    Some(yaml_file(&path))
}

fn missing_compose() -> Vec<String> {
    if on_path("docker-compose") {
        Vec::new()
    } else {
        vec!["docker-compose not on PATH (apt-get install docker-compose)".into()]
    }
}

fn missing_docker() -> Vec<String> {
    if on_path("docker") {
        Vec::new()
    } else {
        vec!["docker not on PATH (apt-get install docker.io)".into()]
    }
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| a.iter().map(|s| s.as_str().unwrap().to_string()).collect())
        .unwrap_or_default()
}

/// A service's volumes as `source:target:ro|rw`, from v1's short strings or v2's long maps.
fn volumes(svc: &Value) -> Vec<String> {
    let list = svc["volumes"].as_array().cloned().unwrap_or_default();
    list.iter()
        .map(|v| match v.as_str() {
            Some(short) => short.to_string(),
            None => {
                let mode = if v["read_only"] == true { "ro" } else { "rw" };
                format!(
                    "{}:{}:{mode}",
                    v["source"].as_str().unwrap(),
                    v["target"].as_str().unwrap()
                )
            }
        })
        .collect()
}

/// A service's devices as `source:target`, from v1's strings or v2's maps.
fn devices(svc: &Value) -> Vec<String> {
    let list = svc["devices"].as_array().cloned().unwrap_or_default();
    list.iter()
        .map(|d| match d.as_str() {
            Some(short) => short.to_string(),
            None => format!(
                "{}:{}",
                d["source"].as_str().unwrap(),
                d["target"].as_str().unwrap()
            ),
        })
        .collect()
}

fn assert_appliance_service(svc: &Value, what: &str) {
    assert_eq!(svc["network_mode"], "host", "{what}");
    // The host variables a config may name pass from the shell, so one config serves every
    // host (README, "One file for every host").
    let env = svc["environment"].as_object();
    for var in ["NODE_IP", "NODE_NAME"] {
        assert!(
            env.is_some_and(|e| e.contains_key(var)),
            "{what}: {var} is not passed: {}",
            svc["environment"]
        );
    }
    let caps = strings(&svc["cap_add"]);
    for cap in ["NET_ADMIN", "SYS_MODULE", "SYS_NICE"] {
        assert!(caps.iter().any(|c| c == cap), "{what}: {cap} missing");
    }
    assert_eq!(devices(svc), ["/dev/net/tun:/dev/net/tun"], "{what}");
    let volumes = volumes(svc);
    assert!(
        volumes.contains(&"ovs-db:/etc/openvswitch:rw".to_string()),
        "{what}: {volumes:?}"
    );
    assert!(
        volumes.contains(&"/lib/modules:/lib/modules:ro".to_string()),
        "{what}: {volumes:?}"
    );
    assert!(
        volumes
            .iter()
            .any(|v| v.ends_with(":/etc/ovs-appliance:ro")),
        "{what}: {volumes:?}"
    );
    assert_eq!(svc["restart"], "unless-stopped", "{what}");
    assert_eq!(svc["stop_signal"], "SIGTERM", "{what}");
    assert_eq!(
        strings(&svc["healthcheck"]["test"]),
        ["CMD", "/usr/local/bin/ovs-appliance", "healthcheck"],
        "{what}"
    );
}

#[test]
fn appliance_stack_resolves_with_what_the_appliance_needs() {
    appliance_stack(Compose::V1);
}

#[test]
fn appliance_stack_resolves_by_compose_v2_with_what_the_appliance_needs() {
    appliance_stack(Compose::V2);
}

fn appliance_stack(compose: Compose) {
    let file = repo().join("compose/ovs-appliance/compose.yaml");
    let Some(doc) = resolved(&file, compose) else {
        return;
    };
    assert_appliance_service(&doc["services"]["ovs-appliance"], "ovs-appliance stack");
    assert_eq!(doc["volumes"]["ovs-db"]["name"], "ovs-appliance-db");
    let config = repo().join("compose/ovs-appliance/config/config.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    ovs_appliance::config::Config::from_toml(&text, &config).unwrap();
}

#[test]
fn monitoring_stack_resolves_on_loopback_with_the_monitoring_files() {
    monitoring_stack(Compose::V1);
}

#[test]
fn monitoring_stack_resolves_by_compose_v2_on_loopback_with_the_monitoring_files() {
    monitoring_stack(Compose::V2);
}

fn monitoring_stack(compose: Compose) {
    let file = repo().join("compose/monitoring/compose.yaml");
    let Some(doc) = resolved(&file, compose) else {
        return;
    };
    let services = &doc["services"];
    assert_appliance_service(&services["ovs-appliance"], "monitoring stack");
    assert_eq!(doc["volumes"]["ovs-db"]["name"], "ovs-appliance-db");
    for name in ["prometheus", "grafana"] {
        assert_eq!(services[name]["network_mode"], "host", "{name}");
    }
    let prom = &services["prometheus"];
    assert!(strings(&prom["command"]).contains(&"--web.listen-address=127.0.0.1:9090".into()));
    let mounts = |svc: &Value| -> Vec<(String, String)> {
        volumes(svc)
            .iter()
            .filter_map(|v| {
                let mut parts = v.split(':');
                let (src, dst) = (parts.next()?, parts.next()?);
                src.starts_with('/')
                    .then(|| (src.to_string(), dst.to_string()))
            })
            .collect()
    };
    let dir = repo().join("compose/monitoring");
    let want_prom = [
        (
            "prometheus/prometheus.yml",
            "/etc/prometheus/prometheus.yml",
        ),
        ("prometheus/alerts.yml", "/etc/prometheus/alerts.yml"),
    ];
    let want_grafana = [
        ("grafana/provisioning", "/etc/grafana/provisioning"),
        ("grafana/dashboards", "/var/lib/grafana/dashboards"),
    ];
    for (svc, want) in [
        (prom, &want_prom[..]),
        (&services["grafana"], &want_grafana[..]),
    ] {
        let have = mounts(svc);
        for (src, dst) in want {
            let src = dir.join(src).display().to_string();
            assert!(
                std::path::Path::new(&src).exists(),
                "{src} is mounted but missing"
            );
            assert!(
                have.contains(&(src.clone(), dst.to_string())),
                "{src} -> {dst}: {have:?}"
            );
        }
    }
    let env = &services["grafana"]["environment"];
    assert_eq!(env["GF_SERVER_HTTP_ADDR"], "127.0.0.1");
}

/// The example for the Docker network driver: every service is on the `lan` network, which the
/// `ovs` driver makes on a bridge with options the driver takes (the driver refuses any other
/// option; tests/docker_driver.rs brings this stack up and down against a real engine).
#[test]
fn containers_on_ovs_stack_resolves_to_an_ovs_network() {
    let file = repo().join("compose/containers-on-ovs/compose.yaml");
    let Some(doc) = resolved(&file, Compose::V1) else {
        return;
    };
    let lan = &doc["networks"]["lan"];
    assert_eq!(lan["driver"], "ovs", "{lan}");
    let opts = lan["driver_opts"].as_object().expect("driver_opts");
    assert_eq!(opts["bridge"], "br-lan");
    assert_eq!(opts["vlan"], "10");
    for key in opts.keys() {
        assert!(
            ["bridge", "vlan", "mtu", "gateway_port"].contains(&key.as_str()),
            "{key} is not an option of the driver"
        );
    }
    assert_eq!(lan["ipam"]["config"][0]["subnet"], "10.10.0.0/24");
    let services = doc["services"].as_object().unwrap();
    assert_eq!(services.len(), 2);
    for (name, svc) in services {
        let nets: Vec<&String> = svc["networks"].as_object().unwrap().keys().collect();
        assert_eq!(nets, ["lan"], "{name}");
    }
}

/// Whatever compose files there are (the list grows), compose v2 resolves each.
#[test]
fn every_compose_file_resolves_by_compose_v2() {
    for file in compose_files() {
        let Some(doc) = resolved(&file, Compose::V2) else {
            return;
        };
        assert!(
            doc["services"].as_object().is_some_and(|s| !s.is_empty()),
            "{}: no services",
            file.display()
        );
    }
}
