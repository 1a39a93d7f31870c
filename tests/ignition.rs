//! The Fedora CoreOS files: ignition/ovs-appliance.ign is what `ovs-appliance ignition` renders
//! from ignition/config.toml, the Butane source says the same, and both the committed and the
//! rendered JSON are valid Ignition 3.5.0 that write exactly the intended files and units.

mod deploy;

use deploy::{ignition_validator, repo, resource_bytes, schema_errors, yaml_file};
use ovs_appliance::ignition::{self, Provision};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

/// The image the committed files name (a placeholder for the user's registry).
const IMAGE: &str = "registry.example.com/ovs-appliance:0.1.0";
const BIN: &str = env!("CARGO_BIN_EXE_ovs-appliance");

/// What an Ignition config writes, decoded: path -> (mode, bytes); unit -> (enabled, contents).
#[derive(Debug, PartialEq, Eq)]
struct Written {
    version: String,
    files: BTreeMap<String, (u64, Vec<u8>)>,
    units: BTreeMap<String, (Option<bool>, String)>,
}

fn written(ign: &Value) -> Written {
    let files = ign["storage"]["files"]
        .as_array()
        .map(|files| {
            files
                .iter()
                .map(|f| {
                    let path = f["path"].as_str().unwrap().to_string();
                    let mode = f["mode"].as_u64().expect("every file has a mode");
                    (path, (mode, resource_bytes(&f["contents"])))
                })
                .collect()
        })
        .unwrap_or_default();
    let units = ign["systemd"]["units"]
        .as_array()
        .map(|units| {
            units
                .iter()
                .map(|u| {
                    let contents = u["contents"].as_str().unwrap_or_default().to_string();
                    (
                        u["name"].as_str().unwrap().to_string(),
                        (u["enabled"].as_bool(), contents),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    Written {
        version: ign["ignition"]["version"].as_str().unwrap().to_string(),
        files,
        units,
    }
}

/// What the library says the committed sources provision.
fn intended() -> Provision {
    let path = repo().join("ignition/config.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    ignition::provision(&text, &path, IMAGE).unwrap()
}

fn render_with_binary(config: &Path, image: &str) -> std::process::Output {
    Command::new(BIN)
        .args(["ignition", "--config"])
        .arg(config)
        .args(["--image", image])
        .env_remove("OVS_APPLIANCE_CONFIG")
        .output()
        .unwrap()
}

fn committed() -> Value {
    let text = std::fs::read_to_string(repo().join("ignition/ovs-appliance.ign")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn rendered() -> Value {
    let out = render_with_binary(&repo().join("ignition/config.toml"), IMAGE);
    assert!(out.status.success(), "{out:?}");
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn committed_ign_is_what_the_binary_renders() {
    assert_eq!(
        written(&committed()),
        written(&rendered()),
        "regenerate: ovs-appliance ignition --config ignition/config.toml --image {IMAGE} > ignition/ovs-appliance.ign"
    );
}

#[test]
fn every_ign_and_the_rendered_output_validate_against_ignition_3_5() {
    let validator = ignition_validator();
    let mut docs = vec![("rendered".to_string(), rendered())];
    for entry in std::fs::read_dir(repo().join("ignition")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "ign") {
            let text = std::fs::read_to_string(&path).unwrap();
            docs.push((
                path.display().to_string(),
                serde_json::from_str(&text).unwrap(),
            ));
        }
    }
    assert!(docs.len() >= 2, "no .ign file in ignition/");
    for (name, doc) in &docs {
        let errors = schema_errors(&validator, doc);
        assert!(errors.is_empty(), "{name}:\n{}", errors.join("\n"));
        assert_eq!(doc["ignition"]["version"], "3.5.0", "{name}");
    }
}

/// The validator is not vacuous: type errors the schema describes are reported.
#[test]
fn schema_rejects_a_broken_config() {
    let mut doc = committed();
    doc["storage"]["files"][0]["mode"] = Value::from("0644");
    doc["systemd"]["units"][0]["enabled"] = Value::from("yes");
    let errors = schema_errors(&ignition_validator(), &doc);
    assert_eq!(errors.len(), 2, "{errors:?}");
}

#[test]
fn files_and_units_are_well_formed_and_exactly_the_intended_ones() {
    let got = written(&committed());
    let want = intended();
    let want_files: BTreeMap<String, (u64, Vec<u8>)> = want
        .files
        .iter()
        .map(|f| {
            let bytes = f.contents.as_bytes().to_vec();
            (f.path.to_string(), (u64::from(f.mode), bytes))
        })
        .collect();
    assert_eq!(got.files, want_files);
    for (path, (mode, _)) in &got.files {
        assert!(is_clean_absolute(path), "{path}: not a clean absolute path");
        assert_eq!(*mode, 0o644, "{path}: mode {mode:o}");
    }
    let config = std::fs::read(repo().join("ignition/config.toml")).unwrap();
    assert_eq!(got.files[ignition::CONFIG_PATH].1, config);
    assert_eq!(
        got.files[ignition::MODULES_LOAD_PATH].1,
        b"# The Open vSwitch kernel datapath, loaded at boot for ovs-appliance.\nopenvswitch\n"
    );
    assert_eq!(got.units.len(), 1);
    for (name, (enabled, contents)) in &got.units {
        assert!(is_unit_name(name), "{name}: not a unit name");
        assert_eq!(
            *enabled, None,
            "{name}: the alternative must not be enabled"
        );
        assert_eq!(contents, &want.units[0].contents);
    }
}

/// Quadlet's file name must be `<name>.container`; the paths are where FCOS reads them.
#[test]
fn quadlet_runs_the_image_with_what_it_needs() {
    let got = written(&committed());
    let quadlet = String::from_utf8(got.files[ignition::QUADLET_PATH].1.clone()).unwrap();
    let ini = parse_unit(&quadlet);
    let c = &ini["Container"];
    assert_eq!(c["Image"], [IMAGE]);
    assert_eq!(c["Network"], ["host"]);
    let caps: Vec<&str> = c["AddCapability"]
        .iter()
        .flat_map(|v| v.split(' '))
        .collect();
    for cap in ["NET_ADMIN", "SYS_MODULE", "SYS_NICE"] {
        assert!(caps.contains(&cap), "{cap} missing: {caps:?}");
    }
    assert_eq!(c["AddDevice"], ["/dev/net/tun"]);
    let volumes = &c["Volume"];
    for target in [
        ":/etc/openvswitch",
        ":/etc/ovs-appliance:ro",
        ":/lib/modules:ro",
    ] {
        assert!(
            volumes.iter().any(|v| v.contains(target)),
            "{target}: {volumes:?}"
        );
    }
    assert!(c["HealthCmd"][0].ends_with("ovs-appliance healthcheck"));
    assert_eq!(ini["Install"]["WantedBy"], ["multi-user.target"]);
    let docker = parse_unit(&got.units[ignition::DOCKER_UNIT].1);
    let exec = docker["Service"]["ExecStart"][0].clone();
    for flag in [
        "--net host",
        "--cap-add NET_ADMIN",
        "--cap-add SYS_MODULE",
        "--cap-add SYS_NICE",
        "--device /dev/net/tun",
        "-v ovs-appliance-db:/etc/openvswitch",
        "-v /etc/ovs-appliance:/etc/ovs-appliance:ro",
        "-v /lib/modules:/lib/modules:ro",
    ] {
        assert!(exec.contains(flag), "{flag}: {exec}");
    }
    assert!(exec.ends_with(IMAGE), "{exec}");
    assert_eq!(docker["Unit"]["Conflicts"], ["ovs-appliance.service"]);
}

/// The Butane source writes the same files and units (Butane reads `mode: 0644` as octal;
/// YAML 1.2 reads the digits 644, so the digits are compared).
#[test]
fn butane_source_says_the_same() {
    let bu = yaml_file(&repo().join("ignition/ovs-appliance.bu"));
    assert_eq!(bu["variant"], "fcos");
    assert_eq!(bu["version"], "1.6.0");
    let got = written(&committed());
    let files = bu["storage"]["files"].as_array().unwrap();
    assert_eq!(files.len(), got.files.len());
    for f in files {
        let path = f["path"].as_str().unwrap();
        let (mode, bytes) = &got.files[path];
        assert_eq!(f["mode"].to_string(), format!("{mode:o}"), "{path}");
        let contents = match (
            f["contents"]["inline"].as_str(),
            f["contents"]["local"].as_str(),
        ) {
            (Some(inline), None) => inline.as_bytes().to_vec(),
            (None, Some(local)) => std::fs::read(repo().join("ignition").join(local)).unwrap(),
            _ => panic!("{path}: contents must be inline or local"),
        };
        assert_eq!(&contents, bytes, "{path}");
    }
    let units = bu["systemd"]["units"].as_array().unwrap();
    assert_eq!(units.len(), got.units.len());
    for u in units {
        let name = u["name"].as_str().unwrap();
        assert_eq!(u.get("enabled"), None, "{name}");
        assert_eq!(u["contents"].as_str().unwrap(), got.units[name].1, "{name}");
    }
}

#[test]
fn renderer_refuses_bad_input_with_sysexits() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[ovs]\ndatapath = \"fast\"\n").unwrap();
    let out = render_with_binary(&bad, IMAGE);
    assert_eq!(out.status.code(), Some(65), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("datapath"));
    let good = repo().join("ignition/config.toml");
    let out = render_with_binary(&good, "img\nExecStartPre=/bin/true");
    assert_eq!(out.status.code(), Some(64), "{out:?}");
    let out = Command::new(BIN)
        .args(["ignition", "--image", IMAGE])
        .env_remove("OVS_APPLIANCE_CONFIG")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64), "{out:?}");
    assert!(out.stdout.is_empty());
}

fn is_clean_absolute(path: &str) -> bool {
    path.starts_with('/')
        && !path.ends_with('/')
        && path[1..]
            .split('/')
            .all(|c| !c.is_empty() && c != "." && c != "..")
}

/// systemd.unit(5): a name of at most 255 bytes from [A-Za-z0-9:_.\-@] with a unit type suffix.
fn is_unit_name(name: &str) -> bool {
    const TYPES: &[&str] = &[
        "service",
        "socket",
        "device",
        "mount",
        "automount",
        "swap",
        "target",
        "path",
        "timer",
        "slice",
        "scope",
    ];
    let Some((stem, kind)) = name.rsplit_once('.') else {
        return false;
    };
    name.len() <= 255
        && TYPES.contains(&kind)
        && !stem.is_empty()
        && stem
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || ":_.-@".contains(c))
}

/// A unit file as section -> key -> values, with `\` continuations joined.
fn parse_unit(text: &str) -> BTreeMap<String, BTreeMap<String, Vec<String>>> {
    let mut sections: BTreeMap<String, BTreeMap<String, Vec<String>>> = BTreeMap::new();
    let mut current = String::new();
    let mut logical = String::new();
    for line in text.lines() {
        if logical.is_empty() && (line.starts_with('#') || line.trim().is_empty()) {
            continue;
        }
        if let Some(stripped) = line.strip_suffix('\\') {
            logical.push_str(stripped);
            continue;
        }
        logical.push_str(line);
        let full = std::mem::take(&mut logical);
        let full = full.split_whitespace().collect::<Vec<_>>().join(" ");
        if let Some(name) = full.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            current = name.to_string();
        } else {
            let (key, value) = full.split_once('=').expect("key=value");
            sections
                .entry(current.clone())
                .or_default()
                .entry(key.to_string())
                .or_default()
                .push(value.to_string());
        }
    }
    sections
}
