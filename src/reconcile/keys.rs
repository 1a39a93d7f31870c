//! Map columns are shared. OVN puts `iface-id` in an owned port's `external_ids`, a CNI plugin
//! its own keys, a person `other_config:stp-enable`: the appliance owns the keys its config
//! names in `external_ids`, `other_config` and `options`, not the columns.
//!
//! Which keys it set is recorded in the row itself, under `external_ids:ovs-appliance-keys`
//! (JSON: column to key list), so the record survives restarts and a new image and can be read
//! with `ovs-vsctl list`. A key the config stops naming is removed only when the record says the
//! appliance set it. A key the config names that another tool already set to another value is a
//! conflict: reported, left alone, unless `[ovs] force_keys = true`.
//!
//! Edits are `mutate`s, not `update`s: delete the pair as it was observed, then insert the new
//! one. A delete of a pair that changed meanwhile deletes nothing, and an insert never
//! overwrites a key that is there, so a concurrent writer of the same key wins and the next pass
//! sees it, while writers of other keys of the same row are never in the way (no guard is
//! needed, and none aborts the transaction).

use super::model::OWNER_KEY;
use crate::ovsdb::{Atom, Datum, Row};
use std::collections::{BTreeMap, BTreeSet};

/// The `external_ids` key that records which keys of a row's map columns the appliance set.
pub const KEYS_KEY: &str = "ovs-appliance-keys";

/// Keys of `external_ids` the appliance always owns on its rows: the owner mark and the record.
fn always_owned(column: &str, key: &str) -> bool {
    column == "external_ids" && (key == OWNER_KEY || key == KEYS_KEY)
}

/// Column name to the keys the appliance set in it.
type Record = BTreeMap<String, BTreeSet<String>>;

/// One map column's key edits: first delete `remove` (pairs as observed), then insert `insert`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MapEdit {
    pub column: String,
    pub remove: Vec<(String, String)>,
    pub insert: Vec<(String, String)>,
}

impl MapEdit {
    /// `column[key]` for each key this edit sets or removes, for messages.
    pub fn keys(&self) -> impl Iterator<Item = String> + '_ {
        let set: BTreeSet<&str> = self.insert.iter().map(|(k, _)| k.as_str()).collect();
        let removed = self
            .remove
            .iter()
            .filter(move |(k, _)| !set.contains(k.as_str()))
            .map(|(k, _)| format!("{}[{k}] removed", self.column));
        self.insert
            .iter()
            .map(|(k, _)| format!("{}[{k}]", self.column))
            .chain(removed)
    }
}

/// The string pairs of a map datum (an absent column is the empty map).
fn pairs(datum: Option<&Datum>) -> BTreeMap<&str, &str> {
    match datum {
        Some(Datum::Map(m)) => m
            .iter()
            .filter_map(|(k, v)| Some((k.as_str()?, v.as_str()?)))
            .collect(),
        _ => BTreeMap::new(),
    }
}

/// The record as written: columns with no key are left out, and a row with no configured key
/// says `{}` (so it is not taken for a row an older version made, which has no record).
fn encode(record: &Record) -> String {
    let record: Record = record
        .iter()
        .filter(|(_, keys)| !keys.is_empty())
        .map(|(c, k)| (c.clone(), k.clone()))
        .collect();
    serde_json::to_string(&record).unwrap_or_else(|_| "{}".into())
}

/// The record a row gets when it is inserted: every key of every map column of `row`, but the
/// owner mark. Written into `row`'s `external_ids`.
pub fn record_all(row: &mut Row) {
    let record: Record = row
        .iter()
        .filter_map(|(column, datum)| match datum {
            Datum::Map(m) => Some((
                column.clone(),
                m.iter()
                    .filter_map(|(k, _)| k.as_str())
                    .filter(|k| !always_owned(column, k))
                    .map(str::to_string)
                    .collect(),
            )),
            Datum::Set(_) => None,
        })
        .collect();
    if let Some(Datum::Map(ids)) = row.get_mut("external_ids") {
        let text = encode(&record);
        ids.retain(|(k, _)| k.as_str() != Some(KEYS_KEY));
        ids.push((Atom::from(KEYS_KEY), Atom::from(text)));
        ids.sort();
    }
}

/// What `edit` found for one row: the edits to send and the keys left alone.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Edits {
    pub maps: Vec<MapEdit>,
    pub conflicts: Vec<String>,
}

