//! Tier 2: the database lifecycle through the binary: created, converted with a backup, refused
//! when corrupt (and left byte for byte as it was), and a torn last transaction tolerated.

mod common;

use common::*;
use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

const SCHEMA: &str = "/usr/share/openvswitch/vswitch.ovsschema";
const NETDEV: &str = "datapath = \"netdev\"\n";

fn ovsdb_tool(args: &[&str]) -> String {
    let out = run(
        Command::new("ovsdb-tool").args(args),
        Duration::from_secs(30),
    );
    assert!(out.status.success(), "ovsdb-tool {args:?}: {out:?}");
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// A database holding one bridge `name`, made offline with ovsdb-tool.
fn db_with_bridge(db: &Path, schema: &Path, name: &str) {
    fs::create_dir_all(db.parent().unwrap()).unwrap();
    ovsdb_tool(&["create", db.to_str().unwrap(), schema.to_str().unwrap()]);
    add_bridge_offline(db, name, true);
}

fn add_bridge_offline(db: &Path, name: &str, with_root: bool) {
    let txn = if with_root {
        format!(
            r#"["Open_vSwitch",{{"op":"insert","table":"Open_vSwitch","row":{{"bridges":["named-uuid","b"]}}}},
               {{"op":"insert","table":"Bridge","row":{{"name":"{name}"}},"uuid-name":"b"}}]"#
        )
    } else {
        format!(
            r#"["Open_vSwitch",{{"op":"insert","table":"Bridge","row":{{"name":"{name}"}},"uuid-name":"b"}},
               {{"op":"mutate","table":"Open_vSwitch","where":[],"mutations":[["bridges","insert",["named-uuid","b"]]]}}]"#
        )
    };
    ovsdb_tool(&["transact", db.to_str().unwrap(), &txn]);
}

fn refused_untouched(contents: &[u8], expect_in_error: &str) {
    if !require_real_ovs() {
        return;
    }
    let app = Appliance::new(NETDEV);
    let db = app.db_dir().join("conf.db");
    fs::create_dir_all(app.db_dir()).unwrap();
    fs::write(&db, contents).unwrap();
    let out = app.oneshot(&[], "run");
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(70), "{text}");
    assert!(
        text.contains(db.to_str().unwrap()),
        "names the path: {text}"
    );
    assert!(
        text.contains(expect_in_error),
        "carries OVS's error: {text}"
    );
    assert_eq!(fs::read(&db).unwrap(), contents, "byte-identical");
    assert_eq!(
        fs::read_dir(app.db_dir()).unwrap().count(),
        1,
        "no other file made"
    );
    assert!(
        !app.run_dir().join("ovsdb-server.pid").exists(),
        "no daemon started"
    );
}

#[test]
fn garbage_database_is_refused_and_left_untouched() {
    refused_untouched(b"this is not an OVSDB file\n\x00\x01\x02", "ovsdb-tool");
}

#[test]
fn database_cut_inside_its_schema_is_refused_and_left_untouched() {
    if !require_real_ovs() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("conf.db");
    db_with_bridge(&db, Path::new(SCHEMA), "br-a");
    let mut bytes = fs::read(&db).unwrap();
    bytes.truncate(3000);
    refused_untouched(&bytes, "End of file");
}

#[test]
fn a_torn_last_transaction_is_not_corruption() {
    if !require_real_ovs() {
        return;
    }
    let mut app = Appliance::new(NETDEV);
    let db = app.db_dir().join("conf.db");
    db_with_bridge(&db, Path::new(SCHEMA), "br-a");
    add_bridge_offline(&db, "br-b", false);
    let len = fs::metadata(&db).unwrap().len();
    fs::OpenOptions::new()
        .write(true)
        .open(&db)
        .unwrap()
        .set_len(len - 40)
        .unwrap();
    app.start_ready();
    let bridges = app.vsctl_stdout(&["list-br"]);
    assert!(bridges.contains("br-a"), "{bridges}");
    assert!(
        !bridges.contains("br-b"),
        "the torn transaction is dropped: {bridges}"
    );
}

/// The installed schema at an older version, without one column, as an older OVS would have.
/// The files in `dir` whose names start with `prefix` (backups, damaged copies).
fn files_starting(dir: &Path, prefix: &str) -> Vec<std::path::PathBuf> {
    fs::read_dir(dir)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(prefix))
        .map(|e| e.path())
        .collect()
}

