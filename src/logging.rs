//! The daemon's log: which events (the filter) and where they go.
//!
//! The filter is `TANDEM_LOG`, else `RUST_LOG` (tracing's EnvFilter syntax), else `info`
//! (`-v` debug, `-vv` trace). fuser's own target is held to `error` unless the filter names
//! it: fuser logs at warn what is normal for tandem (a request it answers ENOSYS for, an
//! unmount racing the session's end).
//!
//! Where: under systemd with stderr connected to the journal (`JOURNAL_STREAM` names this
//! very stderr), events go to journald with their level as its priority; if the journal's
//! socket cannot be reached, plain lines without timestamps (the journal adds its own).
//! Otherwise lines on stderr, with ANSI colours only when stderr is a terminal: a daemon
//! started by the CLI writes to `<pool>/daemon.log`, which gets plain text.
//!
//! One event is one line: every field of every event (the message too) is escaped as the
//! CLI escapes names ([`tandem::escape`]: `\n`, `\t`, `\r`, `\\`, `\xNN`), here in
//! [`EscapedFields`], so a volume, snapshot or file name with a newline or an ESC in it
//! cannot forge a log line or reach a terminal raw, whichever log line names it; a log call
//! passes names as they are. (The journal keeps each event as one entry by itself.)

use std::fmt;
use std::io::IsTerminal;

use tandem::escape::Escaped;
use tracing::field::{Field, Visit};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::field::{MakeVisitor, VisitFmt, VisitOutput};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::prelude::*;

/// Formats an event's fields as tracing's default formatter lays them out (the message,
/// then `key=value` separated by spaces), each field's text escaped (see the module doc).
#[derive(Debug, Clone, Copy, Default)]
pub struct EscapedFields;

impl<'w> MakeVisitor<Writer<'w>> for EscapedFields {
    type Visitor = EscapingVisitor<'w>;

    fn make_visitor(&self, target: Writer<'w>) -> EscapingVisitor<'w> {
        EscapingVisitor {
            w: target,
            result: Ok(()),
            first: true,
        }
    }
}

/// Writes the fields of one event or span for [`EscapedFields`].
pub struct EscapingVisitor<'w> {
    w: Writer<'w>,
    result: fmt::Result,
    first: bool,
}

impl EscapingVisitor<'_> {
    fn field(&mut self, field: &Field, text: &str) {
        // `log.*`: the metadata of a `log` record, which the line shows already.
        if self.result.is_err() || field.name().starts_with("log.") {
            return;
        }
        let sep = if self.first { "" } else { " " };
        self.first = false;
        self.result = match field.name() {
            "message" => write!(self.w, "{sep}{}", Escaped::new(text)),
            name => write!(self.w, "{sep}{name}={}", Escaped::new(text)),
        };
    }
}

impl Visit for EscapingVisitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.field(field, value);
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.field(field, &format!("{value:?}"));
    }
}

impl VisitOutput<fmt::Result> for EscapingVisitor<'_> {
    fn finish(self) -> fmt::Result {
        self.result
    }
}

impl VisitFmt for EscapingVisitor<'_> {
    fn writer(&mut self) -> &mut dyn fmt::Write {
        &mut self.w
    }
}

/// The filter the environment sets (`TANDEM_LOG`, else `RUST_LOG`; empty counts as unset).
fn env_filter() -> Option<String> {
    ["TANDEM_LOG", "RUST_LOG"]
        .iter()
        .find_map(|v| std::env::var(v).ok().filter(|s| !s.trim().is_empty()))
}

/// The filter's text: the environment's, else the level `-v` asks for; fuser held to error
/// unless named.
fn filter_spec(from_env: Option<String>, verbose: u8) -> String {
    let spec = from_env.unwrap_or_else(|| {
        match verbose {
            0 => "info",
            1 => "debug",
            _ => "trace",
        }
        .to_string()
    });
    if spec.contains("fuser") {
        spec
    } else {
        format!("{spec},fuser=error")
    }
}

/// Is stderr the journal stream systemd gave this process? (`JOURNAL_STREAM` is
/// "DEVICE:INODE" of that stream; a child that inherited the variable but writes elsewhere
/// must not think so.)
fn stderr_is_journal() -> bool {
    use std::os::fd::AsFd;
    use std::os::unix::fs::MetadataExt;
    let Ok(want) = std::env::var("JOURNAL_STREAM") else {
        return false;
    };
    let Some(meta) = std::io::stderr()
        .as_fd()
        .try_clone_to_owned()
        .ok()
        .and_then(|fd| std::fs::File::from(fd).metadata().ok())
    else {
        return false;
    };
    want == format!("{}:{}", meta.dev(), meta.ino())
}

/// Sets up the daemon's log (see the module doc). A bad filter falls back to `info` and
/// says so.
pub fn init(verbose: u8) {
    let spec = filter_spec(env_filter(), verbose);
    let filter = EnvFilter::try_new(&spec).unwrap_or_else(|e| {
        eprintln!("tandem: ignoring the log filter '{spec}': {e}; logging at info");
        EnvFilter::new("info,fuser=error")
    });
    let journal = stderr_is_journal();
    if journal {
        match tracing_journald::layer() {
            Ok(layer) => {
                let _ = tracing_subscriber::registry()
                    .with(filter)
                    .with(layer)
                    .try_init();
                return;
            }
            Err(e) => eprintln!("tandem: cannot reach the journal ({e}); logging to stderr"),
        }
    }
    let fmt = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .fmt_fields(EscapedFields)
        .with_writer(std::io::stderr)
        .with_ansi(!journal && std::io::stderr().is_terminal());
    let _ = if journal {
        fmt.without_time().try_init()
    } else {
        fmt.try_init()
    };
}

#[cfg(test)]
mod tests {
    use super::{EscapedFields, filter_spec};
    use std::sync::{Arc, Mutex};

    /// What the log writes, kept in memory.
    #[derive(Clone, Default)]
    struct Sink(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Sink {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn every_field_of_an_event_is_escaped_onto_one_line() {
        let sink = Sink::default();
        let w = sink.clone();
        let sub = tracing_subscriber::fmt()
            .with_writer(move || w.clone())
            .with_ansi(false)
            .without_time()
            .fmt_fields(EscapedFields)
            .finish();
        tracing::subscriber::with_default(sub, || {
            let name = "s\nINFO forged\x1b[2J\\";
            tracing::info!(volume = name, n = 3, "snapshot '{name}' created");
        });
        let out = String::from_utf8(sink.0.lock().unwrap().clone()).unwrap();
        let want = r"snapshot 's\nINFO forged\x1b[2J\\' created volume=s\nINFO forged\x1b[2J\\ n=3";
        assert_eq!(out.lines().count(), 1, "{out}");
        assert!(out.trim_end().ends_with(want), "{out}");
    }

    #[test]
    fn fuser_is_held_to_error_unless_the_filter_names_it() {
        assert_eq!(filter_spec(None, 0), "info,fuser=error");
        assert_eq!(filter_spec(None, 1), "debug,fuser=error");
        assert_eq!(filter_spec(None, 5), "trace,fuser=error");
        assert_eq!(
            filter_spec(Some("warn,tandem::fs=debug".into()), 2),
            "warn,tandem::fs=debug,fuser=error"
        );
        assert_eq!(
            filter_spec(Some("info,fuser=debug".into()), 0),
            "info,fuser=debug"
        );
    }
}
