//! `lull backfill …`: run a batched UPDATE/DELETE outside migrations,
//! and watch, pause, resume or cancel backfills from another process.
//! The work is done by `lull_backfill`; this module parses flags and
//! renders progress.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::sync::Mutex;
use std::time::Duration;

use clap::{Args as ClapArgs, Subcommand, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use lull_backfill::{BackfillError, BackfillEvent, BackfillRecord, Options, Spec, Tables};
use lull_engine::db::{connect, ensure_primary};
use lull_engine::events::human;
use owo_colors::OwoColorize;

use crate::cmd::run_shared::{engine_error, runtime};
use crate::context::GlobalArgs;
use crate::error::{exit, CliError, CliResult};

/// Batched backfills: big UPDATEs and DELETEs that never hold the table.
///
/// `run` changes the rows in keyset batches over the table's primary key
/// (or a unique NOT NULL column), one short transaction each, with the
/// progress recorded in the same transaction (lull.backfills,
/// lull.backfill_parts): a killed run resumes after its last committed
/// batch and never applies a batch twice, so even `SET c = c + 1` adds
/// exactly one to every row. Rows inserted after the start with keys above
/// the range captured at start are not touched. The batch size follows
/// [backfill] target_batch_time; between batches lull holds while a
/// standby lags, autovacuum works on the table, too many sessions are
/// active, the [backfill] probe returns true, or the backfill is paused.
/// At the end the rows still matching the WHERE are counted.
///
/// Example:
///   lull backfill run --table orders --set "total = price * qty" --where "total IS NULL"
///   lull backfill run --table events --delete --where "created_at < now() - interval '1 year'"
///   lull backfill run --table invoices --set "region = c.region FROM customers c" \
///     --where "c.id = invoices.customer_id" --per tenant_id
///   lull backfill pause orders-1a2b3c4d      # from another terminal
///   lull backfill status
#[derive(ClapArgs, Debug)]
#[command(verbatim_doc_comment)]
pub struct Args {
    #[command(subcommand)]
    action: Action,
}

/// How progress is shown.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq, Default)]
enum Format {
    /// A progress bar when stderr is a terminal, else JSON lines.
    #[default]
    Auto,
    /// Lines for people on stderr.
    Human,
    /// One JSON object per line on stdout.
    Json,
}

#[derive(Subcommand, Debug)]
enum Action {
    /// Run (or resume) a backfill.
    ///
    /// Give the statement as --table with --set or --delete (and
    /// --where), or whole with --sql. Fragments are SQL as you would write
    /// them. The same command again resumes an interrupted run (the
    /// default --name is derived from the statement). Exit 0 when done,
    /// 1 when a batch failed or it was cancelled (committed batches
    /// stay), 2 when the statement cannot be batched or does not parse,
    /// 3 when another process runs the same backfill.
    ///
    /// Example:
    ///   lull backfill run --table t --set "b = a * 2" --where "b IS NULL" --batch-size 5000
    ///   lull backfill run --sql "DELETE FROM sessions WHERE expires_at < now()"
    #[command(verbatim_doc_comment)]
    Run {
        /// The table, as written in SQL (e.g. `orders`, `app."Orders"`).
        #[arg(long, required_unless_present = "sql")]
        table: Option<String>,
        /// The SET list of the UPDATE (may end with `FROM other_table`).
        #[arg(long, conflicts_with_all = ["delete", "sql"])]
        set: Option<String>,
        /// DELETE the matching rows instead of updating them.
        #[arg(long, conflicts_with = "sql")]
        delete: bool,
        /// Which rows: the WHERE condition.
        #[arg(long = "where", value_name = "CONDITION", conflicts_with = "sql")]
        condition: Option<String>,
        /// The whole UPDATE or DELETE statement.
        #[arg(long, conflicts_with = "table")]
        sql: Option<String>,
        /// Walk each value of this column (a tenant) in its own batches.
        #[arg(long, value_name = "COLUMN")]
        per: Option<String>,
        /// Rows in the first batch [default: [backfill] batch_size, 1000].
        #[arg(long, value_name = "ROWS")]
        batch_size: Option<u64>,
        /// Name to record it under [default: the table and a hash of the
        /// statement].
        #[arg(long)]
        name: Option<String>,
        /// Progress output.
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Show backfills: status, rows, batches, tenants, holds.
    Status {
        /// Only this one.
        name: Option<String>,
        /// Output: a table, or JSON.
        #[arg(long)]
        json: bool,
    },
    /// Hold a running backfill after its current batch.
    Pause {
        /// The backfill.
        name: String,
    },
    /// Let a paused (or cancelled) backfill continue.
    Resume {
        /// The backfill.
        name: String,
    },
    /// Stop a backfill after its current batch; committed batches stay.
    Cancel {
        /// The backfill.
        name: String,
    },
}

/// Runs `lull backfill`.
pub fn run(global: &GlobalArgs, args: Args) -> CliResult {
    let config = global.config()?;
    let url = global.database_url(&config)?;
    let schema = config.schema().to_string();
    let rt = runtime()?;
    match args.action {
        Action::Run {
            table,
            set,
            delete,
            condition,
            sql,
            per,
            batch_size,
            name,
            format,
        } => {
            let sql = match sql {
                Some(sql) => sql,
                None => statement(table.as_deref().unwrap_or_default(), set, delete, condition)?,
            };
            let name = name.unwrap_or_else(|| default_name(&sql, per.as_deref()));
            let spec = Spec {
                name,
                sql,
                per,
                batch_size,
            };
            let policy = config.backfill();
            let dml = config.policies().dml;
            let json = match format {
                Format::Json => true,
                Format::Human => false,
                Format::Auto => !std::io::stderr().is_terminal(),
            };
            let render = Render::new(json, std::io::stderr().is_terminal() && !json);
            let sink = |e: &BackfillEvent| render.event(e);
            let opts = Options {
                schema: &schema,
                policy: &policy,
                dml: &dml,
                events: &sink,
            };
            let result = rt.block_on(async {
                let client = connect(&url, "lull backfill").await.map_err(engine_error)?;
                ensure_primary(&client, &url).await.map_err(engine_error)?;
                lull_backfill::run(&client, &spec, &opts)
                    .await
                    .map_err(|e| backfill_error(e, json))
            });
            render.finish();
            let outcome = result?;
            if json {
                println!(
                    "{}",
                    serde_json::json!({ "event": "done", "outcome": outcome })
                );
            } else if outcome.already_done {
                eprintln!(
                    "backfill {} was finished by an earlier run ({} rows); nothing to do",
                    outcome.name, outcome.rows
                );
            } else {
                let remaining = match outcome.remaining {
                    Some(0) => "; no row matches the WHERE any more".to_string(),
                    Some(n) if n >= lull_backfill::run::VERIFY_LIMIT => {
                        format!("; at least {n} rows still match the WHERE")
                    }
                    Some(n) => format!("; {n} rows still match the WHERE"),
                    None => String::new(),
                };
                eprintln!(
                    "{} backfill {}: {} rows in {} batches, {}{remaining}",
                    "✓".green(),
                    outcome.name,
                    outcome.rows,
                    outcome.batches,
                    human(Duration::from_millis(outcome.elapsed_ms))
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Action::Status { name, json } => {
            let list = rt.block_on(async {
                let client = connect(&url, "lull backfill").await.map_err(engine_error)?;
                Tables::new(&schema)
                    .list(&client, name.as_deref())
                    .await
                    .map_err(|e| backfill_error(e, false))
            })?;
            if let Some(n) = &name {
                if list.is_empty() {
                    return Err(CliError::new(format!("there is no backfill named {n}"))
                        .hint("`lull backfill status` lists them"));
                }
            }
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&list).unwrap_or_default()
                );
            } else if list.is_empty() {
                println!("no backfills recorded");
            } else {
                print_status(&list);
            }
            Ok(ExitCode::SUCCESS)
        }
        Action::Pause { name } => control(&rt, &url, &schema, &name, "paused"),
        Action::Resume { name } => control(&rt, &url, &schema, &name, "running"),
        Action::Cancel { name } => control(&rt, &url, &schema, &name, "cancelled"),
    }
}

fn control(
    rt: &tokio::runtime::Runtime,
    url: &str,
    schema: &str,
    name: &str,
    to: &str,
) -> CliResult {
    let was = rt.block_on(async {
        let client = connect(url, "lull backfill").await.map_err(engine_error)?;
        ensure_primary(&client, url).await.map_err(engine_error)?;
        Tables::new(schema)
            .control(&client, name, to)
            .await
            .map_err(|e| backfill_error(e, false))
    })?;
    let what = match to {
        "paused" => "paused: the runner holds after its current batch",
        "cancelled" => "cancelled: the runner stops after its current batch",
        _ => "resumed",
    };
    println!("backfill {name} {what} (was {was})");
    Ok(ExitCode::SUCCESS)
}

/// The statement from the fragments.
fn statement(
    table: &str,
    set: Option<String>,
    delete: bool,
    condition: Option<String>,
) -> Result<String, CliError> {
    let head = match (set, delete) {
        (Some(set), false) => format!("UPDATE {table} SET {set}"),
        (None, true) => format!("DELETE FROM {table}"),
        _ => {
            return Err(CliError::new("say what to do with the rows")
                .hint("pass --set \"col = …\" for an UPDATE, or --delete"))
        }
    };
    Ok(match condition {
        Some(c) => {
            // `--set "x = c.x FROM customers c"` puts FROM before WHERE,
            // which is where it belongs.
            format!("{head} WHERE {c}")
        }
        None => head,
    })
}

/// `table-xxxxxxxx`: the table and a hash of the statement, so the same
/// command resumes the same backfill.
fn default_name(sql: &str, per: Option<&str>) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in sql.bytes().chain(per.unwrap_or("").bytes()) {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    let table = lull_backfill::analyze(sql)
        .map(|b| b.table)
        .unwrap_or_else(|_| "backfill".into());
    let table: String = table
        .chars()
        .map(|c| if c.is_alphanumeric() { c } else { '_' })
        .collect();
    format!("{table}-{:08x}", hash as u32)
}

fn backfill_error(e: BackfillError, json: bool) -> CliError {
    let code = match &e {
        BackfillError::Refused { .. } => exit::REFUSED,
        BackfillError::Invalid { .. } | BackfillError::NotBatchable { .. } => exit::ERROR,
        BackfillError::Db { .. }
        | BackfillError::Cancelled { .. }
        | BackfillError::BatchFailed { .. } => exit::FAILED,
    };
    if json {
        println!(
            "{}",
            serde_json::json!({ "event": "error", "message": e.to_string(), "hint": e.hint() })
        );
    }
    let hint = e.hint();
    let err = CliError::new(e).code(code);
    match hint {
        Some(h) => err.hint(h),
        None => err,
    }
}

fn print_status(list: &[BackfillRecord]) {
    for b in list {
        let state = if b.active && b.status == "running" {
            "running (active)".to_string()
        } else if b.status == "running" {
            "running (no process: interrupted; run it again to resume)".to_string()
        } else {
            b.status.clone()
        };
        println!("{} — {state}", b.name.bold());
        println!("  {}", b.statement);
        let est = b
            .rows_estimate
            .map(|e| format!(" of ~{e}"))
            .unwrap_or_default();
        println!(
            "  rows changed {}, walked {}{est}, {} batches",
            b.rows_done, b.rows_scanned, b.batches
        );
        if let Some(per) = &b.per_column {
            println!("  per {per}: {}/{} tenants done", b.parts_done, b.parts);
        }
        if let Some(h) = &b.hold_reason {
            println!("  held: {h}");
        }
        if let Some(r) = b.remaining {
            println!("  rows still matching the WHERE at the end: {r}");
        }
        if let Some(e) = &b.error {
            println!("  last error: {e}");
        }
        println!(
            "  started {}, last change {}{}",
            b.started_at,
            b.updated_at,
            b.finished_at
                .as_ref()
                .map(|f| format!(", finished {f}"))
                .unwrap_or_default()
        );
    }
}

/// Progress: JSON lines, or human lines with a live bar on a terminal.
struct Render {
    json: bool,
    tty: bool,
    bar: Mutex<Option<ProgressBar>>,
    started: std::time::Instant,
}

impl Render {
    fn new(json: bool, tty: bool) -> Render {
        Render {
            json,
            tty,
            bar: Mutex::new(None),
            started: std::time::Instant::now(),
        }
    }

    fn line(&self, text: String) {
        match &*self.bar.lock().unwrap() {
            Some(bar) => bar.println(text),
            None => {
                let _ = writeln!(anstream::stderr(), "{text}");
            }
        }
    }

    fn finish(&self) {
        if let Some(bar) = self.bar.lock().unwrap().take() {
            bar.finish_and_clear();
        }
    }

    fn event(&self, e: &BackfillEvent) {
        if self.json {
            if let Ok(line) = serde_json::to_string(e) {
                let mut out = std::io::stdout().lock();
                let _ = writeln!(out, "{line}");
                let _ = out.flush();
            }
            return;
        }
        match e {
            BackfillEvent::Started {
                name,
                table,
                key,
                per,
                parts,
                parts_done,
                estimate,
                rows_done,
                rows_scanned,
                resumed,
                batch_size,
            } => {
                let per = per
                    .as_ref()
                    .map(|p| format!(", per {p} ({parts_done}/{parts} tenants done)"))
                    .unwrap_or_default();
                let verb = if *resumed {
                    format!("resuming after {rows_done} rows")
                } else {
                    "starting".into()
                };
                self.line(format!(
                    "{} backfill {name} on {table} by ({}){per}: {verb}, batches of {batch_size}",
                    "→".cyan(),
                    key.join(", ")
                ));
                if self.tty {
                    let bar = match estimate {
                        Some(n) if *n > 0 => ProgressBar::new(*n as u64),
                        _ => ProgressBar::new_spinner(),
                    };
                    bar.set_style(
                        ProgressStyle::with_template(
                            "  {bar:30} {pos}/~{len} rows walked, {per_sec}, ETA {eta} {msg}",
                        )
                        .unwrap_or_else(|_| ProgressStyle::default_bar()),
                    );
                    bar.set_position(*rows_scanned as u64);
                    bar.reset_eta();
                    bar.enable_steady_tick(Duration::from_millis(250));
                    *self.bar.lock().unwrap() = Some(bar);
                }
            }
            BackfillEvent::Batch {
                tenant,
                rows,
                size,
                elapsed,
                total_rows,
                total_scanned,
                ..
            } => {
                let tenant = tenant
                    .as_ref()
                    .map(|t| format!(" tenant {t}"))
                    .unwrap_or_default();
                if let Some(bar) = &*self.bar.lock().unwrap() {
                    bar.set_position(*total_scanned as u64);
                    bar.set_message(format!("{total_rows} changed{tenant}"));
                    return;
                }
                let secs = self.started.elapsed().as_secs_f64().max(0.001);
                self.line(format!(
                    "  batch{tenant}: {rows} rows (size {size}, {}), {total_rows} changed, {:.0} rows/s",
                    human(*elapsed),
                    *total_scanned as f64 / secs
                ));
            }
            BackfillEvent::Split { from, to } => self.line(format!(
                "  a batch of {from} hit [backfill] batch_timeout; retrying with {to}"
            )),
            BackfillEvent::Retry {
                attempt,
                error,
                sleep,
            } => self.line(format!(
                "  batch try {attempt} failed ({error}); retrying in {}",
                human(*sleep)
            )),
            BackfillEvent::Held { reasons } => {
                self.line(format!("  {} {}", "holding:".yellow(), reasons.join("; ")))
            }
            BackfillEvent::Released { held } => {
                self.line(format!("  released after {}", human(*held)))
            }
            BackfillEvent::PartDone { tenant, rows, .. } => {
                if let Some(t) = tenant {
                    self.line(format!("  tenant {t} done: {rows} rows"));
                }
            }
            BackfillEvent::Finished { .. } => self.finish(),
        }
    }
}