fn older_schema(dir: &Path) -> std::path::PathBuf {
    let mut schema: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(SCHEMA).unwrap()).unwrap();
    schema["version"] = "8.0.0".into();
    let columns = schema["tables"]["Bridge"]["columns"]
        .as_object_mut()
        .unwrap();
    assert!(columns.remove("datapath_version").is_some());
    let path = dir.join("old.ovsschema");
    fs::write(&path, schema.to_string()).unwrap();
    path
}

#[test]
fn an_older_schema_is_converted_after_a_backup() {
    if !require_real_ovs() {
        return;
    }
    let mut app = Appliance::new(NETDEV);
    let db = app.db_dir().join("conf.db");
    let old = older_schema(app.dir.path());
    db_with_bridge(&db, &old, "br-old");
    assert_eq!(ovsdb_tool(&["db-version", db.to_str().unwrap()]), "8.0.0");
    let original = fs::read(&db).unwrap();

    app.start_ready();
    let current = ovsdb_tool(&["schema-version", SCHEMA]);
    assert_eq!(ovsdb_tool(&["db-version", db.to_str().unwrap()]), current);
    let backups = files_starting(&app.db_dir(), "conf.db.backup-8.0.0-");
    assert_eq!(backups.len(), 1, "one backup");
    assert_eq!(
        fs::read(&backups[0]).unwrap(),
        original,
        "backup is the old file"
    );
    assert!(
        app.vsctl_stdout(&["list-br"]).contains("br-old"),
        "data kept"
    );
    assert!(app.log().contains("converted the OVS database"));
}

#[test]
fn a_current_database_is_reused_with_its_system_id() {
    if !require_real_ovs() {
        return;
    }
    let mut app = Appliance::new(NETDEV);
    app.start_ready();
    let id = fs::read_to_string(app.db_dir().join("system-id.conf")).unwrap();
    app.signal(nix::sys::signal::Signal::SIGTERM);
    assert_eq!(app.wait_exit(Duration::from_secs(15)).code(), Some(0));
    app.start_ready();
    let again = app.vsctl_stdout(&["get", "Open_vSwitch", ".", "external_ids:system-id"]);
    assert_eq!(again.trim().trim_matches('"'), id.trim());
    let rows = app.vsctl_stdout(&["--bare", "--columns=_uuid", "list", "Open_vSwitch"]);
    assert_eq!(
        rows.split_whitespace().count(),
        1,
        "one Open_vSwitch row: {rows}"
    );
}

/// A database made offline: the schema, a bridge, then 4 ports added one transaction each.
fn db_with_bridge_and_4_ports(db: &Path, schema: &Path) {
    db_with_bridge(db, schema, "br-a");
    for i in 0..4 {
        let txn = format!(
            r#"["Open_vSwitch",
                {{"op":"insert","table":"Interface","row":{{"name":"p{i}","type":"internal"}},"uuid-name":"i"}},
                {{"op":"insert","table":"Port","row":{{"name":"p{i}","interfaces":["named-uuid","i"]}},"uuid-name":"p"}},
                {{"op":"mutate","table":"Bridge","where":[["name","==","br-a"]],"mutations":[["ports","insert",["named-uuid","p"]]]}}]"#
        );
        ovsdb_tool(&["transact", db.to_str().unwrap(), &txn]);
    }
}

/// Where each record of an OVSDB file starts (`OVSDB JSON <length> <sha1>\n<length bytes>`).
fn record_starts(bytes: &[u8]) -> Vec<usize> {
    let mut starts = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        starts.push(at);
        let nl = at + bytes[at..].iter().position(|b| *b == b'\n').unwrap();
        let header = std::str::from_utf8(&bytes[at..nl]).unwrap();
        let length: usize = header.split(' ').nth(2).unwrap().parse().unwrap();
        at = nl + 1 + length;
    }
    starts
}

/// The file of `db_with_bridge_and_4_ports` with one byte flipped in the middle of its second
/// record (the bridge): ovsdb-server would drop it and the 4 ports after it.
fn damaged_db() -> Option<Vec<u8>> {
    if !require_real_ovs() {
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("conf.db");
    db_with_bridge_and_4_ports(&db, Path::new(SCHEMA));
    let mut bytes = fs::read(&db).unwrap();
    let starts = record_starts(&bytes);
    assert_eq!(starts.len(), 6, "schema, bridge, 4 ports");
    let middle = (starts[1] + starts[2]) / 2;
    bytes[middle] ^= 0x01;
    Some(bytes)
}

/// Issue 13, item 2.
#[test]
fn a_damaged_record_with_good_ones_after_it_is_refused_and_left_untouched() {
    let Some(bytes) = damaged_db() else { return };
    refused_untouched(&bytes, "recover_corrupt_db = true");
    // What would be lost is said: the 4 port transactions.
    let app = Appliance::new(NETDEV);
    fs::create_dir_all(app.db_dir()).unwrap();
    fs::write(app.db_dir().join("conf.db"), &bytes).unwrap();
    let out = app.oneshot(&[], "run");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("the 4 after it"), "{text}");
    assert!(text.contains("touching Bridge, Interface, Port"), "{text}");
}

