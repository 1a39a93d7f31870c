//! The Fedora CoreOS files: ignition/ovs-appliance.ign is what `ovs-appliance ignition` renders
//! from ignition/config.toml, the Butane source says the same, and both the committed and the
//! rendered JSON are valid Ignition 3.5.0 that write exactly the intended files and units, and
//! Podman's own Quadlet generator (Podman 5, from the trixie root scripts/trixie-tools makes)
//! turns its unit into the service README promises.

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
        .env_remove("OVS_APPLIANCE_TEST_UNSET")
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
    assert!(out.stdout.is_empty(), "{out:?}");
    // A variable that is unset with no default: refused, naming the field and the variable.
    std::fs::write(
        &bad,
        "[[bridges]]\nname = \"br0\"\nexternal_ids = { node = \"${OVS_APPLIANCE_TEST_UNSET}\" }\n",
    )
    .unwrap();
    let out = render_with_binary(&bad, IMAGE);
    assert_eq!(out.status.code(), Some(65), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("bridges[\"br0\"].external_ids.node: names the environment variable OVS_APPLIANCE_TEST_UNSET"),
        "{stderr}"
    );
    assert!(out.stdout.is_empty(), "{out:?}");
    // ${NODE_IP} and ${NODE_NAME} are the host's (the units pass them), so a config naming
    // them renders whatever the rendering machine's environment holds; it is embedded as
    // written.
    let fleet = dir.path().join("fleet.toml");
    let text = "[[bridges]]\nname = \"br0\"\nexternal_ids = { node = \"${NODE_NAME}\" }\n  [[bridges.ports]]\n  name = \"vx0\"\n  type = \"vxlan\"\n  options = { remote_ip = \"flow\", local_ip = \"${NODE_IP}\" }\n";
    std::fs::write(&fleet, text).unwrap();
    let out = Command::new(BIN)
        .args(["ignition", "--config"])
        .arg(&fleet)
        .args(["--image", IMAGE])
        .env_remove("NODE_IP")
        .env_remove("NODE_NAME")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let ign: Value = serde_json::from_slice(&out.stdout).unwrap();
    let got = written(&ign);
    assert_eq!(got.files[ignition::CONFIG_PATH].1, text.as_bytes());
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

/// Podman's own Quadlet generator (Podman 5 from Debian trixie, in the root scripts/trixie-tools
/// makes) converts the unit of the rendered Ignition config, as systemd would at boot on FCOS;
/// the service it makes runs `podman run` with every flag of README's Podman line, the image's
/// health check, no privilege, and is enabled for multi-user.target.
#[test]
fn podmans_quadlet_generator_makes_the_service_readme_promises() {
    let Some(root) = quadlet_root() else { return };
    let got = written(&rendered());
    let unit = String::from_utf8(got.files[ignition::QUADLET_PATH].1.clone()).unwrap();
    let generated = quadlet(&root, &unit).unwrap_or_else(|e| panic!("{e}"));
    let service = parse_unit(&generated.service);
    assert_eq!(service["Service"]["Restart"], ["always"]);
    assert!(
        service["Unit"]["After"]
            .iter()
            .any(|a| a.split(' ').any(|u| u == "systemd-modules-load.service")),
        "the module must be loaded before the container starts: {:?}",
        service["Unit"]["After"]
    );
    assert_eq!(
        generated.wanted_by,
        ["multi-user.target.wants/ovs-appliance.service -> ../ovs-appliance.service"]
    );
    let exec = &service["Service"]["ExecStart"];
    assert_eq!(exec.len(), 1, "{exec:?}");
    let run = PodmanRun::parse(&systemd_words(&exec[0]));
    assert_eq!(run.image, IMAGE, "{exec:?}");
    assert!(
        run.command.is_empty(),
        "the image's CMD (run) must stay: {exec:?}"
    );
    // The host variables a config may name reach the container: NODE_NAME as the host's name
    // (systemd's %H), NODE_IP from the optional environment file, passed only when set.
    let envs: Vec<&str> = run
        .options
        .iter()
        .filter(|(f, _)| f == "--env")
        .filter_map(|(_, v)| v.as_deref())
        .collect();
    assert!(envs.contains(&"NODE_NAME=%H"), "{envs:?}");
    assert!(envs.contains(&"NODE_IP"), "{envs:?}");
    // Started means healthy.
    assert_eq!(run.value("--sdnotify"), Some("healthy"), "{exec:?}");
    assert_eq!(
        service["Service"]["EnvironmentFile"],
        ["-/etc/ovs-appliance/environment"]
    );
    let missing = run.missing(&readme_podman_options());
    assert!(
        missing.is_empty(),
        "README's Podman line has {missing:?}, the generated service lacks them:\n{}",
        exec[0]
    );
    for (flag, value) in healthcheck_options() {
        assert_eq!(
            run.value(&flag),
            Some(value.as_str()),
            "{flag}: {}",
            exec[0]
        );
    }
    assert_eq!(run.value("--security-opt"), Some("label=disable"));
    assert!(
        !run.options.iter().any(|(f, _)| f == "--privileged"),
        "{}",
        exec[0]
    );

    // Not vacuous: without NET_RAW the service lacks what README promises, and a key Quadlet
    // does not know is refused, naming it, with no service made.
    let without = unit.replace(" NET_RAW", "");
    assert_ne!(without, unit);
    let generated = quadlet(&root, &without).unwrap_or_else(|e| panic!("{e}"));
    let exec = parse_unit(&generated.service)["Service"]["ExecStart"][0].clone();
    let missing = PodmanRun::parse(&systemd_words(&exec)).missing(&readme_podman_options());
    assert_eq!(
        missing,
        [("--cap-add".to_string(), Some("NET_RAW".to_string()))]
    );
    let typo = unit.replace("AddDevice=", "AddDevices=");
    let err = quadlet(&root, &typo).expect_err("an unknown key must be refused");
    assert!(err.contains("unsupported key 'AddDevices'"), "{err}");
}

