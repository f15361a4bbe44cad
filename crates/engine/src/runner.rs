//! The runner: applies, resumes, rolls back and marks migrations, one
//! runner at a time, recording every step.
//!
//! A [`Runner`] is built from [`RunnerOptions`] (connection string, state
//! schema, policies, safe or naive mode) and reports progress through an
//! [`EventSink`]; it never prints. The CLI renders the events; `lull demo`
//! runs the same migrations once naive and once safe.

use std::collections::BTreeSet;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use lull_config::Policies;
use lull_migrations::{compare_versions, Migration};
use serde::Serialize;
use tokio_postgres::Client;

use crate::db::{backend_pid, connect, session_guards};
use crate::error::{EngineError, ErrorKind};
use crate::events::{no_events, Event, EventSink};
use crate::executor::{rerun_is_harmless, Executor, StepContext};
use crate::history::{Active, HistoryChoice, RecordContext};
use crate::index_build::CancelToken;
use crate::lock;
use crate::plan::{
    plan_migration, plan_migration_in, Direction, MigrationPlan, Mode, PartitionChecks,
    PlanContext, PlanOptions, PolicyClass, StepKind,
};
use crate::state::{MigrationRecord, State, Status, StepRecord};

/// How a [`Runner`] works.
#[derive(Debug, Clone)]
pub struct RunnerOptions {
    /// The connection string.
    pub url: String,
    /// The schema of lull's own tables (default `lull`).
    pub schema: String,
    /// Lock policies per statement class.
    pub policies: Policies,
    /// `[backfill]`: how backfill steps batch and hold.
    pub backfill: lull_config::BackfillPolicy,
    /// Safe (lull's way) or naive (as written).
    pub mode: Mode,
    /// Apply the safe-by-default rewrites (safe mode only).
    pub rewrites: bool,
    /// How long to wait for another runner to finish (zero: do not wait).
    pub lock_wait: Duration,
    /// Accept applied migrations whose file changed.
    pub allow_changed: bool,
    /// Apply a pending migration whose version sorts before one already
    /// applied (with a warning) instead of refusing it.
    pub allow_out_of_order: bool,
    /// Which other tool's history table to keep beside lull's own.
    pub history: HistoryChoice,
    /// The PostgreSQL major to plan for until the runner has talked to
    /// the server (`pg_version` in lull.toml); once connected, the
    /// server's own major wins. `None`: the newest lull knows.
    pub pg_version: Option<u32>,
}

impl RunnerOptions {
    /// Defaults: schema `lull`, default policies, safe mode with rewrites,
    /// no waiting for the runner lock.
    pub fn new(url: impl Into<String>) -> Self {
        RunnerOptions {
            url: url.into(),
            schema: "lull".into(),
            policies: Policies::default(),
            backfill: lull_config::BackfillPolicy::default(),
            mode: Mode::Safe,
            rewrites: true,
            lock_wait: Duration::ZERO,
            allow_changed: false,
            allow_out_of_order: false,
            history: HistoryChoice::Auto,
            pg_version: None,
        }
    }

    /// The options the planner needs.
    pub fn plan_options(&self) -> PlanOptions {
        PlanOptions {
            mode: self.mode,
            rewrites: self.rewrites,
            pg_version: self.pg_version,
        }
    }
}

/// Which migrations a rollback reverts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RollbackTarget {
    /// The last N applied migrations.
    Steps(usize),
    /// Every applied migration after this version (it stays applied).
    To(String),
}

/// What a run did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RunSummary {
    /// Versions applied (or rolled back) in this run, in order.
    pub versions: Vec<String>,
    /// Warnings that did not stop the run.
    pub warnings: Vec<String>,
    /// Wall time, the wait for the runner lock included.
    #[serde(serialize_with = "ser_ms")]
    pub elapsed: Duration,
    /// Time spent waiting for another runner to give the runner lock back.
    #[serde(serialize_with = "ser_ms")]
    pub lock_wait: Duration,
}

fn ser_ms<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(d.as_millis() as u64)
}

/// A migration's status for `lull status`.
#[derive(Debug, Clone, Serialize)]
pub struct MigrationStatus {
    /// The version.
    pub version: String,
    /// The name.
    pub name: String,
    /// `applied`, `pending`, `failed` or `running` (`running` also covers
    /// an interrupted rollback).
    pub status: &'static str,
    /// The file is not on disk any more (applied from elsewhere).
    pub missing_file: bool,
    /// The file changed since it was applied.
    pub changed: bool,
    /// The recorded row, if any.
    pub record: Option<MigrationRecord>,
    /// Where the record came from: `lull`, the tool's name (`prisma`:
    /// only the tool's table has it), `lull+prisma`, or empty when pending.
    pub source: String,
    /// Recorded steps (up direction), or the planned steps for a pending
    /// migration (status `pending`).
    pub steps: Vec<StepStatus>,
}

/// One step's status.
#[derive(Debug, Clone, Serialize)]
pub struct StepStatus {
    /// 1-based step number.
    pub step: usize,
    /// `transaction` or `autocommit`.
    pub kind: String,
    /// `done`, `running`, `failed` or `pending`.
    pub status: String,
    /// Tries taken.
    pub tries: i32,
    /// Run time in ms.
    pub duration_ms: Option<i64>,
    /// The step's SQL.
    pub sql: String,
    /// The last error.
    pub error: Option<String>,
}

impl From<StepRecord> for StepStatus {
    fn from(r: StepRecord) -> Self {
        StepStatus {
            step: r.step as usize,
            kind: r.kind,
            status: r.status,
            tries: r.tries,
            duration_ms: r.duration_ms,
            sql: r.sql,
            error: r.error,
        }
    }
}

/// Applies migrations. See the module docs.
pub struct Runner {
    opts: RunnerOptions,
    state: State,
    events: EventSink,
    cancel: CancelToken,
    /// The server's major, once a connection has read it.
    server_major: OnceLock<u32>,
}

/// Connections of a run. The runner lock, when taken, is held by the
/// work connection itself (see [`crate::lock`] for why).
struct Session {
    lock: Option<lock::RunnerLock>,
    work: Client,
    work_pid: i32,
    monitor: Arc<Client>,
    /// Time spent waiting for the runner lock.
    lock_waited: Duration,
}

impl Session {
    /// Gives the runner lock back at once (see [`lock::RunnerLock::release`]).
    async fn release(self) {
        if let Some(lock) = self.lock {
            lock.release(&self.work).await;
        }
    }
}

