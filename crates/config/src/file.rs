//! The `lull.toml` file: sections, `[env.NAME]` overrides, defaults.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::Duration;

/// The file name lull looks for, walking up from the current directory.
pub const CONFIG_FILE_NAME: &str = "lull.toml";

/// A configuration problem, with the file and line when there is one.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The file is not valid TOML, has an unknown key or a bad value.
    #[error("{path}:{line}:{column}: {message}")]
    Invalid {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    /// `--env NAME` names an environment the file does not define.
    #[error("environment `{name}` is not defined in {path}; defined: {defined}")]
    UnknownEnv {
        name: String,
        path: String,
        defined: String,
    },
}

/// Fields that merge: an override replaces a value only where it sets one.
trait Merge {
    fn merge(self, over: Self) -> Self;
}

impl<T> Merge for Option<T> {
    fn merge(self, over: Self) -> Self {
        over.or(self)
    }
}

/// Declares a config section: a struct of optional fields that rejects
/// unknown keys and merges field by field.
macro_rules! section {
    ($(#[$m:meta])* pub struct $name:ident { $( $(#[$fm:meta])* pub $f:ident : $t:ty, )* }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
        #[serde(deny_unknown_fields)]
        pub struct $name {
            $( $(#[$fm])* #[serde(default, skip_serializing_if = "is_unset")] pub $f: $t, )*
        }
        impl Merge for $name {
            fn merge(self, over: Self) -> Self {
                Self { $( $f: Merge::merge(self.$f, over.$f), )* }
            }
        }
        impl IsUnset for $name {
            fn is_unset(&self) -> bool {
                *self == Self::default()
            }
        }
    };
}

trait IsUnset {
    fn is_unset(&self) -> bool;
}

impl<T> IsUnset for Option<T> {
    fn is_unset(&self) -> bool {
        self.is_none()
    }
}

fn is_unset<T: IsUnset>(v: &T) -> bool {
    v.is_unset()
}

/// How migration files will be run, which decides lint findings such as
/// `concurrently-in-transaction` and `missing-lock-timeout`. Unset, lint
/// reads it from the directory layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RunnerKind {
    /// lull runs the files: it splits transactions and sets timeouts itself.
    Lull,
    /// Another tool wraps each file in one transaction.
    Transactional,
    /// Another tool runs each statement on its own (autocommit).
    Autocommit,
    /// Prisma Migrate (one implicit transaction per migration.sql).
    Prisma,
    /// Drizzle (every pending migration in one transaction).
    Drizzle,
    /// Flyway (one transaction per migration).
    Flyway,
    /// diesel (one transaction per migration unless metadata.toml opts out).
    Diesel,
    /// dbmate (one transaction per migration unless `transaction:false`).
    Dbmate,
    /// sqlx (one transaction per migration unless `-- no-transaction`).
    Sqlx,
    /// golang-migrate (the file as one implicit transaction).
    GolangMigrate,
}

section! {
    /// Everything one `lull.toml` layer may set; `[env.NAME]` holds the same.
    pub struct Settings {
        /// Connection string; `DATABASE_URL` and `--database-url` win over it.
        pub database_url: Option<String>,
        /// Migration directory, relative to the config file.
        pub dir: Option<String>,
        /// Schema for lull's own tables (default `lull`).
        pub schema: Option<String>,
        /// How the files will be run (default: from the directory layout
        /// for lint, `lull` otherwise).
        pub runner: Option<RunnerKind>,
        /// The PostgreSQL major version migrations will run on (e.g. 15);
        /// unset: read from the server when a URL is given, else current.
        pub pg_version: Option<u32>,
        /// Which other tool's history table to keep beside lull's:
        /// `auto` (default: the layout's tool, when its table exists),
        /// `lull` (none), or a tool name (`sqlx`, `prisma`, ...).
        pub history: Option<String>,
        /// Lock and timeout policy per statement class.
        pub policy: PolicySection,
        /// Lint settings.
        pub lint: LintSection,
        /// Index build guards and window.
        pub indexes: IndexesSection,
        /// Batched backfills: batch sizing and the signals that hold them.
        pub backfill: BackfillSection,
        /// `[placeholders]`: values substituted into templated SQL
        /// (`{{ .Name }}`, `{{ index .Options "Name" }}`, `${name}`,
        /// `:'name'`) before lint, plan and migrate read it. An
        /// `[env.NAME.placeholders]` table overrides single values.
        pub placeholders: Placeholders,
    }
}

/// Placeholder values by name; an environment's table overrides key by key.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(transparent)]
pub struct Placeholders(pub BTreeMap<String, String>);

impl Merge for Placeholders {
    fn merge(mut self, over: Self) -> Self {
        self.0.extend(over.0);
        self
    }
}

impl IsUnset for Placeholders {
    fn is_unset(&self) -> bool {
        self.0.is_empty()
    }
}

section! {
    /// `[policy]`: one table per statement class, and what lull may do to
    /// sessions that block it.
    pub struct PolicySection {
        pub ddl: DdlSection,
        pub dml: DmlSection,
        pub index: IndexSection,
        pub blockers: BlockersSection,
    }
}

section! {
    /// `[policy.ddl]`: how a step that needs a lock stronger than the
    /// application's gets it (gap-aware acquisition).
    pub struct DdlSection {
        /// lock_timeout of a try (tries are made only in a gap).
        pub lock_timeout: Option<Duration>,
        /// The most a try's lock_timeout may grow to on a hot table: the
        /// worst write the application can see from lull.
        pub max_lock_timeout: Option<Duration>,
        /// Failed tries with no long holder present before the try's
        /// lock_timeout doubles.
        pub escalate_after: Option<u32>,
        /// How often pg_locks is read while lull waits for a gap.
        pub poll_interval: Option<Duration>,
        /// Total time a step may wait for its locks before it fails with
        /// the blocker report.
        pub wait_budget: Option<Duration>,
        pub statement_timeout: Option<Duration>,
        pub idle_in_transaction_session_timeout: Option<Duration>,
        /// Replaced by the settings above; refused with a message.
        pub lock_timeouts: Option<Vec<Duration>>,
        /// Replaced by the settings above; refused with a message.
        pub retry_sleeps: Option<Vec<Duration>>,
    }
}

section! {
    /// `[policy.blockers]`: opt-in actions against sessions that keep a
    /// step from its locks. Off unless set.
    pub struct BlockersSection {
        /// Terminate a blocking session idle in its transaction this long.
        pub terminate_idle_in_transaction_after: Option<Duration>,
        /// Cancel a blocking session's query running this long.
        pub cancel_queries_after: Option<Duration>,
    }
}

section! {
    /// `[policy.dml]`
    pub struct DmlSection {
        pub lock_timeout: Option<Duration>,
        pub statement_timeout: Option<Duration>,
        pub max_retries: Option<u32>,
        pub backoff_base: Option<Duration>,
        pub backoff_max: Option<Duration>,
    }
}

section! {
    /// `[policy.index]`
    pub struct IndexSection {
        pub lock_timeout: Option<Duration>,
        pub statement_timeout: Option<Duration>,
        pub max_tries: Option<u32>,
        pub backoff_base: Option<Duration>,
        pub backoff_max: Option<Duration>,
        /// e.g. "1GB"; set for the build's own session only.
        pub maintenance_work_mem: Option<String>,
        pub max_parallel_maintenance_workers: Option<u32>,
    }
}

section! {
    /// `[lint]`
    pub struct LintSection {
        /// Rule levels by id: "error", "warning", "info" or "off".
        pub rules: Option<BTreeMap<String, String>>,
        /// Opt-in rules to turn on (e.g. the `prefer-*` hygiene rules).
        pub enable: Option<Vec<String>>,
        /// Path globs to skip.
        pub exclude: Option<Vec<String>>,
        /// "error", "warning" or "never".
        pub fail_on: Option<String>,
        /// A table with at least this many rows is large.
        pub large_table_rows: Option<u64>,
        /// A table of at least this many bytes is large.
        pub large_table_bytes: Option<u64>,
        /// More index builds than this in one migration is a finding.
        pub max_index_builds: Option<u32>,
        /// A stats file from `lull stats export` to size tables offline.
        pub stats_file: Option<String>,
    }
}

section! {
    /// `[indexes]`: when and under which guards pending indexes are built.
    pub struct IndexesSection {
        /// Safe window, e.g. "02:00-05:00" (may cross midnight).
        pub window: Option<String>,
        /// IANA time zone of the window, e.g. "Europe/Berlin" (default UTC).
        pub timezone: Option<String>,
        /// Days the window is open, e.g. ["mon", "tue"]; all when unset.
        pub days: Option<Vec<String>>,
        /// Cancel one build that runs longer than this.
        pub max_build_duration: Option<Duration>,
        /// Stop starting builds after a pass has run this long.
        pub max_pass_duration: Option<Duration>,
        /// Skip or cancel while more non-idle connections than this exist.
        pub max_active_connections: Option<u32>,
        /// Skip or cancel while autovacuum works on the table.
        pub skip_when_autovacuum: Option<bool>,
        /// Skip or cancel while a replica lags more than this.
        pub max_replication_lag: Option<Duration>,
        /// Skip or cancel while a transaction older than this is open.
        pub max_transaction_age: Option<Duration>,
        /// How often guards are checked during a build.
        pub check_interval: Option<Duration>,
        /// Cron expression for `lull daemon`, e.g. "30 2 * * *".
        pub schedule: Option<String>,
        /// Warn when an index estimate exceeds this share of the free space
        /// given with `--free-space` (default 0.5) or of the table size
        /// (default 1.0).
        pub size_warning_share: Option<f64>,
    }
}

section! {
    /// `[backfill]`: how batched UPDATE/DELETE backfills size their batches
    /// and when they hold between batches.
    pub struct BackfillSection {
        /// Rows in the first batch (default 1000).
        pub batch_size: Option<u64>,
        /// Smallest batch (default 10).
        pub min_batch_size: Option<u64>,
        /// Largest batch (default 50000).
        pub max_batch_size: Option<u64>,
        /// Batch duration to aim at (default 150ms).
        pub target_batch_time: Option<Duration>,
        /// Sleep after every batch (default 0).
        pub pause_between: Option<Duration>,
        /// statement_timeout of one batch; a batch hitting it is split in
        /// half and retried (default 30s).
        pub batch_timeout: Option<Duration>,
        /// lock_timeout of one batch (default 2s); lock failures retry with
        /// `[policy.dml]`'s backoff.
        pub lock_timeout: Option<Duration>,
        /// Hold while a standby's replay lags more than this (default 10s;
        /// "0" turns the signal off).
        pub max_replication_lag: Option<Duration>,
        /// Hold while autovacuum works on the table (default true).
        pub hold_on_autovacuum: Option<bool>,
        /// Hold while more sessions of the database than this run a
        /// statement (default: not checked).
        pub max_active_sessions: Option<u32>,
        /// SQL returning one boolean; true (or an error, or NULL) holds.
        pub probe: Option<String>,
        /// How often a held backfill checks again (default 1s).
        pub hold_check_interval: Option<Duration>,
    }
}

/// `[backfill]` resolved: defaults filled in.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BackfillPolicy {
    /// Rows in the first batch.
    pub batch_size: u64,
    /// Smallest batch the adaptive sizing goes down to.
    pub min_batch_size: u64,
    /// Largest batch the adaptive sizing grows to.
    pub max_batch_size: u64,
    /// Batch duration the sizing aims at.
    pub target_batch_time: Duration,
    /// Sleep after every batch.
    pub pause_between: Duration,
    /// statement_timeout of one batch.
    pub batch_timeout: Duration,
    /// lock_timeout of one batch.
    pub lock_timeout: Duration,
    /// Replay lag that holds the backfill; `None` when turned off with "0".
    pub max_replication_lag: Option<Duration>,
    /// Hold while autovacuum works on the table.
    pub hold_on_autovacuum: bool,
    /// Active sessions that hold the backfill; `None`: not checked.
    pub max_active_sessions: Option<u32>,
    /// User SQL probe: true, NULL or an error holds.
    pub probe: Option<String>,
    /// How often a held backfill checks again.
    pub hold_check_interval: Duration,
}

impl Default for BackfillPolicy {
    fn default() -> Self {
        BackfillPolicy::from_section(&BackfillSection::default())
    }
}

impl BackfillPolicy {
    /// The section with defaults filled in; sizes are kept ordered
    /// (min ≤ first ≤ max) and at least 1.
    pub fn from_section(s: &BackfillSection) -> BackfillPolicy {
        let min = s.min_batch_size.unwrap_or(10).max(1);
        let max = s.max_batch_size.unwrap_or(50_000).max(min);
        BackfillPolicy {
            batch_size: s.batch_size.unwrap_or(1000).clamp(min, max),
            min_batch_size: min,
            max_batch_size: max,
            target_batch_time: s.target_batch_time.unwrap_or(Duration::from_millis(150)),
            pause_between: s.pause_between.unwrap_or_default(),
            batch_timeout: s.batch_timeout.unwrap_or(Duration::from_secs(30)),
            lock_timeout: s.lock_timeout.unwrap_or(Duration::from_secs(2)),
            max_replication_lag: match s.max_replication_lag {
                Some(d) if d.as_millis() == 0 => None,
                Some(d) => Some(d),
                None => Some(Duration::from_secs(10)),
            },
            hold_on_autovacuum: s.hold_on_autovacuum.unwrap_or(true),
            max_active_sessions: s.max_active_sessions,
            probe: s.probe.clone().filter(|p| !p.trim().is_empty()),
            hold_check_interval: s
                .hold_check_interval
                .unwrap_or(Duration::from_secs(1))
                .max(Duration::from_millis(10)),
        }
    }
}

/// The named environments of a file. The base layer is checked on its own
/// (see `Config::parse`): serde's `flatten` and `deny_unknown_fields` do
/// not combine.
#[derive(Debug, Default, Deserialize)]
struct RawEnvs {
    #[serde(default)]
    env: BTreeMap<String, Settings>,
}

/// The configuration lull runs with: the file (if any) with the selected
/// environment applied.
#[derive(Debug, Clone, Default)]
pub struct Config {
    /// The file it came from, if any.
    pub path: Option<PathBuf>,
    /// The selected environment, if any.
    pub env: Option<String>,
    /// The merged settings.
    pub settings: Settings,
}

impl Config {
    /// Loads `path`, applying `[env.NAME]` when `env` is given.
    pub fn load(path: &Path, env: Option<&str>) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Config::parse(&text, path, env)
    }

    /// Parses config text; `path` is only used in messages and to resolve
    /// relative paths.
    pub fn parse(text: &str, path: &Path, env: Option<&str>) -> Result<Config, ConfigError> {
        let invalid = |message: String, span: Option<std::ops::Range<usize>>| {
            let (line, column) = span.map_or((1, 1), |s| line_col(text, s.start));
            ConfigError::Invalid {
                path: path.to_path_buf(),
                line,
                column,
                message,
            }
        };
        let raw: RawEnvs =
            toml::from_str(text).map_err(|e| invalid(fix_field_message(e.message()), e.span()))?;
        // The same text with the `env` tables blanked is the base layer;
        // blanking keeps every position, so errors point at the right line.
        let base: Settings = toml::from_str(&without_env(text))
            .map_err(|e| invalid(fix_field_message(e.message()), e.span()))?;
        let mut settings = base;
        if let Some(name) = env {
            let over = raw
                .env
                .get(name)
                .cloned()
                .ok_or_else(|| ConfigError::UnknownEnv {
                    name: name.to_string(),
                    path: path.display().to_string(),
                    defined: if raw.env.is_empty() {
                        "none (add an [env.NAME] section)".to_string()
                    } else {
                        raw.env.keys().cloned().collect::<Vec<_>>().join(", ")
                    },
                })?;
            settings = settings.merge(over);
        }
        let config = Config {
            path: Some(path.to_path_buf()),
            env: env.map(str::to_string),
            settings,
        };
        config.validate().map_err(|m| invalid(m, None))?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), String> {
        let lint = &self.settings.lint;
        if let Some(fail_on) = &lint.fail_on {
            if !["error", "warning", "never"].contains(&fail_on.as_str()) {
                return Err(format!(
                    "lint.fail_on = \"{fail_on}\" is not valid; expected one of: error, warning, never"
                ));
            }
        }
        if let Some(rules) = &lint.rules {
            for (rule, level) in rules {
                if !["error", "warning", "info", "off"].contains(&level.as_str()) {
                    return Err(format!(
                        "lint.rules.{rule} = \"{level}\" is not valid; expected one of: error, warning, info, off"
                    ));
                }
            }
        }
        if let Some(v) = self.settings.pg_version {
            if !(9..=99).contains(&v) {
                return Err(format!(
                    "pg_version = {v} is not a PostgreSQL major version; write e.g. pg_version = 15"
                ));
            }
        }
        let ddl = &self.settings.policy.ddl;
        if ddl.lock_timeouts.is_some() || ddl.retry_sleeps.is_some() {
            return Err("policy.ddl.lock_timeouts and retry_sleeps are gone: lull now tries only \
                in a gap between conflicting transactions. Set lock_timeout (one try, e.g. \"50ms\"), \
                max_lock_timeout (the cap on a hot table, e.g. \"500ms\") and wait_budget \
                (e.g. \"10m\") instead"
                .to_string());
        }
        for (name, value) in [
            ("lock_timeout", ddl.lock_timeout),
            ("max_lock_timeout", ddl.max_lock_timeout),
            ("poll_interval", ddl.poll_interval),
            ("wait_budget", ddl.wait_budget),
        ] {
            if value.is_some_and(|d| d.as_millis() == 0) {
                return Err(format!(
                    "policy.ddl.{name} must be more than 0 (lull never waits for a lock without a bound)"
                ));
            }
        }
        let p = self.policies();
        if p.ddl.max_lock_timeout < p.ddl.lock_timeout {
            return Err(format!(
                "policy.ddl.max_lock_timeout ({}) is below lock_timeout ({}); the cap must be at least the first try's timeout",
                p.ddl.max_lock_timeout, p.ddl.lock_timeout
            ));
        }
        if p.ddl.escalate_after == 0 {
            return Err("policy.ddl.escalate_after must be at least 1".to_string());
        }
        Ok(())
    }

    /// The lock policies with defaults filled in.
    pub fn policies(&self) -> Policies {
        Policies::from_section(&self.settings.policy)
    }

    /// The `history` setting as written (default `auto`).
    pub fn history(&self) -> &str {
        self.settings.history.as_deref().unwrap_or("auto")
    }

    /// The `[placeholders]` values (with the environment's applied).
    pub fn placeholders(&self) -> &BTreeMap<String, String> {
        &self.settings.placeholders.0
    }

    /// The backfill settings with defaults filled in.
    pub fn backfill(&self) -> BackfillPolicy {
        BackfillPolicy::from_section(&self.settings.backfill)
    }

    /// The schema lull keeps its own tables in.
    pub fn schema(&self) -> &str {
        self.settings.schema.as_deref().unwrap_or("lull")
    }

    /// The migration directory: from the file (relative to it), else
    /// `./migrations`.
    pub fn migrations_dir(&self) -> PathBuf {
        match (&self.settings.dir, &self.path) {
            (Some(dir), Some(path)) => path.parent().unwrap_or(Path::new(".")).join(dir),
            (Some(dir), None) => PathBuf::from(dir),
            (None, _) => PathBuf::from("migrations"),
        }
    }

    /// The PostgreSQL major version migrations target, when configured.
    pub fn pg_version(&self) -> Option<u32> {
        self.settings.pg_version
    }

    /// How the files will be run (default: by lull).
    pub fn runner(&self) -> RunnerKind {
        self.settings.runner.unwrap_or(RunnerKind::Lull)
    }
}

