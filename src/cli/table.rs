//! The tables of the CLI's listings (`volume list`, `snapshot list`, `snapshot holds`,
//! `group list`, `schedule list`, `df`), for people and, as `zfs list` does, for scripts:
//! `-H` (no header, one row per line, columns separated by one tab), `-p` (exact numbers:
//! bytes, unix seconds, microseconds) and `-o COL,...` (which columns, in that order; an
//! unknown one is a usage error, exit 2 as in zfs, naming the valid ones).
//!
//! For people, each column is as wide as its widest cell (a long name widens its column
//! instead of pushing the others out of line), columns are two spaces apart, numbers are
//! right-aligned, sizes are binary (`1.5 GiB`) and times UTC (`2026-12-01 01:40:00 UTC`); the
//! last column is not padded. Cells are already escaped names ([`super::esc`]), so a tab or a
//! newline in a name can never split a row or a column.
//!
//! Written here rather than with comfy-table or tabled: those draw boxes and wrap cells, while
//! what is wanted is zfs's plain whitespace columns and a tab-separated mode with the same
//! column keys, about a hundred lines.

use anyhow::Result;
use clap::Args;

use super::Usage;

/// `-H`, `-p`, `-o` of a listing.
#[derive(Args, Debug, Clone, Default)]
pub struct ListFlags {
    /// Scripting mode: no header, columns separated by a single tab.
    #[arg(short = 'H')]
    pub scripted: bool,
    /// Exact numbers: sizes in bytes, times in unix seconds, durations in microseconds.
    #[arg(short = 'p')]
    pub parsable: bool,
    /// The columns to print, comma-separated (see the list in the error for a bad one).
    #[arg(short = 'o', value_name = "COLUMNS", value_delimiter = ',')]
    pub columns: Vec<String>,
}

/// One cell: how it prints for people and with `-p`.
#[derive(Debug, Clone)]
pub enum Cell {
    /// Text (an escaped name, a state); the same in both modes.
    Text(String),
    /// A count.
    Num(u64),
    /// Bytes: `1.5 GiB`, or the exact number with `-p`.
    Bytes(u64),
    /// An instant, microseconds since the epoch: UTC for people, unix seconds with `-p`.
    Time(i64),
    /// A duration in microseconds: `0.097 ms`, or the microseconds with `-p`.
    Micros(u64),
    /// Nothing to show (`-`).
    None,
}

impl Cell {
    fn render(&self, parsable: bool) -> String {
        match (self, parsable) {
            (Cell::Text(s), _) => s.clone(),
            (Cell::Num(n), _) | (Cell::Bytes(n), true) | (Cell::Micros(n), true) => n.to_string(),
            (Cell::Bytes(n), false) => super::human(*n),
            (Cell::Time(us), true) => us.div_euclid(1_000_000).to_string(),
            (Cell::Time(us), false) => tandem::snapshot::utc_time(*us),
            (Cell::Micros(us), false) => format!("{:.3} ms", *us as f64 / 1000.0),
            (Cell::None, _) => "-".into(),
        }
    }

    fn right_aligned(&self) -> bool {
        matches!(self, Cell::Num(_) | Cell::Bytes(_) | Cell::Micros(_))
    }
}

/// A column: its key for `-o` and its header.
#[derive(Debug, Clone, Copy)]
pub struct Col {
    pub key: &'static str,
    pub header: &'static str,
}

pub const fn col(key: &'static str, header: &'static str) -> Col {
    Col { key, header }
}

/// The rows of a listing, one cell per column of `cols`, in order.
pub struct Table {
    what: &'static str,
    cols: &'static [Col],
    rows: Vec<Vec<Cell>>,
}

impl Table {
    /// A table of `what` (e.g. "snapshot list", for the error about a column).
    pub fn new(what: &'static str, cols: &'static [Col]) -> Table {
        Table {
            what,
            cols,
            rows: Vec::new(),
        }
    }

    pub fn row(&mut self, cells: Vec<Cell>) {
        debug_assert_eq!(cells.len(), self.cols.len());
        self.rows.push(cells);
    }

