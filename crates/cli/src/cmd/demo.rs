//! `lull demo`: the same migrations applied naively and with lull under a
//! steady write load, side by side. The measuring is in the `lull-demo`
//! crate; this module parses flags and prints progress and the table.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::{Args as ClapArgs, ValueEnum};
use lull_demo::report::{RunReport, StepReport};
use lull_demo::{one_line, thousands, DemoOptions, DemoReport, Progress, RunKind};
use lull_engine::events::human;
use lull_engine::Event;

use crate::context::GlobalArgs;
use crate::error::{exit, CliError, CliResult};

/// Show what lull changes: the same migrations, naive, by the guides' recipe and with lull, under writes.
///
/// Starts a throwaway PostgreSQL (from this machine's server binaries),
/// loads a big `orders` table and copies it three times. On each copy a steady
/// write load runs from inside lull (a fixed rate of single-row writes,
/// each one timed from when it was due), and the example migrations run:
/// an index on the big table, an added column and a foreign key (shipped in
/// examples/demo-migrations). Just before the ALTER, a long read
/// transaction opens on the table, like a report that happens to be
/// running during a deploy.
///
/// The first copy gets the migrations as a plain runner applies them (as
/// written, no timeouts, no retries); the last gets them with lull
/// (CREATE INDEX CONCURRENTLY, NOT VALID then VALIDATE, and each strong
/// lock taken only in a gap between conflicting transactions). Then it
/// prints a side-by-side table:
///
///   worst write       the slowest write of the run
///   p99 write         99 % of the writes were at least this fast
///   writes over 1 s   writes the application would call stalled
///   finish time       from the first migration's start to the last's end
///
/// and, per migration step, the writes that waited while it ran, so each
/// figure says which step it came from. On two cores an index build costs
/// the writers some latency from CPU alone; the breakdown shows that too.
///
/// A third copy gets the guides' recipe between the two: the same safe plan,
/// but every DDL try queues for its lock with lock_timeout 5 s and a failed
/// one is retried with backoff, so writes wait up to 5 s at a time.
///
/// lull's policies come from lull.toml if there is one. lull watches the
/// read transaction from outside the lock queue and takes its lock in the
/// gap right after it commits, so writes never wait behind it. With the
/// defaults the demo takes about a minute.
///
/// Examples:
///   lull demo
///   lull demo --rows 200000 --blocker 3s
///   lull demo --format json > demo.json
///   lull demo --plot demo.svg
#[derive(ClapArgs, Debug)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// Rows in the big table.
    #[arg(long, default_value_t = 2_000_000, value_name = "N")]
    rows: u64,

    /// How long the read transaction stays open.
    #[arg(long, default_value = "7s", value_name = "DURATION")]
    blocker: lull_config::Duration,

    /// Writes per second of the workload.
    #[arg(long, default_value_t = 200, value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..=5000))]
    rate: u32,

    /// Connections of the write workload.
    #[arg(long, default_value_t = 16, value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..=64))]
    connections: u32,

    /// Quiet time (workload only) before the first and after the last
    /// migration of each run.
    #[arg(long, default_value = "1s", value_name = "DURATION")]
    settle: lull_config::Duration,

    /// Apply these migrations instead of the built-in examples (they run
    /// against the demo's `orders` and `customers` tables).
    #[arg(long, value_name = "PATH")]
    dir: Option<PathBuf>,

    /// Output: a table for people, or the measurements as JSON.
    #[arg(long, value_enum, default_value_t = Format::Human)]
    format: Format,

    /// Also draw write latency over time for the three runs, with the
    /// migration steps and the read transaction marked, into this SVG file.
    #[arg(long, value_name = "FILE.svg")]
    plot: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Format {
    Human,
    Json,
}

