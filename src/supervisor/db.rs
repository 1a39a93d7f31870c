//! The OVS database file: create it, check it, convert it to a newer schema after a backup.
//!
//! The database is never deleted, and never rewritten without a backup next to it. A file that
//! `ovsdb-tool db-version` cannot read is refused and left byte for byte as it was. So is a file
//! with a damaged record that good records follow (ovsdb-server would drop them all: `dblog`),
//! and one whose schema is newer than the installed one (converting it down drops columns),
//! unless the config allows it; then a copy is kept first.

use super::dblog;
use super::reaper::Reaper;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime};

const TOOL_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("failed to create {dir}: {source}")]
    CreateDir {
        dir: PathBuf,
        source: std::io::Error,
    },
    #[error("failed to run ovsdb-tool {what}: {source}")]
    Tool {
        what: String,
        source: std::io::Error,
    },
    #[error("refusing to start: the OVS database {path} cannot be read ({ovs_error}); it was left untouched: restore it from a backup or move it away")]
    Corrupt { path: PathBuf, ovs_error: String },
    #[error("failed to read the OVS schema {schema}: {reason}; the openvswitch-switch package installs it (or set [ovs] schema)")]
    Schema { schema: PathBuf, reason: String },
    #[error("failed to create the OVS database {path} from {schema}: {ovs_error}")]
    Create {
        path: PathBuf,
        schema: PathBuf,
        ovs_error: String,
    },
    #[error("failed to back up {path} to {backup}: {source}")]
    Backup {
        path: PathBuf,
        backup: PathBuf,
        source: std::io::Error,
    },
    #[error("refusing to start: {path} is damaged at byte {offset} ({what}); ovsdb-server would drop that record and the {lost} after it: {summary}. The file was left untouched: restore it from a backup, or set [ovs] recover_corrupt_db = true to start from the records before the damage (a copy of the file is kept)")]
    Damaged {
        path: PathBuf,
        offset: u64,
        what: String,
        lost: usize,
        summary: String,
    },
    #[error("failed to read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Downgrade(Box<Downgrade>),
    #[error("failed to convert {path} to schema {schema} (backup kept at {backup}): {ovs_error}")]
    Convert {
        path: PathBuf,
        schema: PathBuf,
        backup: PathBuf,
        ovs_error: String,
    },
}

impl Error {
    /// 69: OVS itself is missing a part (ovsdb-tool, the schema); 73: a file cannot be made;
    /// 70: the database cannot be used as it is.
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Schema { .. } => 69,
            Self::Tool { source, .. } if source.kind() == std::io::ErrorKind::NotFound => 69,
            Self::CreateDir { .. } | Self::Backup { .. } => 73,
            _ => 70,
        }
    }
}

/// A database of a newer schema than the installed one, refused.
#[derive(Debug, thiserror::Error)]
#[error("refusing to start: {path} has schema version {db_version}, newer than version {schema_version} of the installed {schema}: converting it down would drop the columns and tables the older schema lacks. The file was left untouched: run the newer image again{older}, or set [ovs] allow_db_downgrade = true to convert it down (a copy is kept at {backup} first)")]
pub struct Downgrade {
    pub path: PathBuf,
    pub db_version: String,
    pub schema_version: String,
    pub schema: PathBuf,
    pub backup: PathBuf,
    /// `, or restore <older backup>` when there is one.
    pub older: String,
}

/// What the config allows `prepare` to do to a database it would otherwise refuse.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Policy {
    /// Start on a file whose damaged record good ones follow (ovsdb-server drops them all),
    /// after copying it aside.
    pub recover_corrupt: bool,
    /// Convert a database of a newer schema down to the installed one, after a backup.
    pub allow_downgrade: bool,
}

/// What `prepare` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Prepared {
    Created,
    UpToDate,
    Converted { from: String, backup: PathBuf },
}

