//! The engine: prepare (statement, key, tenants), capture the key ranges,
//! walk them batch by batch with the progress in each batch's
//! transaction, hold while a signal trips, verify at the end.

use std::time::{Duration, Instant};

use lull_analyzer::sql::{quote_ident, quote_literal};
use lull_config::{BackfillPolicy, DmlPolicy};
use rand::Rng;
use serde::Serialize;
use tokio_postgres::Client;

use crate::error::{db, pg_message, sqlstate, BackfillError};
use crate::events::{BackfillEvent, EventSink};
use crate::key::{self, Column, Key, TableInfo};
use crate::size::Sizing;
use crate::state::{Part, Tables, LOCK_CLASS};
use crate::statement::{analyze, Batchable};
use crate::throttle::{self, Control};

/// Rows counted at most by the final check.
pub const VERIFY_LIMIT: i64 = 100_000;

/// What to backfill.
#[derive(Debug, Clone)]
pub struct Spec {
    /// Its name: a second run with the same name resumes it.
    pub name: String,
    /// One UPDATE or DELETE.
    pub sql: String,
    /// Walk each value of this column in its own batches.
    pub per: Option<String>,
    /// The first batch size (else the policy's).
    pub batch_size: Option<u64>,
}

/// How to run it.
pub struct Options<'a> {
    /// lull's schema.
    pub schema: &'a str,
    /// `[backfill]`.
    pub policy: &'a BackfillPolicy,
    /// `[policy.dml]`: retries of lock and serialization failures.
    pub dml: &'a DmlPolicy,
    /// Progress.
    pub events: EventSink<'a>,
}

/// What a run did.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    /// The backfill.
    pub name: String,
    /// Rows changed, all runs.
    pub rows: i64,
    /// Batches, all runs.
    pub batches: i64,
    /// This run's wall time in ms.
    pub elapsed_ms: u64,
    /// Rows still matching the WHERE at the end (None: no WHERE, or the
    /// count failed).
    pub remaining: Option<i64>,
    /// It was finished by an earlier run; nothing ran now.
    pub already_done: bool,
}

/// A statement checked against the catalog: batchable on this key.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// The statement taken apart.
    pub stmt: Batchable,
    /// The table.
    pub info: TableInfo,
    /// The key walked.
    pub key: Key,
    /// The per-tenant column.
    pub per: Option<Column>,
}

/// Checks that `sql` can be batched on this database: one UPDATE/DELETE
/// that [`analyze`] accepts, an existing table with a usable key, a SET
/// that leaves the key (and the tenant column) alone. Changes nothing.
pub async fn prepare(
    client: &Client,
    sql: &str,
    per: Option<&str>,
) -> Result<Prepared, BackfillError> {
    let stmt = analyze(sql).map_err(|e| BackfillError::NotBatchable { reason: e.reason })?;
    let info = key::table_info(client, &stmt.qualified()).await?;
    let Some(key) = info.key.clone() else {
        return Err(BackfillError::NotBatchable {
            reason: format!(
                "table {} has no primary key and no unique index over NOT NULL columns to walk",
                stmt.qualified()
            ),
        });
    };
    if let Some(c) = key.columns.iter().find(|c| stmt.assigned.contains(&c.name)) {
        return Err(BackfillError::NotBatchable {
            reason: format!(
                "it changes the key column {}: rows would move between batches",
                quote_ident(&c.name)
            ),
        });
    }
    let per = match per {
        None => None,
        Some(name) => {
            let col = key::column(client, info.oid, name).await?.ok_or_else(|| {
                BackfillError::Invalid {
                    message: format!("table {} has no column {}", stmt.qualified(), quote_ident(name)),
                    hint: "--per (or `-- lull:backfill per=`) names a column of the table, as written in the catalog".into(),
                }
            })?;
            if stmt.assigned.contains(&col.name) {
                return Err(BackfillError::NotBatchable {
                    reason: format!(
                        "it changes the per-tenant column {}: rows would move between tenants",
                        quote_ident(&col.name)
                    ),
                });
            }
            Some(col)
        }
    };
    Ok(Prepared {
        stmt,
        info,
        key,
        per,
    })
}