/// Runs `lull demo`.
pub fn run(global: &GlobalArgs, args: Args) -> CliResult {
    let config = global.config()?;
    if let Some(plot) = &args.plot {
        // Fail before a minute of demo, not after it.
        std::fs::File::create(plot)
            .map_err(|e| CliError::new(format!("cannot write the plot {}: {e}", plot.display())))?;
    }
    let opts = DemoOptions {
        rows: args.rows,
        blocker: args.blocker.std(),
        rate: args.rate,
        connections: args.connections as usize,
        settle: args.settle.std(),
        dir: args.dir,
        policies: config.policies(),
    };
    let started = Instant::now();
    let printer = Arc::new(Mutex::new(ProgressPrinter::default()));
    let sink: lull_demo::ProgressSink = Arc::new(move |p: &Progress| {
        if let Some(line) = printer.lock().unwrap().line(p) {
            let mut err = std::io::stderr().lock();
            let _ = writeln!(err, "[{:>5.1}s] {line}", started.elapsed().as_secs_f64());
        }
    });
    let report = lull_demo::run(&opts, sink).map_err(|e| {
        let hint = e.hint();
        let err = CliError::new(format!("the demo could not run: {e}"));
        match hint {
            Some(h) => err.hint(h),
            None => err,
        }
    })?;
    let out = match args.format {
        Format::Human => render(&report),
        Format::Json => serde_json::to_string_pretty(&report).expect("report serializes") + "\n",
    };
    print!("{out}");
    if let Some(plot) = &args.plot {
        crate::render::latency_plot::write_svg(&report, plot).map_err(CliError::new)?;
        eprintln!("plot written to {}", plot.display());
    }
    eprintln!("demo finished in {}", human(started.elapsed()));
    if report.runs().iter().any(|r| r.error.is_some()) {
        return Ok(ExitCode::from(exit::FAILED));
    }
    Ok(ExitCode::SUCCESS)
}

/// Turns progress into lines; remembers index build phases so each phase
/// is shown once rather than every second.
#[derive(Default)]
struct ProgressPrinter {
    index_phase: Option<String>,
    waiting_for: Vec<i32>,
}

impl ProgressPrinter {
    fn line(&mut self, p: &Progress) -> Option<String> {
        match p {
            Progress::Doing(what) => Some(what.clone()),
            Progress::BlockerOpened { run, hold, .. } => Some(format!(
                "{:<6}  a long read transaction opens on orders and stays open {}",
                run.label(),
                human(*hold)
            )),
            Progress::RunFinished(r) => Some(format!(
                "{:<6}  run over: worst write {}, {} writes over 1 s{}",
                r.label,
                latency(r.total.worst),
                thousands(r.total.over_1s as u64),
                r.error
                    .as_ref()
                    .map(|e| format!("; the migrations failed: {e}"))
                    .unwrap_or_default()
            )),
            Progress::WritesStalled {
                run,
                waiting,
                oldest,
            } => Some(format!(
                "{:<6}    writes stalled: {} waiting, the oldest for {}",
                run.label(),
                thousands(*waiting as u64),
                human(*oldest)
            )),
            Progress::Engine { run, event, .. } => self.engine(*run, event),
        }
    }

