//! `tandem completions SHELL` and `tandem man [--dir DIR]`: shell completion scripts and man
//! pages generated from the clap definitions (clap_complete, clap_mangen), so they never
//! drift from the CLI. Man pages are section 8 (a daemon and administration tool, as the unit
//! files' `Documentation=man:tandem(8)` says): `tandem.8` and one page per subcommand,
//! `tandem-volume-create.8` and so on.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::CommandFactory;

/// What the man page says beyond the clap definitions (roff).
const EXTRA: &str = r#".SH ENVIRONMENT
.TP
\fBTANDEM_POOL\fR
The pool directory when \fB\-\-pool\fR is not given (default: /var/lib/tandem for root, else $XDG_DATA_HOME/tandem).
.TP
\fBTANDEM_AUTOSTART\fR
1: a command that finds no daemon starts one (as \fB\-\-autostart\fR); 0: never. Unset: only where systemd does not run the machine (no /run/systemd/system); under systemd the daemon is tandem.socket's and tandem.service's.
.TP
\fBTANDEM_LOG\fR, \fBRUST_LOG\fR
The daemon's log filter (tracing EnvFilter syntax; default info, \fB\-v\fR debug, \fB\-vv\fR trace).
.TP
\fBTANDEM_METRICS\fR
The daemon's Prometheus metrics address when \fB\-\-metrics\fR is not given (e.g. 127.0.0.1:9464).
.TP
\fBTANDEM_HOOK_TIMEOUT\fR
How long a snapshot hook may run (default 60s).
.SH SIGNALS
The daemon unmounts every volume, commits and exits on SIGTERM or SIGINT; SIGHUP reloads (the scheduler re\-reads the schedules, mounts dropped from outside are forgotten) and never unmounts. Under systemd (Type=notify) it reports READY=1, RELOADING=1 and STOPPING=1, and it serves the control socket systemd passes (socket activation).
.SH FILES
.TP
\fIPOOL\fR/tandem.sock
The control socket (owner\-only).
.TP
\fIPOOL\fR/daemon.log
The log of a daemon started by the CLI (under systemd: the journal).
.TP
\fIPOOL\fR/mounts.json
The mounts a restarted daemon mounts again.
.TP
/etc/systemd/system/tandem.service, tandem.socket
The units for the default pool.
.SH SEE ALSO
\fBmount\fR(8), \fBsystemctl\fR(1), \fBsystemd.socket\fR(5)
"#;

/// Prints the completion script for `shell` on stdout.
pub fn completions(shell: clap_complete::Shell) {
    let mut cmd = super::Cli::command();
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut cmd, "tandem", &mut script);
    super::out::bytes(&script);
}

/// Renders one page: `cmd` named `name`; the top page gets [`EXTRA`].
fn page(cmd: clap::Command, name: &str, top: bool) -> Result<Vec<u8>> {
    let versioned = cmd.get_version().is_some();
    let man = clap_mangen::Man::new(cmd.name(name.to_string()))
        .section("8")
        .manual("tandem");
    let mut out = Vec::new();
    man.render_title(&mut out)?;
    man.render_name_section(&mut out)?;
    man.render_synopsis_section(&mut out)?;
    man.render_description_section(&mut out)?;
    man.render_options_section(&mut out)?;
    man.render_subcommands_section(&mut out)?;
    man.render_extra_section(&mut out)?;
    if top {
        out.extend_from_slice(EXTRA.as_bytes());
    }
    if versioned {
        man.render_version_section(&mut out)?;
    }
    Ok(out)
}

/// Every page: (file name, contents), the top one first.
fn pages() -> Result<Vec<(String, Vec<u8>)>> {
    fn walk(cmd: &clap::Command, name: &str, out: &mut Vec<(String, Vec<u8>)>) -> Result<()> {
        out.push((
            format!("{name}.8"),
            page(cmd.clone(), name, out.is_empty())?,
        ));
        for sub in cmd.get_subcommands() {
            if sub.get_name() == "help" {
                continue;
            }
            walk(sub, &format!("{name}-{}", sub.get_name()), out)?;
        }
        Ok(())
    }
    let mut cmd = super::Cli::command();
    cmd.build();
    let mut out = Vec::new();
    walk(&cmd, "tandem", &mut out)?;
    Ok(out)
}

/// `tandem man`: tandem(8) on stdout, or every page written into `dir`.
pub fn man(dir: Option<PathBuf>) -> Result<()> {
    let pages = pages()?;
    let Some(dir) = dir else {
        if let Some((_, top)) = pages.first() {
            super::out::bytes(top);
        }
        return Ok(());
    };
    std::fs::create_dir_all(&dir)
        .with_context(|| format!("creating the man page directory {}", dir.display()))?;
    for (name, text) in &pages {
        let path: PathBuf = Path::new(&dir).join(name);
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    }
    outln!("wrote {} man pages to {}", pages.len(), dir.display());
    Ok(())
}
