//! Per-volume options (`tandem volume set VOLUME KEY VALUE`): the known keys, how each value
//! is validated, and its default. Values are stored as given (normalised) in the
//! `volume_options` table; an unknown key or a bad value is refused with the accepted forms.
//!
//! Invariants: a value is validated once, before it is written ([`validate_all`]); what the
//! store holds is parsed once, when it is read, into a typed [`VolumeOptions`] (for one
//! [`OptionScope`]), and no caller reads an option as a string after that.

use std::time::Duration;

use crate::types::{Name, VolumeId};

/// Where an option is set: system-wide (the default of every volume that does not set it)
/// or for one volume.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OptionScope {
    System,
    Volume(VolumeId),
}

impl From<VolumeId> for OptionScope {
    fn from(v: VolumeId) -> Self {
        OptionScope::Volume(v)
    }
}

/// The options stored for one scope, parsed: `None` where the scope does not set the option.
/// The accessors give the value in force for this scope alone (its own, else the default);
/// [`VolumeOptions::over`] layers a volume's options over the system-wide ones.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VolumeOptions {
    pub description: Option<String>,
    pub snap_max_hard_limit: Option<u64>,
    /// Percent of the hard limit.
    pub snap_max_soft_limit: Option<u64>,
    pub auto_delete: Option<bool>,
    pub activate_on_create: Option<bool>,
    pub barrier_timeout: Option<Duration>,
    pub uss: Option<bool>,
    pub snapshot_directory: Option<String>,
    pub show_snapshot_directory: Option<bool>,
    /// The stored text of every set option, in the store's (key) order: what is shown.
    stored: Vec<(String, String)>,
}

/// Typed defaults; `defaults_match_the_specs` checks them against [`SPECS`].
const DEFAULT_HARD_LIMIT: u64 = 256;
const DEFAULT_SOFT_PERCENT: u64 = 90;
const DEFAULT_BARRIER_TIMEOUT: Duration = Duration::from_secs(10);
const DEFAULT_SNAPSHOT_DIRECTORY: &str = ".snaps";

impl VolumeOptions {
    /// Parses the rows the store holds for one scope (`(key, value)`, validated when they
    /// were written). A row with an unknown key or a value that no longer parses counts as
    /// not set.
    pub fn from_stored(stored: Vec<(String, String)>) -> Self {
        let mut o = VolumeOptions::default();
        let on = |v: &str| Some(v == "on");
        for (k, v) in &stored {
            match k.as_str() {
                "description" => o.description = Some(v.clone()),
                "snap-max-hard-limit" => o.snap_max_hard_limit = v.parse().ok(),
                "snap-max-soft-limit" => o.snap_max_soft_limit = v.parse().ok(),
                "auto-delete" => o.auto_delete = on(v),
                "activate-on-create" => o.activate_on_create = on(v),
                "barrier-timeout" => o.barrier_timeout = parse_duration(v),
                "uss" => o.uss = on(v),
                "snapshot-directory" => o.snapshot_directory = Some(v.clone()),
                "show-snapshot-directory" => o.show_snapshot_directory = on(v),
                _ => {}
            }
        }
        o.stored = stored;
        o
    }

    /// This scope's options where it sets them, else `fallback`'s (a volume over the
    /// system-wide options). The shown text stays this scope's.
    pub fn over(&self, fallback: &VolumeOptions) -> VolumeOptions {
        VolumeOptions {
            description: self.description.clone().or(fallback.description.clone()),
            snap_max_hard_limit: self.snap_max_hard_limit.or(fallback.snap_max_hard_limit),
            snap_max_soft_limit: self.snap_max_soft_limit.or(fallback.snap_max_soft_limit),
            auto_delete: self.auto_delete.or(fallback.auto_delete),
            activate_on_create: self.activate_on_create.or(fallback.activate_on_create),
            barrier_timeout: self.barrier_timeout.or(fallback.barrier_timeout),
            uss: self.uss.or(fallback.uss),
            snapshot_directory: (self.snapshot_directory.clone())
                .or(fallback.snapshot_directory.clone()),
            show_snapshot_directory: (self.show_snapshot_directory)
                .or(fallback.show_snapshot_directory),
            stored: self.stored.clone(),
        }
    }

