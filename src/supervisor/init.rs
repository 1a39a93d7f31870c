//! The Open_vSwitch row, before ovs-vswitchd starts: created if missing, and stamped with the
//! system-id, hostname, ovs_version and db_version, as `ovs-ctl start` does.

use crate::ovsdb::Client;
use serde_json::{json, Map, Value};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("failed to read the Open_vSwitch table: {0}")]
    Select(crate::ovsdb::Error),
    #[error("failed to initialise the Open_vSwitch row: {0}")]
    Write(crate::ovsdb::Error),
    #[error("failed to read {path}: {source}")]
    ReadSystemId {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("failed to write {path}: {source}")]
    WriteSystemId {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not a regular file: remove it (the system-id is kept in the database too)")]
    NotAFile { path: PathBuf },
}

/// Checks, before any daemon starts, that system-id.conf can be read: a directory there made
/// every start of ovsdb-server fail at the row's initialisation, restarting it until the
/// restart budget ran out (issue 13).
pub fn check_system_id_file(db_dir: &Path) -> Result<(), Error> {
    let path = db_dir.join("system-id.conf");
    match std::fs::symlink_metadata(&path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(Error::ReadSystemId { path, source }),
        Ok(meta) if !meta.is_file() => Err(Error::NotAFile { path }),
        Ok(_) => std::fs::read(&path)
            .map(|_| ())
            .map_err(|source| Error::ReadSystemId { path, source }),
    }
}

/// What the row is stamped with.
#[derive(Debug, Clone)]
pub struct Stamp {
    pub hostname: String,
    pub ovs_version: String,
    pub db_version: String,
    pub rundir: PathBuf,
    /// More external_ids keys (the resolved datapath, for `plan` and `status`).
    pub external_ids: Vec<(String, String)>,
    /// other_config keys that ovs-vswitchd reads only at start (userspace-tso-enable).
    pub other_config: Vec<(String, String)>,
}

/// Ensures the one Open_vSwitch row exists and carries `stamp`; returns the system-id in force.
///
/// The system-id comes from `<db_dir>/system-id.conf`; when that file is missing, an id already in
/// the database is kept (an existing host must not change identity), else a new one is made. It is
/// then written to the file, so it survives a database that is lost.
pub async fn open_vswitch_row(
    client: &Client,
    db_dir: &Path,
    stamp: &Stamp,
) -> Result<String, Error> {
    let select = json!({"op": "select", "table": "Open_vSwitch", "where": [],
                        "columns": ["_uuid", "external_ids", "other_config"]});
    let results = client
        .transact_raw("Open_vSwitch", vec![select])
        .await
        .map_err(Error::Select)?;
    let row = results
        .first()
        .and_then(|r| r["rows"].as_array())
        .and_then(|rows| rows.first())
        .cloned();
    let mut external_ids = row
        .as_ref()
        .map(|r| decode_map(&r["external_ids"]))
        .unwrap_or_default();
    let system_id = system_id(
        db_dir,
        external_ids.get("system-id").and_then(Value::as_str),
    )?;
    // Keys are set one by one with mutations, never the whole column: OVN (ovn-*), and anyone
    // else, keep the keys they wrote, even one written between our read and our write.
    let mut ours: Map<String, Value> = Map::new();
    ours.insert("system-id".into(), system_id.clone().into());
    ours.insert("rundir".into(), stamp.rundir.display().to_string().into());
    for (k, v) in &stamp.external_ids {
        ours.insert(k.clone(), v.clone().into());
    }
    // The hostname only when absent, as ovs-ctl does: an OVN chassis, and anything that matches
    // hosts by it, broke when it was overwritten at every ovsdb-server start.
    let hostname_set = external_ids
        .get("hostname")
        .and_then(Value::as_str)
        .is_some_and(|h| !h.is_empty());
    let mut hostname = Map::new();
    if !hostname_set {
        hostname.insert("hostname".into(), stamp.hostname.clone().into());
    }
    let other: Map<String, Value> = stamp
        .other_config
        .iter()
        .map(|(k, v)| (k.clone(), v.clone().into()))
        .collect();
    let keys = |m: &Map<String, Value>| json!(["set", m.keys().collect::<Vec<_>>()]);
    let op = match row.as_ref().and_then(|r| r["_uuid"].as_array()) {
        Some(uuid) => {
            let mut insert = ours.clone();
            insert.extend(hostname);
            json!([
                {"op": "update", "table": "Open_vSwitch", "where": [["_uuid", "==", uuid]],
                 "row": {"ovs_version": stamp.ovs_version, "db_version": stamp.db_version}},
                {"op": "mutate", "table": "Open_vSwitch", "where": [["_uuid", "==", uuid]],
                 "mutations": [
                    ["external_ids", "delete", keys(&ours)],
                    ["external_ids", "insert", encode_map(&insert)],
                    ["other_config", "delete", keys(&other)],
                    ["other_config", "insert", encode_map(&other)]]}
            ])
        }
        None => {
            external_ids.extend(ours);
            external_ids.extend(hostname);
            json!([{"op": "insert", "table": "Open_vSwitch", "row": {
                "external_ids": encode_map(&external_ids),
                "other_config": encode_map(&other),
                "ovs_version": stamp.ovs_version,
                "db_version": stamp.db_version,
            }}])
        }
    };
    let Value::Array(op) = op else {
        unreachable!("built as an array")
    };
    client
        .transact_raw("Open_vSwitch", op)
        .await
        .map_err(Error::Write)?;
    Ok(system_id)
}