    fn engine(&mut self, run: RunKind, e: &Event) -> Option<String> {
        let run = run.label();
        match e {
            Event::StepStarted {
                version,
                step,
                total,
                policy,
                summary,
                ..
            } => {
                self.index_phase = None;
                self.waiting_for.clear();
                Some(format!(
                    "{run:<6}  {version} step {step}/{total} [{policy}]: {}",
                    one_line(summary, 120)
                ))
            }
            Event::StepFinished { elapsed, tries, .. } => Some(format!(
                "{run:<6}    done in {}{}",
                human(*elapsed),
                if *tries > 1 {
                    format!(" ({tries} tries)")
                } else {
                    String::new()
                }
            )),
            Event::LockRetry {
                attempt,
                lock_timeout,
                blockers,
                ..
            } => {
                let who = blockers
                    .blockers
                    .first()
                    .map(|b| format!(", held by pid {} ({})", b.pid, b.application))
                    .unwrap_or_default();
                Some(format!(
                    "{run:<6}    try {attempt} not granted within {}{who}; watching for the next gap",
                    human(*lock_timeout),
                ))
            }
            Event::LockWaiting { holders, .. } => {
                let pids: Vec<i32> = holders.iter().map(|h| h.pid).collect();
                if self.waiting_for == pids {
                    return None;
                }
                self.waiting_for = pids;
                let who: Vec<String> = holders
                    .iter()
                    .map(|h| format!("pid {} ({})", h.pid, h.application))
                    .collect();
                Some(format!(
                    "{run:<6}    waiting for a gap, not in the lock queue, behind {}",
                    who.join(", ")
                ))
            }
            Event::Retry {
                attempt,
                error,
                sleep,
                ..
            } => Some(format!(
                "{run:<6}    try {attempt} failed ({error}); next try in {}",
                human(*sleep)
            )),
            Event::IndexProgress { progress, .. } => {
                if self.index_phase.as_deref() == Some(progress.phase.as_str()) {
                    return None;
                }
                self.index_phase = Some(progress.phase.clone());
                Some(format!("{run:<6}    index build: {}", progress.phase))
            }
            Event::InvalidIndexDropped { index } => {
                Some(format!("{run:<6}    dropped the INVALID leftover {index}"))
            }
            Event::Warning { message } => Some(format!("{run:<6}    warning: {message}")),
            _ => None,
        }
    }
}

/// A latency the way the table shows it: `312 ms`, `7.02 s`.
fn latency(d: Duration) -> String {
    if d < Duration::from_secs(1) {
        format!("{} ms", d.as_millis())
    } else {
        format!("{:.2} s", d.as_secs_f64())
    }
}

fn seconds(d: Duration) -> String {
    format!("{:.1} s", d.as_secs_f64())
}

/// How one cell of the side-by-side table is read from a run.
type Cell = fn(&RunReport) -> String;

/// The side-by-side table, then where each run's time went.
fn render(r: &DemoReport) -> String {
    let mut out = String::new();
    let blocker = match &r.blocker_before {
        Some(m) => format!(
            "a {} read transaction opened just before {m}",
            human(r.blocker)
        ),
        None => "no migration needed an ACCESS EXCLUSIVE lock, so no read transaction".into(),
    };
    let _ = writeln!(
        out,
        "\n{} rows in orders, {} writes/s, {blocker}.\n",
        thousands(r.rows),
        r.rate
    );
    let rows: [(&str, Cell); 5] = [
        ("worst write", |x| latency(x.total.worst)),
        ("p99 write", |x| latency(x.total.p99)),
        ("writes over 1 s", |x| thousands(x.total.over_1s as u64)),
        ("finish time", |x| match &x.error {
            Some(_) => format!("failed at {}", seconds(x.finish)),
            None => seconds(x.finish),
        }),
        ("writes", |x| thousands(x.total.writes as u64)),
    ];
    let _ = writeln!(
        out,
        "{:<18}{:>20}{:>14}{:>14}",
        "", "naive", "recipe", "lull"
    );
    for (name, f) in rows {
        let _ = writeln!(
            out,
            "{name:<18}{:>20}{:>14}{:>14}",
            f(&r.naive),
            f(&r.recipe),
            f(&r.lull)
        );
    }
    let _ = writeln!(
        out,
        "\nnaive:  the files as written, as a plain migration runner applies them.\n\
         recipe: what the guides say: lull's safe plan, but every DDL try queues with\n        \
         lock_timeout 5 s and a failed one is retried with backoff.\n\
         lull:   the same plan with lull's policies: tries only in the gap.\n"
    );
    let _ = writeln!(
        out,
        "Where the time went (each write counted in the step it waited in):"
    );
    for run in r.runs() {
        render_steps(&mut out, run);
    }
    let _ = writeln!(out);
    for run in r.runs() {
        let _ = writeln!(out, "{}", verdict(run));
    }
    for run in r.runs() {
        if let Some(e) = &run.error {
            let _ = writeln!(out, "{}: the migrations failed: {e}", run.label);
        }
        if let Some(e) = &run.write_error {
            let _ = writeln!(out, "{}: some writes failed: {e}", run.label);
        }
    }
    out
}

