//! `tandem schedule ...`: snapshot schedules with retention, run by the daemon.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Subcommand;

use super::json::{self, emit};
use super::life::utc;
use super::table::{Cell, Col, ListFlags, Table, col};
use super::{call, esc};
use tandem::control::{Request, ScheduleInfo};

#[derive(Subcommand, Debug)]
pub enum ScheduleCmd {
    /// Snapshot a group or one ungrouped volume every DURATION or at the times of a cron
    /// expression (UTC), named NAME_GMT-<UTC time>, pruned by --keep, each tested by --test.
    Add {
        name: String,
        /// The volume to snapshot (not with --group).
        #[arg(required_unless_present = "group", conflicts_with = "group")]
        volume: Option<String>,
        #[arg(long)]
        group: Option<String>,
        /// How often: 30s, 15m, 1h, 1d, "1h 30m" (at least 1s).
        #[arg(
            long,
            value_name = "DURATION",
            required_unless_present = "cron",
            conflicts_with = "cron"
        )]
        every: Option<String>,
        /// When, as five cron fields in UTC (minute hour day-of-month month day-of-week),
        /// e.g. "0 3 * * *" for 03:00 every day, "*/15 * * * *", "0 0 * * sun", or @daily.
        #[arg(long, value_name = "EXPR")]
        cron: Option<String>,
        /// Retention of this schedule's snapshots, in sanoid's terms:
        /// hourly=24,daily=7,weekly=4,monthly=12,yearly=0,latest=N (default: keep all).
        #[arg(long, value_name = "SPEC")]
        keep: Option<String>,
        #[arg(long, default_value = "")]
        description: String,
        /// After each snapshot, run this restore test on it in the daemon (as `tandem
        /// snapshot test SNAP --run CMD`); the result shows in `schedule info` and
        /// `snapshot info`.
        #[arg(long, value_name = "CMD")]
        test: Option<String>,
    },
    /// List schedules with their last and next runs (-H, -p, -o as `zfs list`).
    List(ListFlags),
    /// Show a schedule: what, how often, retention, last run, last error, next run.
    Info { name: String },
    /// Remove a schedule (the snapshots it made stay, as ordinary snapshots).
    Remove { name: String },
    /// Turn a schedule back on (a run overdue meanwhile is taken at once).
    Enable { name: String },
    /// Stop a schedule from running (it is kept, with its snapshots).
    Disable { name: String },
}

/// How often a schedule runs: its interval, or its cron expression.
fn when(s: &ScheduleInfo) -> String {
    match &s.cron {
        Some(c) => format!("cron \"{c}\" (UTC)"),
        None => humantime::format_duration(Duration::from_millis(s.every_ms)).to_string(),
    }
}

const LIST_COLS: &[Col] = &[
    col("name", "NAME"),
    col("of", "OF"),
    col("when", "WHEN"),
    col("keep", "KEEP"),
    col("state", "STATE"),
    col("snapshots", "SNAPS"),
    col("next", "NEXT RUN"),
    col("last", "LAST RUN"),
    col("test", "LAST TEST"),
];

fn print_list(all: &[ScheduleInfo], flags: &ListFlags) -> Result<()> {
    let mut t = Table::new("schedule list", LIST_COLS);
    for s in all {
        let of = s
            .group
            .as_ref()
            .map(|g| format!("group {}", esc(g)))
            .or(s.volume.as_ref().map(|v| format!("volume {}", esc(v))))
            .unwrap_or_default();
        let state = match (&s.last_error, s.enabled) {
            (_, false) => "disabled",
            (Some(_), true) => "failing",
            (None, true) => "enabled",
        };
        let test = match (&s.last_test, &s.test) {
            (Some(t), _) if t.result.passed => "passed",
            (Some(_), _) => "FAILED",
            (None, Some(_)) => "none yet",
            (None, None) => "-",
        };
        let when = match &s.cron {
            Some(c) => format!("cron {c}"),
            None => when(s),
        };
        t.row(vec![
            Cell::Text(esc(&s.name)),
            Cell::Text(of),
            Cell::Text(when),
            Cell::Text(s.keep.clone().unwrap_or_else(|| "all".into())),
            Cell::Text(state.into()),
            Cell::Num(s.snapshots.len() as u64),
            Cell::Time(s.next_run_us),
            s.last_run_us.map_or(Cell::None, Cell::Time),
            Cell::Text(test.into()),
        ]);
    }
    t.print(flags)
}