/// Messages from serde name Rust types; users wrote TOML.
fn fix_field_message(m: &str) -> String {
    m.replace("variant", "value")
}

/// 1-based line and column of a byte offset.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before
        .rfind('\n')
        .map_or(before.len(), |nl| before.len() - nl - 1)
        + 1;
    (line, column)
}

/// Finds `lull.toml` in `start` or the nearest parent that has one.
pub fn find_config(start: &Path) -> Option<PathBuf> {
    start
        .ancestors()
        .map(|dir| dir.join(CONFIG_FILE_NAME))
        .find(|candidate| candidate.is_file())
}

/// The text with every line of `[env…]` tables replaced by spaces.
fn without_env(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut in_env = false;
    for line in text.split_inclusive('\n') {
        let trimmed = line.trim_start();
        if let Some(header) = trimmed.strip_prefix('[') {
            let header = header.trim_start_matches('[').trim_start();
            in_env = ["env.", "env]", "\"env\""]
                .iter()
                .any(|p| header.starts_with(p));
        }
        if in_env {
            out.extend(line.chars().map(|c| if c == '\n' { c } else { ' ' }));
        } else {
            out.push_str(line);
        }
    }
    out
}

/// `[policy.ddl]` resolved: how a DDL step gets its locks and runs.
///
/// While a session holds or queues for a lock that conflicts with the
/// step's, lull watches (every `poll_interval`) instead of queueing; in a
/// gap it tries with `lock_timeout`. Only when tries keep failing with no
/// long holder present (a hot table) does the try's timeout double, up to
/// `max_lock_timeout`. After `wait_budget` the step fails with the blocker
/// report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DdlPolicy {
    /// lock_timeout of a try.
    pub lock_timeout: Duration,
    /// Cap of the escalated lock_timeout.
    pub max_lock_timeout: Duration,
    /// Failed tries without a long holder before the timeout doubles.
    pub escalate_after: u32,
    /// How often conflicting sessions are looked up while waiting.
    pub poll_interval: Duration,
    /// Total wait for the step's locks.
    pub wait_budget: Duration,
    pub statement_timeout: Duration,
    pub idle_in_transaction_session_timeout: Duration,
    /// How tries are made: in gaps (always, from `lull.toml`), or queued
    /// the way the guides do it, for comparisons such as `lull demo`.
    #[serde(skip)]
    pub acquisition: Acquisition,
}