fn render_steps(out: &mut String, run: &RunReport) {
    let _ = writeln!(
        out,
        "\n{:<6}{:<36}{:>8}{:>9}{:>10}{:>10}",
        run.label, "step", "ran", "writes", "worst", "over 1 s"
    );
    for s in &run.steps {
        let label = format!("{} #{}", migration_label(s), s.step.step);
        let _ = writeln!(
            out,
            "      {:<36}{:>8}{:>9}{:>10}{:>10}",
            label,
            seconds(s.step.span.len()),
            thousands(s.stats.writes as u64),
            latency(s.stats.worst),
            thousands(s.stats.over_1s as u64)
        );
        let _ = writeln!(out, "          {}", s.step.summary);
        let _ = writeln!(out, "          {}", explain(s));
    }
    let _ = writeln!(
        out,
        "      {:<36}{:>8}{:>9}{:>10}{:>10}",
        "no migration step running",
        "",
        thousands(run.outside.writes as u64),
        latency(run.outside.worst),
        thousands(run.outside.over_1s as u64)
    );
}

fn migration_label(s: &StepReport) -> String {
    if s.step.name.is_empty() {
        s.step.version.clone()
    } else {
        format!("{}_{}", s.step.version, s.step.name)
    }
}

/// Why a step cost the writes what it did, from what is known about it:
/// its locks, its tries and whether the read transaction was open.
fn explain(s: &StepReport) -> String {
    let locks = if s.step.locks.is_empty() {
        "no table locks".to_string()
    } else {
        s.step.locks.join(", ")
    };
    let waited = s.with_blocker;
    let watched = if s.step.watched.is_zero() {
        String::new()
    } else {
        format!(
            "watched for {} from outside the lock queue (writes went on); ",
            human(s.step.watched)
        )
    };
    let why = if s.step.failed {
        "failed".to_string()
    } else if !watched.is_empty() && s.step.lock_timeouts.is_empty() {
        format!("{watched}then took its lock at the first try, in the gap")
    } else if let (Some(min), Some(max)) = (
        s.step.lock_timeouts.iter().min(),
        s.step.lock_timeouts.iter().max(),
    ) {
        let range = if min == max {
            human(*min)
        } else {
            format!("{}-{}", human(*min), human(*max))
        };
        let during = if waited.is_zero() {
            ""
        } else {
            " while the read transaction was open"
        };
        format!(
            "{watched}{} tries; {} gave up after their lock_timeout ({range}){during}, \
             so writes waited at most {} at a time",
            s.step.tries,
            s.step.lock_timeouts.len(),
            human(*max)
        )
    } else if !waited.is_zero() && s.step.blocks_writes {
        format!(
            "queued {} behind the read transaction, and every write queued behind it",
            human(waited)
        )
    } else if s.step.blocks_writes {
        "writes wait until it commits".to_string()
    } else {
        "writes go on (what they lose is CPU and I/O)".to_string()
    };
    format!("{locks}: {why}")
}