/// Makes `<db_dir>/conf.db` exist at the schema's version. Returns what it did and the schema
/// version now in force.
pub async fn prepare(
    reaper: &Reaper,
    db_dir: &Path,
    schema: &Path,
    policy: Policy,
) -> Result<(Prepared, String), Error> {
    super::files::create_dir(db_dir, super::files::DB_DIR_MODE).map_err(|source| {
        Error::CreateDir {
            dir: db_dir.to_path_buf(),
            source,
        }
    })?;
    let db = db_dir.join("conf.db");
    let schema_version = schema_version(schema).map_err(|reason| Error::Schema {
        schema: schema.into(),
        reason,
    })?;
    if !db.exists() {
        if let Err(ovs_error) = tool(reaper, &["create", path_str(&db), path_str(schema)]).await? {
            return Err(Error::Create {
                path: db,
                schema: schema.into(),
                ovs_error,
            });
        }
        return Ok((Prepared::Created, schema_version));
    }
    // db-version reads only the schema record: a torn last transaction, which ovsdb-server
    // recovers from itself, does not fail it; garbage or a cut schema record does.
    let current = tool(reaper, &["db-version", path_str(&db)])
        .await?
        .map_err(|ovs_error| Error::Corrupt {
            path: db.clone(),
            ovs_error,
        })?;
    check_records(&db, policy).await?;
    let needs = tool(
        reaper,
        &["needs-conversion", path_str(&db), path_str(schema)],
    )
    .await?
    .map_err(|ovs_error| Error::Corrupt {
        path: db.clone(),
        ovs_error,
    })?;
    if needs != "yes" {
        return Ok((Prepared::UpToDate, schema_version));
    }
    let backup = db_dir.join(format!(
        "conf.db.backup-{current}-{}",
        timestamp(SystemTime::now())
    ));
    if is_newer(&current, &schema_version) && !policy.allow_downgrade {
        return Err(Error::Downgrade(Box::new(Downgrade {
            path: db,
            older: older_backups(db_dir, &schema_version),
            db_version: current,
            schema_version,
            schema: schema.into(),
            backup,
        })));
    }
    copy_synced(&db, &backup).map_err(|source| Error::Backup {
        path: db.clone(),
        backup: backup.clone(),
        source,
    })?;
    if let Err(ovs_error) = tool(reaper, &["convert", path_str(&db), path_str(schema)]).await? {
        return Err(Error::Convert {
            path: db,
            schema: schema.into(),
            backup,
            ovs_error,
        });
    }
    Ok((
        Prepared::Converted {
            from: current,
            backup,
        },
        schema_version,
    ))
}

/// Reads every record as ovsdb-server will (off the runtime's thread: the file may be large).
/// A torn last record is the normal trace of a crash: a copy is kept and ovsdb-server drops it.
/// A damaged record with good ones after it is refused, unless the policy allows recovery.
async fn check_records(db: &Path, policy: Policy) -> Result<(), Error> {
    let path = db.to_path_buf();
    let scan = tokio::task::spawn_blocking(move || -> std::io::Result<Option<dblog::Problem>> {
        let data = std::fs::read(&path)?;
        // A clustered database has its own record format, which ovsdb-server checks itself.
        if data.starts_with(b"OVSDB CLUSTER ") {
            return Ok(None);
        }
        Ok(dblog::scan(&data).problem)
    })
    .await
    .map_err(|e| Error::Read {
        path: db.to_path_buf(),
        source: std::io::Error::other(e),
    })?
    .map_err(|source| Error::Read {
        path: db.to_path_buf(),
        source,
    })?;
    let Some(problem) = scan else {
        return Ok(());
    };
    if problem.offset == 0 {
        return Err(Error::Corrupt {
            path: db.to_path_buf(),
            ovs_error: problem.what,
        });
    }
    let summary = dblog::summary(&problem.later);
    if !problem.is_torn_tail() && !policy.recover_corrupt {
        return Err(Error::Damaged {
            path: db.to_path_buf(),
            offset: problem.offset,
            what: problem.what,
            lost: problem.later.len(),
            summary,
        });
    }
    let dir = db.parent().unwrap_or(Path::new("."));
    let copy = dir.join(format!("conf.db.damaged-{}", timestamp(SystemTime::now())));
    copy_synced(db, &copy).map_err(|source| Error::Backup {
        path: db.to_path_buf(),
        backup: copy.clone(),
        source,
    })?;
    if problem.is_torn_tail() {
        tracing::warn!(
            db = %db.display(), offset = problem.offset, bytes = problem.bytes_lost,
            copy = %copy.display(), what = %problem.what,
            "the last record of the database is incomplete or damaged (a write cut short by a crash): ovsdb-server will drop it; a copy of the file is kept"
        );
    } else {
        tracing::warn!(
            db = %db.display(), offset = problem.offset, bytes = problem.bytes_lost,
            copy = %copy.display(), what = %problem.what,
            "the database is damaged and [ovs] recover_corrupt_db is set: ovsdb-server will drop the damaged record and {summary}; a copy of the file is kept"
        );
    }
    Ok(())
}

