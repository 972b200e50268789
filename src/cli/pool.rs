//! `tandem pool ...`: `check` works on the pool's files without the daemon; `verify` asks
//! the daemon for a scrub of the pool it serves.

use std::path::Path;

use anyhow::{Result, anyhow, bail};
use clap::Subcommand;

use crate::control::{ClientError, Reply, Request};

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
    /// Scrub: re-read every stored chunk and check its blake3 id, check that every extent
    /// (live or kept for a snapshot) references a stored chunk; report each damaged file by
    /// volume and path. Exits 1 if anything is wrong.
    Verify(super::JsonFlag),
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
        PoolCmd::Verify(json) => {
            let mut c = super::connect_or_start(pool)?;
            let rep = match c.call(Request::PoolVerify, None) {
                Ok(Reply::Verify(rep)) => rep,
                Ok(r) => return Err(super::unexpected(r)),
                Err(ClientError::Refused(m)) => bail!(m),
                Err(e) => return Err(anyhow!(e)),
            };
            if json.json {
                super::print_json(&rep)?;
            } else {
                for b in &rep.bad_chunks {
                    println!(
                        "bad chunk {} (pack {:08}.pack at {}): {}",
                        b.id, b.pack, b.offset, b.problem
                    );
                }
                for d in &rep.damaged {
                    let which = if d.live {
                        "the live file".to_string()
                    } else {
                        format!(
                            "only versions kept for snapshots (generations {:?})",
                            d.generations
                        )
                    };
                    println!("damaged: {}:{} ({which}): {}", d.volume, d.path, d.problem);
                }
                println!(
                    "verified {} chunks ({} bytes) and {} extents",
                    rep.chunks, rep.bytes, rep.extents
                );
            }
            if !rep.ok() {
                bail!(
                    "pool {} is damaged: {} bad chunks, {} damaged files (listed above); restore them from a snapshot or backup",
                    pool.display(),
                    rep.bad_chunks.len(),
                    rep.damaged.len()
                );
            }
        }
    }
    Ok(())
}