/// The trixie root, when this test can use it (root for chroot and mount namespaces).
fn quadlet_root() -> Option<std::path::PathBuf> {
    if !nix::unistd::Uid::effective().is_root() {
        deploy::require(&["not root (chroot into the trixie root)".to_string()]);
        return None;
    }
    deploy::trixie_tools()
}

/// What Quadlet made of one unit: the service's text and the `.wants` links it made.
#[derive(Debug)]
struct Generated {
    service: String,
    wanted_by: Vec<String>,
}

/// Runs `/usr/libexec/podman/quadlet` as systemd runs a generator, inside a chroot of the trixie
/// root, on `unit` as `ovs-appliance.container`. The unit and the output directory are a temp
/// dir bind-mounted on the root's /mnt in a mount namespace of the run's own, so the root itself
/// is never written. Err: Quadlet's exit status and messages, when it refused the unit.
fn quadlet(root: &Path, unit: &str) -> Result<Generated, String> {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("units")).unwrap();
    std::fs::create_dir(dir.path().join("out")).unwrap();
    std::fs::write(dir.path().join("units/ovs-appliance.container"), unit).unwrap();
    let out = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "--", "sh", "-euc"])
        .arg(concat!(
            "mount --bind \"$1\" \"$2/mnt\"\n",
            "exec chroot \"$2\" /usr/bin/env -i QUADLET_UNIT_DIRS=/mnt/units ",
            "/usr/libexec/podman/quadlet -no-kmsg-log /mnt/out /mnt/out /mnt/out"
        ))
        .arg("sh")
        .arg(dir.path())
        .arg(root)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let service = dir.path().join("out/ovs-appliance.service");
    if !out.status.success() {
        assert!(!service.exists(), "a refused unit made a service: {stderr}");
        return Err(format!("quadlet: {}: {stderr}", out.status));
    }
    let mut wanted_by = Vec::new();
    for entry in std::fs::read_dir(dir.path().join("out")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "wants") {
            for link in std::fs::read_dir(&path).unwrap() {
                let link = link.unwrap().path();
                wanted_by.push(format!(
                    "{}/{} -> {}",
                    path.file_name().unwrap().to_string_lossy(),
                    link.file_name().unwrap().to_string_lossy(),
                    std::fs::read_link(&link).unwrap().display()
                ));
            }
        }
    }
    let service = std::fs::read_to_string(&service)
        .unwrap_or_else(|e| panic!("quadlet made no ovs-appliance.service ({e}): {stderr}"));
    Ok(Generated { service, wanted_by })
}

/// A `podman run` command line: options as (flag, value) with the spellings folded together
/// (`--net` is `--network`, `-v` is `--volume`, capabilities in capitals), the image, and what
/// follows it.
#[derive(Debug)]
struct PodmanRun {
    options: Vec<(String, Option<String>)>,
    image: String,
    command: Vec<String>,
}

