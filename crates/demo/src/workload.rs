//! The application: a steady stream of writes to the demo table at a fixed
//! rate, each one timed.
//!
//! The rate is fixed (open loop): a ticker makes a write due every
//! `1/rate` seconds whatever happened to the earlier ones, and a pool of
//! connections works through them. A write's latency runs from when it was
//! due, so a stall shows as what the application would see: writes piling
//! up behind a lock and all finishing late, not a load generator that
//! politely slows down.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use lull_engine::db::connect;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::sync::{mpsc, Mutex};
use tokio::task::JoinHandle;
use tokio_postgres::Client;

use crate::report::WriteSample;
use crate::{DemoError, CUSTOMERS};

/// How the workload writes.
#[derive(Debug, Clone)]
pub struct WorkloadOptions {
    /// Writes per second.
    pub rate: u32,
    /// Connections in the pool.
    pub connections: usize,
    /// Rows in `orders` when the run starts (updates pick one of them).
    pub rows: u64,
}

/// One write to do.
struct Job {
    /// Its number, the key in [`Pending`].
    seq: u32,
    /// When it was due.
    due: Instant,
    /// What it writes.
    write: Write,
}

enum Write {
    /// Bump one existing order's amount.
    Update { id: i64 },
    /// A new order.
    Insert { customer: i64 },
}

/// Writes due and not done yet, by number, with when each was due.
type Pending = Arc<std::sync::Mutex<BTreeMap<u32, Instant>>>;

/// Looks at the writes in flight of a running [`Workload`].
#[derive(Clone)]
pub struct Probe {
    pending: Pending,
}

impl Probe {
    /// How many writes are due and not done, and how long the oldest of
    /// them has waited.
    pub fn waiting(&self) -> (usize, Duration) {
        let pending = self.pending.lock().unwrap();
        // Numbers are given in the order writes fall due: the first is
        // the oldest.
        let oldest = pending
            .values()
            .next()
            .map(|due| due.elapsed())
            .unwrap_or_default();
        (pending.len(), oldest)
    }
}

/// A running workload. [`Workload::stop`] ends it and returns what it
/// measured.
pub struct Workload {
    stop: Arc<AtomicBool>,
    pending: Pending,
    ticker: JoinHandle<()>,
    workers: Vec<JoinHandle<(Vec<WriteSample>, Option<String>)>>,
}

impl Workload {
    /// Connects the pool and starts writing. Latencies are measured from
    /// `origin`.
    pub async fn start(
        url: &str,
        origin: Instant,
        opts: &WorkloadOptions,
    ) -> Result<Workload, DemoError> {
        let (tx, rx) = mpsc::unbounded_channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        let pending = Pending::default();
        let mut workers = Vec::new();
        for _ in 0..opts.connections.max(1) {
            let client = connect(url, "lull demo writer").await?;
            let update = client
                .prepare("UPDATE orders SET amount = amount + 1 WHERE id = $1")
                .await
                .map_err(|e| DemoError::db("preparing the workload's update", e))?;
            let insert = client
                .prepare("INSERT INTO orders (customer_id, amount, note) VALUES ($1, 1, 'demo')")
                .await
                .map_err(|e| DemoError::db("preparing the workload's insert", e))?;
            let rx = rx.clone();
            let pending = pending.clone();
            workers.push(tokio::spawn(async move {
                worker(client, update, insert, rx, pending, origin).await
            }));
        }
        let stop = Arc::new(AtomicBool::new(false));
        let ticker = tokio::spawn(ticker(
            tx,
            stop.clone(),
            pending.clone(),
            opts.rate.max(1),
            opts.rows.max(1),
        ));
        Ok(Workload {
            stop,
            pending,
            ticker,
            workers,
        })
    }

    /// A handle that tells, from any task, how the writes are doing.
    pub fn probe(&self) -> Probe {
        Probe {
            pending: self.pending.clone(),
        }
    }

    /// Stops making writes due, waits for the ones in flight and returns
    /// every sample, sorted by when it was due. The first write error, if
    /// any, is returned beside them (the failed writes are in the samples).
    pub async fn stop(self) -> (Vec<WriteSample>, Option<String>) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = self.ticker.await;
        let mut samples = Vec::new();
        let mut first_error = None;
        for w in self.workers {
            match w.await {
                Ok((s, err)) => {
                    samples.extend(s);
                    if let Some(e) = err {
                        first_error.get_or_insert(e);
                    }
                }
                Err(e) => {
                    first_error.get_or_insert(format!("a writer task failed: {e}"));
                }
            }
        }
        samples.sort_by_key(|s| s.due);
        (samples, first_error)
    }
}

async fn ticker(
    tx: mpsc::UnboundedSender<Job>,
    stop: Arc<AtomicBool>,
    pending: Pending,
    rate: u32,
    rows: u64,
) {
    let period = Duration::from_secs(1) / rate;
    let start = Instant::now();
    let mut rng = StdRng::from_entropy();
    for seq in 0u32.. {
        let due = start + period * seq;
        tokio::time::sleep_until(due.into()).await;
        if stop.load(Ordering::SeqCst) {
            break;
        }
        // Three updates to one insert: the table grows a little and its
        // existing rows are written, as in most applications.
        let write = if seq % 4 == 3 {
            Write::Insert {
                customer: rng.gen_range(1..=CUSTOMERS),
            }
        } else {
            Write::Update {
                id: rng.gen_range(1..=rows as i64),
            }
        };
        pending.lock().unwrap().insert(seq, due);
        if tx.send(Job { seq, due, write }).is_err() {
            break;
        }
    }
}

async fn worker(
    client: Client,
    update: tokio_postgres::Statement,
    insert: tokio_postgres::Statement,
    rx: Arc<Mutex<mpsc::UnboundedReceiver<Job>>>,
    pending: Pending,
    origin: Instant,
) -> (Vec<WriteSample>, Option<String>) {
    let mut samples = Vec::new();
    let mut first_error = None;
    loop {
        let job = { rx.lock().await.recv().await };
        let Some(job) = job else { break };
        let result = match &job.write {
            Write::Update { id } => client.execute(&update, &[id]).await,
            Write::Insert { customer } => client.execute(&insert, &[customer]).await,
        };
        pending.lock().unwrap().remove(&job.seq);
        let due = job.due;
        samples.push(WriteSample {
            due: due.saturating_duration_since(origin),
            latency: due.elapsed(),
            ok: result.is_ok(),
        });
        if let Err(e) = result {
            first_error.get_or_insert_with(|| lull_engine::pg_message(&e));
            if client.is_closed() {
                break;
            }
        }
    }
    (samples, first_error)
}
