//! What every command shares: the global flags, the configuration they
//! select, and the database URL.

use std::path::PathBuf;

use clap::Args;
use lull_config::{find_config, Config};

use crate::error::CliError;

/// Flags every command accepts.
#[derive(Args, Debug, Clone, Default)]
pub struct GlobalArgs {
    /// Config file to use instead of the nearest lull.toml in this or a
    /// parent directory.
    #[arg(long, global = true, value_name = "PATH")]
    pub config: Option<PathBuf>,

    /// Apply the [env.NAME] section of the config file (e.g. production).
    #[arg(long = "env", global = true, value_name = "NAME", env = "LULL_ENV")]
    pub env_name: Option<String>,

    /// PostgreSQL connection string; wins over the config file. The
    /// password is never printed.
    #[arg(
        long,
        global = true,
        value_name = "URL",
        env = "DATABASE_URL",
        hide_env_values = true
    )]
    pub database_url: Option<String>,
}

impl GlobalArgs {
    /// The configuration: `--config`, else the nearest lull.toml, else
    /// defaults; with `--env` applied.
    pub fn config(&self) -> Result<Config, CliError> {
        let path = match &self.config {
            Some(p) if !p.is_file() => {
                return Err(
                    CliError::new(format!("config file {} does not exist", p.display()))
                        .hint("check the path given to --config"),
                )
            }
            Some(p) => Some(p.clone()),
            None => std::env::current_dir().ok().and_then(|d| find_config(&d)),
        };
        match path {
            Some(path) => Config::load(&path, self.env_name.as_deref()).map_err(|e| {
                CliError::new(e).hint("see the [policy], [lint] and [indexes] keys in the README")
            }),
            None if self.env_name.is_some() => Err(CliError::new(format!(
                "--env {} given, but there is no lull.toml here or in a parent directory",
                self.env_name.as_deref().unwrap_or_default()
            ))
            .hint("create lull.toml with an [env.NAME] section, or pass --config")),
            None => Ok(Config::default()),
        }
    }

    /// The database URL: `--database-url` / `DATABASE_URL`, else the config,
    /// else (when `PGHOST`, `PGDATABASE`, ... say where) an empty string:
    /// libpq's environment and defaults alone. Whatever it is, the `PG*`
    /// variables fill in what it leaves out, as for `psql`.
    pub fn database_url(&self, config: &Config) -> Result<String, CliError> {
        self.database_url
            .clone()
            .filter(|u| !u.trim().is_empty())
            .or_else(|| config.settings.database_url.clone())
            .or_else(|| {
                lull_engine::libpq::LOCATION_ENV
                    .iter()
                    .any(|v| std::env::var_os(v).is_some_and(|x| !x.is_empty()))
                    .then(String::new)
            })
            .ok_or_else(|| {
                CliError::new("no database to connect to").hint(
                    "pass --database-url, set DATABASE_URL or PGHOST/PGDATABASE/..., or set \
                     database_url in lull.toml (try `lull sandbox start` and \
                     `--database-url \"$(lull sandbox url)\"`)",
                )
            })
    }
}
