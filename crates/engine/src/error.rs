//! The engine's errors: what went wrong, where, and what to do next.
//!
//! Every variant knows its [`ErrorKind`], which the CLI maps to an exit
//! code, and most carry a hint. Connection strings in messages are always
//! redacted.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use crate::blockers::BlockerReport;

/// How an error ends a run, for exit codes a deploy pipeline can rely on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// Something ran and failed; the recorded state matches the database.
    Failed,
    /// Nothing was done because it would be unsafe or is not allowed
    /// (runner lock held, applied file changed).
    Refused,
    /// Bad input, connection or I/O trouble.
    Error,
}

/// A step whose SQL failed.
#[derive(Debug)]
pub struct StepFailure {
    /// The migration.
    pub version: String,
    /// 1-based step number.
    pub step: usize,
    /// Tries made before giving up.
    pub tries: usize,
    /// The statement that failed (first 200 characters).
    pub statement: String,
    /// The server's message.
    pub message: String,
    /// The SQLSTATE.
    pub code: Option<String>,
    /// What to do next.
    pub hint: Option<String>,
}

/// Everything that can go wrong in the engine.
#[derive(Debug)]
pub enum EngineError {
    /// The server could not be reached or refused the login.
    Connect {
        /// The connection string, redacted.
        url: String,
        /// What the driver said.
        message: String,
        /// What to check.
        hint: String,
    },
    /// A query lull runs for itself failed.
    Db {
        /// What lull was doing.
        context: String,
        /// The server's message.
        message: String,
        /// The SQLSTATE, when the server sent one.
        code: Option<String>,
    },
    /// The migration files could not be read.
    Discover(lull_migrations::DiscoverError),
    /// A migration's SQL does not parse.
    Parse {
        /// `version_name` of the migration.
        migration: String,
        /// The file.
        path: PathBuf,
        /// 1-based line in the file.
        line: usize,
        /// 1-based column.
        column: usize,
        /// PostgreSQL's message.
        message: String,
    },
    /// Another runner holds the runner lock.
    LockHeld {
        /// The holder's backend pid, if it could be seen.
        pid: Option<i32>,
        /// The holder's application_name.
        application: Option<String>,
        /// How long lull waited.
        waited: Duration,
    },
    /// An applied migration's file changed since it was applied.
    ChangedChecksum {
        /// The migration.
        version: String,
        /// The checksum recorded when it was applied.
        recorded: String,
        /// The checksum of the file now.
        current: String,
    },
    /// A rollback needs a down migration that does not exist.
    MissingDown {
        /// The migration.
        version: String,
        /// Its name.
        name: String,
    },
    /// A version given on the command line is not a known migration.
    UnknownVersion {
        /// The version.
        version: String,
        /// What to do.
        hint: String,
    },
    /// A step could not take its locks within its wait budget.
    LockExhausted {
        /// The migration.
        version: String,
        /// 1-based step number.
        step: usize,
        /// How many tries were made.
        tries: usize,
        /// How long it waited.
        waited: std::time::Duration,
        /// Who held the lock at the last try.
        blockers: BlockerReport,
    },
    /// A step's SQL failed.
    StepFailed(Box<StepFailure>),
    /// An index build failed for good.
    IndexBuild(crate::index_build::IndexBuildError),
    /// Something else that stops a run, with a hint.
    Other {
        /// What went wrong.
        message: String,
        /// What to do next.
        hint: Option<String>,
        /// How it ends the run.
        kind: ErrorKind,
    },
}

impl EngineError {
    /// How many tries a failed step made (1 when it was not retried).
    pub fn tries(&self) -> usize {
        match self {
            EngineError::LockExhausted { tries, .. } => *tries,
            EngineError::StepFailed(f) => f.tries,
            EngineError::IndexBuild(e) => match &e.kind {
                crate::index_build::IndexBuildErrorKind::Failed { tries, .. } => *tries as usize,
                _ => 1,
            },
            _ => 1,
        }
    }

    /// A failed query of lull's own.
    pub fn db(context: impl Into<String>, err: tokio_postgres::Error) -> Self {
        EngineError::Db {
            context: context.into(),
            message: pg_message(&err),
            code: sqlstate(&err),
        }
    }

    /// How this error ends a run.
    pub fn kind(&self) -> ErrorKind {
        match self {
            EngineError::LockHeld { .. } | EngineError::ChangedChecksum { .. } => {
                ErrorKind::Refused
            }
            EngineError::LockExhausted { .. }
            | EngineError::StepFailed(_)
            | EngineError::IndexBuild(_) => ErrorKind::Failed,
            EngineError::Other { kind, .. } => *kind,
            _ => ErrorKind::Error,
        }
    }

