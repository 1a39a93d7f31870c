//! The OVS database file: create it, check it, convert it to a newer schema after a backup.
//!
//! The database is never deleted, and never rewritten without a backup next to it. A file that
//! `ovsdb-tool db-version` cannot read is refused and left byte for byte as it was.

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
    #[error("failed to convert {path} to schema {schema} (backup kept at {backup}): {ovs_error}")]
    Convert {
        path: PathBuf,
        schema: PathBuf,
        backup: PathBuf,
        ovs_error: String,
    },
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
) -> Result<(Prepared, String), Error> {
    std::fs::create_dir_all(db_dir).map_err(|source| Error::CreateDir {
        dir: db_dir.to_path_buf(),
        source,
    })?;
    let db = db_dir.join("conf.db");
    let schema_version = schema_version(schema).map_err(|why| Error::Create {
        path: db.clone(),
        schema: schema.into(),
        ovs_error: why,
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
    fn timestamps_are_utc_and_sortable() {
        let at = |s| timestamp(SystemTime::UNIX_EPOCH + Duration::from_secs(s));
        assert_eq!(at(0), "19700101T000000Z");
        assert_eq!(at(951_782_400), "20000229T000000Z");
        assert_eq!(at(1_795_803_661), "20261127T182101Z");
    }
}