impl Prepared {
    fn only(&self) -> &'static str {
        if self.stmt.only {
            "ONLY "
        } else {
            ""
        }
    }

    fn tenant_cond(&self, part: &Part, qualifier: Option<&str>) -> Option<String> {
        let per = self.per.as_ref()?;
        let col = match qualifier {
            Some(q) => format!("{}.{}", quote_ident(q), quote_ident(&per.name)),
            None => quote_ident(&per.name),
        };
        Some(match (&part.tenant, part.tenant_null) {
            (Some(t), false) => format!("{col} = {}", key::typed_literal(t, &per.type_name)),
            _ => format!("{col} IS NULL"),
        })
    }

    fn range_conds(&self, part: &Part, qualifier: Option<&str>, upper: &[String]) -> Vec<String> {
        let row = self.key.row(qualifier);
        let mut conds: Vec<String> = self.tenant_cond(part, qualifier).into_iter().collect();
        if let Some(last) = &part.last {
            conds.push(format!("{row} > {}", self.key.literal(last)));
        }
        conds.push(format!("{row} <= {}", self.key.literal(upper)));
        conds
    }

    /// The last key and count of the next `size` keys of the part.
    fn probe_sql(&self, part: &Part, upper: &[String], size: u64) -> String {
        format!(
            "SELECT {text}, count(*) OVER () FROM (SELECT {cols} FROM {only}{table} WHERE {conds} \
             ORDER BY {asc} LIMIT {size}) s ORDER BY {desc} LIMIT 1",
            text = self.key.as_text(),
            cols = self.key.order(false),
            only = self.only(),
            table = self.stmt.qualified(),
            conds = self.range_conds(part, None, upper).join(" AND "),
            asc = self.key.order(false),
            desc = self.key.order(true),
        )
    }

    /// The user's statement limited to the part's keys up to `end`.
    pub fn batch_sql(&self, part: &Part, end: &[String]) -> String {
        let mut conds = Vec::new();
        if let Some(f) = &self.stmt.filter {
            conds.push(format!("({f})"));
        }
        conds.extend(self.range_conds(part, Some(&self.stmt.reference), end));
        format!("{} WHERE {}", self.stmt.head, conds.join(" AND "))
    }
}

/// The batched form for `plan`, with placeholders for the key.
pub fn describe(stmt: &Batchable, per: Option<&str>) -> String {
    let mut conds = Vec::new();
    if let Some(f) = &stmt.filter {
        conds.push(format!("({f})"));
    }
    if let Some(p) = per {
        conds.push(format!(
            "{}.{} = $tenant",
            quote_ident(&stmt.reference),
            quote_ident(p)
        ));
    }
    conds.push("key > $last AND key <= $batch_end".into());
    format!("{} WHERE {}", stmt.head, conds.join(" AND "))
}

/// Runs (or resumes) a backfill to its end on `client`, which must not be
/// inside a transaction. See the crate docs for the semantics.
pub async fn run(
    client: &Client,
    spec: &Spec,
    opts: &Options<'_>,
) -> Result<Outcome, BackfillError> {
    let tables = Tables::new(opts.schema);
    tables.ensure(client).await?;
    let prepared = prepare(client, &spec.sql, spec.per.as_deref()).await?;
    let (id, resumed) = match find(client, &tables, spec).await? {
        Some(found) => found,
        None => (create(client, &tables, spec, &prepared).await?, false),
    };
    let locked: bool = client
        .query_one(
            "SELECT pg_try_advisory_lock($1, ($2::bigint % 2147483647)::int)",
            &[&LOCK_CLASS, &id],
        )
        .await
        .map_err(|e| db("taking the backfill's lock", e))?
        .get(0);
    if !locked {
        return Err(BackfillError::Refused {
            message: format!("backfill {} is being run by another process", spec.name),
            hint: "`lull backfill status` shows its progress; pause or cancel it from there".into(),
        });
    }
    let result = walk(client, &tables, spec, opts, &prepared, id, resumed).await;
    if let Err(e) = &result {
        if !matches!(e, BackfillError::Cancelled { .. }) {
            let _ = client
                .execute(
                    &format!(
                        "UPDATE {} SET status = CASE WHEN status = 'running' THEN 'failed' ELSE status END, \
                         error = $2, updated_at = now() WHERE id = $1",
                        tables.backfills()
                    ),
                    &[&id, &e.to_string()],
                )
                .await;
        }
    }
    let _ = client
        .execute(
            "SELECT pg_advisory_unlock($1, ($2::bigint % 2147483647)::int)",
            &[&LOCK_CLASS, &id],
        )
        .await;
    result
}

