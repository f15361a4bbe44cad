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
    let url = global.database_url(&config).ok().map(|u| redact_url(&u));
    let file = config.path.as_ref().map(|p| p.display().to_string());
    if args.json {
        let value = serde_json::json!({
            "file": file,
            "env": config.env,
            "database_url": url,
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
    println!("schema:       {}", config.schema());
    println!("dir:          {}", config.migrations_dir().display());
    println!("runner:       {:?}", config.runner());
    let p = config.policies();
    let list = |v: &[lull_config::Duration]| {
        v.iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    };
    println!("policy.ddl:   lock_timeouts [{}], retry_sleeps [{}], statement_timeout {}, idle_in_transaction_session_timeout {}",
        list(&p.ddl.lock_timeouts), list(&p.ddl.retry_sleeps), p.ddl.statement_timeout, p.ddl.idle_in_transaction_session_timeout);
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
