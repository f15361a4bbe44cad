//! The runner as a library in naive mode (what `lull demo` compares
//! against): statements as written, no lock_timeout and no retries, with
//! progress through the event callback.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use lull_engine::{Event, Mode, Runner, RunnerOptions};
use lull_sandbox::testing::TestDb;

#[test]
fn naive_mode_waits_behind_a_blocker_without_retries_and_runs_sql_as_written() {
    let db = TestDb::new();
    db.client()
        .batch_execute("create table t (id int); insert into t values (1)")
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let sql = "create index t_id on t (id);\nalter table t add column c int;\n";
    std::fs::write(dir.path().join("001_change.sql"), sql).unwrap();
    let migrations = lull_migrations::discover(dir.path()).unwrap();

    let mut blocker = db.client();
    blocker
        .batch_execute("begin; lock table t in access share mode")
        .unwrap();
    let release = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(1500));
        blocker.batch_execute("commit").unwrap();
    });

    let mut opts = RunnerOptions::new(db.url());
    opts.mode = Mode::Naive;
    let events = Arc::new(Mutex::new(Vec::new()));
    let sink = events.clone();
    let runner = Runner::new(opts).with_events(Arc::new(move |e: &Event| {
        sink.lock().unwrap().push(e.clone())
    }));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let started = Instant::now();
    let summary = rt.block_on(runner.migrate(&migrations, None)).unwrap();
    let waited = started.elapsed();
    release.join().unwrap();

    assert_eq!(summary.versions, ["001"]);
    // It sat behind the blocker instead of giving up and retrying.
    assert!(waited >= Duration::from_millis(1000), "{waited:?}");
    let events = events.lock().unwrap();
    assert!(!events
        .iter()
        .any(|e| matches!(e, Event::LockRetry { .. } | Event::Retry { .. })));
    assert!(events
        .iter()
        .any(|e| matches!(e, Event::MigrationFinished { .. })));
    // One step with the file's SQL, no rewrite to CONCURRENTLY.
    let mut c = db.client();
    let row = c
        .query_one(
            "select count(*), min(sql) from lull.steps where version = '001'",
            &[],
        )
        .unwrap();
    assert_eq!(row.get::<_, i64>(0), 1);
    let recorded: String = row.get(1);
    assert!(
        recorded.starts_with("create index t_id on t (id)"),
        "{recorded}"
    );
    let mode: String = c
        .query_one(
            "select mode from lull.migrations where version = '001'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(mode, "naive");
}