/// An OVSDB map (`["map", [[k, v], ...]]`) as a JSON object.
fn decode_map(value: &Value) -> Map<String, Value> {
    let pairs = value
        .as_array()
        .filter(|a| a.first().and_then(Value::as_str) == Some("map"))
        .and_then(|a| a.get(1))
        .and_then(Value::as_array);
    pairs
        .into_iter()
        .flatten()
        .filter_map(|pair| {
            let key = pair.get(0)?.as_str()?.to_string();
            Some((key, pair.get(1)?.clone()))
        })
        .collect()
}

fn encode_map(map: &Map<String, Value>) -> Value {
    let pairs: Vec<Value> = map.iter().map(|(k, v)| json!([k, v])).collect();
    json!(["map", pairs])
}

fn system_id(db_dir: &Path, in_db: Option<&str>) -> Result<String, Error> {
    let path = db_dir.join("system-id.conf");
    let on_disk = match std::fs::read_to_string(&path) {
        Ok(text) if !text.trim().is_empty() => Some(text.trim().to_string()),
        Ok(_) => None,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(source) => return Err(Error::ReadSystemId { path, source }),
    };
    // The id in the database is the one the host is known by (an OVN chassis's name, set by
    // whoever set up the chassis): it is never replaced. The file restores it when the
    // database is lost, and follows it otherwise.
    if let (Some(disk), None | Some("")) = (&on_disk, in_db) {
        return Ok(disk.clone());
    }
    if let (Some(disk), Some(db)) = (&on_disk, in_db) {
        if disk == db {
            return Ok(disk.clone());
        }
        tracing::info!(database = db, file = %disk, "system-id in the database differs from system-id.conf: the database's is kept and written to the file");
    }
    let id = match in_db {
        Some(id) if !id.is_empty() => id.to_string(),
        _ => new_uuid().map_err(|source| Error::ReadSystemId {
            path: "/proc/sys/kernel/random/uuid".into(),
            source,
        })?,
    };
    let tmp = db_dir.join(".system-id.conf.tmp");
    write_file(&tmp, format!("{id}\n").as_bytes(), 0o644)
        .and_then(|()| std::fs::rename(&tmp, &path))
        .map_err(|source| Error::WriteSystemId { path, source })?;
    Ok(id)
}

/// Writes `data` to a new (or truncated) file created with `mode`, whatever the umask says.
fn write_file(path: &Path, data: &[u8], mode: u32) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(path)?;
    // The mode given at creation is filtered by the umask, and an older file keeps its own.
    file.set_permissions(std::fs::Permissions::from_mode(mode))?;
    file.write_all(data)
}

/// A random (version 4) UUID from the kernel.
fn new_uuid() -> std::io::Result<String> {
    Ok(std::fs::read_to_string("/proc/sys/kernel/random/uuid")?
        .trim()
        .to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_round_trip() {
        let v = json!(["map", [["a", "1"], ["system-id", "x"]]]);
        let m = decode_map(&v);
        assert_eq!(m.get("system-id"), Some(&json!("x")));
        assert_eq!(encode_map(&m), v);
        assert!(decode_map(&json!(["set", []])).is_empty());
    }

    #[test]
    fn a_directory_as_system_id_conf_is_found_before_the_start() {
        let dir = tempfile::tempdir().unwrap();
        assert!(check_system_id_file(dir.path()).is_ok());
        std::fs::write(dir.path().join("system-id.conf"), "x\n").unwrap();
        assert!(check_system_id_file(dir.path()).is_ok());
        std::fs::remove_file(dir.path().join("system-id.conf")).unwrap();
        std::fs::create_dir(dir.path().join("system-id.conf")).unwrap();
        let err = check_system_id_file(dir.path()).unwrap_err();
        assert!(matches!(err, Error::NotAFile { .. }), "{err}");
    }

    #[test]
    fn system_id_conf_is_0644_whatever_was_there() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let tmp = dir.path().join(".system-id.conf.tmp");
        std::fs::write(&tmp, "old").unwrap();
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o666)).unwrap();
        system_id(dir.path(), None).unwrap();
        let mode = std::fs::metadata(dir.path().join("system-id.conf"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o644);
    }

    #[test]
    fn system_id_is_made_once_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let first = system_id(dir.path(), None).unwrap();
        assert_eq!(first.len(), 36);
        // A lost database gets its id back from the file.
        assert_eq!(system_id(dir.path(), None).unwrap(), first);
        assert_eq!(system_id(dir.path(), Some("")).unwrap(), first);
        let file = std::fs::read_to_string(dir.path().join("system-id.conf")).unwrap();
        assert_eq!(file.trim(), first);
    }

    #[test]
    fn the_database_id_wins_and_the_file_follows_it() {
        // Whoever set up an OVN chassis set its name in the database: it is never replaced.
        let dir = tempfile::tempdir().unwrap();
        system_id(dir.path(), None).unwrap();
        assert_eq!(
            system_id(dir.path(), Some("chassis-a")).unwrap(),
            "chassis-a"
        );
        let file = std::fs::read_to_string(dir.path().join("system-id.conf")).unwrap();
        assert_eq!(file.trim(), "chassis-a");
    }

    #[test]
    fn an_id_already_in_the_database_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(system_id(dir.path(), Some("abc")).unwrap(), "abc");
        assert_eq!(system_id(dir.path(), None).unwrap(), "abc");
    }
}