/// How a DDL step's tries are made.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Acquisition {
    /// lull's way: watch while a conflicting session is there, try in the
    /// gap.
    #[default]
    Gap,
    /// The guides' recipe: every try queues for the lock with
    /// `lock_timeout`; a failed one sleeps with exponential backoff
    /// (jittered) and tries again, until the wait budget is spent.
    Queue {
        /// The first sleep.
        backoff_base: Duration,
        /// The longest sleep.
        backoff_max: Duration,
    },
}

/// `[policy.blockers]` resolved: `None` is off (the default).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct BlockersPolicy {
    /// Terminate a session blocking lull's step that has been idle in its
    /// transaction at least this long.
    pub terminate_idle_in_transaction_after: Option<Duration>,
    /// Cancel the query of a session blocking lull's step that has run at
    /// least this long.
    pub cancel_queries_after: Option<Duration>,
}

impl BlockersPolicy {
    /// Whether any action is switched on.
    pub fn is_on(&self) -> bool {
        self.terminate_idle_in_transaction_after.is_some() || self.cancel_queries_after.is_some()
    }
}

/// `[policy.dml]` resolved.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DmlPolicy {
    pub lock_timeout: Duration,
    pub statement_timeout: Duration,
    pub max_retries: u32,
    pub backoff_base: Duration,
    pub backoff_max: Duration,
}

