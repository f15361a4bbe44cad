//! `lull explain`: the documentation of each lint rule (what it flags, why
//! it hurts, the safe alternative) and of the risk formula.

use std::io::Write;
use std::process::ExitCode;

use clap::Args as ClapArgs;
use lull_analyzer::{rules, Severity, RISK_DOC, TOOLS_DOC};
use owo_colors::OwoColorize;

use crate::context::GlobalArgs;
use crate::error::{CliError, CliResult};

/// Explain a lint rule, or list them all.
///
/// Without an argument, lists every rule id with its default severity and
/// one line on what it flags. With a rule id, prints what the rule flags,
/// why it hurts (the lock and what it blocks) and the safe alternative as
/// SQL. `lull explain risk` prints how a migration's risk level is
/// computed; `lull explain runners` how each migration tool's
/// transactions change the findings.
///
/// Examples:
///   lull explain
///   lull explain create-index-not-concurrently
///   lull explain risk
///   lull explain runners
#[derive(ClapArgs, Debug)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// A rule id, `risk` or `runners`.
    #[arg(value_name = "RULE")]
    pub rule: Option<String>,
}

/// Rules whose findings depend on the tool that runs the file; their
/// documentation ends with how each tool runs files.
const RUNNER_AWARE: &[&str] = &[
    "concurrently-in-transaction",
    "missing-if-not-exists",
    "missing-lock-timeout",
    "missing-statement-timeout",
    "statements-after-exclusive-lock",
    "create-index-not-concurrently",
    "drop-index-not-concurrently",
    "reindex-not-concurrently",
    "constraint-not-valid",
    "unique-constraint-without-index",
    "set-not-null",
];

/// Runs `lull explain`.
pub fn run(_global: &GlobalArgs, args: Args) -> CliResult {
    let mut out = anstream::stdout();
    match args.rule.as_deref() {
        None => {
            let width = rules::all().iter().map(|r| r.id.len()).max().unwrap_or(0);
            for rule in rules::all() {
                let severity = match rule.default_severity {
                    Severity::Error => "error  ".red().to_string(),
                    Severity::Warning => "warning".yellow().to_string(),
                    Severity::Info => "info   ".blue().to_string(),
                };
                let opt_in = if rule.opt_in { " (opt-in)" } else { "" };
                let _ = writeln!(
                    out,
                    "{:width$}  {severity}  {}{opt_in}",
                    rule.id.bold(),
                    rule.summary
                );
            }
            let _ = writeln!(
                out,
                "{:width$}           how a migration's risk level is computed",
                "risk".bold(),
            );
            let _ = writeln!(
                out,
                "{:width$}           which transactions each migration tool runs files in",
                "runners".bold(),
            );
            let _ = writeln!(out, "\n`lull explain RULE` shows what a rule flags, why it hurts and the safe alternative.");
            Ok(ExitCode::SUCCESS)
        }
        Some("risk") => {
            let _ = write!(out, "{RISK_DOC}");
            Ok(ExitCode::SUCCESS)
        }
        Some("runners") => {
            let _ = write!(out, "{TOOLS_DOC}");
            Ok(ExitCode::SUCCESS)
        }
        Some(id) => match rules::get(id) {
            Some(rule) => {
                let _ = write!(out, "{}", rule.doc);
                if RUNNER_AWARE.contains(&rule.id) {
                    let _ = write!(out, "\n{TOOLS_DOC}");
                }
                Ok(ExitCode::SUCCESS)
            }
            None => {
                let similar: Vec<&str> = rules::all()
                    .iter()
                    .map(|r| r.id)
                    .filter(|r| id.split('-').any(|part| part.len() > 3 && r.contains(part)))
                    .collect();
                let hint = if similar.is_empty() {
                    "`lull explain` lists every rule".to_string()
                } else {
                    format!("did you mean {}?", similar.join(", "))
                };
                Err(CliError::new(format!("unknown rule `{id}`")).hint(hint))
            }
        },
    }
}
