//! The OVSDB log file format, read the way ovsdb-server reads it, to learn before it starts
//! what it would throw away.
//!
//! A standalone database (conf.db) is a sequence of records, each a header line
//! `OVSDB JSON <length> <sha1>\n` (at most 127 bytes, OVS reads it with a 128-byte fgets)
//! followed by `<length>` bytes of JSON (an object or an array; OVS ends it with a newline)
//! whose SHA-1 is `<sha1>` in hex (ovsdb/log.c). The first record is the schema, every other
//! one a transaction. ovsdb-server stops reading at the first record that fails any of these
//! checks and truncates the file there on its next write: that record and everything after it
//! are gone. A torn last record (a crash in the middle of a write) loses one transaction and is
//! normal; a bad record with good ones after it loses every change made since.

use std::time::{Duration, UNIX_EPOCH};

/// What `scan` found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Scan {
    /// Records that read well before the first problem (the schema is record 0).
    pub good: usize,
    pub problem: Option<Problem>,
}

/// The first record ovsdb-server would stop at, and what it would drop with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Where the bad record starts: the file would be cut here.
    pub offset: u64,
    /// What is wrong with it.
    pub what: String,
    /// Bytes from `offset` to the end of the file.
    pub bytes_lost: u64,
    /// Well-formed records after the bad one, which would be lost with it.
    pub later: Vec<Record>,
}

impl Problem {
    /// Nothing well-formed follows: the tail of an interrupted write, which loses at most the
    /// transaction being written.
    pub fn is_torn_tail(&self) -> bool {
        self.later.is_empty()
    }
}

/// A well-formed transaction record: what an operator can recognize it by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub offset: u64,
    /// `_date`: milliseconds since the epoch, as ovsdb-server writes it.
    pub date_ms: Option<u64>,
    /// `_comment`: ovs-vsctl writes its command line there.
    pub comment: Option<String>,
    /// Tables the transaction touched.
    pub tables: Vec<String>,
}

const MAGIC: &[u8] = b"OVSDB JSON ";
/// OVS reads a header with `fgets(header, 128, ...)`.
const MAX_HEADER: usize = 127;

/// Reads every record of `data` (a whole conf.db).
pub fn scan(data: &[u8]) -> Scan {
    let mut at = 0;
    let mut good = 0;
    while at < data.len() {
        match record(data, at) {
            Ok((end, _)) => {
                good += 1;
                at = end;
            }
            Err(what) => {
                let later = later_records(data, at + 1);
                let problem = Problem {
                    offset: at as u64,
                    what,
                    bytes_lost: (data.len() - at) as u64,
                    later,
                };
                return Scan {
                    good,
                    problem: Some(problem),
                };
            }
        }
    }
    Scan {
        good,
        problem: None,
    }
}

/// The record at `at`: its end and its JSON, or what is wrong with it.
fn record(data: &[u8], at: usize) -> Result<(usize, serde_json::Value), String> {
    let rest = &data[at..];
    let window = &rest[..rest.len().min(MAX_HEADER)];
    let Some(nl) = window.iter().position(|b| *b == b'\n') else {
        return Err(if rest.len() < MAX_HEADER {
            "the file ends inside a record header".into()
        } else {
            "no record header (no line end within 127 bytes)".into()
        });
    };
    let (length, sha1) = header(&rest[..nl]).ok_or_else(|| {
        format!(
            "bad record header {:?}",
            String::from_utf8_lossy(&rest[..nl])
        )
    })?;
    let body_at = nl + 1;
    let Some(body) = rest.get(body_at..body_at + length) else {
        return Err(format!(
            "the file ends inside a record: {length} bytes announced, {} there",
            rest.len() - body_at
        ));
    };
    if sha1_smol::Sha1::from(body).digest().bytes() != sha1 {
        return Err(format!("its {length} bytes do not match its SHA-1"));
    }
    let json: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| format!("the record is not JSON: {e}"))?;
    if !(json.is_object() || json.is_array()) {
        return Err("the record is neither a JSON object nor an array".into());
    }
    Ok((at + body_at + length, json))
}

