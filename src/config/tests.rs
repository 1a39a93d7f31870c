use super::*;
use std::time::Duration;

fn parse(text: &str) -> Result<Config, Error> {
    Config::from_toml(text, Path::new("test.toml"))
}

fn message(text: &str) -> String {
    parse(text).unwrap_err().to_string()
}

#[test]
fn empty_file_is_the_embedded_default() {
    let config = parse("").unwrap();
    assert_eq!(config, Config::default());
    assert_eq!(config.ovs.run_dir, Path::new("/var/run/openvswitch"));
    assert_eq!(config.ovs.db_dir, Path::new("/etc/openvswitch"));
    assert_eq!(config.ovs.vswitchd_nice, -10);
    assert!(config.ovs.remotes.is_empty());
}

#[test]
fn full_ovs_table_parses() {
    let config = parse(
        r#"
        [ovs]
        datapath = "netdev"
        mlockall = false
        run_dir = "/run/x"
        db_dir = "/db"
        remotes = ["ptcp:6640:127.0.0.1"]
        vswitchd_nice = 0
        [supervisor]
        health_interval = "200ms"
        restart_limit = 2
        "#,
    )
    .unwrap();
    assert_eq!(config.ovs.datapath, DatapathMode::Netdev);
    assert_eq!(config.ovs.mlockall, Mlockall::Never);
    assert_eq!(config.ovs.remotes, vec!["ptcp:6640:127.0.0.1"]);
    assert_eq!(
        config.supervisor.health_interval.0,
        Duration::from_millis(200)
    );
    assert_eq!(config.supervisor.restart_limit, 2);
}

#[test]
fn mlockall_accepts_strings_and_booleans() {
    for (text, want) in [
        ("\"auto\"", Mlockall::Auto),
        ("true", Mlockall::Always),
        ("\"false\"", Mlockall::Never),
    ] {
        let config = parse(&format!("[ovs]\nmlockall = {text}")).unwrap();
        assert_eq!(config.ovs.mlockall, want, "{text}");
    }
    assert!(message("[ovs]\nmlockall = \"sometimes\"").contains("sometimes"));
}

#[test]
fn unknown_key_is_named() {
    let msg = message("[ovs]\ndatapth = \"netdev\"");
    assert!(msg.contains("datapth"), "{msg}");
    let msg = message("[ovss]\n");
    assert!(msg.contains("ovss"), "{msg}");
}

#[test]
fn bad_value_names_the_key_and_value() {
    let msg = message("[ovs]\ndatapath = \"kernel\"");
    assert!(msg.contains("datapath") && msg.contains("kernel"), "{msg}");
    let msg = message("[supervisor]\nhealth_timeout = \"5 parsecs\"");
    assert!(
        msg.contains("health_timeout") || msg.contains("parsecs"),
        "{msg}"
    );
}

#[test]
fn validation_names_field_paths() {
    let msg = message(
        r#"
        [ovs]
        vswitchd_nice = -30
        run_dir = "relative"
        remotes = ["6640"]
        [supervisor]
        health_failures = 0
        backoff_initial = "10s"
        backoff_max = "1s"
        "#,
    );
    for want in [
        "ovs.vswitchd_nice: -30 is outside",
        "ovs.run_dir: `relative` is not an absolute path",
        "ovs.remotes[0]: `6640` is not an OVSDB remote",
        "supervisor.health_failures: must be at least 1",
        "supervisor.backoff_initial: 10s is longer",
    ] {
        assert!(msg.contains(want), "missing {want:?} in {msg}");
    }
}

#[test]
fn load_uses_default_only_when_no_path_was_given() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.toml");
    let err = Config::load(Some(&missing)).unwrap_err();
    assert!(err.to_string().contains("nope.toml"), "{err}");

    let file = dir.path().join("c.toml");
    std::fs::write(&file, "[ovs]\ndatapath = \"system\"\n").unwrap();
    assert_eq!(
        Config::load(Some(&file)).unwrap().ovs.datapath,
        DatapathMode::System
    );
}

#[test]
fn metrics_table_defaults_to_loopback_and_parses() {
    let config = parse("").unwrap();
    assert_eq!(config.metrics.listen.to_string(), "127.0.0.1:9476");
    assert!(config.metrics.include.is_empty() && config.metrics.exclude.is_empty());
    let config = parse(
        r#"
        [metrics]
        listen = "0.0.0.0:9000"
        include = ["eth*", "br-?"]
        exclude = ["vnet*"]
        max_interfaces = 10
        refresh_interval = "2s"
        "#,
    )
    .unwrap();
    assert_eq!(config.metrics.listen.port(), 9000);
    assert_eq!(config.metrics.include, ["eth*", "br-?"]);
    assert_eq!(config.metrics.max_interfaces, 10);
    assert_eq!(config.metrics.refresh_interval.0, Duration::from_secs(2));
}

#[test]
fn metrics_errors_name_the_field() {
    assert!(message("[metrics]\nlisten = \"localhost\"").contains("listen"));
    assert!(message("[metrics]\nport = 1").contains("port"));
    let m = message("[metrics]\nrefresh_interval = \"0s\"\nexclude = [\"\"]");
    assert!(
        m.contains("metrics.refresh_interval: must be longer than 0"),
        "{m}"
    );
    assert!(m.contains("metrics.exclude[0]: must not be empty"), "{m}");
}
