//! `lull daemon`: runs a guarded pass over the pending queue at every
//! tick of a cron schedule until told to stop.
//!
//! Every pass opens its own connections, so a database restart between
//! (or during) passes costs one failed pass, logged, and nothing more.
//! A stop request (SIGTERM) while a build runs cancels that build and
//! drops its INVALID leftover before the daemon exits.

use chrono::{DateTime, Utc};
use lull_config::IndexPolicy;
use tokio::sync::watch;

use crate::error::{Error, Result};
use crate::guards::Guards;
use crate::pass::{run_pass, Decision, PassEvent, PassOptions};
use crate::queue::Queue;
use crate::schedule::Schedule;

/// What the daemon reports.
#[derive(Debug)]
pub enum DaemonEvent<'a> {
    /// Sleeping until the next tick.
    Waiting {
        /// The tick.
        next: DateTime<Utc>,
    },
    /// Something happened in the running pass.
    Pass(PassEvent<'a>),
    /// The pass ended with these decisions.
    PassDone(&'a [Decision]),
    /// The pass could not run (the database is down, …); the daemon goes on.
    PassFailed(&'a Error),
    /// Stopping on request.
    Stopping,
}

/// Everything the daemon needs.
pub struct Daemon<'a> {
    /// Connection string.
    pub url: &'a str,
    /// The pending queue.
    pub queue: &'a Queue,
    /// Index policy.
    pub policy: &'a IndexPolicy,
    /// Guards and window.
    pub guards: &'a Guards,
    /// When to run passes.
    pub schedule: &'a Schedule,
    /// Options of every pass.
    pub pass: PassOptions,
}

impl Daemon<'_> {
    /// Runs until `stop` turns true (or its sender is dropped), or the
    /// schedule has no further tick.
    pub async fn run(
        &self,
        mut stop: watch::Receiver<bool>,
        on_event: &mut dyn FnMut(DaemonEvent<'_>),
    ) -> Result<()> {
        loop {
            if *stop.borrow() {
                on_event(DaemonEvent::Stopping);
                return Ok(());
            }
            let Some(next) = self.schedule.next_after(Utc::now()) else {
                return Ok(());
            };
            on_event(DaemonEvent::Waiting { next });
            let wait = (next - Utc::now()).to_std().unwrap_or_default();
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = stop.changed() => {
                    on_event(DaemonEvent::Stopping);
                    return Ok(());
                }
            }
            let result = run_pass(
                self.url,
                self.queue,
                self.policy,
                self.guards,
                &self.pass,
                stop.clone(),
                &mut |e| on_event(DaemonEvent::Pass(e)),
            )
            .await;
            match result {
                Ok(decisions) => on_event(DaemonEvent::PassDone(&decisions)),
                Err(e) => on_event(DaemonEvent::PassFailed(&e)),
            }
        }
    }
}
