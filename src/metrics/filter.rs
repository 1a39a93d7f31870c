//! Which interfaces are exported: include and exclude name patterns (`*` matches any run of
//! characters, `?` one character) and a cap on their number.

use crate::config::MetricsConfig;

/// Whether `name` matches `pattern`, a glob with `*` and `?`. Iterative with one backtrack
/// point, so a pattern of many stars cannot blow up.
pub fn glob(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    let (mut pi, mut ni) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        match p.get(pi) {
            Some('*') => {
                star = Some((pi, ni));
                pi += 1;
            }
            Some(c) if *c == '?' || *c == n[ni] => {
                pi += 1;
                ni += 1;
            }
            _ => match star {
                // Let the last star eat one more character and retry.
                Some((sp, sn)) => {
                    pi = sp + 1;
                    ni = sn + 1;
                    star = Some((sp, sn + 1));
                }
                None => return false,
            },
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

/// The include/exclude patterns and the cap of `[metrics]`.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub include: Vec<String>,
    pub exclude: Vec<String>,
    pub max: usize,
}

impl Filter {
    pub fn from_config(c: &MetricsConfig) -> Filter {
        Filter {
            include: c.include.clone(),
            exclude: c.exclude.clone(),
            max: c.max_interfaces,
        }
    }

    /// Exported unless excluded; with include patterns, only the names they match.
    pub fn wants(&self, name: &str) -> bool {
        let included = self.include.is_empty() || self.include.iter().any(|p| glob(p, name));
        included && !self.exclude.iter().any(|p| glob(p, name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        for (p, n, want) in [
            ("*", "", true),
            ("*", "eth0", true),
            ("eth*", "eth0", true),
            ("eth*", "veth0", false),
            ("*eth*", "veth0", true),
            ("br-?", "br-a", true),
            ("br-?", "br-ab", false),
            ("a*b*c", "aXXbYYc", true),
            ("a*b*c", "aXXbYY", false),
            ("", "", true),
            ("", "x", false),
            ("tap*", "tap", true),
            ("**a", "ba", true),
        ] {
            assert_eq!(glob(p, n), want, "{p} {n}");
        }
        // Many stars against a long name that does not match finishes quickly.
        assert!(!glob(&"*a".repeat(50), &"a".repeat(49)));
    }

    #[test]
    fn exclude_wins_over_include() {
        let f = Filter {
            include: vec!["eth*".into(), "br*".into()],
            exclude: vec!["eth9".into()],
            max: 10,
        };
        assert!(f.wants("eth0") && f.wants("br0"));
        assert!(!f.wants("eth9") && !f.wants("vnet0"));
        let all = Filter {
            exclude: vec!["vnet*".into()],
            ..Filter::default()
        };
        assert!(all.wants("anything") && !all.wants("vnet3"));
    }
}