    /// The lines to print under `flags` (no trailing newline on each).
    pub fn render(&self, flags: &ListFlags) -> Result<Vec<String>> {
        let picked = self.pick(&flags.columns)?;
        let cells: Vec<Vec<String>> = self
            .rows
            .iter()
            .map(|r| {
                picked
                    .iter()
                    .map(|&i| r[i].render(flags.parsable))
                    .collect()
            })
            .collect();
        if flags.scripted {
            return Ok(cells.into_iter().map(|r| r.join("\t")).collect());
        }
        let header: Vec<String> = picked
            .iter()
            .map(|&i| self.cols[i].header.to_string())
            .collect();
        let width = |k: usize| {
            std::iter::once(&header)
                .chain(&cells)
                .map(|r| r[k].chars().count())
                .max()
                .unwrap_or(0)
        };
        let widths: Vec<usize> = (0..picked.len()).map(width).collect();
        let right: Vec<bool> = picked
            .iter()
            .map(|&i| self.rows.iter().any(|r| r[i].right_aligned()))
            .collect();
        let line = |r: &[String]| {
            let last = r.len().saturating_sub(1);
            let mut out = String::new();
            for (k, c) in r.iter().enumerate() {
                let pad = widths[k].saturating_sub(c.chars().count());
                if k > 0 {
                    out.push_str("  ");
                }
                if right[k] {
                    out.push_str(&" ".repeat(pad));
                    out.push_str(c);
                } else {
                    out.push_str(c);
                    if k < last {
                        out.push_str(&" ".repeat(pad));
                    }
                }
            }
            out
        };
        Ok(std::iter::once(line(&header))
            .chain(cells.iter().map(|r| line(r)))
            .collect())
    }

    /// Prints the table under `flags`.
    pub fn print(&self, flags: &ListFlags) -> Result<()> {
        for l in self.render(flags)? {
            outln!("{l}");
        }
        Ok(())
    }

    /// Indexes of the columns `-o` asks for (all when none).
    fn pick(&self, wanted: &[String]) -> Result<Vec<usize>> {
        if wanted.is_empty() {
            return Ok((0..self.cols.len()).collect());
        }
        wanted
            .iter()
            .map(|w| {
                let w = w.trim().to_ascii_lowercase();
                match self.cols.iter().position(|c| c.key == w) {
                    Some(i) => Ok(i),
                    None => Err(Usage(format!(
                        "unknown column '{w}' for {}; columns: {}",
                        self.what,
                        self.cols
                            .iter()
                            .map(|c| c.key)
                            .collect::<Vec<_>>()
                            .join(", ")
                    ))
                    .into()),
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const COLS: &[Col] = &[col("name", "NAME"), col("used", "USED"), col("tag", "TAG")];

    fn table() -> Table {
        let mut t = Table::new("test list", COLS);
        t.row(vec![
            Cell::Text("a-very-long-name".into()),
            Cell::Bytes(1536 * 1024 * 1024),
            Cell::Text("x".into()),
        ]);
        t.row(vec![Cell::Text("b".into()), Cell::Bytes(5), Cell::None]);
        t
    }

    #[test]
    fn columns_fit_their_content() {
        let lines = table().render(&ListFlags::default()).unwrap();
        assert_eq!(
            lines,
            [
                "NAME                 USED  TAG",
                "a-very-long-name  1.5 GiB  x",
                "b                     5 B  -",
            ]
        );
    }

    #[test]
    fn scripting_mode_is_tab_separated_exact_and_chosen() {
        let flags = ListFlags {
            scripted: true,
            parsable: true,
            columns: vec!["used".into(), "name".into()],
        };
        assert_eq!(
            table().render(&flags).unwrap(),
            ["1610612736\ta-very-long-name", "5\tb"]
        );
        let bad = ListFlags {
            columns: vec!["size".into()],
            ..ListFlags::default()
        };
        let e = table().render(&bad).unwrap_err();
        assert!(
            e.downcast_ref::<Usage>().is_some(),
            "not a usage error: {e}"
        );
        let e = e.to_string();
        assert_eq!(
            e,
            "unknown column 'size' for test list; columns: name, used, tag"
        );
    }
}
