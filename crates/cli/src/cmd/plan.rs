//! `lull plan`: show exactly what `lull migrate` would run.

use std::process::ExitCode;

use clap::Args as ClapArgs;
use lull_config::Policies;
use lull_engine::db::ServerVersion;
use lull_engine::plan::{PolicyClass, Risk};
use lull_engine::{Direction, EngineError, MigrationPlan, Runner};
use owo_colors::OwoColorize;

use crate::cmd::run_shared::{engine_error, plural, runtime, DirArgs, Format, RunArgs, Setup};
use crate::context::GlobalArgs;
use crate::error::CliResult;

/// Show exactly what `lull migrate` would run, without running it.
///
/// For every pending migration: its steps (a transaction, or one
/// autocommit statement), the policy of each step, each statement with its
/// line, the safe-by-default rewrites applied (what was written, what runs
/// instead, and why), the lock mode per table and a risk level (low:
/// weak locks or new tables; medium: a strong lock held briefly; high: a
/// strong lock held while a table is rewritten or scanned).
///
/// With a database URL only pending migrations are planned, for the
/// server's PostgreSQL version (shown first); without one (or with --all)
/// every migration in the directory is, for `pg_version` in lull.toml
/// (else the newest PostgreSQL lull knows). The version decides the lock
/// modes that changed between majors (GRANT locks its tables from 18 on). SQL that does not parse is
/// reported with its file position (exit 2).
///
/// Examples:
///   lull plan
///   lull plan --all --format json
///   lull plan --no-rewrites
#[derive(ClapArgs, Debug)]
#[command(verbatim_doc_comment)]
pub struct Args {
    #[command(flatten)]
    dir: DirArgs,

    /// Run statements as written: no safe-by-default rewrites.
    #[arg(long)]
    no_rewrites: bool,

    /// Plan every migration in the directory, applied or not, without
    /// connecting.
    #[arg(long)]
    all: bool,

    /// Plan up to and including this version.
    #[arg(long, value_name = "VERSION")]
    to: Option<String>,

    /// Output: human text, or JSON (a list of migrations with their steps).
    #[arg(long, value_enum, default_value_t)]
    format: Format,
}

/// Runs `lull plan`.
pub fn run(global: &GlobalArgs, args: Args) -> CliResult {
    let setup = Setup::load(global, &args.dir)?;
    let run_args = RunArgs {
        no_rewrites: args.no_rewrites,
        ..RunArgs::default()
    };
    let online = !args.all && global.database_url(&setup.config).is_ok();
    let opts = if online {
        setup.options(global, &run_args)?
    } else {
        let mut o = lull_engine::RunnerOptions::new(String::new());
        o.policies = setup.config.policies();
        o.rewrites = !args.no_rewrites;
        o.pg_version = setup.config.pg_version();
        o
    };
    let runner = Runner::new(opts);
    let mut server = None;
    let mut out_of_order = Vec::new();
    let plans: Vec<MigrationPlan> = if online {
        let (version, plans, late) = runtime()?
            .block_on(async {
                let version = server_version(&runner.options().url).await?;
                let plans = runner
                    .pending(&setup.migrations, args.to.as_deref())
                    .await?;
                let late = runner.out_of_order(&setup.migrations, &plans).await?;
                Ok::<_, EngineError>((version, plans, late))
            })
            .map_err(engine_error)?;
        server = Some(version);
        out_of_order = late;
        plans
    } else {
        let mut plans = Vec::new();
        let mut ctx = lull_engine::PlanContext::default();
        for m in &setup.migrations {
            if let Some(to) = &args.to {
                if lull_migrations::compare_versions(&m.version, to).is_gt() {
                    break;
                }
            }
            plans.push(
                runner
                    .plan_with(m, Direction::Up, &mut ctx)
                    .map_err(engine_error)?,
            );
        }
        plans
    };
    if args.format == Format::Json {
        let out = serde_json::json!({
            "pending_only": online,
            "server_version": server,
            "policies": runner.options().policies,
            "migrations": plans,
            "out_of_order": out_of_order,
        });
        println!("{}", serde_json::to_string_pretty(&out).unwrap_or_default());
        return Ok(ExitCode::SUCCESS);
    }
    match (&server, runner.options().pg_version) {
        (Some(server), _) => println!("planned for {server} (the server's version)"),
        (None, Some(major)) => println!("planned for PostgreSQL {major} (pg_version in lull.toml)"),
        (None, None) => {}
    }
    if plans.is_empty() {
        println!(
            "nothing to do: no {}migrations",
            if online { "pending " } else { "" }
        );
        return Ok(ExitCode::SUCCESS);
    }
    for line in &out_of_order {
        anstream::eprintln!("{} {line}", "warning:".yellow().bold());
    }
    let policies = &runner.options().policies;
    for plan in &plans {
        print_plan(plan, policies);
    }
    let n = plans.len();
    println!(
        "{n} {}migration{}{}",
        if online { "pending " } else { "" },
        plural(n),
        if online {
            ""
        } else {
            " (not checked against a database: all are listed)"
        }
    );
    Ok(ExitCode::SUCCESS)
}

