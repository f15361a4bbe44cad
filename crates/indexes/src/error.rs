//! The errors of index operations: what went wrong and what to do next.

use crate::definition::DefinitionError;
use crate::schedule::ScheduleError;
use crate::window::WindowError;

/// Everything an index operation can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Connecting failed (the URL is shown redacted), or the engine's
    /// index build could not do its bookkeeping.
    #[error("{0}")]
    Engine(#[from] lull_engine::EngineError),
    /// A query failed; `what` says which step.
    #[error("{what}: {}", db_message(.source))]
    Query {
        /// The step, e.g. "reading the catalog".
        what: String,
        /// The driver's error.
        source: tokio_postgres::Error,
    },
    /// An index definition does not parse.
    #[error(transparent)]
    Definition(#[from] DefinitionError),
    /// The `[indexes]` window settings are wrong.
    #[error("[indexes] {0}")]
    Window(#[from] WindowError),
    /// The `[indexes] schedule` is wrong.
    #[error("[indexes] {0}")]
    Schedule(#[from] ScheduleError),
    /// An expected-indexes file could not be read.
    #[error(transparent)]
    Expected(#[from] crate::expected::ExpectedError),
    /// A name given on the command line is not in the queue.
    #[error("`{0}` is not in the pending queue; `lull indexes pending` lists it, `lull indexes add` adds to it")]
    NotPending(String),
    /// `indexes cancel` found no build to cancel.
    #[error("no index build matches `{0}`; `lull indexes monitor --once` lists the running ones")]
    NoSuchBuild(String),
}

/// The server's message with its detail and hint, which the default
/// `Display` of the driver leaves out.
pub(crate) fn db_message(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => {
            let mut s = format!("{} ({})", db.message(), db.code().code());
            if let Some(d) = db.detail() {
                s.push_str(&format!("; {d}"));
            }
            if let Some(h) = db.hint() {
                s.push_str(&format!("; hint: {h}"));
            }
            s
        }
        None => e.to_string(),
    }
}

/// Adds the step name to a driver error.
pub(crate) trait QueryContext<T> {
    /// Wraps the error with what lull was doing.
    fn during(self, what: &str) -> Result<T, Error>;
}

impl<T> QueryContext<T> for Result<T, tokio_postgres::Error> {
    fn during(self, what: &str) -> Result<T, Error> {
        self.map_err(|source| Error::Query {
            what: what.to_string(),
            source,
        })
    }
}

/// Shorthand for results of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