    pub fn hard_limit(&self) -> u64 {
        self.snap_max_hard_limit.unwrap_or(DEFAULT_HARD_LIMIT)
    }
    pub fn soft_limit_percent(&self) -> u64 {
        self.snap_max_soft_limit.unwrap_or(DEFAULT_SOFT_PERCENT)
    }
    pub fn auto_delete(&self) -> bool {
        self.auto_delete.unwrap_or(false)
    }
    pub fn activate_on_create(&self) -> bool {
        self.activate_on_create.unwrap_or(false)
    }
    pub fn barrier_timeout(&self) -> Duration {
        self.barrier_timeout.unwrap_or(DEFAULT_BARRIER_TIMEOUT)
    }
    pub fn uss(&self) -> bool {
        self.uss.unwrap_or(false)
    }
    pub fn snapshot_directory(&self) -> &str {
        (self.snapshot_directory.as_deref()).unwrap_or(DEFAULT_SNAPSHOT_DIRECTORY)
    }
    pub fn show_snapshot_directory(&self) -> bool {
        self.show_snapshot_directory.unwrap_or(false)
    }

    /// Whether this scope sets `key` itself.
    pub fn is_set(&self, key: &str) -> bool {
        self.stored.iter().any(|(k, _)| k == key)
    }

    /// Every known option with the text in force for this scope (the stored one, else the
    /// default) and whether the scope sets it: what `volume info` shows.
    pub fn listing(&self) -> Vec<(String, String, bool)> {
        effective(&self.stored)
    }
}

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

/// Parses a humantime duration ("250ms", "2m", "1h 30m", "2d"), a plain number of
/// seconds ("10") or a fraction with one unit ("1.5s", "0.5h"); `None` for anything else
/// and for zero.
pub fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    let d = match humantime::parse_duration(s) {
        Ok(d) => d,
        Err(_) => {
            let (num, unit) = match s.find(|c: char| !c.is_ascii_digit() && c != '.') {
                Some(i) => (&s[..i], s[i..].trim()),
                None => (s, "s"),
            };
            let n: f64 = num.parse().ok()?;
            let secs = match unit {
                "ms" => n / 1000.0,
                "s" | "" => n,
                "m" | "min" => n * 60.0,
                "h" => n * 3600.0,
                "d" => n * 86_400.0,
                _ => return None,
            };
            if !(secs.is_finite() && secs > 0.0 && secs < 1e12) {
                return None;
            }
            Duration::from_secs_f64(secs)
        }
    };
    (!d.is_zero()).then_some(d)
}

/// Ok if `key` is a known option, else the error listing them.
pub fn known_key(key: &str) -> Result<(), OptionError> {
    match SPECS.iter().any(|s| s.key == key) {
        true => Ok(()),
        false => Err(OptionError::Unknown {
            key: key.to_string(),
            known: known(),
        }),
    }
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
            _ => Err(bad("a duration from 1ms, such as 10s, 500ms, 2m or 1h 30m")),
        },
        Kind::DirName => match Name::try_from(value) {
            Ok(_) => Ok(value.to_string()),
            Err(e) => Err(bad(&format!("a directory name ({e})"))),
        },
    }
}

/// Every known option with its effective value: the stored one, else the default.
fn effective(stored: &[(String, String)]) -> Vec<(String, String, bool)> {
    SPECS
        .iter()
        .map(|s| match stored.iter().find(|(k, _)| k == s.key) {
            Some((_, v)) => (s.key.to_string(), v.clone(), true),
            None => (s.key.to_string(), s.default.to_string(), false),
        })
        .collect()
}