impl Runner {
    /// A runner with no event sink.
    pub fn new(opts: RunnerOptions) -> Self {
        let state = State::new(&opts.schema);
        Runner {
            opts,
            state,
            events: no_events(),
            cancel: CancelToken::new(),
            server_major: OnceLock::new(),
        }
    }

    /// Sends progress events to `sink`.
    pub fn with_events(mut self, sink: EventSink) -> Self {
        self.events = sink;
        self
    }

    /// A token that cancels the running index build (the run then fails).
    pub fn cancel_token(&self) -> CancelToken {
        self.cancel.clone()
    }

    /// The options.
    pub fn options(&self) -> &RunnerOptions {
        &self.opts
    }

    /// Plans one migration without a database, for the server's major
    /// once the runner has connected, else [`RunnerOptions::pg_version`].
    pub fn plan(&self, m: &Migration, direction: Direction) -> Result<MigrationPlan, EngineError> {
        plan_migration(m, direction, &self.plan_options())
    }

    /// [`Runner::plan`] knowing what the migrations planned before it in
    /// `ctx` did (partitioned tables, constraint names), for planning a
    /// whole history without a database.
    pub fn plan_with(
        &self,
        m: &Migration,
        direction: Direction,
        ctx: &mut PlanContext,
    ) -> Result<MigrationPlan, EngineError> {
        plan_migration_in(m, direction, &self.plan_options(), ctx)
    }

    fn plan_options(&self) -> PlanOptions {
        PlanOptions {
            pg_version: self.server_major.get().copied().or(self.opts.pg_version),
            ..self.opts.plan_options()
        }
    }

    /// Reads the server's major once, so plans claim its lock modes.
    async fn learn_server_major(&self, client: &Client) -> Result<(), EngineError> {
        if self.server_major.get().is_none() {
            let major = crate::db::server_version(client).await?.major();
            let _ = self.server_major.set(major);
        }
        Ok(())
    }

    async fn session(&self, locked: bool) -> Result<Session, EngineError> {
        let work = connect(&self.opts.url, "lull").await?;
        self.learn_server_major(&work).await?;
        let (lock, lock_waited) = if locked {
            let (lock, waited) =
                lock::acquire(&work, &self.opts.schema, self.opts.lock_wait, &self.events).await?;
            (Some(lock), waited)
        } else {
            (None, Duration::ZERO)
        };
        let work_pid = backend_pid(&work).await?;
        let monitor = Arc::new(connect(&self.opts.url, "lull monitor").await?);
        if locked {
            crate::db::ensure_primary(&work, &self.opts.url).await?;
            self.state.ensure(&work).await?;
        }
        Ok(Session {
            lock,
            work,
            work_pid,
            monitor,
            lock_waited,
        })
    }

    /// Refuses applied migrations whose file changed (unless allowed):
    /// against lull's checksum, and against the tool's in its algorithm.
    fn check_checksums(
        &self,
        migrations: &[Migration],
        records: &[MigrationRecord],
        tool: Option<&Active>,
    ) -> Result<(), EngineError> {
        if self.opts.allow_changed {
            return Ok(());
        }
        for r in records {
            if let Some(m) = migrations
                .iter()
                .find(|m| compare_versions(&m.version, &r.version).is_eq())
            {
                if m.checksum != r.checksum {
                    return Err(EngineError::ChangedChecksum {
                        version: r.version.clone(),
                        recorded: r.checksum.clone(),
                        current: m.checksum.clone(),
                    });
                }
            }
        }
        if let Some(tool) = tool {
            for m in migrations {
                tool.check_checksum(m)?;
            }
        }
        Ok(())
    }

