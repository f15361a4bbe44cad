//! `lull config`: the configuration lull would run with, after file
//! discovery, `[env.NAME]` overrides and defaults — secrets hidden.

use std::process::ExitCode;

use clap::Args as ClapArgs;
use lull_config::redact_url;

use crate::context::GlobalArgs;
use crate::error::CliResult;

/// Show the configuration lull would run with.
///
/// Finds lull.toml (this directory or the nearest parent, or --config),
/// applies the [env.NAME] section chosen with --env, fills in defaults and
/// prints the result. Passwords in connection strings are shown as ***.
/// A config file with an unknown key or a bad value is an error naming the
/// file, line and valid choices, so this doubles as a config check in CI.
///
/// Example:
///   lull config --env production
#[derive(ClapArgs, Debug)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

/// Runs `lull config`.
pub fn run(global: &GlobalArgs, args: Args) -> CliResult {
    let config = global.config()?;
    let raw = global.database_url(&config).ok();
    let url = raw.as_deref().map(|u| {
        if u.is_empty() {
            "(from the PG* environment)".to_string()
        } else {
            redact_url(u)
        }
    });
    // Where lull would connect, with libpq's environment, defaults and
    // password file applied (never the password).
    let connection: Option<Result<Vec<String>, String>> = raw.as_deref().map(|u| {
        lull_engine::libpq::resolve(u, &lull_engine::libpq::Machine::current())
            .map(|r| r.summary())
            .map_err(|e| e.to_string())
    });
    let file = config.path.as_ref().map(|p| p.display().to_string());
    if args.json {
        let value = serde_json::json!({
            "file": file,
            "env": config.env,
            "database_url": url,
            "connection": match &connection {
                Some(Ok(lines)) => serde_json::json!(lines),
                Some(Err(e)) => serde_json::json!({ "error": e }),
                None => serde_json::Value::Null,
            },
            "schema": config.schema(),
            "dir": config.migrations_dir(),
            "runner": config.runner(),
            "policies": config.policies(),
            "lint": config.settings.lint,
            "indexes": config.settings.indexes,
        });
        println!(
            "{}",
            serde_json::to_string_pretty(&value).expect("serializable")
        );
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "file:         {}",
        file.as_deref().unwrap_or("(none found; defaults)")
    );
    println!(
        "env:          {}",
        config.env.as_deref().unwrap_or("(none)")
    );
    println!("database_url: {}", url.as_deref().unwrap_or("(not set)"));
    match &connection {
        Some(Ok(lines)) => {
            for line in lines {
                println!("connects to:  {line}");
            }
        }
        Some(Err(e)) => println!("connects to:  (invalid: {e})"),
        None => {}
    }
    println!("schema:       {}", config.schema());
    println!("dir:          {}", config.migrations_dir().display());
    println!("runner:       {:?}", config.runner());
    let p = config.policies();
    println!(
        "policy.ddl:   lock_timeout {}, max_lock_timeout {}, escalate_after {}, poll_interval {}, wait_budget {}, statement_timeout {}, idle_in_transaction_session_timeout {}",
        p.ddl.lock_timeout,
        p.ddl.max_lock_timeout,
        p.ddl.escalate_after,
        p.ddl.poll_interval,
        p.ddl.wait_budget,
        p.ddl.statement_timeout,
        p.ddl.idle_in_transaction_session_timeout
    );
    println!(
        "policy.dml:   lock_timeout {}, statement_timeout {}, max_retries {}, backoff {}..{}",
        p.dml.lock_timeout,
        p.dml.statement_timeout,
        p.dml.max_retries,
        p.dml.backoff_base,
        p.dml.backoff_max
    );
    println!(
        "policy.index: lock_timeout {}, statement_timeout {}, max_tries {}, backoff {}..{}",
        p.index.lock_timeout,
        p.index.statement_timeout,
        p.index.max_tries,
        p.index.backoff_base,
        p.index.backoff_max
    );
    let off = |d: Option<lull_config::Duration>| d.map_or("off".to_string(), |d| d.to_string());
    println!(
        "policy.blockers: terminate_idle_in_transaction_after {}, cancel_queries_after {}",
        off(p.blockers.terminate_idle_in_transaction_after),
        off(p.blockers.cancel_queries_after)
    );
    // The sections as set (defaults are documented in the README and
    // applied where they are used).
    for (name, table) in [
        ("lint", toml::Value::try_from(&config.settings.lint)),
        ("indexes", toml::Value::try_from(&config.settings.indexes)),
    ] {
        match table {
            Ok(toml::Value::Table(t)) if !t.is_empty() => {
                println!("[{name}]");
                print!("{}", toml::to_string(&t).unwrap_or_default());
            }
            _ => println!("[{name}]       (nothing set; defaults)"),
        }
    }
    Ok(ExitCode::SUCCESS)
}
