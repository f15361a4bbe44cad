//! The part of lull that talks to PostgreSQL: connecting, running one
//! statement under its class's lock policy (the executor), building an
//! index CONCURRENTLY, and applying migrations step by step with their
//! progress recorded (the runner).
//!
//! Nothing here prints. Progress goes to an [`events::EventSink`]
//! callback; errors are [`EngineError`]s that say what went wrong and what
//! to do next. The CLI renders both.
//!
//! The library entry points are [`Runner`] (plan, migrate, status,
//! rollback, mark-applied) and [`index_build::build_index`].

pub mod blocker_actions;
pub mod blockers;
pub mod db;
mod error;
pub mod events;
pub mod executor;
pub mod gap;
pub mod history;
pub mod index_build;
pub mod index_name;
pub mod libpq;
pub mod lock;
pub mod plan;
pub mod runner;
pub mod state;

pub use error::{excerpt, pg_message, EngineError, ErrorKind, StepFailure};
pub use events::{Event, EventSink};
pub use plan::{
    plan_migration, plan_migration_in, plan_migration_with_names, Direction, MigrationPlan, Mode,
    PartitionChecks, PlanContext, PlanOptions, Step,
};
pub use runner::{MigrationStatus, RollbackTarget, RunSummary, Runner, RunnerOptions};
