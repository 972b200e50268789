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

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::prelude::*;

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
    use super::filter_spec;

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