/// `OVSDB JSON <length> <40 hex digits>` (without the newline).
fn header(line: &[u8]) -> Option<(usize, [u8; 20])> {
    let rest = line.strip_prefix(MAGIC)?;
    let space = rest.iter().position(|b| *b == b' ')?;
    let digits = &rest[..space];
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let length: usize = std::str::from_utf8(digits).ok()?.parse().ok()?;
    let hex = &rest[space + 1..];
    if length == 0 || hex.len() != 40 {
        return None;
    }
    let mut sha1 = [0u8; 20];
    for (i, pair) in hex.chunks(2).enumerate() {
        let text = std::str::from_utf8(pair).ok()?;
        sha1[i] = u8::from_str_radix(text, 16).ok()?;
    }
    Some((length, sha1))
}

/// Well-formed records from `from` on, found by looking for headers at line starts.
fn later_records(data: &[u8], from: usize) -> Vec<Record> {
    let mut found = Vec::new();
    let mut at = from;
    while let Some(start) = next_header(data, at) {
        match record(data, start) {
            Ok((end, json)) => {
                found.push(describe(start, &json));
                at = end;
            }
            Err(_) => at = start + 1,
        }
    }
    found
}

/// The next `OVSDB JSON ` at the start of a line, at or after `from`.
fn next_header(data: &[u8], from: usize) -> Option<usize> {
    (from..data.len().saturating_sub(MAGIC.len() - 1))
        .find(|&i| data[i..].starts_with(MAGIC) && (i == 0 || data[i - 1] == b'\n'))
}

fn describe(offset: usize, json: &serde_json::Value) -> Record {
    let tables = json
        .as_object()
        .map(|o| {
            o.iter()
                .filter(|(k, v)| !k.starts_with('_') && v.is_object())
                .map(|(k, _)| k.clone())
                .collect()
        })
        .unwrap_or_default();
    Record {
        offset: offset as u64,
        date_ms: json["_date"].as_u64(),
        comment: json["_comment"].as_str().map(str::to_string),
        tables,
    }
}

