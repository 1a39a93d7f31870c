//! One bridge's flow snapshot on disk: its text format (pure encode and decode, with a SHA-1 of
//! everything above the last line, so a truncated or damaged file is refused before ovs-ofctl
//! sees it), the atomic write (temp file, fsync, rename, fsync of the directory), and the
//! rename aside of a file that could not be restored.
//!
//! ```text
//! ovs-appliance-flows 1
//! bridge br0
//! protocol OpenFlow13
//! taken 1764690000
//! tlv-map 0
//! groups 1
//! group_id=1,type=all,bucket=bucket_id:0,actions=output:1
//! meters 0
//! flows 2
//! priority=10,in_port=1 actions=group:1
//! priority=0 actions=drop
//! end 5f0c...
//! ```

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const MAGIC: &str = "ovs-appliance-flows 1";
/// What a snapshot's file name ends with.
pub const SUFFIX: &str = ".flows";
/// Snapshots are 0640, as conf.db's directory is 0750: flows can say much about a network.
const MODE: u32 = 0o640;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("failed to read flow snapshot {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("flow snapshot {path} is damaged ({reason}): moved aside, not restored")]
    Corrupt { path: PathBuf, reason: String },
    #[error("failed to write flow snapshot {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// What ovs-save keeps of a bridge, each item one line as `ovs-ofctl` reads it back.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Content {
    /// `{class=..,type=..,len=..}->tun_metadataN`, one per mapping.
    pub tlv_map: Vec<String>,
    pub groups: Vec<String>,
    /// `meter=N kbps bands=type=drop rate=R`, one per meter.
    pub meters: Vec<String>,
    pub flows: Vec<String>,
}

impl Content {
    /// A digest of the content alone (not the bridge or the time), to tell a change.
    pub fn digest(&self) -> [u8; 20] {
        let mut sha = sha1_smol::Sha1::new();
        for (name, lines) in self.sections() {
            sha.update(format!("{name} {}\n", lines.len()).as_bytes());
            for line in lines {
                sha.update(line.as_bytes());
                sha.update(b"\n");
            }
        }
        sha.digest().bytes()
    }

    fn sections(&self) -> [(&'static str, &Vec<String>); 4] {
        [
            ("tlv-map", &self.tlv_map),
            ("groups", &self.groups),
            ("meters", &self.meters),
            ("flows", &self.flows),
        ]
    }
}

/// A whole snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    pub bridge: String,
    /// The OpenFlow version it was dumped at (`OpenFlow13`), which it is read back at.
    pub protocol: String,
    pub taken: SystemTime,
    pub content: Content,
}

/// The file of `bridge`'s snapshot in `dir`, or None for a name that cannot be a file name
/// (OVS allows any bridge name; a `/` would leave the directory).
pub fn path(dir: &Path, bridge: &str) -> Option<PathBuf> {
    let plain = !bridge.is_empty() && !bridge.starts_with('.') && !bridge.contains('/');
    plain.then(|| dir.join(format!("{bridge}{SUFFIX}")))
}

/// The bridge a snapshot file name stands for.
pub fn bridge_of(file_name: &str) -> Option<&str> {
    file_name
        .strip_suffix(SUFFIX)
        .filter(|b| !b.is_empty() && !b.starts_with('.'))
}

pub fn encode(s: &Snapshot) -> String {
    let taken = s.taken.duration_since(UNIX_EPOCH).unwrap_or_default();
    let mut text = format!(
        "{MAGIC}\nbridge {}\nprotocol {}\ntaken {}\n",
        s.bridge,
        s.protocol,
        taken.as_secs()
    );
    for (name, lines) in s.content.sections() {
        text.push_str(&format!("{name} {}\n", lines.len()));
        for line in lines {
            text.push_str(line);
            text.push('\n');
        }
    }
    let sum = hex(&sha1_smol::Sha1::from(text.as_bytes()).digest().bytes());
    text.push_str(&format!("end {sum}\n"));
    text
}

