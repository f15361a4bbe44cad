//! The opt-in `[policy.blockers]`: ending sessions that keep a step from
//! its locks, the way the guides tell people to do by hand.
//!
//! Off by default. When switched on it only ever touches a session that
//! the gap watcher found holding or queueing a conflicting lock on the
//! step's relations right now, never one of lull's own connections and
//! never a background process (autovacuum, replication): only client
//! backends. Each action is sent as an [`Event::BlockerAction`] naming the
//! victim's pid, user, application and query, whether it worked or not.
//!
//! - `terminate_idle_in_transaction_after`: a session idle in its
//!   transaction (its client went away, or forgot to commit) for at least
//!   that long is ended with `pg_terminate_backend`.
//! - `cancel_queries_after`: a session whose query has been running at
//!   least that long gets `pg_cancel_backend`. Inside an explicit
//!   transaction the transaction stays open (aborted) until its client
//!   rolls back; the terminate rule ends it if set.

use std::collections::BTreeSet;

use lull_config::BlockersPolicy;
use serde::Serialize;
use tokio_postgres::Client;

use crate::error::pg_message;
use crate::gap::Holder;

/// What lull did to a blocking session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ActionKind {
    /// `pg_terminate_backend`: the session is closed.
    Terminate,
    /// `pg_cancel_backend`: its current query is cancelled.
    Cancel,
}

impl ActionKind {
    /// `terminated` or `cancelled`.
    pub fn past(self) -> &'static str {
        match self {
            ActionKind::Terminate => "terminated",
            ActionKind::Cancel => "cancelled the query of",
        }
    }
}

/// The action the policy asks for against `h`, if any.
pub fn action_for(policy: &BlockersPolicy, h: &Holder) -> Option<ActionKind> {
    if h.backend_type != "client backend" {
        return None;
    }
    let state_age = std::time::Duration::from_secs_f64(h.state_age_secs.max(0.0));
    if h.state.starts_with("idle in transaction") {
        let after = policy.terminate_idle_in_transaction_after?;
        return (state_age >= after.std()).then_some(ActionKind::Terminate);
    }
    if h.state == "active" {
        let after = policy.cancel_queries_after?;
        return (state_age >= after.std()).then_some(ActionKind::Cancel);
    }
    None
}

/// One action taken (or attempted).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Action {
    /// What was done.
    pub action: ActionKind,
    /// Whether PostgreSQL signalled the session.
    pub ok: bool,
    /// Why not, when it did not (e.g. missing privilege).
    pub error: Option<String>,
    /// The session, as seen just before.
    pub session: Holder,
}

/// Applies the policy to the sessions lull waits for. `done` remembers
/// the transactions already acted on, so each is signalled once.
pub async fn apply(
    client: &Client,
    policy: &BlockersPolicy,
    waited_for: &[Holder],
    done: &mut BTreeSet<(i32, i64)>,
) -> Vec<Action> {
    let mut out = Vec::new();
    if !policy.is_on() {
        return out;
    }
    for h in waited_for {
        let Some(kind) = action_for(policy, h) else {
            continue;
        };
        let key = (
            h.pid,
            h.xact_start.map(|s| (s * 1e6) as i64).unwrap_or_default(),
        );
        if !done.insert(key) {
            continue;
        }
        let sql = match kind {
            ActionKind::Terminate => "SELECT pg_terminate_backend($1)",
            ActionKind::Cancel => "SELECT pg_cancel_backend($1)",
        };
        let (ok, error) = match client.query_one(sql, &[&h.pid]).await {
            Ok(row) => {
                let ok: bool = row.get(0);
                (
                    ok,
                    (!ok).then(|| "the session had already ended".to_string()),
                )
            }
            Err(e) => (false, Some(pg_message(&e))),
        };
        out.push(Action {
            action: kind,
            ok,
            error,
            session: h.clone(),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use lull_config::Duration;

    fn h(state: &str, backend: &str, state_age: f64) -> Holder {
        Holder {
            pid: 1,
            user: "app".into(),
            application: "psql".into(),
            state: state.into(),
            backend_type: backend.into(),
            relation: "t".into(),
            mode: "AccessShareLock".into(),
            granted: true,
            transaction_age_secs: state_age,
            state_age_secs: state_age,
            query: "select 1".into(),
            xact_start: Some(1.0),
        }
    }

    #[test]
    fn only_the_configured_kind_after_its_time() {
        let off = BlockersPolicy::default();
        assert_eq!(
            action_for(&off, &h("idle in transaction", "client backend", 999.0)),
            None
        );
        let terminate = BlockersPolicy {
            terminate_idle_in_transaction_after: Some(Duration::from_secs(30)),
            cancel_queries_after: None,
        };
        assert_eq!(
            action_for(
                &terminate,
                &h("idle in transaction", "client backend", 31.0)
            ),
            Some(ActionKind::Terminate)
        );
        assert_eq!(
            action_for(&terminate, &h("idle in transaction", "client backend", 5.0)),
            None
        );
        assert_eq!(
            action_for(&terminate, &h("active", "client backend", 999.0)),
            None
        );
        assert_eq!(
            action_for(
                &terminate,
                &h("idle in transaction", "autovacuum worker", 999.0)
            ),
            None
        );
        let cancel = BlockersPolicy {
            terminate_idle_in_transaction_after: None,
            cancel_queries_after: Some(Duration::from_secs(10)),
        };
        assert_eq!(
            action_for(&cancel, &h("active", "client backend", 11.0)),
            Some(ActionKind::Cancel)
        );
        assert_eq!(
            action_for(&cancel, &h("idle in transaction", "client backend", 999.0)),
            None
        );
    }
}