/// `[policy.index]` resolved.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IndexPolicy {
    pub lock_timeout: Duration,
    pub statement_timeout: Duration,
    pub max_tries: u32,
    pub backoff_base: Duration,
    pub backoff_max: Duration,
    pub maintenance_work_mem: Option<String>,
    pub max_parallel_maintenance_workers: Option<u32>,
}

/// The lock policy of every statement class, defaults filled in.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Policies {
    pub ddl: DdlPolicy,
    pub dml: DmlPolicy,
    pub index: IndexPolicy,
    pub blockers: BlockersPolicy,
}

impl Default for Policies {
    fn default() -> Self {
        Policies::from_section(&PolicySection::default())
    }
}

impl Policies {
    fn from_section(s: &PolicySection) -> Policies {
        let ms = Duration::from_millis;
        let secs = Duration::from_secs;
        Policies {
            ddl: DdlPolicy {
                // 50 ms: in a real gap a try waits only for the writes in
                // flight (a few ms at 200 writes/s); a try that meets a
                // holder costs the application at most this once.
                lock_timeout: s.ddl.lock_timeout.unwrap_or(ms(50)),
                max_lock_timeout: s.ddl.max_lock_timeout.unwrap_or(ms(500)),
                escalate_after: s.ddl.escalate_after.unwrap_or(3),
                poll_interval: s.ddl.poll_interval.unwrap_or(ms(20)),
                wait_budget: s.ddl.wait_budget.unwrap_or(secs(600)),
                acquisition: Acquisition::Gap,
                statement_timeout: s.ddl.statement_timeout.unwrap_or(secs(120)),
                idle_in_transaction_session_timeout: s
                    .ddl
                    .idle_in_transaction_session_timeout
                    .unwrap_or(secs(60)),
            },
            dml: DmlPolicy {
                lock_timeout: s.dml.lock_timeout.unwrap_or(secs(60)),
                statement_timeout: s.dml.statement_timeout.unwrap_or(ms(0)),
                max_retries: s.dml.max_retries.unwrap_or(5),
                backoff_base: s.dml.backoff_base.unwrap_or(ms(200)),
                backoff_max: s.dml.backoff_max.unwrap_or(secs(10)),
            },
            index: IndexPolicy {
                lock_timeout: s.index.lock_timeout.unwrap_or(ms(0)),
                statement_timeout: s.index.statement_timeout.unwrap_or(ms(0)),
                max_tries: s.index.max_tries.unwrap_or(10),
                backoff_base: s.index.backoff_base.unwrap_or(secs(1)),
                backoff_max: s.index.backoff_max.unwrap_or(secs(60)),
                maintenance_work_mem: s.index.maintenance_work_mem.clone(),
                max_parallel_maintenance_workers: s.index.max_parallel_maintenance_workers,
            },
            blockers: BlockersPolicy {
                terminate_idle_in_transaction_after: s.blockers.terminate_idle_in_transaction_after,
                cancel_queries_after: s.blockers.cancel_queries_after,
            },
        }
    }
}