    /// The migration a typed version names. diesel versions may be typed
    /// as their folder names spell them (`2025-08-01-000016`).
    fn find<'m>(migrations: &'m [Migration], version: &str) -> Result<&'m Migration, EngineError> {
        migrations
            .iter()
            .find(|m| same_version(m, version))
            .ok_or_else(|| EngineError::UnknownVersion {
                version: version.to_string(),
                hint: "`lull status` lists the versions found in the migrations directory".into(),
            })
    }

    /// The other tool's history table for this run, created the way the
    /// tool does when it was named explicitly and `write` is set.
    async fn tool(
        &self,
        client: &Client,
        migrations: &[Migration],
        write: bool,
    ) -> Result<Option<Active>, EngineError> {
        let mut tool = Active::load(client, self.opts.history, migrations).await?;
        if write {
            if let Some(t) = &mut tool {
                t.ensure(client).await?;
            }
        }
        Ok(tool)
    }

    /// What a tool's row for `version` needs: the run time and start from
    /// lull's own record of the same run.
    fn record_context<'m>(&self, migrations: &'m [Migration], version: &str) -> RecordContext<'m> {
        let from = format!(
            "FROM {}.{} WHERE version = {}",
            lull_analyzer::sql::quote_ident(self.state.schema()),
            lull_analyzer::sql::quote_ident("migrations"),
            lull_analyzer::sql::quote_literal(version)
        );
        RecordContext {
            migrations,
            elapsed_ms: format!(
                "coalesce((SELECT (extract(epoch FROM clock_timestamp() - started_at) * 1000)::bigint {from}), 0)"
            ),
            started_at: format!("coalesce((SELECT started_at {from}), now())"),
            marked: false,
        }
    }

    /// The migrations `migrate` would apply, planned, without taking the
    /// lock or changing anything. Connects to read the recorded state.
    pub async fn pending(
        &self,
        migrations: &[Migration],
        to: Option<&str>,
    ) -> Result<Vec<MigrationPlan>, EngineError> {
        let work = connect(&self.opts.url, "lull").await?;
        self.learn_server_major(&work).await?;
        let records = self.state.migrations(&work).await?;
        let tool = self.tool(&work, migrations, false).await?;
        self.check_checksums(migrations, &records, tool.as_ref())?;
        let resuming = records.iter().any(|r| r.status != Status::Applied);
        let ctx = plan_context(&work, resuming).await?;
        self.pending_plans(migrations, &records, tool.as_ref(), to, ctx)
    }

    /// [`Runner::pending`], refusing out-of-order migrations unless
    /// allowed (see [`Runner::check_order`]).
    async fn pending_in_order(
        &self,
        migrations: &[Migration],
        to: Option<&str>,
    ) -> Result<(), EngineError> {
        let plans = self.pending(migrations, to).await?;
        let work = connect(&self.opts.url, "lull").await?;
        let records = self.state.migrations(&work).await?;
        let tool = self.tool(&work, migrations, false).await?;
        self.check_order(migrations, &records, tool.as_ref(), &plans)?;
        Ok(())
    }

    /// The pending migrations (of `plans`) whose version sorts before the
    /// newest applied one (a branch merged late: `015` while `040` is
    /// applied), as `version_name`, and the newest applied one's label. A
    /// migration that is resumed (recorded running or failed) is not new
    /// and is not counted.
    fn late(
        migrations: &[Migration],
        records: &[MigrationRecord],
        tool: Option<&Active>,
        plans: &[MigrationPlan],
    ) -> Option<(Vec<String>, String)> {
        let newest = migrations
            .iter()
            .map(|m| m.version.as_str())
            .chain(records.iter().map(|r| r.version.as_str()))
            .filter(|v| is_applied(records, tool, v))
            .max_by(|a, b| compare_versions(a, b))?;
        let newest_label = migrations
            .iter()
            .find(|m| compare_versions(&m.version, newest).is_eq())
            .map(|m| m.label())
            .unwrap_or_else(|| newest.to_string());
        let names: Vec<String> = plans
            .iter()
            .filter(|p| compare_versions(&p.version, newest).is_lt())
            .filter(|p| {
                !records
                    .iter()
                    .any(|r| compare_versions(&r.version, &p.version).is_eq())
            })
            .map(|p| format!("{}_{}", p.version, p.name))
            .collect();
        (!names.is_empty()).then_some((names, newest_label))
    }

    /// What `lull plan` says about out-of-order pending migrations (see
    /// [`Runner::check_order`]): one line each. Reads only.
    pub async fn out_of_order(
        &self,
        migrations: &[Migration],
        plans: &[MigrationPlan],
    ) -> Result<Vec<String>, EngineError> {
        let work = connect(&self.opts.url, "lull").await?;
        let records = self.state.migrations(&work).await?;
        let tool = self.tool(&work, migrations, false).await?;
        let Some((names, newest)) = Self::late(migrations, &records, tool.as_ref(), plans) else {
            return Ok(Vec::new());
        };
        Ok(names
            .iter()
            .map(|n| {
                format!(
                    "{n} sorts before {newest}, which is already applied: `lull migrate` refuses it \
                     unless --allow-out-of-order"
                )
            })
            .collect())
    }

    /// Refuses out-of-order pending migrations (see [`Runner::late`]):
    /// applied now, they run after changes their authors never saw. With
    /// `allow_out_of_order` each is returned as a warning to show instead.
    fn check_order(
        &self,
        migrations: &[Migration],
        records: &[MigrationRecord],
        tool: Option<&Active>,
        plans: &[MigrationPlan],
    ) -> Result<Vec<String>, EngineError> {
        let Some((names, newest_label)) = Self::late(migrations, records, tool, plans) else {
            return Ok(Vec::new());
        };
        let late = &names;
        if !self.opts.allow_out_of_order {
            return Err(EngineError::Other {
                message: format!(
                    "pending migration{} {} sort{} before {newest_label}, which is already applied: \
                     applied now, {} would run after changes {} author never saw",
                    if late.len() == 1 { "" } else { "s" },
                    names.join(", "),
                    if late.len() == 1 { "s" } else { "" },
                    if late.len() == 1 { "it" } else { "they" },
                    if late.len() == 1 { "its" } else { "their" },
                ),
                hint: Some(
                    "check that they still make sense on top of the applied ones, then run \
                     `lull migrate --allow-out-of-order`; or give them versions after the newest applied one"
                        .into(),
                ),
                kind: ErrorKind::Refused,
            });
        }
        Ok(names
            .iter()
            .map(|n| {
                format!("applying {n} out of order: it sorts before {newest_label}, which is already applied")
            })
            .collect())
    }

    /// Plans the pending migrations in order; the constraint names and
    /// partitions each adds are known to the next (`ctx` seeds them from
    /// the database).
    fn pending_plans(
        &self,
        migrations: &[Migration],
        records: &[MigrationRecord],
        tool: Option<&Active>,
        to: Option<&str>,
        mut ctx: PlanContext,
    ) -> Result<Vec<MigrationPlan>, EngineError> {
        let to = match to {
            Some(to) => Some(Self::find(migrations, to)?.version.clone()),
            None => None,
        };
        let mut plans = Vec::new();
        for m in migrations {
            if let Some(to) = &to {
                if compare_versions(&m.version, to).is_gt() {
                    break;
                }
            }
            if !is_applied(records, tool, &m.version) {
                plans.push(plan_migration_in(
                    m,
                    Direction::Up,
                    &self.plan_options(),
                    &mut ctx,
                )?);
            }
        }
        Ok(plans)
    }

    /// Refuses to run a migration the tool recorded as failed half-way
    /// (lull cannot know how far it got).
    fn refuse_tool_failures(
        tool: &Active,
        records: &[MigrationRecord],
        plans: &[MigrationPlan],
    ) -> Result<(), EngineError> {
        for plan in plans {
            let lull_knows = records
                .iter()
                .any(|r| compare_versions(&r.version, &plan.version).is_eq());
            if lull_knows {
                continue;
            }
            if tool.record(&plan.version).is_some_and(|r| !r.ok) {
                return Err(EngineError::Other {
                    message: format!(
                        "{} recorded migration {}_{} as failed in {}; lull cannot know how much of it ran",
                        tool.tool(),
                        plan.version,
                        plan.name,
                        tool.adapter.table()
                    ),
                    hint: Some(format!(
                        "check the database by hand: if the whole migration is there, `lull mark-applied {v}` \
                         records it (in {table} too); otherwise undo what it did and resolve it in {tool} \
                         (e.g. `prisma migrate resolve --rolled-back`, `migrate force`) before `lull migrate`",
                        v = plan.version,
                        table = tool.adapter.table(),
                        tool = tool.tool(),
                    )),
                    kind: ErrorKind::Refused,
                });
            }
        }
        Ok(())
    }

    /// Writes the tool's row for migrations lull applied without it (lull
    /// ran before the tool's table was kept), so the two agree.
    async fn sync_tool(
        &self,
        session: &Session,
        tool: &Active,
        migrations: &[Migration],
        records: &[MigrationRecord],
    ) -> Result<(), EngineError> {
        let mut sql = Vec::new();
        for r in records.iter().filter(|r| r.status == Status::Applied) {
            let Some(m) = migrations
                .iter()
                .find(|m| compare_versions(&m.version, &r.version).is_eq())
            else {
                continue;
            };
            if tool.record(&m.version).is_none() {
                sql.push(
                    tool.adapter
                        .record_sql(m, &RecordContext::marked(migrations))?,
                );
            }
        }
        if sql.is_empty() {
            return Ok(());
        }
        session
            .work
            .batch_execute(&format!("BEGIN; {}; COMMIT", sql.join(";\n")))
            .await
            .map_err(|e| {
                EngineError::db(
                    format!(
                        "recording lull's applied migrations in {}",
                        tool.adapter.table()
                    ),
                    e,
                )
            })
    }

    /// Applies every pending migration up to `to` (inclusive), resuming an
    /// interrupted one after its last finished step. Every pending file is
    /// planned (and so parsed) before anything runs.
    pub async fn migrate(
        &self,
        migrations: &[Migration],
        to: Option<&str>,
    ) -> Result<RunSummary, EngineError> {
        // Read-only first: a file that does not parse, a changed applied
        // file or an out-of-order one stops the run before lull creates or
        // locks anything.
        self.pending_in_order(migrations, to).await?;
        let session = self.session(true).await?;
        let result = self.migrate_in(&session, migrations, to).await;
        session.release().await;
        result
    }

    async fn migrate_in(
        &self,
        session: &Session,
        migrations: &[Migration],
        to: Option<&str>,
    ) -> Result<RunSummary, EngineError> {
        let started = Instant::now();
        let records = self.state.migrations(&session.work).await?;
        let tool = self.tool(&session.work, migrations, true).await?;
        self.check_checksums(migrations, &records, tool.as_ref())?;
        // Constraint names the database holds, so a rewrite names an
        // unnamed constraint as PostgreSQL would here. Not when resuming:
        // the interrupted migration's own constraints are there already,
        // and its plan must stay the one its finished steps came from.
        let resuming = records.iter().any(|r| r.status != Status::Applied);
        let ctx = plan_context(&session.work, resuming).await?;
        let plans = self.pending_plans(migrations, &records, tool.as_ref(), to, ctx)?;
        let late = self.check_order(migrations, &records, tool.as_ref(), &plans)?;
        if let Some(t) = &tool {
            Self::refuse_tool_failures(t, &records, &plans)?;
            self.sync_tool(session, t, migrations, &records).await?;
        }
        let mut summary = RunSummary::default();
        for message in late {
            (self.events)(&Event::Warning {
                message: message.clone(),
            });
            summary.warnings.push(message);
        }
        for plan in &plans {
            let record = records
                .iter()
                .find(|r| compare_versions(&r.version, &plan.version).is_eq());
            if let Some(r) = record.filter(|r| r.status == Status::RollingBack) {
                return Err(EngineError::Other {
                    message: format!(
                        "migration {} was being rolled back when a run stopped",
                        r.version
                    ),
                    hint: Some(
                        "finish the rollback with `lull rollback --to` the version before it"
                            .into(),
                    ),
                    kind: ErrorKind::Refused,
                });
            }
            let tool_sql = match &tool {
                Some(t) => {
                    let m = Self::find(migrations, &plan.version)?;
                    Some(
                        t.adapter
                            .record_sql(m, &self.record_context(migrations, &plan.version))?,
                    )
                }
                None => None,
            };
            self.run_plan(session, plan, tool_sql, &mut summary).await?;
            summary.versions.push(plan.version.clone());
        }
        summary.lock_wait = session.lock_waited;
        summary.elapsed = session.lock_waited + started.elapsed();
        Ok(summary)
    }

    /// Reverts applied migrations, newest first, with their down SQL under
    /// the same policies. Every down is planned before anything runs, so a
    /// missing down fails before the first one is reverted.
    pub async fn rollback(
        &self,
        migrations: &[Migration],
        target: RollbackTarget,
    ) -> Result<RunSummary, EngineError> {
        let session = self.session(true).await?;
        let result = self.rollback_in(&session, migrations, target).await;
        session.release().await;
        result
    }

    async fn rollback_in(
        &self,
        session: &Session,
        migrations: &[Migration],
        target: RollbackTarget,
    ) -> Result<RunSummary, EngineError> {
        let started = Instant::now();
        let all = self.state.migrations(&session.work).await?;
        let tool = self.tool(&session.work, migrations, true).await?;
        // (version, name, lull's checksum): lull's applied records, then
        // what only the tool's table says is applied.
        let mut applied: Vec<(String, String, Option<String>)> = all
            .iter()
            .filter(|r| matches!(r.status, Status::Applied | Status::RollingBack))
            .map(|r| (r.version.clone(), r.name.clone(), Some(r.checksum.clone())))
            .collect();
        if let Some(t) = &tool {
            for rec in t.records.iter().filter(|r| r.ok) {
                if all
                    .iter()
                    .any(|r| compare_versions(&r.version, &rec.version).is_eq())
                {
                    continue;
                }
                let name = migrations
                    .iter()
                    .find(|m| compare_versions(&m.version, &rec.version).is_eq())
                    .map(|m| m.name.clone())
                    .unwrap_or_default();
                applied.push((rec.version.clone(), name, None));
            }
        }
        applied.sort_by(|a, b| compare_versions(&b.0, &a.0));
        let chosen: Vec<&(String, String, Option<String>)> = match &target {
            RollbackTarget::Steps(n) => applied.iter().take(*n).collect(),
            RollbackTarget::To(v) => {
                let v = Self::find(migrations, v)?.version.clone();
                applied
                    .iter()
                    .filter(|r| compare_versions(&r.0, &v).is_gt())
                    .collect()
            }
        };
        let mut plans = Vec::new();
        for (version, name, checksum) in &chosen {
            let m = migrations.iter().find(|m| compare_versions(&m.version, version).is_eq()).ok_or_else(|| {
                EngineError::Other {
                    message: format!(
                        "migration {version}_{name} is applied but its file is not in the migrations directory, so its \
                         down SQL is unknown"
                    ),
                    hint: Some("restore the file, or roll back fewer migrations".into()),
                    kind: ErrorKind::Error,
                }
            })?;
            if !self.opts.allow_changed {
                if let Some(recorded) = checksum.as_ref().filter(|c| **c != m.checksum) {
                    return Err(EngineError::ChangedChecksum {
                        version: version.clone(),
                        recorded: recorded.clone(),
                        current: m.checksum.clone(),
                    });
                }
                if let Some(t) = &tool {
                    t.check_checksum(m)?;
                }
            }
            let tool_sql = tool.as_ref().map(|t| t.adapter.forget_sql(m, migrations));
            plans.push((self.plan(m, Direction::Down)?, tool_sql));
        }
        let mut summary = RunSummary::default();
        for (plan, tool_sql) in plans {
            self.run_plan(session, &plan, tool_sql, &mut summary)
                .await?;
            summary.versions.push(plan.version.clone());
        }
        summary.lock_wait = session.lock_waited;
        summary.elapsed = session.lock_waited + started.elapsed();
        Ok(summary)
    }

    /// Records `version` as applied without running it ("skip now, build
    /// later"), in the tool's table too. Returns false if it was already
    /// applied.
    pub async fn mark_applied(
        &self,
        migrations: &[Migration],
        version: &str,
    ) -> Result<bool, EngineError> {
        let m = Self::find(migrations, version)?;
        let session = self.session(true).await?;
        let result = self.mark_in(&session, migrations, vec![m]).await;
        session.release().await;
        result.map(|done| !done.is_empty())
    }

    /// Records every migration up to `version` (inclusive) as applied
    /// without running it, in one transaction, in the tool's table too
    /// (Flyway's baseline, golang-migrate's force, Alembic's stamp).
    /// Returns the versions newly recorded.
    pub async fn mark_applied_through(
        &self,
        migrations: &[Migration],
        version: &str,
    ) -> Result<Vec<String>, EngineError> {
        let last = Self::find(migrations, version)?.version.clone();
        let chosen: Vec<&Migration> = migrations
            .iter()
            .filter(|m| compare_versions(&m.version, &last).is_le())
            .collect();
        let session = self.session(true).await?;
        let result = self.mark_in(&session, migrations, chosen).await;
        session.release().await;
        result
    }

    async fn mark_in(
        &self,
        session: &Session,
        migrations: &[Migration],
        chosen: Vec<&Migration>,
    ) -> Result<Vec<String>, EngineError> {
        let records = self.state.migrations(&session.work).await?;
        let tool = self.tool(&session.work, migrations, true).await?;
        let todo: Vec<&Migration> = chosen
            .into_iter()
            .filter(|m| !is_applied(&records, tool.as_ref(), &m.version))
            .collect();
        if todo.is_empty() {
            return Ok(Vec::new());
        }
        let work = &session.work;
        work.batch_execute("BEGIN")
            .await
            .map_err(|e| EngineError::db("starting the mark-applied transaction", e))?;
        let result = async {
            for m in &todo {
                self.state
                    .mark_applied(work, &m.version, &m.name, &m.checksum)
                    .await?;
                if let Some(t) = &tool {
                    let sql = t
                        .adapter
                        .record_sql(m, &RecordContext::marked(migrations))?;
                    work.batch_execute(&sql).await.map_err(|e| {
                        EngineError::db(
                            format!("recording {} in {}", m.label(), t.adapter.table()),
                            e,
                        )
                    })?;
                }
            }
            work.batch_execute("COMMIT")
                .await
                .map_err(|e| EngineError::db("committing the mark-applied transaction", e))
        }
        .await;
        if let Err(e) = result {
            let _ = work.batch_execute("ROLLBACK").await;
            return Err(e);
        }
        Ok(todo.iter().map(|m| m.version.clone()).collect())
    }

    /// Settles one step whose outcome a run could not know (an autocommit
    /// statement a killed run started): `applied` records it done, so the
    /// next `migrate` continues after it; otherwise it is recorded as not
    /// applied and the next `migrate` runs it again. Only a step recorded
    /// `running` or `failed` can be settled.
    pub async fn resolve_step(
        &self,
        migrations: &[Migration],
        version: &str,
        step: usize,
        applied: bool,
    ) -> Result<(), EngineError> {
        let session = self.session(true).await?;
        let result = self
            .resolve_step_in(&session, migrations, version, step, applied)
            .await;
        session.release().await;
        result
    }

    async fn resolve_step_in(
        &self,
        session: &Session,
        migrations: &[Migration],
        version: &str,
        step: usize,
        applied: bool,
    ) -> Result<(), EngineError> {
        let m = Self::find(migrations, version)?;
        let plan = self.plan(m, Direction::Up)?;
        let recorded = self.state.steps(&session.work, &m.version, "up").await?;
        let refuse = |message: String| EngineError::Other {
            message,
            hint: Some("`lull status` shows each step's status".into()),
            kind: ErrorKind::Refused,
        };
        let Some(rec) = recorded.iter().find(|r| r.step as usize == step) else {
            return Err(refuse(format!(
                "migration {} step {step} was never started; there is nothing to settle",
                m.version
            )));
        };
        if rec.status == "done" {
            return Err(refuse(format!(
                "migration {} step {step} is already recorded as done",
                m.version
            )));
        }
        let planned = plan.steps.iter().find(|s| s.number == step);
        if planned.map(|s| s.sql()) != Some(rec.sql.clone()) {
            return Err(refuse(format!(
                "migration {} step {step} was recorded with different SQL than the file now plans",
                m.version
            )));
        }
        self.state
            .resolve_step(
                &session.work,
                &m.version,
                step,
                &rec.kind,
                &rec.sql,
                applied,
            )
            .await
    }

    /// Accepts edited files of applied migrations: records their current
    /// checksums, in lull's table and in the tool's. Returns `(version,
    /// recorded, current)` for each change. Nothing is run; use it after an
    /// edit that does not need re-applying (a comment, formatting, a fix
    /// already made by hand).
    pub async fn repair(
        &self,
        migrations: &[Migration],
    ) -> Result<Vec<(String, String, String)>, EngineError> {
        let session = self.session(true).await?;
        let result = self.repair_in(&session, migrations).await;
        session.release().await;
        result
    }

    async fn repair_in(
        &self,
        session: &Session,
        migrations: &[Migration],
    ) -> Result<Vec<(String, String, String)>, EngineError> {
        let records = self.state.migrations(&session.work).await?;
        let mut changed = Vec::new();
        for r in &records {
            let Some(m) = migrations
                .iter()
                .find(|m| compare_versions(&m.version, &r.version).is_eq())
            else {
                continue;
            };
            if m.checksum != r.checksum {
                self.state
                    .set_checksum(&session.work, &r.version, &m.checksum)
                    .await?;
                changed.push((r.version.clone(), r.checksum.clone(), m.checksum.clone()));
            }
        }
        if let Some(t) = self.tool(&session.work, migrations, false).await? {
            for m in migrations {
                let Some(recorded) = t
                    .record(&m.version)
                    .filter(|r| r.ok)
                    .and_then(|r| r.checksum.clone())
                else {
                    continue;
                };
                if t.adapter.checksum_matches(&recorded, m)? {
                    continue;
                }
                if let Some(sql) = t.adapter.repair_sql(m)? {
                    session.work.batch_execute(&sql).await.map_err(|e| {
                        EngineError::db(
                            format!("updating the checksum in {}", t.adapter.table()),
                            e,
                        )
                    })?;
                    let current = t.adapter.checksum(m)?.unwrap_or_default();
                    changed.push((
                        format!("{} ({})", m.version, t.adapter.table()),
                        recorded,
                        current,
                    ));
                }
            }
        }
        Ok(changed)
    }

    /// Every migration on disk or recorded, with its status, steps and
    /// where its record came from, sorted by version. Reads only; creates
    /// nothing.
    pub async fn status(
        &self,
        migrations: &[Migration],
    ) -> Result<Vec<MigrationStatus>, EngineError> {
        let work = connect(&self.opts.url, "lull").await?;
        let records = self.state.migrations(&work).await?;
        let tool = self.tool(&work, migrations, false).await?;
        let mut out = Vec::new();
        for m in migrations {
            let record = records
                .iter()
                .find(|r| compare_versions(&r.version, &m.version).is_eq())
                .cloned();
            let tool_record = tool.as_ref().and_then(|t| t.record(&m.version));
            let tool_name = tool.as_ref().map(|t| t.tool().name());
            let source = match (&record, tool_record, tool_name) {
                (Some(_), Some(_), Some(name)) => format!("lull+{name}"),
                (Some(_), _, _) => "lull".to_string(),
                (None, Some(_), Some(name)) => name.to_string(),
                _ => String::new(),
            };
            let (status, steps) = match (&record, tool_record) {
                (Some(r), _) => {
                    let steps = self.state.steps(&work, &r.version, "up").await?;
                    (
                        status_name(r.status),
                        steps.into_iter().map(StepStatus::from).collect(),
                    )
                }
                (None, Some(t)) => (if t.ok { "applied" } else { "failed" }, Vec::new()),
                (None, None) => {
                    let steps = self
                        .plan(m, Direction::Up)
                        .map(|p| {
                            p.steps
                                .iter()
                                .map(|s| StepStatus {
                                    step: s.number,
                                    kind: s.kind.as_str().to_string(),
                                    status: "pending".into(),
                                    tries: 0,
                                    duration_ms: None,
                                    sql: s.sql(),
                                    error: None,
                                })
                                .collect()
                        })
                        .unwrap_or_default();
                    ("pending", steps)
                }
            };
            let tool_changed = match &tool {
                Some(t) => t.check_checksum(m).is_err(),
                None => false,
            };
            let changed = record.as_ref().is_some_and(|r| r.checksum != m.checksum) || tool_changed;
            out.push(MigrationStatus {
                version: m.version.clone(),
                name: m.name.clone(),
                status,
                missing_file: false,
                changed,
                record,
                source,
                steps,
            });
        }
        for r in &records {
            if !migrations
                .iter()
                .any(|m| compare_versions(&m.version, &r.version).is_eq())
            {
                let steps = self.state.steps(&work, &r.version, "up").await?;
                out.push(MigrationStatus {
                    version: r.version.clone(),
                    name: r.name.clone(),
                    status: status_name(r.status),
                    missing_file: true,
                    changed: false,
                    record: Some(r.clone()),
                    source: "lull".into(),
                    steps: steps.into_iter().map(StepStatus::from).collect(),
                });
            }
        }
        out.sort_by(|a, b| compare_versions(&a.version, &b.version));
        Ok(out)
    }

    /// Runs one migration's plan, skipping steps an earlier run finished.
    async fn run_plan(
        &self,
        session: &Session,
        plan: &MigrationPlan,
        tool_sql: Option<String>,
        summary: &mut RunSummary,
    ) -> Result<(), EngineError> {
        let started = Instant::now();
        // A `SET` in an earlier migration file was meant for that file;
        // it must not change how this one runs.
        session
            .work
            .batch_execute("RESET ALL")
            .await
            .map_err(|e| EngineError::db("resetting session settings", e))?;
        session_guards(&session.work).await?;
        let direction = plan.direction;
        let recorded = self
            .state
            .steps(&session.work, &plan.version, direction.as_str())
            .await?;
        let status = match direction {
            Direction::Up => Status::Running,
            Direction::Down => Status::RollingBack,
        };
        let mode = match plan.mode {
            Mode::Safe => "lull",
            Mode::Naive => "naive",
        };
        self.state
            .start_migration(
                &session.work,
                &plan.version,
                &plan.name,
                &plan.checksum,
                status,
                mode,
            )
            .await?;
        let mut finish_sql = match direction {
            Direction::Up => self.state.finish_sql(&plan.version),
            Direction::Down => self.state.forget_sql(&plan.version),
        };
        // The tool's row goes in the same transaction as lull's.
        if let Some(extra) = tool_sql {
            finish_sql = format!("{finish_sql};\n{extra}");
        }
        let executor = Executor {
            url: &self.opts.url,
            policies: &self.opts.policies,
            backfill: &self.opts.backfill,
            state: &self.state,
            events: self.events.clone(),
            work: &session.work,
            work_pid: session.work_pid,
            monitor: session.monitor.clone(),
            cancel: self.cancel.clone(),
        };
        let done = recorded.iter().filter(|r| r.status == "done").count();
        (self.events)(&Event::MigrationStarted {
            version: plan.version.clone(),
            name: plan.name.clone(),
            direction: direction.as_str(),
            steps: plan.steps.len(),
            resumed_after: done,
        });
        for o in &plan.overridden {
            let message = format!(
                "migration {} line {}: `{}` is {}",
                plan.version,
                o.line,
                crate::error::excerpt(&o.sql, 80),
                o.note
            );
            (self.events)(&Event::Warning {
                message: message.clone(),
            });
            summary.warnings.push(message);
        }
        let mut finished = false;
        let total = plan.steps.len();
        for step in &plan.steps {
            let rec = recorded.iter().find(|r| r.step as usize == step.number);
            if let Some(r) = rec {
                if r.sql != step.sql() {
                    return Err(EngineError::Other {
                        message: format!(
                            "migration {} step {} was recorded with different SQL than the plan now gives; \
                             the plan options (rewrites, mode) or lull's planner changed mid-migration",
                            plan.version, step.number
                        ),
                        hint: Some("run with the options of the interrupted run".into()),
                        kind: ErrorKind::Refused,
                    });
                }
                if r.status == "done" {
                    (self.events)(&Event::StepSkipped {
                        version: plan.version.clone(),
                        step: step.number,
                        reason: "done by an earlier run".into(),
                    });
                    continue;
                }
                if r.status == "running" && step.kind == StepKind::Autocommit {
                    executor
                        .wait_for_orphan(&plan.version, direction, step.number, ORPHAN_WAIT)
                        .await?;
                }
                if r.status == "running"
                    && step.kind == StepKind::Autocommit
                    && executor
                        .already_done(&plan.version, direction, step)
                        .await?
                {
                    let ctx = StepContext {
                        version: &plan.version,
                        direction,
                        step,
                        finish_sql: (step.number == total).then(|| finish_sql.clone()),
                    };
                    self.record_done(&executor, &ctx).await?;
                    finished |= step.number == total;
                    (self.events)(&Event::StepSkipped {
                        version: plan.version.clone(),
                        step: step.number,
                        reason: "an earlier run finished it before it was recorded".into(),
                    });
                    continue;
                }
                if r.status == "running"
                    && step.kind == StepKind::Autocommit
                    && step.policy != PolicyClass::Index
                    && !rerun_is_harmless(&step.sql())
                {
                    return Err(unknown_outcome(&plan.version, step.number, &step.sql()));
                }
            }
            let ctx = StepContext {
                version: &plan.version,
                direction,
                step,
                finish_sql: (step.number == total).then(|| finish_sql.clone()),
            };
            (self.events)(&Event::StepStarted {
                version: plan.version.clone(),
                step: step.number,
                total,
                kind: step.kind.as_str(),
                policy: step.policy.as_str(),
                summary: step.summary(),
            });
            let step_started = Instant::now();
            match executor.run(&ctx).await {
                Ok(outcome) => {
                    if let Some(w) = outcome.warning {
                        summary.warnings.push(w);
                    }
                    finished |= step.number == total;
                    (self.events)(&Event::StepFinished {
                        version: plan.version.clone(),
                        step: step.number,
                        elapsed: step_started.elapsed(),
                        tries: outcome.tries,
                    });
                }
                Err(err) if session.work.is_closed() => {
                    return Err(self.lost_connection(plan, step, err).await);
                }
                Err(err) => {
                    let _ = self
                        .state
                        .fail(
                            &session.work,
                            &plan.version,
                            direction.as_str(),
                            step.number,
                            step.kind.as_str(),
                            &step.sql(),
                            err.tries(),
                            &err.to_string(),
                        )
                        .await;
                    return Err(err);
                }
            }
        }
        if !finished {
            // No steps (an empty file) or the last one finished by an
            // earlier run: the finish has not been recorded yet.
            let result = session
                .work
                .batch_execute(&format!("BEGIN; {finish_sql}; COMMIT"))
                .await;
            if result.is_err() {
                let _ = session.work.batch_execute("ROLLBACK").await;
            }
            result.map_err(|e| crate::state::fence_error("recording the finished migration", e))?;
        }
        (self.events)(&Event::MigrationFinished {
            version: plan.version.clone(),
            direction: direction.as_str(),
            elapsed: started.elapsed(),
        });
        Ok(())
    }

    /// The work connection died mid-step (terminated backend, network,
    /// server restart). Its lock went with it, so the state is written only
    /// if a new connection can take the runner lock again: a transactional
    /// step is recorded `failed` (its transaction did not commit, or its
    /// `done` row would be there), an autocommit step stays `running` with
    /// the error, because whether its statement finished is unknown.
    async fn lost_connection(
        &self,
        plan: &MigrationPlan,
        step: &crate::plan::Step,
        err: EngineError,
    ) -> EngineError {
        let message = format!("the connection to the server was lost during the step: {err}");
        let recorded = async {
            let client = connect(&self.opts.url, "lull").await.ok()?;
            let key = lock::lock_key(&self.opts.schema);
            if !lock::try_lock(&client, key).await.ok()? {
                return None;
            }
            let ok = match step.kind {
                StepKind::Transaction => self
                    .state
                    .fail(
                        &client,
                        &plan.version,
                        plan.direction.as_str(),
                        step.number,
                        step.kind.as_str(),
                        &step.sql(),
                        err.tries(),
                        &message,
                    )
                    .await
                    .is_ok(),
                StepKind::Autocommit | StepKind::Backfill => self
                    .state
                    .note_error(
                        &client,
                        &plan.version,
                        plan.direction.as_str(),
                        step.number,
                        &message,
                    )
                    .await
                    .is_ok(),
            };
            let _ = client
                .execute("SELECT pg_advisory_unlock($1)", &[&key])
                .await;
            Some(ok)
        }
        .await
        .unwrap_or(false);
        EngineError::Other {
            message: format!(
                "migration {} step {}: {message}{}",
                plan.version,
                step.number,
                if recorded {
                    "; the failure is recorded"
                } else {
                    "; the failure could not be recorded (server unreachable or another runner took over)"
                }
            ),
            hint: Some(match step.kind {
                StepKind::Transaction => {
                    "the step's transaction did not commit; run `lull migrate` again once the server is reachable"
                        .into()
                }
                StepKind::Autocommit => "run `lull migrate` again once the server is reachable; it checks \
                     whether the step took effect before running anything"
                    .into(),
                StepKind::Backfill => "run `lull migrate` again once the server is reachable; the backfill \
                     resumes after its last committed batch (each batch commits with its progress)"
                    .into(),
            }),
            kind: ErrorKind::Failed,
        }
    }

    async fn record_done(
        &self,
        executor: &Executor<'_>,
        ctx: &StepContext<'_>,
    ) -> Result<(), EngineError> {
        let mut sql = self.state.step_done_sql(
            ctx.version,
            ctx.direction.as_str(),
            ctx.step.number,
            ctx.step.kind.as_str(),
            &ctx.step.sql(),
            1,
        );
        if let Some(f) = &ctx.finish_sql {
            sql = format!("{sql};\n{f}");
        }
        let result = executor
            .work
            .batch_execute(&format!("BEGIN; {sql}; COMMIT"))
            .await;
        if result.is_err() {
            let _ = executor.work.batch_execute("ROLLBACK").await;
        }
        result.map_err(|e| crate::state::fence_error("recording the finished step", e))
    }
}

