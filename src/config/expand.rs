//! Environment variables in the config's string values, so one file serves every host of a
//! fleet: `${NODE_IP}`, `${NAME:-default}` (the default when NAME is unset or empty), and `$$`
//! for a literal `$`. A `$` followed by anything else is kept as written. Expanded once, at
//! load, before anything is read from the values; keys are never expanded.

use super::validate::FieldError;
use super::validate_bridges::{bridge_path, port_path};
use toml::{Table, Value};

/// One value that named a variable, for `validate` to show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expansion {
    pub path: String,
    pub written: String,
    pub value: String,
}

/// Expands every string value of `root` in place with `lookup`; returns what it expanded, or
/// every reference it could not (an unset variable with no default, a `${` never closed).
pub(super) fn expand(
    root: &mut Table,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<Vec<Expansion>, Vec<FieldError>> {
    let mut walk = Walk {
        lookup,
        done: Vec::new(),
        errors: Vec::new(),
    };
    for (key, value) in root.iter_mut() {
        if key == "bridges" {
            walk.bridges(value);
        } else {
            walk.value(key, value);
        }
    }
    if walk.errors.is_empty() {
        Ok(walk.done)
    } else {
        Err(walk.errors)
    }
}

struct Walk<'a> {
    lookup: &'a dyn Fn(&str) -> Option<String>,
    done: Vec<Expansion>,
    errors: Vec<FieldError>,
}

impl Walk<'_> {
    /// Bridges and ports are named by their names in paths, as validation names them.
    fn bridges(&mut self, value: &mut Value) {
        let Some(list) = value.as_array_mut() else {
            return self.value("bridges", value);
        };
        for (b, bridge) in list.iter_mut().enumerate() {
            let path = bridge_path(b, raw_name(bridge));
            let Some(table) = bridge.as_table_mut() else {
                self.value(&path, bridge);
                continue;
            };
            for (key, value) in table.iter_mut() {
                match (key.as_str(), value.as_array_mut()) {
                    ("ports", Some(ports)) => {
                        for (p, port) in ports.iter_mut().enumerate() {
                            let path = port_path(&path, p, raw_name(port));
                            self.value(&path, port);
                        }
                    }
                    _ => self.value(&format!("{path}.{key}"), value),
                }
            }
        }
    }

    fn value(&mut self, path: &str, value: &mut Value) {
        match value {
            Value::String(text) => match expand_str(text, self.lookup) {
                Ok(None) => {}
                Ok(Some(expanded)) => {
                    self.done.push(Expansion {
                        path: path.to_string(),
                        written: std::mem::replace(text, expanded.clone()),
                        value: expanded,
                    });
                }
                Err(message) => self.errors.push(FieldError {
                    path: path.to_string(),
                    message,
                }),
            },
            Value::Array(items) => {
                for (i, item) in items.iter_mut().enumerate() {
                    self.value(&format!("{path}[{i}]"), item);
                }
            }
            Value::Table(table) => {
                for (key, item) in table.iter_mut() {
                    self.value(&format!("{path}.{key}"), item);
                }
            }
            _ => {}
        }
    }
}

/// A bridge's or port's name as written (before expansion), for its path.
fn raw_name(value: &Value) -> &str {
    value.get("name").and_then(Value::as_str).unwrap_or("")
}