/// `[lint]` resolved defaults.
impl LintSection {
    /// Rows from which a table counts as large (default 1,000,000).
    pub fn large_rows(&self) -> u64 {
        self.large_table_rows.unwrap_or(1_000_000)
    }

    /// Bytes from which a table counts as large (default 1 GiB).
    pub fn large_bytes(&self) -> u64 {
        self.large_table_bytes.unwrap_or(1 << 30)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str, env: Option<&str>) -> Result<Config, ConfigError> {
        Config::parse(text, Path::new("lull.toml"), env)
    }

    #[test]
    fn empty_file_gives_design_defaults() {
        let c = parse("", None).unwrap();
        let p = c.policies();
        assert_eq!(p.ddl.lock_timeout, Duration::from_millis(50));
        assert_eq!(p.ddl.max_lock_timeout, Duration::from_millis(500));
        assert_eq!(p.ddl.wait_budget, Duration::from_secs(600));
        assert!(!p.blockers.is_on());
        assert_eq!(p.ddl.statement_timeout, Duration::from_secs(120));
        assert_eq!(p.dml.lock_timeout, Duration::from_secs(60));
        assert_eq!(p.index.max_tries, 10);
        assert_eq!(c.schema(), "lull");
        assert_eq!(c.runner(), RunnerKind::Lull);
    }