/// An option's text as the value of its kind, for output that carries types (`--json`).
#[derive(Debug, Clone, PartialEq)]
pub enum Typed {
    Text(String),
    Bool(bool),
    /// A count or a percentage.
    Number(u64),
    /// A duration, in seconds.
    Seconds(f64),
}

/// `text` (as stored or shown for `key`) typed by `key`'s kind; an unknown key, or a text
/// that does not parse as its kind, stays text.
pub fn typed(key: &str, text: &str) -> Typed {
    let kind = SPECS.iter().find(|s| s.key == key).map(|s| s.kind);
    let parsed = match kind {
        Some(Kind::Bool) => match text {
            "on" => Some(Typed::Bool(true)),
            "off" => Some(Typed::Bool(false)),
            _ => None,
        },
        Some(Kind::Count { .. } | Kind::Percent) => text.parse().ok().map(Typed::Number),
        Some(Kind::Duration) => parse_duration(text).map(|d| Typed::Seconds(d.as_secs_f64())),
        Some(Kind::Text | Kind::DirName) | None => None,
    };
    parsed.unwrap_or_else(|| Typed::Text(text.to_string()))
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
        assert_eq!(parse_duration("1h 30m"), Some(Duration::from_secs(5400)));
        assert_eq!(parse_duration("2d"), Some(Duration::from_secs(2 * 86_400)));
        assert_eq!(parse_duration("1.5"), Some(Duration::from_millis(1500)));
        assert_eq!(parse_duration("0"), None);
        assert_eq!(parse_duration("soon"), None);
    }

    #[test]
    fn values_are_typed_by_their_kind() {
        assert_eq!(typed("uss", "on"), Typed::Bool(true));
        assert_eq!(typed("snap-max-hard-limit", "12"), Typed::Number(12));
        assert_eq!(typed("barrier-timeout", "250ms"), Typed::Seconds(0.25));
        assert_eq!(typed("description", "12"), Typed::Text("12".into()));
        assert_eq!(typed("nope", "on"), Typed::Text("on".into()));
    }

    #[test]
    fn defaults_match_the_specs() {
        let defaults: Vec<(String, String)> = SPECS
            .iter()
            .map(|s| (s.key.to_string(), s.default.to_string()))
            .collect();
        let parsed = VolumeOptions::from_stored(defaults);
        let none = VolumeOptions::default();
        assert_eq!(parsed.description.as_deref(), Some(""));
        assert_eq!(parsed.hard_limit(), none.hard_limit());
        assert_eq!(parsed.soft_limit_percent(), none.soft_limit_percent());
        assert_eq!(parsed.auto_delete(), none.auto_delete());
        assert_eq!(parsed.activate_on_create(), none.activate_on_create());
        assert_eq!(parsed.barrier_timeout(), none.barrier_timeout());
        assert_eq!(parsed.uss(), none.uss());
        assert_eq!(parsed.snapshot_directory(), none.snapshot_directory());
        assert_eq!(
            parsed.show_snapshot_directory(),
            none.show_snapshot_directory()
        );
        // Every key of the specs is parsed into its field.
        for s in SPECS {
            assert!(parsed.is_set(s.key));
        }
        assert!(parsed.snap_max_hard_limit.is_some() && parsed.barrier_timeout.is_some());
        assert!(parsed.uss.is_some() && parsed.show_snapshot_directory.is_some());
    }

    #[test]
    fn a_volume_layers_over_the_system() {
        let row = |k: &str, v: &str| (k.to_string(), v.to_string());
        let sys = VolumeOptions::from_stored(vec![row("auto-delete", "on"), row("uss", "on")]);
        let own = VolumeOptions::from_stored(vec![row("barrier-timeout", "250ms")]);
        let eff = own.over(&sys);
        assert!(eff.auto_delete() && eff.uss());
        assert_eq!(eff.barrier_timeout(), Duration::from_millis(250));
        assert!(eff.is_set("barrier-timeout") && !eff.is_set("auto-delete"));
    }
}