/// The id of an existing backfill of this name, refusing a different
/// statement under it. `Ok(None)`: not started yet.
async fn find(
    client: &Client,
    tables: &Tables,
    spec: &Spec,
) -> Result<Option<(i64, bool)>, BackfillError> {
    let row = client
        .query_opt(
            &format!(
                "SELECT id, statement, per_column, status FROM {} WHERE name = $1",
                tables.backfills()
            ),
            &[&spec.name],
        )
        .await
        .map_err(|e| db("reading the backfill", e))?;
    let Some(row) = row else { return Ok(None) };
    let id: i64 = row.get(0);
    let statement: String = row.get(1);
    let per: Option<String> = row.get(2);
    let status: String = row.get(3);
    if statement != spec.sql || per != spec.per {
        return Err(BackfillError::Refused {
            message: format!(
                "backfill {} was started with another statement or --per: {statement}",
                spec.name
            ),
            hint: "give this one another --name, or run the recorded one to its end".into(),
        });
    }
    if status == "cancelled" {
        return Err(BackfillError::Refused {
            message: format!("backfill {} was cancelled", spec.name),
            hint: format!(
                "`lull backfill resume {}` lets it continue; or give a new one another --name",
                spec.name
            ),
        });
    }
    Ok(Some((id, true)))
}

/// Records a new backfill with its captured key ranges, in one
/// transaction.
async fn create(
    client: &Client,
    tables: &Tables,
    spec: &Spec,
    p: &Prepared,
) -> Result<i64, BackfillError> {
    let text = p.key.as_text();
    let table = format!("{}{}", p.only(), p.stmt.qualified());
    let parts: Vec<(Option<String>, bool, Option<Vec<String>>)> = match &p.per {
        None => {
            let row = client
                .query_opt(
                    &format!(
                        "SELECT {text} FROM {table} ORDER BY {} LIMIT 1",
                        p.key.order(true)
                    ),
                    &[],
                )
                .await
                .map_err(|e| db("capturing the key range", e))?;
            let upper = row.map(|r| (0..p.key.columns.len()).map(|i| r.get(i)).collect());
            vec![(None, false, upper)]
        }
        Some(per) => {
            let col = quote_ident(&per.name);
            let rows = client
                .query(
                    &format!(
                        "SELECT DISTINCT ON ({col}) {col}::text AS \"lull tenant\", {col} IS NULL, {text} FROM {table} \
                         ORDER BY {col}, {}",
                        p.key.order(true)
                    ),
                    &[],
                )
                .await
                .map_err(|e| db("capturing the tenants and their key ranges", e))?;
            rows.iter()
                .map(|r| {
                    let upper: Vec<String> =
                        (0..p.key.columns.len()).map(|i| r.get(i + 2)).collect();
                    (r.get(0), r.get(1), Some(upper))
                })
                .collect()
        }
    };
    client
        .batch_execute("BEGIN")
        .await
        .map_err(|e| db("recording the backfill", e))?;
    let result = async {
        let row = client
            .query_one(
                &format!(
                    "INSERT INTO {} (name, table_name, statement, per_column, key_columns, rows_estimate) \
                     VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
                    tables.backfills()
                ),
                &[
                    &spec.name,
                    &p.stmt.qualified(),
                    &spec.sql,
                    &spec.per,
                    &p.key.names(),
                    &p.info.estimate,
                ],
            )
            .await?;
        let id: i64 = row.get(0);
        let insert = format!(
            "INSERT INTO {} (backfill_id, part, tenant, tenant_null, upper_key, done) \
             VALUES ($1, $2, $3, $4, $5, $6)",
            tables.parts()
        );
        for (i, (tenant, null, upper)) in parts.iter().enumerate() {
            client
                .execute(
                    &insert,
                    &[&id, &(i as i32 + 1), tenant, null, upper, &upper.is_none()],
                )
                .await?;
        }
        client.batch_execute("COMMIT").await?;
        Ok::<i64, tokio_postgres::Error>(id)
    }
    .await;
    match result {
        Ok(id) => Ok(id),
        Err(e) => {
            let _ = client.batch_execute("ROLLBACK").await;
            if sqlstate(&e).as_deref() == Some("23505") {
                return Err(BackfillError::Refused {
                    message: format!("backfill {} was just started by another process", spec.name),
                    hint: "`lull backfill status` shows it".into(),
                });
            }
            Err(db("recording the backfill", e))
        }
    }
}

