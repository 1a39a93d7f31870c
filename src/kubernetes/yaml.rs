//! A small YAML writer for manifests built as JSON values: block style, keys in serde_json's
//! order (sorted, which puts apiVersion, kind, metadata, spec in the usual order),
//! strings plain when YAML would read them back as the same string and double-quoted (JSON
//! escapes, which YAML shares) otherwise, multi-line strings as literal blocks. Every document it
//! writes reads back as the value it was given (a test checks with a YAML parser).

use serde_json::Value;

/// One document, starting with `---`.
pub fn document(value: &Value) -> String {
    let mut out = String::from("---\n");
    match value {
        Value::Object(map) if !map.is_empty() => object(&mut out, map, 0),
        other => {
            out.push_str(&inline(other));
            out.push('\n');
        }
    }
    out
}

fn object(out: &mut String, map: &serde_json::Map<String, Value>, indent: usize) {
    for (i, (key, value)) in map.iter().enumerate() {
        // The first key of an object that is a list item goes on the item's own line.
        if i > 0 || !out.ends_with("- ") {
            pad(out, indent);
        }
        out.push_str(&scalar_str(key));
        out.push(':');
        after_key(out, value, indent);
    }
}

/// What follows `key:`: a scalar on the same line, or a nested block on the next lines.
fn after_key(out: &mut String, value: &Value, indent: usize) {
    match value {
        Value::Object(map) if !map.is_empty() => {
            out.push('\n');
            object(out, map, indent + 2);
        }
        Value::Array(items) if !items.is_empty() => {
            out.push('\n');
            array(out, items, indent);
        }
        Value::String(s) if block(s) => literal(out, s, indent + 2),
        other => {
            out.push(' ');
            out.push_str(&inline(other));
            out.push('\n');
        }
    }
}

fn array(out: &mut String, items: &[Value], indent: usize) {
    for item in items {
        pad(out, indent);
        out.push_str("- ");
        match item {
            Value::Object(map) if !map.is_empty() => object(out, map, indent + 2),
            Value::Array(inner) if !inner.is_empty() => {
                out.push('\n');
                array(out, inner, indent + 2);
            }
            Value::String(s) if block(s) => {
                out.pop();
                literal(out, s, indent + 2);
            }
            other => {
                out.push_str(&inline(other));
                out.push('\n');
            }
        }
    }
}

/// Multi-line text reads best as a literal block; text whose first line starts with a space
/// would need an indentation indicator, so it is quoted instead.
fn block(s: &str) -> bool {
    s.contains('\n') && !s.starts_with([' ', '\t']) && !s.contains('\r') && !s.contains('\t')
}

fn literal(out: &mut String, s: &str, indent: usize) {
    // Chomping: `|` keeps one final newline, `|-` none, `|+` all of them.
    let trailing = s.len() - s.trim_end_matches('\n').len();
    out.push_str(match trailing {
        0 => " |-\n",
        1 => " |\n",
        _ => " |+\n",
    });
    let body = s.trim_end_matches('\n');
    for line in body.split('\n') {
        if !line.is_empty() {
            pad(out, indent);
            out.push_str(line);
        }
        out.push('\n');
    }
    for _ in 1..trailing {
        out.push('\n');
    }
}

fn inline(value: &Value) -> String {
    match value {
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => scalar_str(s),
        Value::Array(_) => "[]".into(),
        Value::Object(_) => "{}".into(),
    }
}

/// A string plain when it cannot be read as anything else, else JSON-quoted.
fn scalar_str(s: &str) -> String {
    if plain(s) {
        s.to_string()
    } else {
        Value::String(s.to_string()).to_string()
    }
}

fn plain(s: &str) -> bool {
    const WORDS: [&str; 14] = [
        "true", "false", "yes", "no", "on", "off", "null", "y", "n", "~", "True", "False", "Null",
        "NULL",
    ];
    let Some(first) = s.chars().next() else {
        return false;
    };
    (first.is_ascii_alphabetic() || first == '/')
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./".contains(c))
        && !WORDS.contains(&s)
        && !WORDS.contains(&s.to_ascii_lowercase().as_str())
}

fn pad(out: &mut String, indent: usize) {
    out.extend(std::iter::repeat_n(' ', indent));
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use yaml_rust2::{Yaml, YamlLoader};

    fn to_json(y: &Yaml) -> Value {
        match y {
            Yaml::Real(r) => json!(r.parse::<f64>().unwrap()),
            Yaml::Integer(i) => json!(i),
            Yaml::String(s) => json!(s),
            Yaml::Boolean(b) => json!(b),
            Yaml::Array(a) => Value::Array(a.iter().map(to_json).collect()),
            Yaml::Hash(h) => Value::Object(
                h.iter()
                    .map(|(k, v)| (k.as_str().expect("string key").to_string(), to_json(v)))
                    .collect(),
            ),
            Yaml::Null => Value::Null,
            other => panic!("unexpected {other:?}"),
        }
    }

    fn round_trip(value: &Value) {
        let text = document(value);
        let docs = YamlLoader::load_from_str(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert_eq!(docs.len(), 1, "{text}");
        assert_eq!(&to_json(&docs[0]), value, "\n{text}");
    }

    #[test]
    fn what_is_written_reads_back_the_same() {
        round_trip(&json!({
            "apiVersion": "apps/v1",
            "metadata": {"name": "x", "labels": {"app.kubernetes.io/name": "ovs", "grafana_dashboard": "1"}},
            "spec": {
                "list": [
                    {"name": "a", "value": "yes", "n": 3},
                    {"name": "b", "items": ["--flag", "$(NODE_IP)", "http://127.0.0.1:9476/healthz"]},
                    [1, [2, 3]],
                    "plain",
                    "",
                ],
                "empty": {}, "none": [], "null": null, "t": true, "f": 1.5,
                "config.toml": "# comment\n[ovs]\nrun_dir = \"/run/x\"\n\n[[bridges]]\n  name = \"br0\"\n",
                "no_newline": "a\nb",
                "two_newlines": "a\n\n",
                "indented": "  a\nb\n",
                "tabs": "a\tb\nc\n",
                "numbers": ["1", "0x10", "1e3", "007", "-1", ".5"],
                "words": ["true", "No", "ON", "~", "null", "Y"],
                "odd": ["a: b", "#x", "- x", "x #y", "{a}", "[b]", "*ref", "&a", "!tag", "%x", "@x", "`x`", "'q'", "\"d\"", "é"],
            },
        }));
    }

    #[test]
    fn lists_sit_under_their_key_and_objects_in_lists_start_on_the_dash() {
        let text = document(&json!({"b": 1, "a": [{"x": 1, "z": [2]}]}));
        assert_eq!(text, "---\na:\n- x: 1\n  z:\n  - 2\nb: 1\n");
    }
}
