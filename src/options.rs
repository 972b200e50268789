//! Per-volume options (`tandem volume set VOLUME KEY VALUE`): the known keys, how each value
//! is validated, and its default. Values are stored as given (normalised) in the
//! `volume_options` table; an unknown key or a bad value is refused with the accepted forms.

use std::time::Duration;

use crate::types::Name;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Text,
    Bool,
    Count { min: u64, max: u64 },
    Percent,
    Duration,
    DirName,
}

struct Spec {
    key: &'static str,
    kind: Kind,
    default: &'static str,
    help: &'static str,
}

const SPECS: &[Spec] = &[
    Spec {
        key: "description",
        kind: Kind::Text,
        default: "",
        help: "free text shown by volume info",
    },
    Spec {
        key: "snap-max-hard-limit",
        kind: Kind::Count { min: 1, max: 256 },
        default: "256",
        help: "most snapshots kept",
    },
    Spec {
        key: "snap-max-soft-limit",
        kind: Kind::Percent,
        default: "90",
        help: "percent of the hard limit that warns",
    },
    Spec {
        key: "auto-delete",
        kind: Kind::Bool,
        default: "off",
        help: "delete the oldest snapshot at the soft limit",
    },
    Spec {
        key: "activate-on-create",
        kind: Kind::Bool,
        default: "off",
        help: "mount new snapshots read-only",
    },
    Spec {
        key: "barrier-timeout",
        kind: Kind::Duration,
        default: "10s",
        help: "longest freeze before a snapshot aborts",
    },
    Spec {
        key: "uss",
        kind: Kind::Bool,
        default: "off",
        help: "serve snapshots under the snapshot directory",
    },
    Spec {
        key: "snapshot-directory",
        kind: Kind::DirName,
        default: ".snaps",
        help: "name of the snapshot directory",
    },
    Spec {
        key: "show-snapshot-directory",
        kind: Kind::Bool,
        default: "off",
        help: "list the snapshot directory in the root",
    },
];

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum OptionError {
    #[error("unknown option '{key}'; known options: {known}")]
    Unknown { key: String, known: String },
    #[error("invalid value '{value}' for {key}: expected {expected}")]
    Invalid {
        key: String,
        value: String,
        expected: String,
    },
}

fn known() -> String {
    SPECS.iter().map(|s| s.key).collect::<Vec<_>>().join(", ")
}

/// The shortest duration an option accepts: below it a barrier could never be met.
pub const MIN_DURATION: Duration = Duration::from_millis(1);

/// Validates and normalises every `(key, value)`; the first bad one is the error, so a
/// caller applies all of them or none.
pub fn validate_all(set: &[(String, String)]) -> Result<Vec<(String, String)>, OptionError> {
    set.iter()
        .map(|(k, v)| Ok((k.clone(), validate(k, v)?)))
        .collect()
}

/// Parses "10s", "250ms", "2m", "1h" or a plain number of seconds.
pub fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    let (num, unit) = match s.find(|c: char| !c.is_ascii_digit() && c != '.') {
        Some(i) => (&s[..i], &s[i..]),
        None => (s, "s"),
    };
    let n: f64 = num.parse().ok()?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" | "" => n,
        "m" | "min" => n * 60.0,
        "h" => n * 3600.0,
        _ => return None,
    };
    (secs.is_finite() && secs > 0.0 && secs < 86_400.0).then(|| Duration::from_secs_f64(secs))
}

/// Validates and normalises a value for `key`.
pub fn validate(key: &str, value: &str) -> Result<String, OptionError> {
    let spec = SPECS
        .iter()
        .find(|s| s.key == key)
        .ok_or_else(|| OptionError::Unknown {
            key: key.to_string(),
            known: known(),
        })?;
    let bad = |expected: &str| OptionError::Invalid {
        key: key.to_string(),
        value: value.to_string(),
        expected: expected.to_string(),
    };
    match spec.kind {
        Kind::Text => Ok(value.to_string()),
        Kind::Bool => match value {
            "on" | "true" | "yes" | "enable" => Ok("on".into()),
            "off" | "false" | "no" | "disable" => Ok("off".into()),
            _ => Err(bad("on or off")),
        },
        Kind::Count { min, max } => match value.parse::<u64>() {
            Ok(n) if (min..=max).contains(&n) => Ok(n.to_string()),
            _ => Err(bad(&format!("a whole number from {min} to {max}"))),
        },
        Kind::Percent => match value.trim_end_matches('%').parse::<u64>() {
            Ok(n) if (1..=100).contains(&n) => Ok(n.to_string()),
            _ => Err(bad("a percentage from 1 to 100")),
        },
        Kind::Duration => match parse_duration(value) {
            Some(d) if d >= MIN_DURATION => Ok(value.to_string()),
            _ => Err(bad("a duration from 1ms to 24h, such as 10s, 500ms or 2m")),
        },
        Kind::DirName => match Name::try_from(value) {
            Ok(_) => Ok(value.to_string()),
            Err(e) => Err(bad(&format!("a directory name ({e})"))),
        },
    }
}

/// Every known option with its effective value: the stored one, else the default.
pub fn effective(stored: &[(String, String)]) -> Vec<(String, String, bool)> {
    SPECS
        .iter()
        .map(|s| match stored.iter().find(|(k, _)| k == s.key) {
            Some((_, v)) => (s.key.to_string(), v.clone(), true),
            None => (s.key.to_string(), s.default.to_string(), false),
        })
        .collect()
}

/// One line per option: key, default and what it does (for help texts).
pub fn help() -> String {
    SPECS
        .iter()
        .map(|s| format!("  {:<24} {:<8} {}", s.key, s.default, s.help))
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_validated_and_normalised() {
        assert_eq!(validate("uss", "true").unwrap(), "on");
        assert_eq!(validate("snap-max-soft-limit", "80%").unwrap(), "80");
        assert!(validate("snap-max-hard-limit", "0").is_err());
        assert!(validate("barrier-timeout", "5s").is_ok());
        assert!(validate("barrier-timeout", "soon").is_err());
        assert!(validate("barrier-timeout", "0.0000001ms").is_err());
        assert!(validate("barrier-timeout", "0.5ms").is_err());
        assert!(validate("barrier-timeout", "1ms").is_ok());
        let set = |v: &str| {
            vec![
                ("snap-max-hard-limit".to_string(), "5".to_string()),
                ("barrier-timeout".to_string(), v.to_string()),
            ]
        };
        assert!(validate_all(&set("bogus")).is_err());
        assert_eq!(validate_all(&set("2s")).unwrap(), set("2s"));
        assert!(validate("snapshot-directory", "a/b").is_err());
        assert!(matches!(
            validate("nope", "1"),
            Err(OptionError::Unknown { .. })
        ));
        assert_eq!(parse_duration("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse_duration("2m"), Some(Duration::from_secs(120)));
    }
}
