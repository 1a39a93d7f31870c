//! The Kubernetes files: kubernetes/*.yaml are what `ovs-appliance kubernetes` prints for
//! kubernetes/config.toml, they pass `kubernetes-validate --strict` (the Kubernetes JSON schemas,
//! offline) for the oldest and newest Kubernetes it ships, the DaemonSet is what README promises
//! (not privileged, capabilities only, every node), and the ConfigMap's config is one `validate`
//! accepts as a pod sees it. No cluster runs here.

mod deploy;

use deploy::{repo, require, yaml_docs};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_ovs-appliance");
/// The image the committed files name (the project's registry path, a placeholder here).
const IMAGE: &str = "ghcr.io/ovs-appliance/ovs-appliance:0.1.0";
/// What install-deps installs kubernetes-validate into (a venv; PyPI's kubernetes-validate).
const VALIDATOR: &str = "/opt/ovs-appliance-tools/bin/kubernetes-validate";
/// The oldest and the newest Kubernetes minor the pinned kubernetes-validate bundles.
const VERSIONS: [&str; 2] = ["1.25.0", "1.37.0"];

fn print(args: &[&str]) -> Output {
    Command::new(BIN).args(args).output().unwrap()
}

fn printed(extra: &[&str]) -> String {
    let config = repo().join("kubernetes/config.toml");
    let mut args = vec![
        "kubernetes",
        "--config",
        config.to_str().unwrap(),
        "--image",
        IMAGE,
    ];
    args.extend_from_slice(extra);
    let out = print(&args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn committed(name: &str) -> PathBuf {
    repo().join("kubernetes").join(name)
}

#[test]
fn the_committed_files_are_what_the_command_prints() {
    for (file, extra) in [
        ("ovs-appliance.yaml", &[][..]),
        ("grafana-dashboard.yaml", &["--dashboard"][..]),
        ("podmonitor.yaml", &["--podmonitor"][..]),
    ] {
        let want = std::fs::read_to_string(committed(file)).unwrap();
        assert_eq!(
            printed(extra),
            want,
            "kubernetes/{file} is stale: regenerate it with the command in kubernetes/config.toml"
        );
    }
}

fn validate(path: &Path, version: &str) -> Output {
    Command::new(VALIDATOR)
        .args(["--strict", "-k", version, path.to_str().unwrap()])
        .output()
        .unwrap()
}

#[test]
fn kubernetes_validate_accepts_them_strictly_and_refuses_a_typo() {
    if !require(
        &[VALIDATOR]
            .iter()
            .filter(|p| !Path::new(p).exists())
            .map(|p| format!("{p} (scripts/install-deps installs kubernetes-validate)"))
            .collect::<Vec<_>>(),
    ) {
        return;
    }
    for version in VERSIONS {
        for file in ["ovs-appliance.yaml", "grafana-dashboard.yaml"] {
            let out = validate(&committed(file), version);
            let text = String::from_utf8_lossy(&out.stdout).into_owned()
                + &String::from_utf8_lossy(&out.stderr);
            assert!(out.status.success(), "{file} against {version}: {text}");
            let passed = text.matches(" passed for resource ").count();
            let want = if file == "ovs-appliance.yaml" { 3 } else { 1 };
            assert_eq!(passed, want, "{file} against {version}: {text}");
        }
    }
    // The check can fail: a misspelt field in the pod spec is refused.
    let dir = tempfile::tempdir().unwrap();
    let typo = dir.path().join("typo.yaml");
    let text = std::fs::read_to_string(committed("ovs-appliance.yaml")).unwrap();
    std::fs::write(&typo, text.replace("hostNetwork: true", "hostNetwrk: true")).unwrap();
    let out = validate(&typo, VERSIONS[1]);
    assert!(
        !out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn the_daemonset_is_unprivileged_on_every_node_and_outlasts_the_drain() {
    let docs = yaml_docs(&std::fs::read_to_string(committed("ovs-appliance.yaml")).unwrap());
    let kinds: Vec<&str> = docs.iter().map(|d| d["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["Namespace", "ConfigMap", "DaemonSet"]);
    let ds = &docs[2]["spec"];
    let pod = &ds["template"]["spec"];
    assert_eq!(pod["hostNetwork"], true);
    assert_eq!(pod["priorityClassName"], "system-node-critical");
    assert_eq!(
        pod["tolerations"],
        serde_json::json!([{ "operator": "Exists" }])
    );
    assert_eq!(ds["updateStrategy"]["rollingUpdate"]["maxUnavailable"], 1);
    assert!(
        pod["terminationGracePeriodSeconds"].as_u64().unwrap() > 10,
        "drain_timeout 10s"
    );
    let c = &pod["containers"][0];
    let sc = &c["securityContext"];
    assert_eq!(sc["privileged"], false);
    assert_eq!(sc["allowPrivilegeEscalation"], false);
    let caps: Vec<&str> = sc["capabilities"]["add"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    for cap in ["NET_ADMIN", "SYS_MODULE", "SYS_NICE"] {
        assert!(caps.contains(&cap), "{caps:?}");
    }
    let mounts: Vec<(&str, bool)> = c["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["mountPath"].as_str().unwrap(), m["readOnly"] == true))
        .collect();
    assert!(mounts.contains(&("/lib/modules", true)), "{mounts:?}");
    assert!(
        mounts.contains(&("/var/run/openvswitch", false)),
        "{mounts:?}"
    );
    for probe in ["startupProbe", "livenessProbe", "readinessProbe"] {
        let cmd = &c[probe]["exec"]["command"];
        assert_eq!(cmd[1], "healthcheck", "{probe}");
    }
    assert!(c["readinessProbe"]["exec"]["command"][3]
        .as_str()
        .unwrap()
        .ends_with("/readyz"));
    let env: Vec<&str> = c["env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert_eq!(env, ["NODE_IP", "NODE_NAME"]);
}

#[test]
fn the_configmaps_config_is_valid_as_a_pod_reads_it_and_differs_per_node() {
    let docs = yaml_docs(&std::fs::read_to_string(committed("ovs-appliance.yaml")).unwrap());
    let text = docs[1]["data"]["config.toml"].as_str().unwrap();
    assert_eq!(
        text,
        std::fs::read_to_string(repo().join("kubernetes/config.toml")).unwrap()
    );
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("config.toml");
    std::fs::write(&file, text).unwrap();
    let validate = |ip: Option<&str>| {
        let mut cmd = Command::new(BIN);
        cmd.args(["validate", "--config", file.to_str().unwrap()])
            .env("NODE_NAME", "worker-2")
            .env_remove("NODE_IP");
        if let Some(ip) = ip {
            cmd.env("NODE_IP", ip);
        }
        cmd.output().unwrap()
    };
    for ip in ["10.0.0.11", "10.0.0.12"] {
        let out = validate(Some(ip));
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            stdout.contains(&format!(
                "options.local_ip = \"{ip}\" (from \"${{NODE_IP}}\")"
            )),
            "{stdout}"
        );
    }
    // Without the downward API's NODE_IP it is refused, naming the field and the variable.
    let out = validate(None);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(65), "{stderr}");
    assert!(
        stderr.contains(
            "ports[\"vx-overlay\"].options.local_ip: names the environment variable NODE_IP"
        ),
        "{stderr}"
    );
}

#[test]
fn an_invalid_config_prints_nothing_and_exits_65() {
    let dir = tempfile::tempdir().unwrap();
    for (text, want) in [
        ("[[bridges]]\nname = \"a/b\"\n", "bridges[\"a/b\"].name"),
        (
            "[[bridges]]\nname = \"${OVS_APPLIANCE_TEST_UNSET}\"\n",
            "OVS_APPLIANCE_TEST_UNSET",
        ),
    ] {
        let file = dir.path().join("bad.toml");
        std::fs::write(&file, text).unwrap();
        let out = print(&[
            "kubernetes",
            "--config",
            file.to_str().unwrap(),
            "--image",
            IMAGE,
        ]);
        assert_eq!(out.status.code(), Some(65));
        assert!(
            out.stdout.is_empty(),
            "{}",
            String::from_utf8_lossy(&out.stdout)
        );
        assert!(String::from_utf8_lossy(&out.stderr).contains(want));
    }
    let empty = dir.path().join("empty.toml");
    std::fs::write(&empty, "").unwrap();
    let out = print(&[
        "kubernetes",
        "--config",
        empty.to_str().unwrap(),
        "--image",
        "bad image",
    ]);
    assert_eq!(out.status.code(), Some(64));
    assert!(out.stdout.is_empty());
}