#[test]
fn with_recovery_allowed_a_damaged_database_is_copied_then_started() {
    let Some(bytes) = damaged_db() else { return };
    let mut app = Appliance::new(&format!("{NETDEV}recover_corrupt_db = true\n"));
    fs::create_dir_all(app.db_dir()).unwrap();
    fs::write(app.db_dir().join("conf.db"), &bytes).unwrap();
    app.start_ready();
    let copies = files_starting(&app.db_dir(), "conf.db.damaged-");
    assert_eq!(copies.len(), 1, "one copy");
    assert_eq!(fs::read(&copies[0]).unwrap(), bytes, "byte-identical copy");
    assert!(
        app.log().contains("recover_corrupt_db is set"),
        "{}",
        app.log()
    );
    // ovsdb-server dropped the damaged bridge and the ports after it.
    assert!(!app.vsctl_stdout(&["list-br"]).contains("br-a"));
}

#[test]
fn a_torn_last_record_of_a_live_database_starts_normally() {
    if !require_real_ovs() {
        return;
    }
    let mut app = Appliance::new(NETDEV);
    let db = app.db_dir().join("conf.db");
    db_with_bridge_and_4_ports(&db, Path::new(SCHEMA));
    let bytes = fs::read(&db).unwrap();
    let last = *record_starts(&bytes).last().unwrap();
    fs::write(&db, &bytes[..(last + bytes.len()) / 2]).unwrap();
    app.start_ready();
    let ports = app.vsctl_stdout(&["list-ports", "br-a"]);
    assert_eq!(
        ports.split_whitespace().collect::<Vec<_>>(),
        ["p0", "p1", "p2"]
    );
    assert!(
        app.log()
            .contains("last record of the database is incomplete"),
        "{}",
        app.log()
    );
}

/// The installed schema at a newer version, with one more column, as a newer OVS would have.
fn newer_schema(dir: &Path) -> std::path::PathBuf {
    let mut schema: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(SCHEMA).unwrap()).unwrap();
    schema["version"] = "8.99.0".into();
    schema["tables"]["Bridge"]["columns"]["future_column"] =
        serde_json::json!({"type": {"key": "string", "min": 0, "max": 1}});
    let path = dir.join("newer.ovsschema");
    fs::write(&path, schema.to_string()).unwrap();
    path
}

/// Issue 13, item 3.
#[test]
fn a_newer_database_is_refused_and_left_untouched() {
    if !require_real_ovs() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("conf.db");
    db_with_bridge(&db, &newer_schema(dir.path()), "br-new");
    let bytes = fs::read(&db).unwrap();
    refused_untouched(&bytes, "allow_db_downgrade = true");
    let installed = ovsdb_tool(&["schema-version", SCHEMA]);
    let app = Appliance::new(NETDEV);
    fs::create_dir_all(app.db_dir()).unwrap();
    fs::write(app.db_dir().join("conf.db"), &bytes).unwrap();
    let text = String::from_utf8_lossy(&app.oneshot(&[], "run").stdout).into_owned();
    let both = format!("schema version 8.99.0, newer than version {installed}");
    assert!(text.contains(&both), "{text}");
    assert!(
        text.contains("conf.db.backup-8.99.0-"),
        "names the backup: {text}"
    );
}

#[test]
fn a_newer_database_is_converted_down_only_when_allowed() {
    if !require_real_ovs() {
        return;
    }
    let mut app = Appliance::new(&format!("{NETDEV}allow_db_downgrade = true\n"));
    let db = app.db_dir().join("conf.db");
    db_with_bridge(&db, &newer_schema(app.dir.path()), "br-new");
    let original = fs::read(&db).unwrap();
    app.start_ready();
    let backups = files_starting(&app.db_dir(), "conf.db.backup-8.99.0-");
    assert_eq!(backups.len(), 1, "one backup");
    assert_eq!(fs::read(&backups[0]).unwrap(), original);
    let installed = ovsdb_tool(&["schema-version", SCHEMA]);
    assert_eq!(ovsdb_tool(&["db-version", db.to_str().unwrap()]), installed);
    assert!(app.vsctl_stdout(&["list-br"]).contains("br-new"));
}
