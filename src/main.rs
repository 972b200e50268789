use clap::Parser;

fn main() {
    let cli = tandem::cli::Cli::parse();
    if let Err(e) = tandem::cli::run(cli) {
        eprintln!("tandem: {e:#}");
        let interrupted = e.downcast_ref::<tandem::cli::Interrupted>().is_some();
        std::process::exit(if interrupted { 130 } else { 1 });
    }
}