/// `text` with its references replaced; `None` when it has none (`$$` counts as one).
fn expand_str(
    text: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<String>, String> {
    if !text.contains('$') {
        return Ok(None);
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    let mut changed = false;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
            changed = true;
        } else if let Some(body) = after.strip_prefix('{') {
            let end = body.find('}').ok_or_else(|| {
                format!("`${{` is not closed in {text:?} (write `$$` for a literal `$`)")
            })?;
            let reference = &body[..end];
            let (name, default) = match reference.split_once(":-") {
                Some((name, default)) => (name, Some(default)),
                None => (reference, None),
            };
            if !valid_name(name) {
                return Err(format!(
                    "`${{{reference}}}` does not name a variable (letters, digits and `_`, not starting with a digit)"
                ));
            }
            let value = lookup(name).filter(|v| default.is_none() || !v.is_empty());
            match (value, default) {
                (Some(v), _) => out.push_str(&v),
                (None, Some(d)) => out.push_str(d),
                (None, None) => {
                    return Err(format!(
                        "names the environment variable {name}, which is not set (give it a default with `${{{name}:-value}}`)"
                    ))
                }
            }
            rest = &body[end + 1..];
            changed = true;
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    Ok(changed.then_some(out))
}

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The variables every deploy path passes to the appliance, so one config serves every host:
/// the node's address and name (Kubernetes: the downward API; Fedora CoreOS and the systemd
/// units: the host name and `/etc/ovs-appliance/environment`). With each, the stand-in that
/// `kubernetes` and `ignition` validate a config with when they print it (the config is checked
/// as a host will read it, not with the values of the machine that renders it).
pub const HOST_VARIABLES: [(&str, &str); 2] = [("NODE_IP", "192.0.2.1"), ("NODE_NAME", "node-1")];

/// The stand-in for a host variable, None for any other name.
pub fn host_stand_in(name: &str) -> Option<String> {
    HOST_VARIABLES
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "NODE_IP" => Some("192.0.2.7".into()),
            "NODE_NAME" => Some("worker-3".into()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    fn one(text: &str) -> Result<Option<String>, String> {
        expand_str(text, &env)
    }

    #[test]
    fn references_defaults_and_dollars() {
        assert_eq!(one("plain"), Ok(None));
        assert_eq!(one("${NODE_IP}"), Ok(Some("192.0.2.7".into())));
        assert_eq!(
            one("ip-${NODE_IP}:6653"),
            Ok(Some("ip-192.0.2.7:6653".into()))
        );
        assert_eq!(one("${UNSET:-10.0.0.1}"), Ok(Some("10.0.0.1".into())));
        assert_eq!(
            one("${EMPTY:-x}"),
            Ok(Some("x".into())),
            "empty takes the default"
        );
        assert_eq!(
            one("${EMPTY}"),
            Ok(Some(String::new())),
            "empty without default is empty"
        );
        assert_eq!(one("${UNSET:-}"), Ok(Some(String::new())));
        assert_eq!(one("$$5"), Ok(Some("$5".into())));
        assert_eq!(one("$$${NODE_NAME}"), Ok(Some("$worker-3".into())));
        assert_eq!(one("a$b"), Ok(None), "a lone $ is kept");
        assert_eq!(one("cost$"), Ok(None));
        assert_eq!(
            one("${NODE_IP:-${X}}"),
            Ok(Some("192.0.2.7}".into())),
            "no nesting"
        );
    }

    #[test]
    fn what_cannot_be_expanded_is_named() {
        let e = one("${NODE_PORT}").unwrap_err();
        assert!(e.contains("NODE_PORT") && e.contains("not set"), "{e}");
        assert!(one("${NODE_IP").unwrap_err().contains("not closed"));
        assert!(one("${1X}")
            .unwrap_err()
            .contains("does not name a variable"));
        assert!(one("${}").unwrap_err().contains("does not name a variable"));
    }

    #[test]
    fn every_string_value_is_expanded_and_errors_carry_field_paths() {
        let mut table: Table = r#"
[ovs]
remotes = ["ptcp:6640:${NODE_IP}"]
external_ids = { node = "${NODE_NAME}" }
[[bridges]]
name = "br-${NODE_NAME}"
controllers = ["tcp:${CTRL}:6653"]
  [[bridges.ports]]
  name = "vx0"
  type = "vxlan"
  options = { local_ip = "${NODE_IP}", remote_ip = "${PEER}" }
"#
        .parse()
        .unwrap();
        let errors = expand(&mut table.clone(), &env).unwrap_err();
        let all: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
        assert_eq!(all.len(), 2, "{all:?}");
        assert!(
            all[0].starts_with(
                "bridges[\"br-${NODE_NAME}\"].controllers[0]: names the environment variable CTRL"
            ),
            "{all:?}"
        );
        assert!(all[1].starts_with("bridges[\"br-${NODE_NAME}\"].ports[\"vx0\"].options.remote_ip: names the environment variable PEER"), "{all:?}");

        let with_all = |n: &str| env(n).or_else(|| Some(format!("<{n}>")));
        let done = expand(&mut table, &with_all).unwrap();
        assert_eq!(
            table["ovs"]["remotes"][0].as_str(),
            Some("ptcp:6640:192.0.2.7")
        );
        assert_eq!(
            table["ovs"]["external_ids"]["node"].as_str(),
            Some("worker-3")
        );
        assert_eq!(table["bridges"][0]["name"].as_str(), Some("br-worker-3"));
        let port = &table["bridges"][0]["ports"][0];
        assert_eq!(port["options"]["remote_ip"].as_str(), Some("<PEER>"));
        assert_eq!(
            port["type"].as_str(),
            Some("vxlan"),
            "no reference, unchanged"
        );
        assert_eq!(done.len(), 6, "{done:?}");
        assert!(done.contains(&Expansion {
            path: "ovs.remotes[0]".into(),
            written: "ptcp:6640:${NODE_IP}".into(),
            value: "ptcp:6640:192.0.2.7".into(),
        }));
    }
}
