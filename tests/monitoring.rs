//! The files under compose/monitoring: alert rules with their `promtool test rules` unit tests,
//! the Prometheus config, the Grafana provisioning and dashboard; and a real Prometheus
//! (Debian's) that scrapes a real appliance with the repository's scrape config, after which
//! every dashboard query and every alert expression is run through its HTTP API.

mod common;

use common::http;
use common::net::{ns_run, Host};
use common::*;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

fn monitoring(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("compose/monitoring")
        .join(rel)
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(monitoring(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

fn promtool(args: &[&str]) -> std::process::Output {
    let mut cmd = Command::new("promtool");
    cmd.args(args).current_dir(monitoring("prometheus"));
    run(&mut cmd, Duration::from_secs(60))
}

#[test]
fn alert_rules_pass_their_unit_tests_and_the_config_checks() {
    if !require_programs(&["promtool"]) {
        return;
    }
    for args in [
        &["test", "rules", "alerts_test.yml"][..],
        &["check", "rules", "alerts.yml"],
        &["check", "config", "prometheus.yml"],
    ] {
        let out = promtool(args);
        assert!(out.status.success(), "promtool {args:?}: {out:?}");
    }
    // Every alert the issue asks for has a rule and a unit test.
    let rules = read("prometheus/alerts.yml");
    let tests = read("prometheus/alerts_test.yml");
    for alert in [
        "OvsDaemonDown",
        "OvsDaemonRestartLoop",
        "OvsDatapathLostUpcalls",
        "OvsInterfaceDrops",
        "OvsDriftNotRepaired",
    ] {
        assert!(rules.contains(&format!("alert: {alert}")), "{alert} rule");
        assert!(
            tests.contains(&format!("alertname: {alert}")),
            "{alert} test"
        );
    }
}

fn dashboard() -> Value {
    serde_json::from_str(&read("grafana/dashboards/ovs-appliance.json")).unwrap()
}

/// Every panel, rows' nested panels included.
fn panels(dash: &Value) -> Vec<&Value> {
    let mut out = Vec::new();
    for p in dash["panels"].as_array().unwrap() {
        out.push(p);
        if let Some(nested) = p["panels"].as_array() {
            out.extend(nested);
        }
    }
    out
}

#[test]
fn the_dashboard_uses_the_provisioned_datasource_and_has_every_row() {
    let dash = dashboard();
    assert!(dash["schemaVersion"].as_u64().unwrap() >= 39);
    let text = read("grafana/dashboards/ovs-appliance.json");
    assert!(
        !text.contains("${DS_"),
        "file provisioning does not substitute ${{DS_...}}"
    );
    assert!(dash.get("__inputs").is_none());
    let datasource = read("grafana/provisioning/datasources/prometheus.yml");
    assert!(datasource.contains("uid: prometheus"));
    let provider = read("grafana/provisioning/dashboards/ovs-appliance.yml");
    assert!(provider.contains("type: file"));
    let rows: Vec<&str> = panels(&dash)
        .iter()
        .filter(|p| p["type"] == "row")
        .map(|p| p["title"].as_str().unwrap())
        .collect();
    assert_eq!(
        rows,
        [
            "Health",
            "Daemon resources",
            "Datapath",
            "Bridges",
            "Ports",
            "Appliance"
        ]
    );
    let mut ids = std::collections::BTreeSet::new();
    for p in panels(&dash) {
        assert!(ids.insert(p["id"].as_u64().unwrap()), "duplicate id {p}");
        if p["type"] == "row" {
            continue;
        }
        assert_eq!(p["datasource"]["uid"], "prometheus", "{}", p["title"]);
        let targets = p["targets"].as_array().unwrap();
        assert!(!targets.is_empty(), "{}", p["title"]);
        for t in targets {
            assert_eq!(t["datasource"]["uid"], "prometheus", "{}", p["title"]);
        }
    }
}

/// A panel's queries with Grafana's variables replaced by what Prometheus accepts.
fn queries(dash: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for p in panels(dash) {
        for t in p["targets"].as_array().into_iter().flatten() {
            let expr = t["expr"].as_str().unwrap();
            out.push((p["title"].as_str().unwrap().to_string(), grafana_vars(expr)));
        }
    }
    for v in dash["templating"]["list"].as_array().unwrap() {
        // label_values(<selector>, label) is Grafana's; its selector is PromQL.
        let q = v["query"]["query"].as_str().unwrap();
        let inner = q.strip_prefix("label_values(").unwrap();
        let selector = inner.rsplit_once(',').unwrap().0;
        out.push((format!("variable {}", v["name"]), grafana_vars(selector)));
    }
    out
}

fn grafana_vars(expr: &str) -> String {
    expr.replace("$__rate_interval", "1m")
        .replace("$__interval", "15s")
        .replace("$__range", "5m")
        .replace("$instance", ".*")
        .replace("$bridge", ".*")
}

fn alert_exprs() -> Vec<String> {
    read("prometheus/alerts.yml")
        .lines()
        .filter_map(|l| l.trim().strip_prefix("expr: "))
        .map(str::to_string)
        .collect()
}

/// Prometheus started by the test inside the appliance's namespace, killed on drop.
struct Prometheus {
    child: Child,
    port: u16,
    ns: String,
    log: PathBuf,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            let log = std::fs::read_to_string(&self.log).unwrap_or_default();
            eprintln!("--- prometheus log ---\n{log}");
        }
    }
}

impl Prometheus {
    /// The repository's prometheus.yml with its target pointed at `target` and 1 s intervals.
    fn start(app: &Appliance, target: &str) -> Prometheus {
        let dir = app.dir.path().join("prometheus");
        std::fs::create_dir_all(dir.join("data")).unwrap();
        let config = read("prometheus/prometheus.yml")
            .replace("127.0.0.1:9476", target)
            .replace("15s", "1s")
            .replace("scrape_timeout: 10s", "scrape_timeout: 1s");
        assert!(config.contains(target), "the target was not rewritten");
        std::fs::write(dir.join("prometheus.yml"), config).unwrap();
        std::fs::copy(monitoring("prometheus/alerts.yml"), dir.join("alerts.yml")).unwrap();
        let ns = app.netns.name.clone();
        let port = http::free_port(&ns);
        let log = dir.join("prometheus.log");
        let file = std::fs::File::create(&log).unwrap();
        let child = Command::new("ip")
            .args(["netns", "exec", &ns, "prometheus"])
            .arg(format!(
                "--config.file={}",
                dir.join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdin(Stdio::null())
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .spawn()
            .expect("start prometheus");
        let prom = Prometheus {
            child,
            port,
            ns,
            log,
        };
        wait_for(Duration::from_secs(30), "prometheus ready", || {
            http::get(&prom.ns, prom.port, "/-/ready")
                .filter(|r| r.status == 200)
                .map(|_| ())
        });
        prom
    }

    fn api(&self, path: &str) -> Value {
        let r = http::get(&self.ns, self.port, path).expect("prometheus answers");
        serde_json::from_str(&r.body).unwrap_or_else(|e| panic!("{path}: {e}: {}", r.body))
    }

    fn query(&self, promql: &str) -> Value {
        self.api(&format!("/api/v1/query?query={}", http::encode(promql)))
    }
}

#[test]
fn a_real_prometheus_scrapes_and_every_dashboard_query_and_alert_answers() {
    if !require_real_ovs_and(&["prometheus", "promtool"]) {
        return;
    }
    let bridges = r#"
[metrics]
listen = "127.0.0.1:19476"
refresh_interval = "1s"

[[bridges]]
name = "br0"
  [[bridges.ports]]
  name = "s1"
  [[bridges.ports]]
  name = "s2"
"#;
    let mut app = Appliance::new(&format!("datapath = \"netdev\"\n{bridges}"));
    let h1 = Host::new(&app.netns.name, "s1", "10.72.0.1/24");
    let h2 = Host::new(&app.netns.name, "s2", "10.72.0.2/24");
    app.start_ready();
    h1.ping(&h2.addr);
    let prom = Prometheus::start(&app, "127.0.0.1:19476");
    // Traffic while Prometheus scrapes, so rates have something to show.
    let pinger = {
        let ns = h1.netns.name.clone();
        let to = h2.addr.clone();
        std::thread::spawn(move || {
            ns_run(
                &ns,
                &["ping", "-c", "40", "-i", "0.1", &to],
                Duration::from_secs(30),
            )
        })
    };
    wait_for(Duration::from_secs(60), "3 successful scrapes", || {
        let r = prom.query("sum_over_time(up{job=\"ovs-appliance\"}[5m])");
        let n: f64 = r["data"]["result"][0]["value"][1].as_str()?.parse().ok()?;
        (n >= 3.0).then_some(())
    });
    // Wait for a scrape after the interface statistics refreshed with the traffic.
    let _ = pinger.join();
    std::thread::sleep(Duration::from_secs(7));

    let dash = dashboard();
    let mut failures = Vec::new();
    for (title, expr) in queries(&dash) {
        let r = prom.query(&expr);
        if r["status"] != "success" {
            failures.push(format!("{title}: {expr}: {r}"));
        } else if r["data"]["result"].as_array().is_none_or(|a| a.is_empty()) {
            failures.push(format!("{title}: no data: {expr}"));
        }
    }
    for expr in alert_exprs() {
        let r = prom.query(&expr);
        if r["status"] != "success" {
            failures.push(format!("alert {expr}: {r}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // Prometheus loaded the rules from the repository and evaluates them without error.
    let rules = prom.api("/api/v1/rules");
    let groups = rules["data"]["groups"].as_array().unwrap();
    let all: Vec<&Value> = groups
        .iter()
        .flat_map(|g| g["rules"].as_array().unwrap())
        .collect();
    assert_eq!(all.len(), alert_exprs().len(), "{rules}");
    for rule in all {
        assert_eq!(rule["health"], "ok", "{rule}");
    }
}
