//! The question before a mass delete (`snapshot delete --all|--volume|--group`, `group
//! delete --delete-snapshots`), as gluster asks unless `--mode=script`: asked only when
//! stdin is a terminal (a person is there to answer) and `--yes` was not given. A script,
//! a pipe or a test (stdin not a terminal) is never asked and never blocks.

use std::io::{BufRead, IsTerminal, Write};

use anyhow::{Result, bail};

/// How many names a question lists before "and N more".
const SHOWN: usize = 5;

/// Asks whether to `verb` the `names` (`what` says what they are, e.g. "snapshots"); Ok
/// when the answer is yes, when `yes` is set, when there is nothing to do, or when stdin is
/// not a terminal. A no (or end of input) is an error saying that nothing was done.
pub(super) fn confirm(verb: &str, what: &str, names: &[String], yes: bool) -> Result<()> {
    if yes || names.is_empty() || !std::io::stdin().is_terminal() {
        return Ok(());
    }
    let mut shown: Vec<String> = names.iter().take(SHOWN).map(|n| super::esc(n)).collect();
    if names.len() > SHOWN {
        shown.push(format!("and {} more", names.len() - SHOWN));
    }
    let mut err = std::io::stderr().lock();
    write!(
        err,
        "{verb} {} {what} ({})? [y/N] ",
        names.len(),
        shown.join(", ")
    )?;
    err.flush()?;
    drop(err);
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    if matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes") {
        return Ok(());
    }
    bail!("nothing was deleted: not confirmed (pass --yes to skip the question)")
}