/// One line for the log: what the later records were, by count, dates and comments.
pub fn summary(later: &[Record]) -> String {
    let mut tables: Vec<&str> = later
        .iter()
        .flat_map(|r| r.tables.iter().map(String::as_str))
        .collect();
    tables.sort_unstable();
    tables.dedup();
    let dates: Vec<u64> = later.iter().filter_map(|r| r.date_ms).collect();
    let mut text = format!("{} transactions", later.len());
    if let (Some(first), Some(last)) = (dates.iter().min(), dates.iter().max()) {
        let at = |ms| super::db::timestamp(UNIX_EPOCH + Duration::from_millis(ms));
        if first == last {
            text.push_str(&format!(" written at {}", at(*first)));
        } else {
            text.push_str(&format!(" written from {} to {}", at(*first), at(*last)));
        }
    }
    if !tables.is_empty() {
        text.push_str(&format!(" touching {}", tables.join(", ")));
    }
    let comments: Vec<&str> = later.iter().filter_map(|r| r.comment.as_deref()).collect();
    if !comments.is_empty() {
        let shown: Vec<&str> = comments.iter().take(3).copied().collect();
        text.push_str(&format!(" (e.g. {:?})", shown));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(json: &str) -> Vec<u8> {
        let body = format!("{json}\n");
        let sha1 = sha1_smol::Sha1::from(body.as_bytes()).digest();
        let hex: String = sha1.bytes().iter().map(|b| format!("{b:02x}")).collect();
        format!("OVSDB JSON {} {hex}\n{body}", body.len()).into_bytes()
    }

    fn db(n: usize) -> (Vec<u8>, Vec<usize>) {
        let mut data = rec(r#"{"name":"Open_vSwitch","version":"8.3.1","tables":{}}"#);
        let mut starts = vec![0];
        for i in 1..n {
            starts.push(data.len());
            let txn = format!(
                r#"{{"Bridge":{{"u{i}":{{"name":"br{i}"}}}},"_date":{},"_comment":"ovs-vsctl: add-br br{i}"}}"#,
                1_700_000_000_000u64 + i as u64 * 1000
            );
            data.extend(rec(&txn));
        }
        (data, starts)
    }

    #[test]
    fn a_clean_file_reads_whole() {
        let (data, _) = db(6);
        assert_eq!(
            scan(&data),
            Scan {
                good: 6,
                problem: None
            }
        );
        assert_eq!(scan(b"").good, 0);
    }

    #[test]
    fn a_torn_last_record_is_a_torn_tail() {
        let (data, starts) = db(6);
        for cut in [starts[5] + 3, starts[5] + 70, data.len() - 1] {
            let s = scan(&data[..cut]);
            assert_eq!(s.good, 5, "cut at {cut}");
            let p = s.problem.unwrap();
            assert_eq!(p.offset, starts[5] as u64);
            assert_eq!(p.bytes_lost, (cut - starts[5]) as u64);
            assert!(p.is_torn_tail(), "{p:?}");
        }
        // A last record of the right length whose bytes never reached the disk (zeros).
        let mut zeroed = data.clone();
        let body = starts[5] + 60;
        zeroed[body..].fill(0);
        let p = scan(&zeroed).problem.unwrap();
        assert!(p.is_torn_tail() && p.what.contains("SHA-1"), "{p:?}");
    }

    #[test]
    fn a_flipped_byte_in_the_second_record_loses_every_later_one() {
        let (mut data, starts) = db(6);
        data[starts[1] + 80] ^= 0x01;
        let s = scan(&data);
        assert_eq!(s.good, 1);
        let p = s.problem.unwrap();
        assert_eq!(p.offset, starts[1] as u64);
        assert!(p.what.contains("SHA-1"), "{}", p.what);
        assert!(!p.is_torn_tail());
        let offsets: Vec<u64> = p.later.iter().map(|r| r.offset).collect();
        assert_eq!(
            offsets,
            starts[2..].iter().map(|s| *s as u64).collect::<Vec<_>>()
        );
        assert_eq!(p.later[0].comment.as_deref(), Some("ovs-vsctl: add-br br2"));
        assert_eq!(p.later[0].tables, ["Bridge"]);
        let text = summary(&p.later);
        assert!(
            text.starts_with("4 transactions written from 20231114T"),
            "{text}"
        );
        assert!(text.contains("touching Bridge"), "{text}");
        assert!(text.contains("ovs-vsctl: add-br br2"), "{text}");
    }

    #[test]
    fn a_damaged_header_is_found_and_resynchronized_past() {
        let (data, starts) = db(5);
        // A length that runs past the end of the file still has good records after it.
        let nl = starts[2] + data[starts[2]..].iter().position(|b| *b == b'\n').unwrap();
        let sha = &data[nl - 40..nl];
        let mut longer = data[..starts[2]].to_vec();
        longer.extend(b"OVSDB JSON 99999 ");
        longer.extend(sha);
        longer.extend(&data[nl..]);
        let p = scan(&longer).problem.unwrap();
        assert_eq!(p.offset, starts[2] as u64);
        assert_eq!(p.later.len(), 2, "{p:?}");
        // Garbage instead of the magic.
        let mut garbage = data.clone();
        garbage[starts[3]] = b'X';
        let p = scan(&garbage).problem.unwrap();
        assert!(p.what.contains("bad record header"), "{}", p.what);
        assert_eq!(p.later.len(), 1);
        // A record of valid hash whose text is not JSON.
        let mut bad_json = data[..starts[4]].to_vec();
        bad_json.extend(rec("{not json"));
        let p = scan(&bad_json).problem.unwrap();
        assert!(p.what.contains("not JSON") && p.is_torn_tail(), "{p:?}");
    }

    #[test]
    fn headers_follow_ovs_rules() {
        let sha = "0".repeat(40);
        assert!(header(format!("OVSDB JSON 12 {sha}").as_bytes()).is_some());
        for bad in [
            format!("OVSDB JSON 0 {sha}"),
            format!("OVSDB JSON -1 {sha}"),
            format!("OVSDB JSON 12 {}", "0".repeat(39)),
            format!("OVSDB JSON 12 {}", "g".repeat(40)),
            format!("OVSDB CLUSTER 12 {sha}"),
            format!("OVSDB JSON 12  {sha}"),
        ] {
            assert!(header(bad.as_bytes()).is_none(), "{bad}");
        }
    }
}
