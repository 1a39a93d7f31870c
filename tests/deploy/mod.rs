//! Helpers for the deploy-file tests: the repository's paths, the shared JSON schemas, YAML read
//! as JSON, and Ignition file contents decoded from their data URLs.
#![allow(dead_code)]

use serde_json::{Map, Number, Value};
use std::io::Read;
use std::path::{Path, PathBuf};
use yaml_rust2::{Yaml, YamlLoader};

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `../shared/schemas/<name>`: the published schemas, kept beside the repository.
pub fn schema(name: &str) -> Value {
    let path = repo().join("../shared/schemas").join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    serde_json::from_str(&text).unwrap()
}

/// Every schema error of `doc`, as `<instance path>: <message>` lines.
pub fn schema_errors(validator: &jsonschema::Validator, doc: &Value) -> Vec<String> {
    validator
        .iter_errors(doc)
        .map(|e| format!("{}: {e}", e.instance_path()))
        .collect()
}

pub fn ignition_validator() -> jsonschema::Validator {
    // The schema says draft-04 and relies on no remote reference.
    jsonschema::draft4::new(&schema("ignition-v3_5.json")).expect("ignition schema compiles")
}

pub fn compose_validator() -> jsonschema::Validator {
    // "$schema" names draft-07 without the trailing '#': pick the draft explicitly.
    jsonschema::draft7::new(&schema("compose-spec.json")).expect("compose schema compiles")
}

/// A YAML document as the JSON value it denotes (YAML 1.2 core schema: `0644` is the decimal
/// integer 644, unlike Butane's and PyYAML's octal).
pub fn yaml_file(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    let docs = YamlLoader::load_from_str(&text).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    assert_eq!(docs.len(), 1, "{path:?}: expected one YAML document");
    to_json(&docs[0])
}

/// Every document of a YAML stream, as JSON values.
pub fn yaml_docs(text: &str) -> Vec<Value> {
    let docs = YamlLoader::load_from_str(text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    docs.iter().map(to_json).collect()
}

fn to_json(y: &Yaml) -> Value {
    match y {
        Yaml::Null => Value::Null,
        Yaml::Boolean(b) => Value::Bool(*b),
        Yaml::Integer(i) => Value::Number((*i).into()),
        Yaml::Real(r) => Number::from_f64(r.parse().unwrap())
            .map(Value::Number)
            .unwrap_or(Value::Null),
        Yaml::String(s) => Value::String(s.clone()),
        Yaml::Array(a) => Value::Array(a.iter().map(to_json).collect()),
        Yaml::Hash(h) => {
            let mut map = Map::new();
            for (k, v) in h {
                let key = match k {
                    Yaml::String(s) => s.clone(),
                    Yaml::Integer(i) => i.to_string(),
                    Yaml::Boolean(b) => b.to_string(),
                    other => panic!("unsupported YAML key {other:?}"),
                };
                map.insert(key, to_json(v));
            }
            Value::Object(map)
        }
        other => panic!("unsupported YAML node {other:?}"),
    }
}

/// The bytes of an Ignition resource: its data URL decoded, then gunzipped when
/// `compression` says gzip (as Butane writes larger files).
pub fn resource_bytes(resource: &Value) -> Vec<u8> {
    let source = resource["source"].as_str().expect("contents.source");
    let raw = ovs_appliance::ignition::dataurl::decode(source)
        .unwrap_or_else(|e| panic!("{}: {e}", &source[..source.len().min(40)]));
    match resource.get("compression").and_then(Value::as_str) {
        None | Some("") => raw,
        Some("gzip") => {
            let mut out = Vec::new();
            flate2::read::GzDecoder::new(&raw[..])
                .read_to_end(&mut out)
                .unwrap();
            out
        }
        Some(other) => panic!("unknown compression {other}"),
    }
}

/// Whether a command is on PATH.
pub fn on_path(bin: &str) -> bool {
    std::env::var("PATH")
        .unwrap_or_default()
        .split(':')
        .any(|d| Path::new(d).join(bin).is_file())
}

/// The Debian trixie root that scripts/trixie-tools makes (run by scripts/install-deps):
/// Podman 5 with its Quadlet generator, and Docker Compose v2. Debian 12 has neither.
pub fn trixie_tools_dir() -> PathBuf {
    let cache = std::env::var_os("OVS_APPLIANCE_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/cache/ovs-appliance"));
    cache.join("trixie-tools")
}

/// The trixie root when scripts/trixie-tools has finished it (its stamp is written last);
/// otherwise a skip by the one rule, and None.
pub fn trixie_tools() -> Option<PathBuf> {
    let root = trixie_tools_dir();
    let mut missing = Vec::new();
    if !root.join(".ovs-appliance-stamp").is_file() {
        missing.push(format!(
            "{} is not there: run scripts/trixie-tools (scripts/install-deps does)",
            root.display()
        ));
    }
    require(&missing).then_some(root)
}

/// Compose v2 in the trixie root: Debian's `docker-compose` 2.x, the Docker CLI plugin. It
/// links only to glibc (2.34 or newer), so it runs on Debian 12 as it is.
pub fn compose_v2_plugin(root: &Path) -> PathBuf {
    root.join("usr/libexec/docker/cli-plugins/docker-compose")
}

/// Makes `docker compose` mean compose v2 for a client whose DOCKER_CONFIG is `config`: the
/// plugin linked into `<config>/cli-plugins`, the first place the client looks.
pub fn install_compose_v2(config: &Path, root: &Path) {
    let plugins = config.join("cli-plugins");
    std::fs::create_dir_all(&plugins).unwrap();
    let link = plugins.join("docker-compose");
    let _ = std::fs::remove_file(&link);
    std::os::unix::fs::symlink(compose_v2_plugin(root), &link).unwrap();
}

/// Debian's docker client when there is one (the engine's own), else the first on PATH.
pub fn docker_client() -> &'static str {
    if Path::new("/usr/bin/docker").is_file() {
        "/usr/bin/docker"
    } else {
        "docker"
    }
}

/// True when the test can run; else a skip by the one rule of `tests/skip/mod.rs`.
pub fn require(missing: &[String]) -> bool {
    skip::can_run(missing)
}

// The container tier includes both this harness and tests/common, each with the same rule.
#[allow(clippy::duplicate_mod)]
#[path = "../skip/mod.rs"]
mod skip;