impl PodmanRun {
    /// `words` from `podman` on; the options that take no value are the ones Quadlet and README
    /// write (a value-less flag missing here would swallow the image, and the test fail).
    fn parse(words: &[String]) -> PodmanRun {
        const SWITCHES: &[&str] = &["-d", "--detach", "--rm", "--replace", "--privileged"];
        assert!(
            words.len() > 2 && words[0].ends_with("podman") && words[1] == "run",
            "not a podman run: {words:?}"
        );
        let mut options = Vec::new();
        let mut rest = words[2..].iter();
        let image = loop {
            let word = rest.next().expect("an image after the options");
            if !word.starts_with('-') {
                break word.clone();
            }
            let (flag, value) = match word.split_once('=') {
                Some((flag, value)) => (flag.to_string(), Some(value.to_string())),
                None if SWITCHES.contains(&word.as_str()) => (word.clone(), None),
                None => (word.clone(), rest.next().cloned()),
            };
            let flag = match flag.as_str() {
                "--net" => "--network".to_string(),
                "-v" => "--volume".to_string(),
                "--detach" => "-d".to_string(),
                _ => flag,
            };
            let value = match flag.as_str() {
                "--cap-add" | "--cap-drop" => value.map(|v| v.to_ascii_uppercase()),
                _ => value,
            };
            options.push((flag, value));
        };
        PodmanRun {
            options,
            image,
            command: rest.cloned().collect(),
        }
    }

    fn value(&self, flag: &str) -> Option<&str> {
        self.options
            .iter()
            .find(|(f, _)| f == flag)
            .and_then(|(_, v)| v.as_deref())
    }

    /// The options of `want` that this command line does not have.
    fn missing(&self, want: &[(String, Option<String>)]) -> Vec<(String, Option<String>)> {
        want.iter()
            .filter(|o| !self.options.contains(o))
            .cloned()
            .collect()
    }
}

/// README's `podman run` line (the block after "With Podman (rootful)"), its options only.
fn readme_podman_options() -> Vec<(String, Option<String>)> {
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    let (_, after) = readme
        .split_once("With Podman (rootful)")
        .expect("README's Podman paragraph");
    let block = after.split_once("```sh\n").unwrap().1;
    let block = block.split_once("```").unwrap().0.replace("\\\n", " ");
    let words: Vec<String> = block.split_whitespace().map(String::from).collect();
    let run = PodmanRun::parse(&words);
    assert!(run.options.len() >= 10, "{run:?}");
    run.options
}

/// The image's HEALTHCHECK (images/Containerfile) as `podman run` options: `--health-cmd`
/// and `--health-<option>` for each of its `--<option>=<value>`.
fn healthcheck_options() -> Vec<(String, String)> {
    let file = std::fs::read_to_string(repo().join("images/Containerfile")).unwrap();
    let (_, line) = file
        .split_once("\nHEALTHCHECK ")
        .expect("a HEALTHCHECK in images/Containerfile");
    let line = line.replace("\\\n", " ");
    let line = line.lines().next().unwrap();
    let (options, cmd) = line.split_once("CMD").unwrap();
    let cmd: Vec<String> = serde_json::from_str(cmd.trim()).unwrap();
    let mut want = vec![("--health-cmd".to_string(), cmd.join(" "))];
    for option in options.split_whitespace() {
        let (name, value) = option.trim_start_matches("--").split_once('=').unwrap();
        want.push((format!("--health-{name}"), value.to_string()));
    }
    assert_eq!(want.len(), 5, "{want:?}");
    want
}

/// A systemd command line split into words (systemd.service(5), "Command lines"): white space
/// separates, double and single quotes group, a backslash escapes the next character.
fn systemd_words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word: Option<String> = None;
    let mut quote: Option<char> = None;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match (c, quote) {
            ('\\', _) => word.get_or_insert_default().extend(chars.next()),
            (q, None) if q == '"' || q == '\'' => {
                quote = Some(q);
                word.get_or_insert_default();
            }
            (q, Some(open)) if q == open => quote = None,
            (c, None) if c.is_whitespace() => words.extend(word.take()),
            (c, _) => word.get_or_insert_default().push(c),
        }
    }
    assert!(quote.is_none(), "unbalanced quote in {line}");
    words.extend(word);
    words
}
