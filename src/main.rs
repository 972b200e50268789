//! The `tandem` binary: the command line ([`cli`]) and the guided demo ([`demo`]), both
//! clients of the library's control socket, and the daemon's log setup ([`logging`]). anyhow lives here, at the edge; the library
//! reports typed errors.

mod cli;
mod demo;
mod logging;

use clap::Parser;

fn main() {
    let cli = cli::Cli::parse();
    if let Err(e) = cli::run(cli) {
        eprintln!("tandem: {e:#}");
        let code = if e.downcast_ref::<cli::Interrupted>().is_some() {
            130
        } else if e.downcast_ref::<cli::Usage>().is_some() {
            2
        } else {
            1
        };
        std::process::exit(code);
    }
}