/// The version of the server at `url`.
pub(crate) async fn server_version(url: &str) -> Result<ServerVersion, EngineError> {
    let client = lull_engine::db::connect(url, "lull").await?;
    lull_engine::db::server_version(&client).await
}

fn risk_name(r: Risk) -> &'static str {
    match r {
        Risk::Low => "low",
        Risk::Medium => "medium",
        Risk::High => "high",
    }
}

fn policy_text(p: PolicyClass, policies: &Policies) -> String {
    let h = |d: lull_config::Duration| lull_engine::events::human(d.std());
    match p {
        PolicyClass::Ddl => {
            let d = &policies.ddl;
            format!(
                "ddl: tries only in a gap, lock_timeout {} (up to {} on a hot table), waits at most {}, statement_timeout {}",
                h(d.lock_timeout),
                h(d.max_lock_timeout),
                h(d.wait_budget),
                h(d.statement_timeout)
            )
        }
        PolicyClass::Dml => format!(
            "dml: lock_timeout {}, up to {} retries on lock timeout, deadlock, serialization failure",
            h(policies.dml.lock_timeout),
            policies.dml.max_retries
        ),
        PolicyClass::Index => format!(
            "index: own connection, up to {} tries, INVALID leftovers dropped, validity checked",
            policies.index.max_tries
        ),
        PolicyClass::None => "none: as written, no timeouts, no retries".to_string(),
    }
}

fn print_plan(plan: &MigrationPlan, policies: &Policies) {
    println!(
        "{}_{}  risk: {}",
        plan.version,
        plan.name,
        risk_name(plan.risk())
    );
    if plan.steps.is_empty() {
        println!("  (no statements)");
    }
    for o in &plan.overridden {
        println!(
            "  line {}: {}    {}",
            o.line,
            lull_engine::excerpt(&o.sql, 80),
            o.note
        );
    }
    for step in &plan.steps {
        println!(
            "  step {}  {}  [{}]  risk {}",
            step.number,
            step.kind.as_str(),
            policy_text(step.policy, policies),
            risk_name(step.risk)
        );
        for s in &step.statements {
            println!(
                "    {}    (line {})",
                lull_engine::excerpt(&s.sql, 120),
                s.line
            );
            if let (Some(rewrite), Some(original)) = (s.rewrite, &s.original) {
                println!(
                    "      rewrite {rewrite}: {}",
                    s.note.as_deref().unwrap_or("")
                );
                println!("      written as: {}", lull_engine::excerpt(original, 120));
            } else if let Some(note) = &s.note {
                println!("      note: {note}");
            }
            if s.best_effort {
                println!("      best effort: a final failure is a warning and a pending-index row");
            }
            if !s.locks.is_empty() {
                let locks: Vec<String> = s
                    .locks
                    .iter()
                    .map(|l| format!("{} {}", l.relation, l.mode.sql_name()))
                    .collect();
                println!("      locks: {}", locks.join(", "));
            }
            if !s.rewrites.is_empty() {
                println!("      rewrites table: {}", s.rewrites.join(", "));
            }
        }
    }
}