async fn parts(client: &Client, tables: &Tables, id: i64) -> Result<Vec<Part>, BackfillError> {
    let rows = client
        .query(
            &format!(
                "SELECT part, tenant, tenant_null, upper_key, last_key, done, rows_done FROM {} \
                 WHERE backfill_id = $1 ORDER BY part",
                tables.parts()
            ),
            &[&id],
        )
        .await
        .map_err(|e| db("reading the backfill's progress", e))?;
    Ok(rows
        .iter()
        .map(|r| Part {
            part: r.get(0),
            tenant: r.get(1),
            tenant_null: r.get(2),
            upper: r.get(3),
            last: r.get(4),
            done: r.get(5),
            rows_done: r.get(6),
        })
        .collect())
}

async fn totals(
    client: &Client,
    tables: &Tables,
    id: i64,
) -> Result<(i64, i64, i64), BackfillError> {
    let r = client
        .query_one(
            &format!(
                "SELECT rows_done, rows_scanned, batches FROM {} WHERE id = $1",
                tables.backfills()
            ),
            &[&id],
        )
        .await
        .map_err(|e| db("reading the backfill's counters", e))?;
    Ok((r.get(0), r.get(1), r.get(2)))
}

/// One committed batch.
struct Batch {
    rows: u64,
    scanned: u64,
    end: Vec<String>,
    done: bool,
}

enum Failure {
    Timeout,
    Retry(tokio_postgres::Error),
    Fatal(tokio_postgres::Error),
}

async fn walk(
    client: &Client,
    tables: &Tables,
    spec: &Spec,
    opts: &Options<'_>,
    p: &Prepared,
    id: i64,
    resumed: bool,
) -> Result<Outcome, BackfillError> {
    let started = Instant::now();
    let status: String = client
        .query_one(
            &format!("SELECT status FROM {} WHERE id = $1", tables.backfills()),
            &[&id],
        )
        .await
        .map_err(|e| db("reading the backfill", e))?
        .get(0);
    let (rows_done, rows_scanned, batches) = totals(client, tables, id).await?;
    if status == "done" {
        return Ok(Outcome {
            name: spec.name.clone(),
            rows: rows_done,
            batches,
            elapsed_ms: 0,
            remaining: None,
            already_done: true,
        });
    }
    if status == "failed" {
        client
            .execute(
                &format!("UPDATE {} SET status = 'running', error = NULL WHERE id = $1 AND status = 'failed'", tables.backfills()),
                &[&id],
            )
            .await
            .map_err(|e| db("resuming the backfill", e))?;
    }
    let mut all = parts(client, tables, id).await?;
    let policy = opts.policy;
    let sizing = Sizing {
        target: policy.target_batch_time.std(),
        min: policy.min_batch_size,
        max: policy.max_batch_size,
    };
    let mut size = spec
        .batch_size
        .unwrap_or(policy.batch_size)
        .clamp(sizing.min, sizing.max);
    (opts.events)(&BackfillEvent::Started {
        name: spec.name.clone(),
        table: p.stmt.qualified(),
        key: p.key.names(),
        per: p.per.as_ref().map(|c| c.name.clone()),
        parts: all.len(),
        parts_done: all.iter().filter(|x| x.done).count(),
        estimate: p.info.estimate,
        rows_done,
        rows_scanned,
        resumed,
        batch_size: size,
    });
    let (mut total_rows, mut total_scanned) = (rows_done, rows_scanned);
    for part in all.iter_mut().filter(|x| !x.done) {
        let Some(upper) = part.upper.clone() else {
            continue;
        };
        loop {
            hold(client, tables, spec, opts, p, id, total_rows).await?;
            let (batch, elapsed, used) =
                run_batch(client, tables, opts, p, id, part, &upper, &mut size, spec).await?;
            total_rows += batch.rows as i64;
            total_scanned += batch.scanned as i64;
            part.rows_done += batch.rows as i64;
            part.last = Some(batch.end.clone());
            (opts.events)(&BackfillEvent::Batch {
                part: part.part,
                tenant: part.tenant.clone(),
                rows: batch.rows,
                scanned: batch.scanned,
                size: used,
                elapsed,
                total_rows,
                total_scanned,
            });
            size = sizing.next(used, batch.scanned, elapsed);
            if batch.done {
                part.done = true;
                (opts.events)(&BackfillEvent::PartDone {
                    part: part.part,
                    tenant: part.tenant.clone(),
                    rows: part.rows_done,
                });
                break;
            }
            if !policy.pause_between.std().is_zero() {
                tokio::time::sleep(policy.pause_between.std()).await;
            }
        }
    }
    let remaining = verify(client, p, policy).await;
    client
        .execute(
            &format!(
                "UPDATE {} SET status = 'done', remaining = $2, hold_reason = NULL, finished_at = now(), \
                 updated_at = now() WHERE id = $1",
                tables.backfills()
            ),
            &[&id, &remaining],
        )
        .await
        .map_err(|e| db("recording the finished backfill", e))?;
    let (rows, _, batches) = totals(client, tables, id).await?;
    let elapsed = started.elapsed();
    (opts.events)(&BackfillEvent::Finished {
        name: spec.name.clone(),
        rows,
        batches,
        elapsed,
        remaining,
    });
    Ok(Outcome {
        name: spec.name.clone(),
        rows,
        batches,
        elapsed_ms: elapsed.as_millis() as u64,
        remaining,
        already_done: false,
    })
}

