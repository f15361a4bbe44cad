//! `build_index` against a real server: a build that succeeds (and is
//! recognised as done when repeated), progress that names the session a
//! build waits for, and a cancel that leaves no INVALID index behind.

use std::sync::{Arc, Mutex};

use lull_config::Policies;
use lull_engine::index_build::{
    build_index, CancelToken, IndexBuild, IndexBuildErrorKind, IndexEvent,
};
use lull_sandbox::testing::TestDb;

/// The sync `postgres` client of the harness cannot run inside a tokio
/// runtime, so each test drives the async call on its own runtime.
fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

fn build(name: &str) -> IndexBuild {
    IndexBuild {
        schema: None,
        name: name.into(),
        sql: format!("CREATE INDEX CONCURRENTLY {name} ON t (a)"),
    }
}

#[test]
fn builds_a_valid_index_and_recognises_it_afterwards() {
    let db = TestDb::new();
    db.client()
        .batch_execute("create table t (a int); insert into t select generate_series(1, 10000)")
        .unwrap();
    let events = Arc::new(Mutex::new(Vec::new()));
    let sink = events.clone();
    let on_event = move |e: &IndexEvent| sink.lock().unwrap().push(e.clone());
    let policy = Policies::default().index;
    let report = block_on(build_index(
        db.url(),
        &build("t_a"),
        &policy,
        &CancelToken::new(),
        &on_event,
    ))
    .unwrap();
    assert_eq!(report.tries, 1);
    assert!(!report.already_valid);
    assert!(events
        .lock()
        .unwrap()
        .iter()
        .any(|e| matches!(e, IndexEvent::Started { attempt: 1, pid } if *pid > 0)));
    let valid: bool = db
        .client()
        .query_one(
            "select indisvalid from pg_index where indexrelid = 't_a'::regclass",
            &[],
        )
        .unwrap()
        .get(0);
    assert!(valid);

    let again = block_on(build_index(
        db.url(),
        &build("t_a"),
        &policy,
        &CancelToken::new(),
        &on_event,
    ))
    .unwrap();
    assert!(again.already_valid);
    assert_eq!(again.tries, 0);
}

#[test]
fn progress_names_the_waited_for_session_and_cancel_cleans_up() {
    let db = TestDb::new();
    db.client()
        .batch_execute("create table t (a int); insert into t select generate_series(1, 1000); create table other (x int)")
        .unwrap();
    // An open snapshot the build has to wait for at its end.
    let mut reader = db.client();
    let reader_pid: i32 = reader
        .query_one("select pg_backend_pid()", &[])
        .unwrap()
        .get(0);
    reader
        .batch_execute("begin isolation level repeatable read; select count(*) from other")
        .unwrap();

    let cancel = CancelToken::new();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let (sink, token) = (seen.clone(), cancel.clone());
    let on_event = move |e: &IndexEvent| {
        if let IndexEvent::Progress(p) = e {
            if p.waiting_for.contains(&reader_pid) {
                token.cancel();
            }
        }
        sink.lock().unwrap().push(e.clone());
    };
    let policy = Policies::default().index;
    let err = block_on(build_index(
        db.url(),
        &build("t_a"),
        &policy,
        &cancel,
        &on_event,
    ))
    .unwrap_err();
    assert!(matches!(err.kind, IndexBuildErrorKind::Cancelled), "{err}");
    let events = seen.lock().unwrap().clone();
    let waiting = events.iter().find_map(|e| match e {
        IndexEvent::Progress(p) if p.waiting_for.contains(&reader_pid) => Some(p.clone()),
        _ => None,
    });
    let waiting = waiting.expect("a progress event naming the reader");
    assert!(waiting.phase.starts_with("waiting"), "{}", waiting.phase);
    assert!(
        events
            .iter()
            .any(|e| matches!(e, IndexEvent::DroppedInvalid { .. })),
        "{events:?}"
    );
    let left: i64 = db
        .client()
        .query_one("select count(*) from pg_class where relname = 't_a'", &[])
        .unwrap()
        .get(0);
    assert_eq!(left, 0);
    reader.batch_execute("commit").unwrap();
}