/// The key edits that make the map columns of `have` (an owned row) hold what `want` names,
/// touching no key the appliance did not set. `what` names the row in conflicts ("bridge br0").
///
/// A row with no record (made by an older version) counts as having set the keys that already
/// hold the configured value, and nothing else.
pub fn edit(what: &str, want: &Row, have: &Row, force: bool) -> Edits {
    let have_ids = pairs(have.get("external_ids"));
    let recorded: Option<Record> = have_ids
        .get(KEYS_KEY)
        .and_then(|text| serde_json::from_str(text).ok());
    let mut out = Edits::default();
    let mut record = Record::new();
    let mut ids_edit = None;
    for (column, datum) in want {
        let Datum::Map(_) = datum else { continue };
        let wanted = pairs(Some(datum));
        let observed = pairs(have.get(column));
        let set_before = recorded.as_ref().and_then(|r| r.get(column));
        let mine = record.entry(column.clone()).or_default();
        let mut e = MapEdit {
            column: column.clone(),
            remove: Vec::new(),
            insert: Vec::new(),
        };
        for (&key, &value) in &wanted {
            if column == "external_ids" && key == KEYS_KEY {
                continue;
            }
            let managed = always_owned(column, key)
                || match &recorded {
                    Some(_) => set_before.is_some_and(|s| s.contains(key)),
                    None => observed.get(key) == Some(&value),
                };
            match observed.get(key) {
                Some(&now) if now == value => {
                    if managed {
                        mine.insert(key.to_string());
                    }
                }
                Some(&now) if managed || force => {
                    e.remove.push((key.into(), now.into()));
                    e.insert.push((key.into(), value.into()));
                    mine.insert(key.to_string());
                }
                Some(&now) => out.conflicts.push(format!(
                    "{what}: {column}:{key} is {now:?}, set by something other than this appliance; the config wants {value:?}: left alone ([ovs] force_keys = true lets the config win)"
                )),
                None => {
                    e.insert.push((key.into(), value.into()));
                    mine.insert(key.to_string());
                }
            }
        }
        for key in set_before.into_iter().flatten() {
            if wanted.contains_key(key.as_str()) || always_owned(column, key) {
                continue;
            }
            if let Some(&now) = observed.get(key.as_str()) {
                e.remove.push((key.clone(), now.into()));
            }
        }
        mine.retain(|k| !always_owned(column, k));
        if column == "external_ids" {
            ids_edit = Some(e);
        } else if !e.remove.is_empty() || !e.insert.is_empty() {
            out.maps.push(e);
        }
    }
    // The record last, once every column's keys are known; it lives in external_ids.
    let mut ids = ids_edit.unwrap_or(MapEdit {
        column: "external_ids".into(),
        remove: Vec::new(),
        insert: Vec::new(),
    });
    let now = have_ids.get(KEYS_KEY).copied();
    let next = encode(&record);
    if now != Some(next.as_str()) {
        if let Some(now) = now {
            ids.remove.push((KEYS_KEY.into(), now.into()));
        }
        ids.insert.push((KEYS_KEY.into(), next));
    }
    if !ids.remove.is_empty() || !ids.insert.is_empty() {
        out.maps.push(ids);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(cols: &[(&str, &[(&str, &str)])]) -> Row {
        cols.iter()
            .map(|(c, kv)| (c.to_string(), Datum::map(kv.iter().copied())))
            .collect()
    }

    const OWNER: (&str, &str) = (OWNER_KEY, "default");

    #[test]
    fn a_new_row_records_every_configured_key_but_the_mark() {
        let mut r = row(&[
            ("other_config", &[("stp-enable", "true")]),
            ("external_ids", &[OWNER, ("site", "a")]),
        ]);
        record_all(&mut r);
        let ids = pairs(r.get("external_ids"));
        assert_eq!(
            ids.get(KEYS_KEY).copied(),
            Some(r#"{"external_ids":["site"],"other_config":["stp-enable"]}"#)
        );
        let mut bare = row(&[("external_ids", &[OWNER])]);
        record_all(&mut bare);
        assert_eq!(
            pairs(bare.get("external_ids")).get(KEYS_KEY).copied(),
            Some("{}"),
            "a row with no configured key says so"
        );
    }

    #[test]
    fn foreign_keys_on_an_owned_row_are_never_touched() {
        let mut want = row(&[
            ("other_config", &[("stp-enable", "true")]),
            ("external_ids", &[OWNER]),
        ]);
        record_all(&mut want);
        let mut have = want.clone();
        // OVN and a person add keys of their own to both columns.
        have.insert(
            "other_config".into(),
            Datum::map([("stp-enable", "true"), ("mac-table-size", "4096")]),
        );
        let mut ids = pairs(want.get("external_ids"));
        ids.insert("iface-id", "lsp1");
        have.insert("external_ids".into(), Datum::map(ids));
        assert_eq!(edit("bridge br0", &want, &have, false), Edits::default());
    }

    #[test]
    fn a_key_the_config_drops_is_removed_only_when_the_appliance_set_it() {
        let mut before = row(&[
            ("other_config", &[("a", "1"), ("b", "2")]),
            ("external_ids", &[OWNER]),
        ]);
        record_all(&mut before);
        let mut have = before.clone();
        have.insert(
            "other_config".into(),
            Datum::map([("a", "1"), ("b", "2"), ("c", "3")]),
        );
        let want = row(&[("other_config", &[("a", "1")]), ("external_ids", &[OWNER])]);
        let e = edit("bridge br0", &want, &have, false);
        assert!(e.conflicts.is_empty());
        let other = e.maps.iter().find(|m| m.column == "other_config").unwrap();
        assert_eq!(
            other.remove,
            vec![("b".into(), "2".into())],
            "c is not ours"
        );
        assert!(other.insert.is_empty());
        let ids = e.maps.iter().find(|m| m.column == "external_ids").unwrap();
        assert_eq!(
            ids.insert,
            vec![(KEYS_KEY.into(), r#"{"other_config":["a"]}"#.into())]
        );
        assert_eq!(ids.remove.len(), 1, "the old record, as it was");
    }

    #[test]
    fn a_foreign_value_under_a_configured_key_is_a_conflict_unless_forced() {
        let want = row(&[
            ("options", &[("remote_ip", "10.0.0.2")]),
            ("external_ids", &[OWNER]),
        ]);
        let mut have = row(&[
            ("options", &[("remote_ip", "10.9.9.9")]),
            ("external_ids", &[OWNER]),
        ]);
        // A recorded row that did not set remote_ip.
        let mut ids = pairs(have.get("external_ids"));
        ids.insert(KEYS_KEY, "{}");
        have.insert("external_ids".into(), Datum::map(ids));
        let e = edit("interface vx0", &want, &have, false);
        assert_eq!(e.conflicts.len(), 1);
        assert!(
            e.conflicts[0].contains("options:remote_ip is \"10.9.9.9\""),
            "{e:?}"
        );
        assert!(e.maps.iter().all(|m| m.column != "options"), "{e:?}");
        let forced = edit("interface vx0", &want, &have, true);
        assert!(forced.conflicts.is_empty());
        let opts = forced.maps.iter().find(|m| m.column == "options").unwrap();
        assert_eq!(opts.remove, vec![("remote_ip".into(), "10.9.9.9".into())]);
        assert_eq!(opts.insert, vec![("remote_ip".into(), "10.0.0.2".into())]);
    }

    #[test]
    fn an_owned_key_changed_by_hand_is_put_back() {
        let mut want = row(&[("other_config", &[("a", "1")]), ("external_ids", &[OWNER])]);
        record_all(&mut want);
        let mut have = want.clone();
        have.insert("other_config".into(), Datum::map([("a", "9")]));
        let e = edit("bridge br0", &want, &have, false);
        assert!(e.conflicts.is_empty());
        assert_eq!(
            e.maps,
            vec![MapEdit {
                column: "other_config".into(),
                remove: vec![("a".into(), "9".into())],
                insert: vec![("a".into(), "1".into())],
            }]
        );
    }

    #[test]
    fn a_row_without_a_record_adopts_only_the_keys_that_already_match() {
        // As an older version left it: the mark, the configured key, and OVN's key.
        let have = row(&[
            ("other_config", &[("a", "1"), ("ovn", "x")]),
            ("external_ids", &[OWNER]),
        ]);
        let want = row(&[("other_config", &[("a", "1")]), ("external_ids", &[OWNER])]);
        let e = edit("bridge br0", &want, &have, false);
        assert_eq!(e.maps.len(), 1, "only the record is written: {e:?}");
        assert_eq!(
            e.maps[0].insert,
            vec![(KEYS_KEY.into(), r#"{"other_config":["a"]}"#.into())]
        );
        // A key added later that another tool holds with another value is theirs.
        let want = row(&[
            ("other_config", &[("a", "1"), ("ovn", "y")]),
            ("external_ids", &[OWNER]),
        ]);
        assert_eq!(edit("bridge br0", &want, &have, false).conflicts.len(), 1);
    }

    #[test]
    fn a_shared_key_that_already_held_the_value_is_not_taken_over() {
        let mut have = row(&[("other_config", &[("a", "1")]), ("external_ids", &[OWNER])]);
        let mut ids = pairs(have.get("external_ids"));
        ids.insert(KEYS_KEY, "{}");
        have.insert("external_ids".into(), Datum::map(ids));
        let want = row(&[("other_config", &[("a", "1")]), ("external_ids", &[OWNER])]);
        assert_eq!(edit("bridge br0", &want, &have, false), Edits::default());
    }
}