/// Waits while any signal trips; returns at once when none does.
async fn hold(
    client: &Client,
    tables: &Tables,
    spec: &Spec,
    opts: &Options<'_>,
    p: &Prepared,
    id: i64,
    rows: i64,
) -> Result<(), BackfillError> {
    let mut since: Option<Instant> = None;
    let mut reported: Vec<String> = Vec::new();
    loop {
        // A signal that cannot be read holds, but a connection that is
        // gone (server restart, network) can never read one again: stop,
        // so that a new run resumes after the last committed batch.
        if client.is_closed() {
            return Err(BackfillError::Db {
                context: "checking the backfill's health signals".into(),
                message: "the connection to the server was lost".into(),
                code: None,
            });
        }
        let (holds, control) = throttle::check(client, tables, id, p.info.oid, opts.policy).await;
        if control == Control::Cancel {
            return Err(BackfillError::Cancelled {
                name: spec.name.clone(),
                rows,
            });
        }
        if holds.is_empty() {
            if let Some(s) = since {
                let _ = client
                    .execute(
                        &format!(
                            "UPDATE {} SET hold_reason = NULL WHERE id = $1",
                            tables.backfills()
                        ),
                        &[&id],
                    )
                    .await;
                (opts.events)(&BackfillEvent::Released { held: s.elapsed() });
            }
            return Ok(());
        }
        let reasons: Vec<String> = holds.iter().map(|h| h.to_string()).collect();
        since.get_or_insert_with(Instant::now);
        if reasons != reported {
            let _ = client
                .execute(
                    &format!(
                        "UPDATE {} SET hold_reason = $2, updated_at = now() WHERE id = $1",
                        tables.backfills()
                    ),
                    &[&id, &reasons.join("; ")],
                )
                .await;
            (opts.events)(&BackfillEvent::Held {
                reasons: reasons.clone(),
            });
            reported = reasons;
        }
        tokio::time::sleep(opts.policy.hold_check_interval.std()).await;
    }
}

/// Runs the next batch of `part`, splitting on statement timeouts and
/// retrying lock failures. Returns the batch, its time and its size.
#[allow(clippy::too_many_arguments)]
async fn run_batch(
    client: &Client,
    tables: &Tables,
    opts: &Options<'_>,
    p: &Prepared,
    id: i64,
    part: &Part,
    upper: &[String],
    size: &mut u64,
    spec: &Spec,
) -> Result<(Batch, Duration, u64), BackfillError> {
    let mut retries = 0u32;
    loop {
        let t = Instant::now();
        match try_batch(client, tables, opts.policy, p, id, part, upper, *size).await {
            Ok(b) => return Ok((b, t.elapsed(), *size)),
            Err(Failure::Timeout) => match (Sizing {
                target: opts.policy.target_batch_time.std(),
                min: opts.policy.min_batch_size,
                max: opts.policy.max_batch_size,
            })
            .split(*size)
            {
                Some(next) => {
                    (opts.events)(&BackfillEvent::Split { from: *size, to: next });
                    *size = next;
                }
                None => {
                    return Err(BackfillError::BatchFailed {
                        name: spec.name.clone(),
                        tries: retries + 1,
                        message: format!(
                            "one row took longer than [backfill] batch_timeout ({}ms)",
                            opts.policy.batch_timeout.as_millis()
                        ),
                        code: Some("57014".into()),
                        hint: "raise [backfill] batch_timeout, or make the statement cheaper per row (an index for its subqueries)".into(),
                    })
                }
            },
            Err(Failure::Retry(e)) if retries < opts.dml.max_retries => {
                retries += 1;
                let sleep = backoff(opts.dml.backoff_base.std(), opts.dml.backoff_max.std(), retries);
                (opts.events)(&BackfillEvent::Retry {
                    attempt: retries,
                    error: pg_message(&e),
                    sleep,
                });
                tokio::time::sleep(sleep).await;
            }
            Err(Failure::Retry(e)) | Err(Failure::Fatal(e)) => {
                return Err(BackfillError::BatchFailed {
                    name: spec.name.clone(),
                    tries: retries + 1,
                    message: pg_message(&e),
                    code: sqlstate(&e),
                    hint: "committed batches stay recorded; fix the cause and run the same backfill again to resume"
                        .into(),
                })
            }
        }
    }
}

