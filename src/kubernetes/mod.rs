//! The Kubernetes manifests that run the appliance on every Linux node: a Namespace, the config
//! as a ConfigMap, and a DaemonSet that is not privileged (capabilities only, as the preflight
//! asks for them); beside them, the Grafana dashboard as a ConfigMap for Grafana's sidecar and a
//! PodMonitor for the Prometheus Operator.
//!
//! Owns text only: it reads no file and touches no cluster. The committed files in
//! `kubernetes/` are what it prints for `kubernetes/config.toml`; a test keeps them equal.

mod yaml;

use crate::config::{self, Config};
use serde_json::{json, Value};
use std::path::Path;

/// The namespace used when none is given.
pub const DEFAULT_NAMESPACE: &str = "ovs-appliance";
/// The name of every object, and the pods' `app.kubernetes.io/name` label.
const NAME: &str = "ovs-appliance";
/// Where the node's database lives (hostPath): beside other node state, not in the image.
const HOST_DB_DIR: &str = "/var/lib/ovs-appliance";
/// Where the config is mounted: the appliance's default path.
const CONFIG_DIR: &str = "/etc/ovs-appliance";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid image reference {0:?}: expected registry/name[:tag][@digest] without spaces")]
    Image(String),
    #[error(
        "invalid namespace {0:?}: a DNS label (lowercase letters, digits and '-', at most 63)"
    )]
    Namespace(String),
    #[error(transparent)]
    Config(#[from] config::Error),
}

/// Which manifests to print.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// Namespace, ConfigMap and DaemonSet: what `kubectl apply -f` needs.
    Node,
    /// The Grafana dashboard, as a ConfigMap labelled for Grafana's dashboard sidecar.
    Dashboard,
    /// A PodMonitor for the Prometheus Operator (needs `[metrics] listen` off loopback).
    PodMonitor,
}

/// The manifests of `part` for `config_toml` (validated first, as a pod will read it), `image`
/// and `namespace`, as YAML documents.
pub fn render(
    config_toml: &str,
    origin: &Path,
    image: &str,
    namespace: &str,
    part: Part,
) -> Result<String, Error> {
    let config = Config::from_toml_with(config_toml, origin, &config::host_stand_in)?;
    crate::ignition::check_image(image).map_err(|_| Error::Image(image.to_string()))?;
    check_namespace(namespace)?;
    let docs = match part {
        Part::Node => vec![
            namespace_doc(namespace),
            config_map(namespace, config_toml),
            daemon_set(&config, image, namespace),
        ],
        Part::Dashboard => vec![dashboard(namespace)],
        Part::PodMonitor => vec![pod_monitor(namespace)],
    };
    Ok(docs.iter().map(yaml::document).collect())
}

fn check_namespace(ns: &str) -> Result<(), Error> {
    let ok = !ns.is_empty()
        && ns.len() <= 63
        && ns
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !ns.starts_with('-')
        && !ns.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(Error::Namespace(ns.to_string()))
    }
}

fn labels() -> Value {
    json!({ "app.kubernetes.io/name": NAME })
}

fn namespace_doc(namespace: &str) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {
            "name": namespace,
            "labels": {
                "app.kubernetes.io/name": NAME,
                // hostNetwork, hostPath and added capabilities are beyond the baseline level.
                "pod-security.kubernetes.io/enforce": "privileged",
            },
        },
    })
}

fn config_map(namespace: &str, config_toml: &str) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": { "name": format!("{NAME}-config"), "namespace": namespace, "labels": labels() },
        "data": { "config.toml": config_toml },
    })
}

/// The probes' URL: where a client in the pod reaches the listener, or the node's address (as
/// Kubernetes expands `$(NODE_IP)` in a command) when the listener names `${NODE_IP}`.
fn probe_base(config: &Config) -> String {
    let listen = config.metrics.listen;
    let from_node_ip = config
        .expansions
        .iter()
        .any(|e| e.path == "metrics.listen" && e.written.contains("${NODE_IP"));
    if from_node_ip {
        format!("http://$(NODE_IP):{}", listen.port())
    } else {
        format!("http://{}", config::MetricsConfig::local(listen))
    }
}

fn exec_probe(url: &str, period: u32, failures: u32) -> Value {
    json!({
        "exec": { "command": ["ovs-appliance", "healthcheck", "--url", url] },
        "periodSeconds": period,
        "timeoutSeconds": 3,
        "failureThreshold": failures,
    })
}

