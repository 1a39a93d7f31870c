//! The OVSDB side: the bridges and their OpenFlow versions, and the flag on the Open_vSwitch
//! row.

use super::{ofctl, Bridge, FLAG};
use crate::ovsdb::Client;
use serde_json::{json, Value};

/// Every bridge's name and highest OpenFlow version.
pub(super) async fn bridges(client: &Client) -> Result<Vec<Bridge>, crate::ovsdb::Error> {
    let select = json!({"op": "select", "table": "Bridge", "where": [],
                        "columns": ["name", "protocols"]});
    let results = client.transact_raw("Open_vSwitch", vec![select]).await?;
    let rows = results
        .first()
        .and_then(|r| r["rows"].as_array())
        .cloned()
        .unwrap_or_default();
    Ok(rows.iter().filter_map(bridge_of_row).collect())
}

fn bridge_of_row(row: &Value) -> Option<Bridge> {
    let name = row["name"].as_str()?.to_string();
    let protocols: Vec<String> = match &row["protocols"] {
        Value::String(s) => vec![s.clone()],
        Value::Array(a) if a.first().and_then(Value::as_str) == Some("set") => a
            .get(1)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect(),
        _ => Vec::new(),
    };
    Some(Bridge {
        name,
        protocol: ofctl::highest_protocol(&protocols),
    })
}

/// Sets `other_config:flow-restore-wait=true`, or removes the key.
pub(super) async fn set_flag(client: &Client, on: bool) -> Result<(), crate::ovsdb::Error> {
    let mut mutations = vec![json!(["other_config", "delete", ["set", [FLAG]]])];
    if on {
        mutations.push(json!(["other_config", "insert", ["map", [[FLAG, "true"]]]]));
    }
    let op = json!({"op": "mutate", "table": "Open_vSwitch", "where": [], "mutations": mutations});
    client.transact_raw("Open_vSwitch", vec![op]).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bridges_from_select_rows() {
        let rows = [
            json!({"name": "br0", "protocols": ["set", ["OpenFlow10", "OpenFlow13"]]}),
            json!({"name": "br1", "protocols": "OpenFlow15"}),
            json!({"name": "br2", "protocols": ["set", []]}),
        ];
        let got: Vec<Bridge> = rows.iter().filter_map(bridge_of_row).collect();
        let want = [
            ("br0", "OpenFlow13"),
            ("br1", "OpenFlow15"),
            ("br2", "OpenFlow14"),
        ];
        for (b, (name, protocol)) in got.iter().zip(want) {
            assert_eq!((b.name.as_str(), b.protocol.as_str()), (name, protocol));
        }
        assert_eq!(got.len(), 3);
    }
}