    #[test]
    fn env_overrides_only_what_it_sets() {
        let text = r#"
database_url = "postgres://localhost/dev"
schema = "ops"

[policy.ddl]
statement_timeout = "30s"

[env.production]
database_url = "postgres://prod/app"

[env.production.policy.ddl]
lock_timeout = "80ms"
wait_budget = "2m"

[env.production.policy.blockers]
terminate_idle_in_transaction_after = "30s"
"#;
        let base = parse(text, None).unwrap();
        assert_eq!(
            base.settings.database_url.as_deref(),
            Some("postgres://localhost/dev")
        );
        let prod = parse(text, Some("production")).unwrap();
        assert_eq!(
            prod.settings.database_url.as_deref(),
            Some("postgres://prod/app")
        );
        assert_eq!(prod.schema(), "ops");
        let p = prod.policies();
        assert_eq!(p.ddl.lock_timeout, Duration::from_millis(80));
        assert_eq!(p.ddl.wait_budget, Duration::from_secs(120));
        assert_eq!(p.ddl.statement_timeout, Duration::from_secs(30));
        assert_eq!(
            p.blockers.terminate_idle_in_transaction_after,
            Some(Duration::from_secs(30))
        );
        assert_eq!(p.blockers.cancel_queries_after, None);
        assert!(!base.policies().blockers.is_on());
    }