fn daemon_set(config: &Config, image: &str, namespace: &str) -> Value {
    let base = probe_base(config);
    let healthz = format!("{base}/healthz");
    let readyz = format!("{base}/readyz");
    // Longer than the orderly stop, so SIGKILL never cuts the drain short.
    let grace = config.supervisor.drain_timeout.0.as_secs() + 20;
    let env: Vec<Value> = [("NODE_IP", "status.hostIP"), ("NODE_NAME", "spec.nodeName")]
        .iter()
        .map(|(name, field)| {
            json!({ "name": name, "valueFrom": { "fieldRef": { "fieldPath": field } } })
        })
        .collect();
    let container = json!({
        "name": NAME,
        "image": image,
        "args": ["run"],
        "env": env,
        "ports": [{ "name": "metrics", "containerPort": config.metrics.listen.port(), "protocol": "TCP" }],
        "securityContext": {
            "privileged": false,
            "allowPrivilegeEscalation": false,
            "capabilities": {
                // What `ovs-appliance check` asks for (README, "What the container needs"):
                // NET_RAW is not granted by every runtime, IPC_LOCK lets vswitchd --mlockall.
                "add": ["NET_ADMIN", "SYS_MODULE", "SYS_NICE", "IPC_LOCK", "NET_RAW"],
            },
        },
        "resources": { "requests": { "cpu": "100m", "memory": "128Mi" } },
        // The first start may create the database or load the module: five minutes to answer.
        "startupProbe": exec_probe(&healthz, 5, 60),
        "livenessProbe": exec_probe(&healthz, 10, 3),
        "readinessProbe": exec_probe(&readyz, 5, 3),
        "volumeMounts": [
            { "name": "config", "mountPath": CONFIG_DIR, "readOnly": true },
            { "name": "db", "mountPath": config.ovs.db_dir.display().to_string() },
            { "name": "run", "mountPath": config.ovs.run_dir.display().to_string() },
            { "name": "modules", "mountPath": "/lib/modules", "readOnly": true },
            { "name": "tun", "mountPath": "/dev/net/tun" },
        ],
    });
    let host_path = |path: &str, kind: &str| json!({ "hostPath": { "path": path, "type": kind } });
    let mut volumes = vec![json!({
        "name": "config",
        "configMap": { "name": format!("{NAME}-config") },
    })];
    for (name, path, kind) in [
        ("db", HOST_DB_DIR, "DirectoryOrCreate"),
        // CNI plugins on the node (ovs-cni, Multus) find db.sock here.
        ("run", "/var/run/openvswitch", "DirectoryOrCreate"),
        ("modules", "/lib/modules", "Directory"),
        ("tun", "/dev/net/tun", "CharDevice"),
    ] {
        let mut volume = host_path(path, kind);
        volume["name"] = json!(name);
        volumes.push(volume);
    }
    json!({
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": { "name": NAME, "namespace": namespace, "labels": labels() },
        "spec": {
            "selector": { "matchLabels": labels() },
            "updateStrategy": { "type": "RollingUpdate", "rollingUpdate": { "maxUnavailable": 1 } },
            "template": {
                "metadata": { "labels": labels() },
                "spec": {
                    "hostNetwork": true,
                    "dnsPolicy": "ClusterFirstWithHostNet",
                    "priorityClassName": "system-node-critical",
                    "terminationGracePeriodSeconds": grace,
                    "nodeSelector": { "kubernetes.io/os": "linux" },
                    // Every node, whatever its taints: the node's network depends on it.
                    "tolerations": [{ "operator": "Exists" }],
                    "containers": [container],
                    "volumes": volumes,
                },
            },
        },
    })
}

fn dashboard(namespace: &str) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": format!("{NAME}-grafana-dashboard"),
            "namespace": namespace,
            // What Grafana's dashboard sidecar (the Helm chart's default) looks for.
            "labels": { "app.kubernetes.io/name": NAME, "grafana_dashboard": "1" },
        },
        "data": { "ovs-appliance.json": crate::metrics::GRAFANA_DASHBOARD },
    })
}

fn pod_monitor(namespace: &str) -> Value {
    json!({
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PodMonitor",
        "metadata": { "name": NAME, "namespace": namespace, "labels": labels() },
        "spec": {
            "selector": { "matchLabels": labels() },
            "podMetricsEndpoints": [{ "port": "metrics", "path": "/metrics", "interval": "15s" }],
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(config: &str) -> Result<String, Error> {
        render(
            config,
            Path::new("c.toml"),
            "ovs-appliance:dev",
            "ovs",
            Part::Node,
        )
    }

    #[test]
    fn probes_follow_the_listener() {
        let text = node("").unwrap();
        assert!(text.contains("http://127.0.0.1:9476/healthz"), "{text}");
        assert!(text.contains("http://127.0.0.1:9476/readyz"), "{text}");
        let text = node("[metrics]\nlisten = \"${NODE_IP}:9100\"\n").unwrap();
        assert!(text.contains("http://$(NODE_IP):9100/healthz"), "{text}");
        assert!(text.contains("containerPort: 9100"), "{text}");
        let text = node("[metrics]\nlisten = \"0.0.0.0:9200\"\n").unwrap();
        assert!(text.contains("http://127.0.0.1:9200/healthz"), "{text}");
    }

    #[test]
    fn the_grace_period_outlasts_the_drain() {
        let text = node("[supervisor]\ndrain_timeout = \"45s\"\n").unwrap();
        assert!(text.contains("terminationGracePeriodSeconds: 65"), "{text}");
    }

    #[test]
    fn bad_input_prints_nothing_and_names_the_problem() {
        let unset = node("[[bridges]]\nname = \"${OVS_APPLIANCE_UNSET_X}\"\n").unwrap_err();
        assert!(matches!(unset, Error::Config(_)), "{unset}");
        assert!(
            unset.to_string().contains("OVS_APPLIANCE_UNSET_X"),
            "{unset}"
        );
        let bad = |image: &str, ns: &str| {
            render("", Path::new("c"), image, ns, Part::Node)
                .unwrap_err()
                .to_string()
        };
        assert!(bad("a b", "ovs").contains("image"));
        assert!(bad("x:1", "Bad_NS").contains("namespace"));
        assert!(bad("x:1", "-x").contains("namespace"));
    }
}
