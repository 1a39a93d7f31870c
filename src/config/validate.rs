//! Checks on a parsed config that name the field path and the offending value.

use super::{Config, DockerConfig, MetricsConfig, OvsConfig, SupervisorConfig};
use std::fmt;

/// One problem in the config: `ovs.vswitchd_nice: -30 is outside -20..=19`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub path: String,
    pub message: String,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

#[derive(Default)]
pub(super) struct Errors(Vec<FieldError>);

impl Errors {
    pub(super) fn into_first(self) -> Option<FieldError> {
        self.0.into_iter().next()
    }

    pub(super) fn push(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.0.push(FieldError {
            path: path.into(),
            message: message.into(),
        });
    }
}

pub(super) fn config(config: &Config) -> Result<(), Vec<FieldError>> {
    let mut errors = Errors::default();
    ovs(&config.ovs, &mut errors);
    instance(&config.ovs, &mut errors);
    supervisor(&config.supervisor, &mut errors);
    metrics(&config.metrics, &mut errors);
    docker(&config.docker, &mut errors);
    super::validate_bridges::bridges(&config.bridges, &mut errors);
    if errors.0.is_empty() {
        Ok(())
    } else {
        Err(errors.0)
    }
}

/// OVSDB remote prefixes ovsdb-server accepts (ovsdb-server(1), "--remote").
const REMOTE_PREFIXES: &[&str] = &["punix:", "unix:", "ptcp:", "pssl:", "tcp:", "ssl:", "db:"];

fn ovs(ovs: &OvsConfig, errors: &mut Errors) {
    if !(-20..=19).contains(&ovs.vswitchd_nice) {
        errors.push(
            "ovs.vswitchd_nice",
            format!("{} is outside -20..=19", ovs.vswitchd_nice),
        );
    }
    for (field, path) in [("ovs.run_dir", &ovs.run_dir), ("ovs.db_dir", &ovs.db_dir)] {
        if !path.is_absolute() {
            errors.push(
                field,
                format!("`{}` is not an absolute path", path.display()),
            );
        }
    }
    for (field, value) in [
        ("ovs.flow_snapshot_interval", ovs.flow_snapshot_interval),
        ("ovs.restore_timeout", ovs.restore_timeout),
    ] {
        if value.0.is_zero() {
            errors.push(field, "must be longer than 0");
        }
    }
    for (i, remote) in ovs.remotes.iter().enumerate() {
        if !REMOTE_PREFIXES.iter().any(|p| remote.starts_with(p)) {
            errors.push(
                format!("ovs.remotes[{i}]"),
                format!(
                    "`{remote}` is not an OVSDB remote (expected one of {})",
                    REMOTE_PREFIXES.join(" ")
                ),
            );
        }
    }
}

fn instance(ovs: &OvsConfig, errors: &mut Errors) {
    if ovs.instance.is_empty() {
        errors.push("ovs.instance", "must not be empty");
    }
}

fn supervisor(s: &SupervisorConfig, errors: &mut Errors) {
    let positive = [
        ("supervisor.health_interval", s.health_interval),
        ("supervisor.health_timeout", s.health_timeout),
        ("supervisor.start_timeout", s.start_timeout),
        ("supervisor.restart_window", s.restart_window),
        ("supervisor.drain_timeout", s.drain_timeout),
        ("supervisor.busy_timeout", s.busy_timeout),
    ];
    for (field, value) in positive {
        if value.0.is_zero() {
            errors.push(field, "must be longer than 0");
        }
    }
    if s.backoff_initial > s.backoff_max {
        errors.push(
            "supervisor.backoff_initial",
            format!(
                "{} is longer than supervisor.backoff_max ({})",
                s.backoff_initial, s.backoff_max
            ),
        );
    }
    if s.health_failures == 0 {
        errors.push("supervisor.health_failures", "must be at least 1");
    }
}

fn metrics(m: &MetricsConfig, errors: &mut Errors) {
    if m.refresh_interval.0.is_zero() {
        errors.push("metrics.refresh_interval", "must be longer than 0");
    }
    for (field, patterns) in [
        ("metrics.include", &m.include),
        ("metrics.exclude", &m.exclude),
    ] {
        for (i, p) in patterns.iter().enumerate() {
            if p.is_empty() {
                errors.push(format!("{field}[{i}]"), "must not be empty");
            }
        }
    }
}

fn docker(d: &DockerConfig, errors: &mut Errors) {
    if let Some(name) = &d.network_driver {
        // What Docker accepts as a plugin name, and a file name of its own in plugins_dir.
        let ok = name.len() <= 64
            && name.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-".contains(c));
        if !ok {
            errors.push(
                "docker.network_driver",
                format!("`{name}` is not a plugin name: lowercase letters, digits, `.`, `_` and `-`, starting with a letter or digit, at most 64"),
            );
        }
    }
    if !d.plugins_dir.is_absolute() {
        errors.push(
            "docker.plugins_dir",
            format!("`{}` is not an absolute path", d.plugins_dir.display()),
        );
    }
}
