//! One pass over the pending queue: for each index, estimate, check the
//! guards, build, verify, and record the decision on the queue row. This
//! is `indexes build` (with names or all), `indexes auto` (for cron) and
//! one tick of `lull daemon`.

use std::time::Instant;

use lull_config::IndexPolicy;
use serde::Serialize;
use tokio::sync::watch;

use crate::build::{BuildEvent, Builder, Outcome};
use crate::db;
use crate::definition::IndexDef;
use crate::error::{Error, Result};
use crate::estimate::{self, Estimate};
use crate::guards::{Guards, Trip};
use crate::queue::{PendingIndex, Queue};

/// What a pass should do.
#[derive(Debug, Clone, Default)]
pub struct PassOptions {
    /// Only these indexes (all pending ones when empty).
    pub names: Vec<String>,
    /// Build outside the window (a manual daytime build).
    pub ignore_window: bool,
    /// Free disk space in bytes, for the estimate's warning.
    pub free_space: Option<u64>,
    /// Share of the free space (or table size) above which the estimate warns.
    pub size_share: Option<f64>,
}

/// The decision about one pending index.
#[derive(Debug, Clone, Serialize)]
pub struct Decision {
    /// Index name.
    pub name: String,
    /// Table, qualified.
    pub table: String,
    /// The estimate printed before the build, if one could be made.
    pub estimate: Option<Estimate>,
    /// How it ended.
    #[serde(flatten)]
    pub outcome: Outcome,
}

/// What a pass reports while it runs.
#[derive(Debug)]
pub enum PassEvent<'a> {
    /// About to consider this index.
    Considering {
        /// The row.
        pending: &'a PendingIndex,
        /// Its estimate.
        estimate: Option<&'a Estimate>,
    },
    /// A build event for the index being built.
    Build(&'a str, BuildEvent<'a>),
    /// The decision about one index.
    Decided(&'a Decision),
}

/// Runs one pass. `stop` turning true cancels the running build (its
/// leftover is dropped) and ends the pass.
pub async fn run_pass(
    url: &str,
    queue: &Queue,
    policy: &IndexPolicy,
    guards: &Guards,
    opts: &PassOptions,
    stop: watch::Receiver<bool>,
    on_event: &mut dyn FnMut(PassEvent<'_>),
) -> Result<Vec<Decision>> {
    let pass_started = Instant::now();
    let client = db::connect_primary(url).await?;
    let mut pending = queue.list(&client).await?;
    if !opts.names.is_empty() {
        if let Some(unknown) = opts
            .names
            .iter()
            .find(|n| !pending.iter().any(|p| &p.name == *n))
        {
            return Err(Error::NotPending(unknown.clone()));
        }
        pending.retain(|p| opts.names.contains(&p.name));
    }
    let mut builder = Builder {
        url,
        policy,
        guards,
        stop: stop.clone(),
        pass_started,
        ignore_window: opts.ignore_window,
    };
    let mut decisions = Vec::new();
    for row in &pending {
        if *stop.borrow() {
            break;
        }
        let def = match IndexDef::parse(&row.definition) {
            Ok(d) => d,
            Err(e) => {
                let decision = Decision {
                    name: row.name.clone(),
                    table: row.table_name.clone(),
                    estimate: None,
                    outcome: Outcome::Failed {
                        error: e.to_string(),
                        leftover_dropped: false,
                    },
                };
                finish(queue, &client, &decision, on_event).await?;
                decisions.push(decision);
                continue;
            }
        };
        let est = estimate::estimate(&client, &def, opts.free_space, opts.size_share)
            .await
            .ok();
        on_event(PassEvent::Considering {
            pending: row,
            estimate: est.as_ref(),
        });
        let name = row.name.clone();
        let mut started_attempts = 0u32;
        let outcome = builder
            .build(&def, row.example_query.as_deref(), &mut |event| {
                if let BuildEvent::Started { .. } = event {
                    started_attempts += 1;
                }
                on_event(PassEvent::Build(&name, event));
            })
            .await;
        let outcome = match outcome {
            Ok(o) => o,
            // A lost connection fails this index, not the whole pass: the
            // next index (or the next pass) reconnects.
            Err(e @ (Error::Engine(_) | Error::Query { .. })) => Outcome::Failed {
                error: e.to_string(),
                leftover_dropped: false,
            },
            Err(e) => return Err(e),
        };
        for _ in 0..started_attempts {
            queue.attempt_started(&client, &row.name).await?;
        }
        let decision = Decision {
            name: row.name.clone(),
            table: row.table_name.clone(),
            estimate: est,
            outcome,
        };
        finish(queue, &client, &decision, on_event).await?;
        let stopped = matches!(
            decision.outcome,
            Outcome::Cancelled {
                trip: Trip::Stopped,
                ..
            } | Outcome::Skipped {
                trip: Trip::Stopped
            }
        );
        decisions.push(decision);
        if stopped {
            break;
        }
    }
    Ok(decisions)
}

async fn finish(
    queue: &Queue,
    client: &tokio_postgres::Client,
    decision: &Decision,
    on_event: &mut dyn FnMut(PassEvent<'_>),
) -> Result<()> {
    match decision.outcome.pending_reason() {
        None => {
            queue.remove(client, &decision.name).await?;
        }
        Some(why) => queue.record(client, &decision.name, &why).await?,
    }
    on_event(PassEvent::Decided(decision));
    Ok(())
}
