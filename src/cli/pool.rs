//! `tandem pool ...`: commands on the pool's files that run without the daemon.

use std::path::Path;

use anyhow::{Result, bail};
use clap::Subcommand;

#[derive(Subcommand, Debug)]
pub enum PoolCmd {
    /// Check the pool's index against its pack files without the daemon (stop it first):
    /// what opening would find, and why it would refuse.
    Check {
        /// Move bytes the index does not account for aside (packs/*.tail-*, *.unindexed-*;
        /// never deleted) so that the pool opens at what its index records.
        #[arg(long)]
        set_aside: bool,
    },
}

pub fn run_pool(pool: &Path, cmd: PoolCmd) -> Result<()> {
    match cmd {
        PoolCmd::Check { set_aside } => {
            let rep = crate::store::check::check(pool, set_aside)?;
            for l in &rep.lines {
                println!("{l}");
            }
            for p in &rep.problems {
                println!("problem: {p}");
            }
            if !rep.problems.is_empty() {
                bail!(
                    "pool {} would be refused: {} problems (listed above)",
                    pool.display(),
                    rep.problems.len()
                );
            }
            println!("pool {} opens", pool.display());
        }
    }
    Ok(())
}
