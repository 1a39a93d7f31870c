//! Human-readable durations in the config file ("250ms", "5s", "2m").

use serde::{Deserialize, Deserializer};
use std::fmt;
use std::time::Duration;

/// A duration written as a number followed by `ms`, `s` or `m`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct HumanDuration(pub Duration);

impl HumanDuration {
    pub const fn millis(ms: u64) -> Self {
        Self(Duration::from_millis(ms))
    }

    pub const fn secs(s: u64) -> Self {
        Self(Duration::from_secs(s))
    }
}

impl fmt::Display for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.0.as_millis();
        if ms % 1000 == 0 {
            write!(f, "{}s", ms / 1000)
        } else {
            write!(f, "{ms}ms")
        }
    }
}

/// Parses "250ms", "5s", "1.5s", "2m".
pub fn parse(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .ok_or_else(|| format!("`{text}` has no unit (use ms, s or m)"))?;
    let (number, unit) = text.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("`{text}` does not start with a number"))?;
    let factor_ms = match unit {
        "ms" => 1.0,
        "s" => 1000.0,
        "m" => 60_000.0,
        _ => {
            return Err(format!(
                "`{text}` has unknown unit `{unit}` (use ms, s or m)"
            ))
        }
    };
    let ms = value * factor_ms;
    // `as u64` saturates: "999999999999999999999m" would become ~584,000 years, which quietly
    // turns a health check off. No field of this config means anything past a day.
    if ms > MAX.as_millis() as f64 {
        return Err(format!(
            "`{text}` is longer than the maximum of {}h",
            MAX.as_secs() / 3600
        ));
    }
    Ok(Duration::from_micros((ms * 1000.0).round() as u64))
}

/// The longest duration any field accepts.
pub const MAX: Duration = Duration::from_secs(24 * 3600);

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(de: D) -> Result<Self, D::Error> {
        let text = String::deserialize(de)?;
        parse(&text)
            .map(HumanDuration)
            .map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units() {
        assert_eq!(parse("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse("5s").unwrap(), Duration::from_secs(5));
        assert_eq!(parse("1.5s").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse("2m").unwrap(), Duration::from_secs(120));
    }

    #[test]
    fn refuses_what_would_overflow_or_exceed_a_day() {
        assert!(parse("999999999999999999999m")
            .unwrap_err()
            .contains("maximum"));
        assert!(parse("1441m").unwrap_err().contains("maximum"));
        assert_eq!(parse("1440m").unwrap(), MAX);
    }

    #[test]
    fn rejects_garbage() {
        assert!(parse("5").unwrap_err().contains("no unit"));
        assert!(parse("5h").unwrap_err().contains("unknown unit"));
        assert!(parse("s").unwrap_err().contains("number"));
    }

    #[test]
    fn displays_round_trip() {
        assert_eq!(HumanDuration::millis(250).to_string(), "250ms");
        assert_eq!(HumanDuration::secs(5).to_string(), "5s");
    }
}