/// Reads a snapshot back; anything but a whole, unchanged file is refused with the reason.
pub fn decode(text: &str) -> Result<Snapshot, String> {
    let body_end = text
        .trim_end_matches('\n')
        .rfind('\n')
        .map(|i| i + 1)
        .ok_or("no end line: truncated")?;
    let (body, last) = text.split_at(body_end);
    let sum = last
        .trim_end()
        .strip_prefix("end ")
        .ok_or("no end line: truncated")?;
    if hex(&sha1_smol::Sha1::from(body.as_bytes()).digest().bytes()) != sum {
        return Err("checksum mismatch".into());
    }
    let mut lines = body.lines();
    let field = |lines: &mut std::str::Lines<'_>, key: &str| -> Result<String, String> {
        let line = lines.next().ok_or(format!("no {key} line"))?;
        line.strip_prefix(key)
            .and_then(|v| v.strip_prefix(' '))
            .map(str::to_string)
            .ok_or(format!("expected `{key} ...`, found `{line}`"))
    };
    if field(&mut lines, "ovs-appliance-flows")? != "1" {
        return Err("not a version 1 flow snapshot".into());
    }
    let bridge = field(&mut lines, "bridge")?;
    let protocol = field(&mut lines, "protocol")?;
    let taken: u64 = field(&mut lines, "taken")?
        .parse()
        .map_err(|_| "bad taken time".to_string())?;
    let mut content = Content::default();
    for name in ["tlv-map", "groups", "meters", "flows"] {
        let count: usize = field(&mut lines, name)?
            .parse()
            .map_err(|_| format!("bad {name} count"))?;
        let mut items = Vec::with_capacity(count.min(1 << 20));
        for _ in 0..count {
            items.push(
                lines
                    .next()
                    .ok_or(format!("{name}: fewer lines than said"))?,
            );
        }
        let items = items.into_iter().map(str::to_string).collect();
        match name {
            "tlv-map" => content.tlv_map = items,
            "groups" => content.groups = items,
            "meters" => content.meters = items,
            _ => content.flows = items,
        }
    }
    if lines.next().is_some() {
        return Err("lines after the flows".into());
    }
    Ok(Snapshot {
        bridge,
        protocol,
        taken: UNIX_EPOCH + Duration::from_secs(taken),
        content,
    })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn read(path: &Path) -> Result<Snapshot, Error> {
    let text = std::fs::read(path).map_err(|source| Error::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let text = String::from_utf8(text).map_err(|_| Error::Corrupt {
        path: path.to_path_buf(),
        reason: "not UTF-8".into(),
    })?;
    decode(&text).map_err(|reason| Error::Corrupt {
        path: path.to_path_buf(),
        reason,
    })
}

/// Writes `text` to `path` so that a reader sees the old file or the new one, never a part:
/// a temp file beside it, fsynced, renamed over it, then the directory fsynced. A failed
/// write (a full disk) removes the temp file and leaves the old snapshot as it was.
pub fn write_atomic(path: &Path, text: &str) -> Result<(), Error> {
    use std::os::unix::fs::OpenOptionsExt;
    let err = |source| Error::Write {
        path: path.to_path_buf(),
        source,
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let tmp = dir.join(format!(".{name}.tmp"));
    let _ = std::fs::remove_file(&tmp);
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(MODE)
        .open(&tmp)
        .and_then(|mut f| {
            f.write_all(text.as_bytes())?;
            f.sync_all()
        });
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(err(e));
    }
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        err(e)
    })?;
    // The rename itself is durable only once the directory is.
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(err)
}

