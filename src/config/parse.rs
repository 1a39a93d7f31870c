//! TOML text to [`Config`], with every wrong key reported at once.
//!
//! serde stops at the first key it cannot read, so a file with three mistakes would take three
//! runs to fix. When the document does not deserialize whole, each key is read again on its own
//! (the tables all have defaults, and a bridge or port needs only its name beside the key), and
//! each failure is reported with its field path, bridges and ports named by name.

use super::validate::FieldError;
use super::validate_bridges::{bridge_path, port_path};
use super::{Bridge, Config, DockerConfig, MetricsConfig, OvsConfig, Port, SupervisorConfig};
use serde::de::DeserializeOwned;
use toml::{Table, Value};

/// Why text is not a config.
#[derive(Debug)]
pub(super) enum Failure {
    /// Not TOML at all: toml's message, with its line and column.
    Syntax(String),
    /// TOML, but keys that are unknown or of the wrong type.
    Fields(Vec<FieldError>),
}

/// The tables of the document, in the order the README lists them.
const TABLES: [&str; 5] = ["ovs", "supervisor", "metrics", "docker", "bridges"];

pub(super) fn parse(text: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<Config, Failure> {
    let mut table: Table = text
        .parse()
        .map_err(|e: toml::de::Error| Failure::Syntax(e.to_string().trim_end().to_string()))?;
    let expansions = super::expand::expand(&mut table, env).map_err(Failure::Fields)?;
    let whole = Value::Table(table.clone()).try_into::<Config>();
    match whole {
        Ok(config) => Ok(Config {
            expansions,
            ..config
        }),
        Err(first) => {
            let mut errors = Vec::new();
            each_key(&table, &mut errors);
            if errors.is_empty() {
                // Every key reads alone but not together: say what serde said.
                errors.push(field("config", &first));
            }
            Err(Failure::Fields(errors))
        }
    }
}

fn each_key(root: &Table, errors: &mut Vec<FieldError>) {
    for (key, value) in root {
        match key.as_str() {
            "ovs" => section::<OvsConfig>(key, value, errors),
            "supervisor" => section::<SupervisorConfig>(key, value, errors),
            "metrics" => section::<MetricsConfig>(key, value, errors),
            "docker" => section::<DockerConfig>(key, value, errors),
            "bridges" => bridges(value, errors),
            _ => errors.push(FieldError {
                path: key.clone(),
                message: format!(
                    "unknown key; the config has the tables {}",
                    TABLES.join(", ")
                ),
            }),
        }
    }
}

/// A table whose every key has a default: each key is read alone.
fn section<T: DeserializeOwned>(name: &str, value: &Value, errors: &mut Vec<FieldError>) {
    let Some(table) = value.as_table() else {
        errors.push(not_a_table(name, value));
        return;
    };
    for (key, v) in table {
        let alone = Table::from_iter([(key.clone(), v.clone())]);
        if let Err(e) = Value::Table(alone).try_into::<T>() {
            errors.push(field(&format!("{name}.{key}"), &e));
        }
    }
}

fn bridges(value: &Value, errors: &mut Vec<FieldError>) {
    let Some(list) = value.as_array() else {
        errors.push(not_a_list("bridges", value));
        return;
    };
    for (b, bridge) in list.iter().enumerate() {
        let name = name_of(bridge);
        let path = bridge_path(b, name);
        let Some(table) = bridge.as_table() else {
            errors.push(not_a_table(&path, bridge));
            continue;
        };
        keys::<Bridge>(&path, table, &["ports"], errors);
        let Some(ports) = table.get("ports") else {
            continue;
        };
        let ports_path = format!("{path}.ports");
        let Some(ports) = ports.as_array() else {
            errors.push(not_a_list(&ports_path, ports));
            continue;
        };
        for (p, port) in ports.iter().enumerate() {
            let path = port_path(&path, p, name_of(port));
            match port.as_table() {
                Some(table) => keys::<Port>(&path, table, &[], errors),
                None => errors.push(not_a_table(&path, port)),
            }
        }
    }
}

/// A bridge's or port's keys, each read beside the name (the one required key), except `skip`.
fn keys<T: DeserializeOwned>(
    path: &str,
    table: &Table,
    skip: &[&str],
    errors: &mut Vec<FieldError>,
) {
    let name = match table.get("name") {
        None => {
            errors.push(FieldError {
                path: format!("{path}.name"),
                message: "missing: every bridge and port needs a name".into(),
            });
            Value::String("name".into())
        }
        Some(Value::String(s)) => Value::String(s.clone()),
        Some(other) => {
            errors.push(FieldError {
                path: format!("{path}.name"),
                message: format!("expected a string, found {}", other.type_str()),
            });
            Value::String("name".into())
        }
    };
    for (key, v) in table {
        if key == "name" || skip.contains(&key.as_str()) {
            continue;
        }
        let alone =
            Table::from_iter([("name".to_string(), name.clone()), (key.clone(), v.clone())]);
        if let Err(e) = Value::Table(alone).try_into::<T>() {
            errors.push(field(&format!("{path}.{key}"), &e));
        }
    }
}

/// The `name` of a bridge or port table, or "" (then its index names it).
fn name_of(value: &Value) -> &str {
    value.get("name").and_then(Value::as_str).unwrap_or("")
}

fn field(path: &str, error: &toml::de::Error) -> FieldError {
    FieldError {
        path: path.to_string(),
        message: error.message().trim_end().to_string(),
    }
}

fn not_a_table(path: &str, value: &Value) -> FieldError {
    FieldError {
        path: path.to_string(),
        message: format!("expected a table, found {}", value.type_str()),
    }
}

fn not_a_list(path: &str, value: &Value) -> FieldError {
    FieldError {
        path: path.to_string(),
        message: format!("expected an array of tables, found {}", value.type_str()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(text: &str) -> Vec<String> {
        match parse(text, &|_| None) {
            Err(Failure::Fields(errors)) => errors.iter().map(|e| e.to_string()).collect(),
            other => panic!("expected field errors, got {other:?}"),
        }
    }

    #[test]
    fn every_wrong_key_is_reported_at_once_with_its_path() {
        let text = r#"
[ovs]
datapath = "kernel"
vswitchd_nice = "high"

[supervisor]
health_interval = "soon"

[metrics]
listen = 9476

[[bridges]]
name = "br-ex"
fail_mode = "closed"
  [[bridges.ports]]
  name = "eth1"
  vlan = { mode = "access", tag = "ten" }
  [[bridges.ports]]
  name = "eth2"
  type = "veth"

[extra]
x = 1
"#;
        let errors = fields(text);
        let all = errors.join("\n");
        for want in [
            "ovs.datapath: ",
            "ovs.vswitchd_nice: ",
            "supervisor.health_interval: ",
            "metrics.listen: ",
            "bridges[\"br-ex\"].fail_mode: ",
            "bridges[\"br-ex\"].ports[\"eth1\"].vlan: ",
            "bridges[\"br-ex\"].ports[\"eth2\"].type: ",
            "extra: unknown key",
        ] {
            assert!(all.contains(want), "want {want:?} in\n{all}");
        }
        assert_eq!(errors.len(), 8, "{all}");
        assert!(all.contains("veth"), "the bad value is named: {all}");
    }

    #[test]
    fn a_good_config_parses_whole() {
        let text = "[[bridges]]\nname = \"br0\"\n[[bridges.ports]]\nname = \"p1\"\n";
        let config = parse(text, &|_| None).unwrap();
        assert_eq!(config.bridges[0].ports[0].name, "p1");
    }

    #[test]
    fn missing_names_and_wrong_shapes_are_named() {
        let all = fields("[[bridges]]\nfail_mode = \"secure\"\nports = 3\n").join("\n");
        assert!(all.contains("bridges[0].name: missing"), "{all}");
        assert!(all.contains("bridges[0].ports: expected an array"), "{all}");
        let all = fields("bridges = 1\novs = 2\n").join("\n");
        assert!(all.contains("bridges: expected an array"), "{all}");
        assert!(all.contains("ovs: expected a table"), "{all}");
        let all = fields("[[bridges]]\nname = 5\n").join("\n");
        assert!(all.contains("bridges[0].name: expected a string"), "{all}");
    }

    #[test]
    fn syntax_errors_keep_tomls_line_and_column() {
        match parse("[ovs\n", &|_| None) {
            Err(Failure::Syntax(message)) => assert!(message.contains("line 1"), "{message}"),
            other => panic!("{other:?}"),
        }
    }
}
