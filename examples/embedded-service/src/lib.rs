//! An example of lull as a library: a service that applies its pending
//! migrations at start-up, under lull's lock policies, before it serves.
//!
//! What it shows:
//! - the migrations are found on disk in any layout lull reads
//!   ([`lull_migrations::discover`]);
//! - policies come from the service's own `lull.toml` when there is one
//!   (or lull's defaults), so operators tune lock timeouts without a
//!   rebuild;
//! - lull's progress events go to the service's own logging (`tracing`
//!   here), one structured line per event;
//! - several replicas starting at once are safe: one applies, the others
//!   wait for the runner lock (`lock_wait`) and then find nothing pending.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use lull_engine::{EngineError, RunSummary, Runner, RunnerOptions};

/// Why start-up migration failed.
#[derive(Debug)]
pub enum StartupError {
    /// The migrations directory could not be read.
    Migrations(lull_migrations::DiscoverError),
    /// lull.toml is invalid.
    Config(lull_config::ConfigError),
    /// Applying failed; lull's message says what to do next.
    Migrate(EngineError),
}

impl std::fmt::Display for StartupError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StartupError::Migrations(e) => write!(f, "reading migrations: {e}"),
            StartupError::Config(e) => write!(f, "reading lull.toml: {e}"),
            StartupError::Migrate(e) => match e.hint() {
                Some(hint) => write!(f, "applying migrations: {e} ({hint})"),
                None => write!(f, "applying migrations: {e}"),
            },
        }
    }
}

impl std::error::Error for StartupError {}

/// Applies every pending migration in `dir` to the database at `url`,
/// with the policies of `config` (a lull.toml path) when given. Returns
/// what was applied; logs each lull event through `tracing`.
pub async fn migrate_on_startup(
    url: &str,
    dir: &Path,
    config: Option<&Path>,
) -> Result<RunSummary, StartupError> {
    let migrations = lull_migrations::discover(dir).map_err(StartupError::Migrations)?;
    let mut opts = RunnerOptions::new(url);
    if let Some(path) = config {
        let config = lull_config::Config::load(path, None).map_err(StartupError::Config)?;
        opts.policies = config.policies();
        opts.schema = config.schema().to_string();
    }
    // Other replicas starting at the same moment wait for the one that
    // applies, instead of failing their start-up.
    opts.lock_wait = Duration::from_secs(300);
    let runner = Runner::new(opts).with_events(Arc::new(|event| {
        let line = serde_json::to_string(event).unwrap_or_default();
        tracing::info!(target: "lull", "{line}");
    }));
    runner
        .migrate(&migrations, None)
        .await
        .map_err(StartupError::Migrate)
}