/// Whether version `a` ("x.y.z") is newer than `b`. Unreadable versions are not compared.
fn is_newer(a: &str, b: &str) -> bool {
    let parse = |v: &str| -> Option<Vec<u64>> { v.split('.').map(|p| p.parse().ok()).collect() };
    match (parse(a), parse(b)) {
        (Some(a), Some(b)) => a > b,
        _ => false,
    }
}

/// `, or restore <db_dir>/conf.db.backup-<v>-<time>` for the newest backup made at a version the
/// installed schema reads without a downgrade; empty when there is none.
fn older_backups(db_dir: &Path, schema_version: &str) -> String {
    let Ok(entries) = std::fs::read_dir(db_dir) else {
        return String::new();
    };
    let newest = entries
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let rest = name.strip_prefix("conf.db.backup-")?;
            let (version, time) = rest.rsplit_once('-')?;
            (!is_newer(version, schema_version)).then(|| (time.to_string(), e.path()))
        })
        .max();
    match newest {
        Some((_, path)) => format!(", or restore {}", path.display()),
        None => String::new(),
    }
}

/// The schema's "version" member, read directly: a subprocess here would sit on the start path.
fn schema_version(schema: &Path) -> Result<String, String> {
    let text = std::fs::read_to_string(schema).map_err(|e| e.to_string())?;
    let json: serde_json::Value = serde_json::from_str(&text).map_err(|e| e.to_string())?;
    json["version"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| "the schema has no \"version\"".to_string())
}

fn path_str(p: &Path) -> &str {
    p.to_str().unwrap_or_default()
}

/// Runs ovsdb-tool: Ok(Ok(stdout)) on success, Ok(Err(stderr)) when it failed.
async fn tool(reaper: &Reaper, args: &[&str]) -> Result<Result<String, String>, Error> {
    let out = reaper
        .output(Command::new("ovsdb-tool").args(args), TOOL_TIMEOUT)
        .await
        .map_err(|source| Error::Tool {
            what: args.first().copied().unwrap_or_default().into(),
            source,
        })?;
    if out.status.success() {
        Ok(Ok(out.stdout.trim().to_string()))
    } else {
        let text = out.stderr.trim();
        let text = if text.is_empty() {
            out.status.to_string()
        } else {
            text.to_string()
        };
        Ok(Err(text))
    }
}

/// Copies and fsyncs, so the backup is on disk before the original is rewritten.
fn copy_synced(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::copy(from, to)?;
    std::fs::File::open(to)?.sync_all()?;
    if let Some(dir) = to.parent() {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

/// UTC time as `20261127T182100Z`, for backup names that sort by age.
pub fn timestamp(t: SystemTime) -> String {
    let secs = t
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    format!(
        "{y:04}{m:02}{d:02}T{:02}{:02}{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_version_is_read_from_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.ovsschema");
        std::fs::write(
            &path,
            r#"{"name": "Open_vSwitch", "version": "8.3.1", "tables": {}}"#,
        )
        .unwrap();
        assert_eq!(schema_version(&path).unwrap(), "8.3.1");
        std::fs::write(&path, "{}").unwrap();
        assert!(schema_version(&path).unwrap_err().contains("version"));
        assert!(schema_version(&dir.path().join("missing")).is_err());
    }

    #[test]
    fn versions_compare_by_number() {
        assert!(is_newer("8.10.0", "8.3.1"));
        assert!(is_newer("8.3.2", "8.3.1"));
        assert!(is_newer("9.0.0", "8.99.99"));
        assert!(!is_newer("8.3.1", "8.3.1"));
        assert!(!is_newer("8.2.0", "8.3.1"));
        assert!(!is_newer("x.y", "8.3.1"));
    }

    #[test]
    fn the_newest_readable_backup_is_named() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(older_backups(dir.path(), "8.3.1"), "");
        for name in [
            "conf.db.backup-8.3.0-20250101T000000Z",
            "conf.db.backup-8.3.1-20260101T000000Z",
            "conf.db.backup-8.9.0-20270101T000000Z",
            "conf.db.damaged-20280101T000000Z",
        ] {
            std::fs::write(dir.path().join(name), "").unwrap();
        }
        let text = older_backups(dir.path(), "8.3.1");
        assert!(
            text.ends_with("conf.db.backup-8.3.1-20260101T000000Z"),
            "{text}"
        );
    }

    #[test]
    fn timestamps_are_utc_and_sortable() {
        let at = |s| timestamp(SystemTime::UNIX_EPOCH + Duration::from_secs(s));
        assert_eq!(at(0), "19700101T000000Z");
        assert_eq!(at(951_782_400), "20000229T000000Z");
        assert_eq!(at(1_795_803_661), "20261127T182101Z");
    }
}