/// How long a resumed run waits for the statement a killed run left on
/// the server before it reports it by pid.
const ORPHAN_WAIT: Duration = Duration::from_secs(60);

/// An autocommit step whose statement an earlier run started but never
/// recorded as finished, and which is not safe to run twice.
fn unknown_outcome(version: &str, step: usize, sql: &str) -> EngineError {
    EngineError::Other {
        message: format!(
            "migration {version} step {step} ran outside a transaction and an earlier run stopped \
             before recording whether it finished, so lull cannot know whether it took effect: {}",
            crate::error::excerpt(sql, 200)
        ),
        hint: Some(format!(
            "check the database; if the statement took effect, record it with \
             `lull mark-applied {version} --step {step}`; if it did not, run \
             `lull mark-applied {version} --step {step} --not-applied` and then `lull migrate` runs it again"
        )),
        kind: ErrorKind::Refused,
    }
}

/// Whether `version` counts as applied: lull's record when it has one,
/// else the tool's.
fn is_applied(records: &[MigrationRecord], tool: Option<&Active>, version: &str) -> bool {
    match records
        .iter()
        .find(|r| compare_versions(&r.version, version).is_eq())
    {
        Some(r) => r.status == Status::Applied,
        None => tool.is_some_and(|t| t.applied(version)),
    }
}

