use clap::Parser;

fn main() {
    let cli = tandem::cli::Cli::parse();
    if let Err(e) = tandem::cli::run(cli) {
        eprintln!("tandem: {e:#}");
        std::process::exit(1);
    }
}
