use super::*;

const IMAGE: &str = "registry.example.com/ovs-appliance:0.1.0";

fn sample() -> Provision {
    provision("[ovs]\ndatapath = \"auto\"\n", Path::new("t.toml"), IMAGE).unwrap()
}

#[test]
fn embeds_the_config_byte_for_byte() {
    let text = "# mine\n[ovs]\ndatapath = \"netdev\"\n";
    let p = provision(text, Path::new("t.toml"), IMAGE).unwrap();
    let config = p.files.iter().find(|f| f.path == CONFIG_PATH).unwrap();
    assert_eq!(config.contents, text);
}

#[test]
fn refuses_an_invalid_config() {
    let err = provision("[ovs]\ndatapath = \"fast\"\n", Path::new("t.toml"), IMAGE).unwrap_err();
    assert!(matches!(err, Error::Config(_)), "{err}");
}

#[test]
fn refuses_image_references_that_would_break_a_unit_file() {
    for bad in ["", "a b", "x\nExecStartPre=/bin/rm", "-v", "img;rm", "/abs"] {
        let err = provision("", Path::new("t.toml"), bad).unwrap_err();
        assert!(matches!(err, Error::Image(_)), "{bad:?}: {err}");
    }
    for good in [
        "ovs-appliance:dev",
        "quay.io/x/ovs-appliance@sha256:0123abcd",
        "localhost:5000/a/b:1.2",
    ] {
        provision("", Path::new("t.toml"), good).unwrap();
    }
}

#[test]
fn units_carry_the_image_and_the_container_flags() {
    let p = sample();
    let quadlet = &p
        .files
        .iter()
        .find(|f| f.path == QUADLET_PATH)
        .unwrap()
        .contents;
    assert!(quadlet.contains(&format!("\nImage={IMAGE}\n")));
    assert!(quadlet.contains("\nNetwork=host\n"));
    assert!(quadlet.contains("\nAddCapability=NET_ADMIN SYS_MODULE SYS_NICE NET_RAW\n"));
    assert!(quadlet.contains("\nAddDevice=/dev/net/tun\n"));
    assert!(quadlet.contains("\n[Install]\nWantedBy=multi-user.target\n"));
    let docker = &p.units[0].contents;
    assert!(docker.contains(&format!("  {IMAGE}\n")));
    assert!(docker.contains("Conflicts=ovs-appliance.service"));
}

#[test]
fn renders_ignition_3_5_with_data_urls() {
    let json: serde_json::Value = serde_json::from_str(&render(&sample())).unwrap();
    assert_eq!(json["ignition"]["version"], "3.5.0");
    let files = json["storage"]["files"].as_array().unwrap();
    assert_eq!(files.len(), 3);
    for (file, want) in files.iter().zip(&sample().files) {
        assert_eq!(file["path"], want.path);
        assert_eq!(file["mode"], 0o644);
        let source = file["contents"]["source"].as_str().unwrap();
        assert_eq!(dataurl::decode(source).unwrap(), want.contents.as_bytes());
    }
    assert_eq!(json["systemd"]["units"][0]["name"], DOCKER_UNIT);
    assert!(json["systemd"]["units"][0].get("enabled").is_none());
}