/// Renames a snapshot that could not be restored to `<name>.failed-<unix time>`, never
/// deleting it: an operator may want what it held. Returns the new path.
pub fn move_aside(path: &Path, now: SystemTime) -> std::io::Result<PathBuf> {
    let secs = now.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
    let mut aside = path.as_os_str().to_owned();
    aside.push(format!(".failed-{secs}"));
    let aside = PathBuf::from(aside);
    std::fs::rename(path, &aside)?;
    Ok(aside)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Snapshot {
        Snapshot {
            bridge: "br0".into(),
            protocol: "OpenFlow13".into(),
            taken: UNIX_EPOCH + Duration::from_secs(1_764_690_000),
            content: Content {
                tlv_map: vec!["{class=0xffff,type=0x0,len=4}->tun_metadata0".into()],
                groups: vec!["group_id=1,type=all,bucket=bucket_id:0,actions=output:1".into()],
                meters: vec!["meter=1 kbps bands=type=drop rate=1000".into()],
                flows: vec![
                    "priority=10,in_port=1 actions=group:1".into(),
                    "priority=0 actions=drop".into(),
                ],
            },
        }
    }

    #[test]
    fn round_trips() {
        let s = sample();
        let text = encode(&s);
        assert!(
            text.starts_with("ovs-appliance-flows 1\nbridge br0\n"),
            "{text}"
        );
        assert_eq!(decode(&text).unwrap(), s);
        let empty = Snapshot {
            content: Content::default(),
            ..sample()
        };
        assert_eq!(decode(&encode(&empty)).unwrap(), empty);
    }

    #[test]
    fn truncated_or_changed_files_are_refused() {
        let text = encode(&sample());
        // Cut anywhere: every prefix is refused.
        for cut in 0..text.len() - 1 {
            assert!(
                decode(&text[..cut]).is_err(),
                "prefix of {cut} bytes accepted"
            );
        }
        let changed = text.replace("output:1", "output:2");
        assert_eq!(decode(&changed).unwrap_err(), "checksum mismatch");
        assert!(decode("garbage").is_err());
    }

    #[test]
    fn digest_ignores_the_time_and_sees_every_section() {
        let a = sample();
        let later = Snapshot {
            taken: SystemTime::now(),
            ..sample()
        };
        assert_eq!(a.content.digest(), later.content.digest());
        let mut moved = a.content.clone();
        // A line moved from one section to the next is a change.
        let g = moved.groups.pop().unwrap();
        moved.meters.insert(0, g);
        assert_ne!(a.content.digest(), moved.digest());
    }

    #[test]
    fn names_that_cannot_be_files_have_no_path() {
        let dir = Path::new("/db/flows");
        assert_eq!(path(dir, "br0").unwrap(), Path::new("/db/flows/br0.flows"));
        for bad in ["", ".", "..", "a/b", ".hidden"] {
            assert!(path(dir, bad).is_none(), "{bad}");
        }
        assert_eq!(bridge_of("br0.flows"), Some("br0"));
        assert_eq!(bridge_of(".br0.flows.tmp"), None);
        assert_eq!(bridge_of("br0.flows.failed-1"), None);
    }

    #[test]
    fn atomic_write_replaces_and_a_failed_one_leaves_the_old_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("br0.flows");
        write_atomic(&p, "one").unwrap();
        write_atomic(&p, "two").unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "two");
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&p).unwrap().permissions().mode();
        assert_eq!(mode & 0o777 & !0o022, MODE & !0o022);
        // A directory that cannot take the temp file: the write fails, the old file stays.
        let missing = dir.path().join("gone").join("br0.flows");
        assert!(write_atomic(&missing, "x").is_err());
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "two");
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(names.len(), 1, "a temp file was left: {names:?}");
    }

    #[test]
    fn move_aside_renames_and_keeps() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("br0.flows");
        std::fs::write(&p, "bad").unwrap();
        let aside = move_aside(&p, UNIX_EPOCH + Duration::from_secs(7)).unwrap();
        assert_eq!(aside, dir.path().join("br0.flows.failed-7"));
        assert!(!p.exists());
        assert_eq!(std::fs::read_to_string(aside).unwrap(), "bad");
    }
}