    #[test]
    fn unknown_key_names_line_and_choices() {
        let text = "schema = \"x\"\n\n[policy.ddl]\nlock_timeot = \"1s\"\n";
        let err = parse(text, None).unwrap_err().to_string();
        assert!(err.starts_with("lull.toml:4:"), "{err}");
        assert!(err.contains("unknown field `lock_timeot`"), "{err}");
        assert!(err.contains("lock_timeout"), "{err}");
    }

    #[test]
    fn unknown_key_in_env_section_is_reported_with_line() {
        let text = "[env.staging]\ndatabse_url = \"x\"\n";
        let err = parse(text, None).unwrap_err().to_string();
        assert!(err.starts_with("lull.toml:2:"), "{err}");
        assert!(err.contains("database_url"), "{err}");
    }

    #[test]
    fn pg_version_and_tool_runners() {
        let c = parse("pg_version = 14\nrunner = \"golang-migrate\"\n", None).unwrap();
        assert_eq!(c.pg_version(), Some(14));
        assert_eq!(c.settings.runner, Some(RunnerKind::GolangMigrate));
        assert_eq!(parse("", None).unwrap().pg_version(), None);
        let err = parse("pg_version = 150\n", None).unwrap_err().to_string();
        assert!(err.contains("major version"), "{err}");
    }