    /// What to do next, when there is something to say.
    pub fn hint(&self) -> Option<String> {
        match self {
            EngineError::Connect { hint, .. } => Some(hint.clone()),
            EngineError::Discover(_) => None,
            EngineError::Parse { .. } => Some("fix the SQL; nothing was run".into()),
            EngineError::LockHeld { .. } => Some(
                "another lull runner is applying migrations; wait for it, or pass \
                 --lock-wait 10m to wait longer"
                    .into(),
            ),
            EngineError::ChangedChecksum { .. } => Some(
                "restore the file as it was applied; or, if the edit needs no re-run, record \
                 the new checksum with `lull repair`; or pass --allow-changed for this run"
                    .into(),
            ),
            EngineError::MissingDown { .. } => Some(
                "write the down migration for it (see `lull rollback --help` for the file \
                 names of your layout), or roll back fewer steps"
                    .into(),
            ),
            EngineError::UnknownVersion { hint, .. } => Some(hint.clone()),
            EngineError::LockExhausted { .. } => Some(
                "the statement never ran; end or wait out the blocking session shown above \
                 and re-run, raise policy.ddl.wait_budget in lull.toml, or let lull end \
                 stale blockers with [policy.blockers]"
                    .into(),
            ),
            EngineError::StepFailed(f) => f.hint.clone(),
            EngineError::IndexBuild(e) => e.hint(),
            EngineError::Other { hint, .. } => hint.clone(),
            EngineError::Db { .. } => None,
        }
    }

    /// The blocker report carried by the error, if any.
    pub fn blockers(&self) -> Option<&BlockerReport> {
        match self {
            EngineError::LockExhausted { blockers, .. } => Some(blockers),
            _ => None,
        }
    }
}

impl fmt::Display for EngineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EngineError::Connect { url, message, .. } => {
                write!(f, "cannot connect to {url}: {message}")
            }
            EngineError::Db {
                context,
                message,
                code,
            } => {
                write!(f, "{context}: {message}")?;
                if let Some(code) = code {
                    write!(f, " (SQLSTATE {code})")?;
                }
                Ok(())
            }
            EngineError::Discover(e) => e.fmt(f),
            EngineError::Parse {
                migration,
                path,
                line,
                column,
                message,
            } => write!(
                f,
                "migration {migration} does not parse: {message} at {}:{line}:{column}",
                path.display()
            ),
            EngineError::LockHeld {
                pid,
                application,
                waited,
            } => {
                write!(f, "another lull runner holds the runner lock")?;
                if let Some(pid) = pid {
                    write!(f, " (pid {pid}")?;
                    if let Some(app) = application.as_deref().filter(|a| !a.is_empty()) {
                        write!(f, ", application {app}")?;
                    }
                    write!(f, ")")?;
                }
                write!(f, "; waited {}", crate::events::human(*waited))
            }
            EngineError::ChangedChecksum {
                version,
                recorded,
                current,
            } => write!(
                f,
                "migration {version} was applied but its file changed since: recorded checksum \
                 {recorded}, file now {current}"
            ),
            EngineError::MissingDown { version, name } => {
                write!(
                    f,
                    "migration {version}_{name} has no down migration, so it cannot be rolled back"
                )
            }
            EngineError::UnknownVersion { version, .. } => {
                write!(f, "no migration with version {version}")
            }
            EngineError::LockExhausted {
                version,
                step,
                tries,
                waited,
                blockers,
            } => {
                write!(
                    f,
                    "migration {version} step {step}: could not take its locks within its wait \
                     budget ({} waited, {tries} tr{} in gaps)",
                    crate::events::human(*waited),
                    if *tries == 1 { "y" } else { "ies" }
                )?;
                if !blockers.is_empty() {
                    write!(f, "; blocked by:\n{}", blockers.human())?;
                }
                Ok(())
            }
            EngineError::StepFailed(s) => {
                write!(
                    f,
                    "migration {} step {} failed: {}",
                    s.version, s.step, s.message
                )?;
                if let Some(code) = &s.code {
                    write!(f, " (SQLSTATE {code})")?;
                }
                write!(f, "\n  statement: {}", s.statement)
            }
            EngineError::IndexBuild(e) => e.fmt(f),
            EngineError::Other { message, .. } => f.write_str(message),
        }
    }
}

impl std::error::Error for EngineError {}

impl From<lull_migrations::DiscoverError> for EngineError {
    fn from(e: lull_migrations::DiscoverError) -> Self {
        EngineError::Discover(e)
    }
}

impl From<crate::index_build::IndexBuildError> for EngineError {
    fn from(e: crate::index_build::IndexBuildError) -> Self {
        EngineError::IndexBuild(e)
    }
}

/// The SQLSTATE of a server error.
pub fn sqlstate(err: &tokio_postgres::Error) -> Option<String> {
    err.code().map(|c| c.code().to_string())
}

/// A driver error as one readable line: the server's message with its
/// detail and hint, or the driver's description with its cause.
pub fn pg_message(err: &tokio_postgres::Error) -> String {
    if let Some(db) = err.as_db_error() {
        let mut s = db.message().to_string();
        if let Some(detail) = db.detail() {
            s.push_str(&format!(" (detail: {detail})"));
        }
        if let Some(hint) = db.hint() {
            s.push_str(&format!(" (hint: {hint})"));
        }
        return s;
    }
    let mut s = err.to_string();
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        s.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    s
}

/// The first `n` characters of a statement on one line, for messages.
pub fn excerpt(sql: &str, n: usize) -> String {
    let one_line: String = sql.split_whitespace().collect::<Vec<_>>().join(" ");
    if one_line.chars().count() > n {
        let cut: String = one_line.chars().take(n).collect();
        format!("{cut}…")
    } else {
        one_line
    }
}