/// One sentence per run: its worst write and the step it came from.
fn verdict(run: &RunReport) -> String {
    let worst = latency(run.total.worst);
    match run.worst_step() {
        Some(s) => format!(
            "{}: worst write {worst}, during {} step {} ({}).",
            run.label,
            migration_label(s),
            s.step.step,
            one_line(&s.step.summary, 60)
        ),
        None => format!(
            "{}: worst write {worst}, while no migration step was running.",
            run.label
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latencies_read_as_people_write_them() {
        assert_eq!(latency(Duration::from_millis(312)), "312 ms");
        assert_eq!(latency(Duration::from_millis(7020)), "7.02 s");
        assert_eq!(seconds(Duration::from_millis(11_240)), "11.2 s");
    }

    fn sample_report() -> DemoReport {
        use lull_demo::report::{Span, StepSpan, WriteSample};
        let ms = Duration::from_millis;
        let step = |version: &str, start: u64, end: u64, timeouts: &[u64], watched: u64| StepSpan {
            version: version.into(),
            name: "add_orders_status".into(),
            step: 1,
            summary: "ALTER TABLE orders ADD COLUMN status text".into(),
            policy: "none".into(),
            locks: vec!["ACCESS EXCLUSIVE on orders".into()],
            blocks_writes: true,
            span: Span {
                start: ms(start),
                end: ms(end),
            },
            tries: timeouts.len() + 1,
            // The lock_timeouts of the tries that gave up.
            lock_timeouts: timeouts.iter().map(|t| ms(*t)).collect(),
            watched: ms(watched),
            failed: false,
        };
        let w = |due: u64, latency: u64| WriteSample {
            due: ms(due),
            latency: ms(latency),
            ok: true,
        };
        let blocker = Some(Span {
            start: ms(1000),
            end: ms(8000),
        });
        let naive = RunReport::build(
            "naive",
            &[w(500, 3), w(1500, 6500), w(2000, 6000), w(9000, 4)],
            vec![step("002", 1000, 8000, &[], 0)],
            Span {
                start: ms(1000),
                end: ms(8000),
            },
            blocker,
            None,
        );
        let recipe = RunReport::build(
            "recipe",
            &[w(500, 3), w(1500, 5000), w(2000, 4600), w(9000, 4)],
            vec![step("002", 1000, 9500, &[5000], 0)],
            Span {
                start: ms(1000),
                end: ms(9500),
            },
            blocker,
            None,
        );
        let lull = RunReport::build(
            "lull",
            &[w(500, 3), w(1500, 60), w(2000, 5), w(9000, 4)],
            vec![step("002", 1000, 8100, &[50], 7000)],
            Span {
                start: ms(1000),
                end: ms(8100),
            },
            blocker,
            None,
        );
        DemoReport {
            rows: 50_000,
            rate: 200,
            blocker: ms(7000),
            blocker_before: Some("002_add_orders_status".into()),
            setup: ms(900),
            naive,
            recipe,
            lull,
        }
    }

    #[test]
    fn the_table_puts_both_runs_side_by_side_and_names_the_worst_step() {
        let text = render(&sample_report());
        let row = |name: &str| {
            text.lines()
                .find(|l| l.starts_with(name))
                .unwrap_or_else(|| panic!("no row {name} in:\n{text}"))
                .split_whitespace()
                .skip(name.split_whitespace().count())
                .collect::<Vec<_>>()
                .join(" ")
        };
        assert_eq!(row("worst write"), "6.50 s 5.00 s 60 ms");
        assert_eq!(row("writes over 1 s"), "2 2 0");
        assert_eq!(row("finish time"), "7.0 s 8.5 s 7.1 s");
        assert!(
            text.contains("naive: worst write 6.50 s, during 002_add_orders_status step 1"),
            "{text}"
        );
        assert!(
            text.contains("queued 7.0s behind the read transaction"),
            "{text}"
        );
        assert!(
            text.contains(
                "2 tries; 1 gave up after their lock_timeout (5.0s) while the read \
                 transaction was open, so writes waited at most 5.0s at a time"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "watched for 7.0s from outside the lock queue (writes went on); 2 tries; \
                 1 gave up after their lock_timeout (50ms)"
            ),
            "{text}"
        );
        assert_eq!(text.matches("gave up").count(), 2, "{text}");
    }

    #[test]
    fn json_names_its_units() {
        let v = serde_json::to_value(sample_report()).unwrap();
        assert_eq!(v["blocker_ms"], 7000);
        assert_eq!(v["naive"]["total"]["worst_ms"], 6500);
        assert_eq!(v["lull"]["total"]["over_1s"], 0);
        assert_eq!(v["naive"]["finish_ms"], 7000);
        assert_eq!(v["naive"]["steps"][0]["with_blocker_ms"], 7000);
        assert_eq!(v["lull"]["steps"][0]["tries"], 2);
        assert_eq!(
            v["lull"]["steps"][0]["lock_timeouts_ms"],
            serde_json::json!([50])
        );
        assert_eq!(v["lull"]["steps"][0]["watched_ms"], 7000);
        assert_eq!(v["recipe"]["total"]["worst_ms"], 5000);
    }
}