    #[test]
    fn bad_value_lists_valid_choices() {
        let err = parse("runner = \"rails\"\n", None).unwrap_err().to_string();
        assert!(err.starts_with("lull.toml:1:"), "{err}");
        assert!(
            err.contains("lull") && err.contains("transactional") && err.contains("autocommit"),
            "{err}"
        );
        let err = parse("[policy.ddl]\nstatement_timeout = \"5 parsecs\"\n", None)
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("lull.toml:2:"), "{err}");
        assert!(err.contains("valid units"), "{err}");
    }

    #[test]
    fn unknown_env_lists_defined_ones() {
        let err = parse("[env.prod]\n[env.staging]\n", Some("qa"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("`qa`") && err.contains("prod, staging"),
            "{err}"
        );
    }

    #[test]
    fn backfill_section_has_defaults_and_env_overrides() {
        let text = "[backfill]\nbatch_size = 500\n\n[env.prod.backfill]\nmax_replication_lag = \"0\"\nprobe = \"SELECT false\"\n";
        let base = parse(text, None).unwrap().backfill();
        assert_eq!(base.batch_size, 500);
        assert_eq!(base.max_replication_lag, Some(Duration::from_secs(10)));
        assert_eq!(base.target_batch_time, Duration::from_millis(150));
        let prod = parse(text, Some("prod")).unwrap().backfill();
        assert_eq!(prod.batch_size, 500);
        assert_eq!(prod.max_replication_lag, None);
        assert_eq!(prod.probe.as_deref(), Some("SELECT false"));
        let err = parse("[backfill]\nbatch_sise = 5\n", None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("batch_size"), "{err}");
    }

    #[test]
    fn zero_or_inverted_lock_timeouts_are_refused() {
        let err = parse("[policy.ddl]\nlock_timeout = \"0\"\n", None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("lock_timeout must be more than 0"), "{err}");
        let err = parse("[policy.ddl]\nwait_budget = \"0\"\n", None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("wait_budget must be more than 0"), "{err}");
        let err = parse(
            "[policy.ddl]\nlock_timeout = \"1s\"\nmax_lock_timeout = \"100ms\"\n",
            None,
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("max_lock_timeout (100ms) is below"), "{err}");
    }

    #[test]
    fn the_old_ramp_is_refused_with_what_replaces_it() {
        let err = parse("[policy.ddl]\nlock_timeouts = [\"100ms\", \"1s\"]\n", None)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("lock_timeouts and retry_sleeps are gone") && err.contains("wait_budget"),
            "{err}"
        );
    }

    #[test]
    fn finds_config_in_a_parent_directory() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(CONFIG_FILE_NAME), "").unwrap();
        let nested = dir.path().join("a/b");
        std::fs::create_dir_all(&nested).unwrap();
        assert_eq!(
            find_config(&nested),
            Some(dir.path().join(CONFIG_FILE_NAME))
        );
    }
}