/// Whether a typed version names `m`; diesel versions may be typed with
/// their dashes.
fn same_version(m: &Migration, typed: &str) -> bool {
    compare_versions(&m.version, typed).is_eq()
        || (typed.contains('-')
            && typed.chars().all(|c| c.is_ascii_digit() || c == '-')
            && compare_versions(&m.version, &typed.replace('-', "")).is_eq())
}

fn status_name(s: Status) -> &'static str {
    match s {
        Status::Applied => "applied",
        Status::Failed => "failed",
        Status::Running | Status::RollingBack => "running",
    }
}

/// What the planner needs from the catalog: the partitioned tables and
/// their partitions always (a resumed run must plan the steps it planned
/// before); when not resuming also the constraint names, so a rewrite
/// names an unnamed constraint as PostgreSQL would here, and the facts
/// that decide whether an index build on a partitioned table can be split
/// per partition (not when resuming: the interrupted migration's own
/// constraints and indexes are there already, and its plan must stay the
/// one its finished steps came from).
async fn plan_context(
    client: &tokio_postgres::Client,
    resuming: bool,
) -> Result<PlanContext, EngineError> {
    let read = |what: &'static str| {
        move |e: tokio_postgres::Error| EngineError::Other {
            message: format!("cannot read {what}: {}", crate::error::pg_message(&e)),
            hint: None,
            kind: crate::error::ErrorKind::Error,
        }
    };
    let mut ctx = PlanContext::default();
    let rows = client
        .query(
            &format!(
                "SELECT n.nspname::text || '.' || pc.relname::text, \
                        array(SELECT cn.nspname::text || '.' || cc.relname::text \
                              FROM pg_inherits i JOIN pg_class cc ON cc.oid = i.inhrelid \
                              JOIN pg_namespace cn ON cn.oid = cc.relnamespace \
                              WHERE i.inhparent = pc.oid ORDER BY 1) \
                 FROM pg_class pc JOIN pg_namespace n ON n.oid = pc.relnamespace \
                 WHERE pc.relkind = 'p' AND {USER_SCHEMAS} ORDER BY 1"
            ),
            &[],
        )
        .await
        .map_err(read("the partitioned tables"))?;
    for row in rows {
        let parent: String = row.get(0);
        let partitions: Vec<String> = row.get(1);
        ctx.known.add_partitioned(&parent, partitions);
    }
    if resuming {
        return Ok(ctx);
    }
    ctx.names = constraint_names(client).await?;
    let mut checks = PartitionChecks::default();
    let rows = client
        .query(
            &format!(
                "SELECT n.nspname::text || '.' || c.relname::text, c.relkind::text, c.relispartition \
                 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE {USER_SCHEMAS}"
            ),
            &[],
        )
        .await
        .map_err(read("the relation names"))?;
    for row in rows {
        let name: String = row.get(0);
        let kind: String = row.get(1);
        let partition: bool = row.get(2);
        if partition && kind == "f" {
            checks.foreign.insert(name.clone());
        }
        checks.relations.insert(name);
    }
    let rows = client
        .query(
            &format!(
                "SELECT n.nspname::text || '.' || c.relname::text, \
                        array(SELECT a.attname::text FROM unnest(i.indkey) WITH ORDINALITY k(attnum, ord) \
                              LEFT JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum \
                              WHERE k.ord <= i.indnkeyatts ORDER BY k.ord) \
                 FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid \
                 JOIN pg_namespace n ON n.oid = c.relnamespace \
                 WHERE c.relispartition AND {USER_SCHEMAS}"
            ),
            &[],
        )
        .await
        .map_err(read("the partitions' indexes"))?;
    for row in rows {
        let table: String = row.get(0);
        let columns: Vec<Option<String>> = row.get(1);
        checks
            .partition_indexes
            .entry(table)
            .or_default()
            .push(columns);
    }
    ctx.checks = Some(checks);
    Ok(ctx)
}

/// The schemas lull reads from the catalog: not PostgreSQL's own.
const USER_SCHEMAS: &str = "n.nspname NOT LIKE 'pg\\_%' AND n.nspname <> 'information_schema'";

/// Every constraint name of the user schemas, as `schema.name`.
async fn constraint_names(
    client: &tokio_postgres::Client,
) -> Result<BTreeSet<String>, EngineError> {
    let rows = client
        .query(
            "SELECT n.nspname::text || '.' || c.conname::text FROM pg_constraint c \
             JOIN pg_namespace n ON n.oid = c.connamespace \
             WHERE n.nspname NOT LIKE 'pg\\_%' AND n.nspname <> 'information_schema'",
            &[],
        )
        .await
        .map_err(|e| EngineError::Other {
            message: format!("cannot read the constraint names: {e}"),
            hint: None,
            kind: crate::error::ErrorKind::Error,
        })?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}