/// Exponential backoff with jitter, as the DML policy retries.
fn backoff(base: Duration, max: Duration, attempt: u32) -> Duration {
    let exp = base.saturating_mul(1u32 << attempt.saturating_sub(1).min(20));
    exp.min(max)
        .mul_f64(rand::thread_rng().gen_range(0.5..=1.0))
}

#[allow(clippy::too_many_arguments)]
async fn try_batch(
    client: &Client,
    tables: &Tables,
    policy: &BackfillPolicy,
    p: &Prepared,
    id: i64,
    part: &Part,
    upper: &[String],
    size: u64,
) -> Result<Batch, Failure> {
    let classify = |e: tokio_postgres::Error| match sqlstate(&e).as_deref() {
        Some("57014") => Failure::Timeout,
        Some("55P03" | "40P01" | "40001") => Failure::Retry(e),
        _ => Failure::Fatal(e),
    };
    let begin = format!(
        "BEGIN; SET LOCAL lock_timeout = {}; SET LOCAL statement_timeout = {};",
        quote_literal(&policy.lock_timeout.pg_setting()),
        quote_literal(&policy.batch_timeout.pg_setting()),
    );
    let result = async {
        client.batch_execute(&begin).await?;
        let probe = client.query_opt(&p.probe_sql(part, upper, size), &[]).await?;
        let n = p.key.columns.len();
        let (end, scanned, done) = match probe {
            None => (upper.to_vec(), 0u64, true),
            Some(r) => {
                let last: Vec<String> = (0..n).map(|i| r.get(i)).collect();
                let count: i64 = r.get(n);
                let count = count as u64;
                if count < size || last == upper {
                    // The range's end: take the whole captured range, so a
                    // key inserted meanwhile below the bound is not missed.
                    (upper.to_vec(), count, true)
                } else {
                    (last, count, false)
                }
            }
        };
        let rows = if scanned > 0 {
            client.execute(&p.batch_sql(part, &end), &[]).await?
        } else {
            0
        };
        client
            .execute(
                &format!(
                    "UPDATE {} SET last_key = $3, rows_done = rows_done + $4, rows_scanned = rows_scanned + $5, \
                     batches = batches + 1, done = $6 WHERE backfill_id = $1 AND part = $2",
                    tables.parts()
                ),
                &[&id, &part.part, &end, &(rows as i64), &(scanned as i64), &done],
            )
            .await?;
        client
            .execute(
                &format!(
                    "UPDATE {} SET rows_done = rows_done + $2, rows_scanned = rows_scanned + $3, \
                     batches = batches + 1, updated_at = now() WHERE id = $1",
                    tables.backfills()
                ),
                &[&id, &(rows as i64), &(scanned as i64)],
            )
            .await?;
        client.batch_execute("COMMIT").await?;
        Ok::<Batch, tokio_postgres::Error>(Batch {
            rows,
            scanned,
            end,
            done,
        })
    }
    .await;
    match result {
        Ok(b) => Ok(b),
        Err(e) => {
            let _ = client.batch_execute("ROLLBACK").await;
            Err(classify(e))
        }
    }
}

/// Counts the rows still matching the WHERE, up to [`VERIFY_LIMIT`].
async fn verify(client: &Client, p: &Prepared, policy: &BackfillPolicy) -> Option<i64> {
    p.stmt.filter.as_ref()?;
    let begin = format!(
        "BEGIN; SET LOCAL statement_timeout = {};",
        quote_literal(&policy.batch_timeout.pg_setting())
    );
    let count = format!(
        "SELECT count(*) FROM ({} LIMIT {VERIFY_LIMIT}) s",
        p.stmt.verify_from
    );
    let counted = async {
        client.batch_execute(&begin).await?;
        let r = client.query_one(&count, &[]).await?;
        client.batch_execute("COMMIT").await?;
        Ok::<i64, tokio_postgres::Error>(r.get(0))
    }
    .await;
    match counted {
        Ok(n) => Some(n),
        Err(_) => {
            let _ = client.batch_execute("ROLLBACK").await;
            None
        }
    }
}