fn print_schedule(s: &ScheduleInfo) {
    let target = match (&s.group, &s.volume) {
        (Some(g), _) => format!("group {}", esc(g)),
        (None, Some(v)) => format!("volume {}", esc(v)),
        (None, None) => "-".into(),
    };
    outln!("schedule:       {}", esc(&s.name));
    outln!("snapshots of:   {target}");
    match &s.cron {
        Some(c) => outln!("cron:           {c} (UTC)"),
        None => outln!("every:          {}", when(s)),
    }
    outln!(
        "keep:           {}",
        s.keep.clone().unwrap_or_else(|| "all".into())
    );
    outln!(
        "description:    {}",
        if s.description.is_empty() {
            "-"
        } else {
            &s.description
        }
    );
    outln!(
        "state:          {}",
        if s.enabled { "enabled" } else { "disabled" }
    );
    outln!(
        "last run:       {}",
        match (&s.last_run_us, &s.last_snapshot, &s.last_error) {
            (None, ..) => "never".into(),
            (Some(t), _, Some(_)) => format!("{} (failed)", utc(*t)),
            (Some(t), Some(n), None) => format!("{} ({})", utc(*t), esc(n)),
            (Some(t), None, None) => utc(*t),
        }
    );
    if let Some(e) = &s.last_error {
        outln!("last error:     {e} ({} failure(s) in a row)", s.failures);
    }
    outln!(
        "next run:       {}{}",
        utc(s.next_run_us),
        if s.enabled { "" } else { " (when enabled)" }
    );
    if let Some(t) = &s.test {
        outln!("restore test:   {t}");
    }
    if let Some(t) = &s.last_test {
        let r = &t.result;
        outln!(
            "last test:      {} at {} on {} (command ran {:.3} s{})",
            if r.passed { "passed" } else { "FAILED" },
            utc(r.started_us),
            esc(&t.snapshot),
            r.run_us as f64 / 1e6,
            match r.exit_code {
                Some(c) if !r.passed => format!(", exit {c}"),
                _ => String::new(),
            }
        );
    } else if s.test.is_some() {
        outln!("last test:      none yet");
    }
    outln!(
        "its snapshots:  {}",
        if s.snapshots.is_empty() {
            "-".into()
        } else {
            s.snapshots
                .iter()
                .map(|n| esc(n))
                .collect::<Vec<_>>()
                .join(" ")
        }
    );
}

pub(super) fn run_schedule(pool: &Path, cmd: ScheduleCmd, as_json: bool) -> Result<()> {
    let s: ScheduleInfo = match cmd {
        ScheduleCmd::Add {
            name,
            volume,
            group,
            every,
            cron,
            keep,
            description,
            test,
        } => {
            let every_ms = match &every {
                Some(every) => humantime::parse_duration(every)
                    .with_context(|| {
                        format!("invalid --every '{every}' (for example 30s, 15m, 1h, 1d)")
                    })?
                    .as_millis()
                    .min(u64::MAX as u128) as u64,
                None => 0,
            };
            call(
                pool,
                Request::ScheduleAdd {
                    name,
                    group,
                    volume,
                    every_ms,
                    cron,
                    keep,
                    description,
                    test,
                },
            )?
        }
        ScheduleCmd::List(flags) => {
            let all: Vec<ScheduleInfo> = call(pool, Request::ScheduleList)?;
            if as_json {
                let schedules: Vec<json::Schedule> = all.iter().map(json::Schedule::from).collect();
                return emit(&serde_json::json!({ "schedules": schedules }));
            }
            return print_list(&all, &flags);
        }
        ScheduleCmd::Info { name } => call(pool, Request::ScheduleInfo { name })?,
        ScheduleCmd::Remove { name } => {
            call::<()>(pool, Request::ScheduleRemove { name: name.clone() })?;
            if as_json {
                return emit(&serde_json::json!({ "removed": { "schedule": name } }));
            }
            outln!("removed schedule '{}' (its snapshots stay)", esc(&name));
            return Ok(());
        }
        ScheduleCmd::Enable { name } => call(
            pool,
            Request::ScheduleEnable {
                name,
                enabled: true,
            },
        )?,
        ScheduleCmd::Disable { name } => call(
            pool,
            Request::ScheduleEnable {
                name,
                enabled: false,
            },
        )?,
    };
    if as_json {
        return emit(&json::Schedule::from(&s));
    }
    print_schedule(&s);
    Ok(())
}
