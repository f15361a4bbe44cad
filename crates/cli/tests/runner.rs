//! The runner through the CLI against a real PostgreSQL: `lull plan`,
//! `migrate`, `status`, `rollback`, `mark-applied`, and the behaviour the
//! issue asks for (lock contention, INVALID leftovers, kill -9 and resume,
//! two runners, refused edits, missing downs, malformed SQL).
//!
//! Timing assertions are about behaviour with wide margins (a writer stuck
//! for the blocker's whole life versus about one lock_timeout), never about
//! speed.

use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use assert_cmd::Command;
use lull_sandbox::testing::TestDb;
use predicates::prelude::*;

/// A project directory with `migrations/` and an optional lull.toml.
struct Project {
    dir: tempfile::TempDir,
    db: TestDb,
}

impl Project {
    fn new() -> Project {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("migrations")).unwrap();
        Project {
            dir,
            db: TestDb::new(),
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn write(&self, name: &str, sql: &str) -> PathBuf {
        let path = self.path().join("migrations").join(name);
        std::fs::write(&path, sql).unwrap();
        path
    }

    fn config(&self, toml: &str) {
        std::fs::write(self.path().join("lull.toml"), toml).unwrap();
    }

    fn lull(&self) -> Command {
        let mut cmd = Command::cargo_bin("lull").unwrap();
        cmd.current_dir(self.path())
            .env_remove("LULL_ENV")
            .env("DATABASE_URL", self.db.url())
            .env("NO_COLOR", "1");
        cmd
    }

    /// The binary as a child process, for tests that kill it or run two.
    fn spawn(&self, args: &[&str]) -> Child {
        std::process::Command::new(assert_cmd::cargo::cargo_bin("lull"))
            .args(args)
            .current_dir(self.path())
            .env_remove("LULL_ENV")
            .env("DATABASE_URL", self.db.url())
            .env("NO_COLOR", "1")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    }

    fn client(&self) -> postgres::Client {
        self.db.client()
    }

    fn scalar_i64(&self, sql: &str) -> i64 {
        self.client().query_one(sql, &[]).unwrap().get(0)
    }

    fn statuses(&self) -> Vec<(String, String)> {
        self.client()
            .query(
                "SELECT version, status FROM lull.migrations ORDER BY version",
                &[],
            )
            .unwrap()
            .into_iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect()
    }
}

/// A session holding `lock_sql`'s locks in an open transaction until told
/// to stop (or for `hold`); returns its pid and a sender that ends it.
fn hold_lock(url: &str, lock_sql: &str) -> (i32, mpsc::Sender<()>, thread::JoinHandle<()>) {
    let mut client = postgres::Client::connect(url, postgres::NoTls).unwrap();
    let pid: i32 = client
        .query_one("SELECT pg_backend_pid()", &[])
        .unwrap()
        .get(0);
    client.batch_execute("BEGIN").unwrap();
    client.batch_execute(lock_sql).unwrap();
    let (tx, rx) = mpsc::channel::<()>();
    let handle = thread::spawn(move || {
        let _ = rx.recv();
        let _ = client.batch_execute("COMMIT");
    });
    (pid, tx, handle)
}

fn output_text(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Waits until `sql` returns true, or panics after `limit`.
fn wait_until(p: &Project, sql: &str, limit: Duration) {
    let start = Instant::now();
    let mut client = p.client();
    loop {
        let ok: bool = client.query_one(sql, &[]).unwrap().get(0);
        if ok {
            return;
        }
        assert!(start.elapsed() < limit, "timed out waiting for: {sql}");
        thread::sleep(Duration::from_millis(50));
    }
}

/// True once a CONCURRENTLY build waits for the test's open snapshot (its
/// INVALID index is in the catalog by then).
const WAITING_FOR_SNAPSHOTS: &str =
    "SELECT EXISTS (SELECT FROM pg_stat_progress_create_index WHERE phase = 'waiting for old snapshots' AND datname = current_database())";

const SHORT_BUDGET: &str = "[policy.ddl]\nwait_budget = \"1s\"\n";

#[test]
fn migrate_status_rollback_round_trip() {
    let p = Project::new();
    p.write(
        "001_users.sql",
        "create table users (id int primary key, email text);\n-- lull:down\ndrop table users;\n",
    );
    p.write(
        "002_email_index.sql",
        "create index users_email on users (email);\nalter table users add column note text;\n\
         -- lull:down\nalter table users drop column note;\ndrop index users_email;\n",
    );
    p.lull().arg("plan").assert().success().stdout(
        predicate::str::contains("CONCURRENTLY")
            .and(predicate::str::contains("rewrite concurrently")),
    );
    p.lull()
        .arg("migrate")
        .assert()
        .success()
        .stderr(predicate::str::contains("applied 2 migrations"));
    assert_eq!(
        p.statuses(),
        [
            ("001".into(), "applied".into()),
            ("002".into(), "applied".into())
        ]
    );
    let valid: bool = p
        .client()
        .query_one(
            "SELECT indisvalid FROM pg_index WHERE indexrelid = 'users_email'::regclass",
            &[],
        )
        .unwrap()
        .get(0);
    assert!(valid);

    let out = p
        .lull()
        .args(["status", "--format", "json"])
        .assert()
        .success();
    let json: serde_json::Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    let list = json.as_array().unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!(list[1]["version"], "002");
    assert_eq!(list[1]["name"], "email_index");
    assert_eq!(list[1]["status"], "applied");
    let steps = list[1]["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 2, "{steps:?}");
    assert!(steps.iter().all(|s| s["status"] == "done"));

    p.lull()
        .arg("plan")
        .assert()
        .success()
        .stdout(predicate::str::contains("nothing to do"));
    p.lull()
        .args(["rollback"])
        .assert()
        .success()
        .stderr(predicate::str::contains("rolled back 1 migration"));
    assert_eq!(p.statuses(), [("001".into(), "applied".into())]);
    assert_eq!(
        p.scalar_i64("SELECT count(*) FROM pg_class WHERE relname = 'users_email'"),
        0
    );
    p.lull()
        .arg("status")
        .assert()
        .success()
        .stdout(predicate::str::contains("pending"));
}

#[test]
fn lock_contention_retries_then_succeeds_when_released() {
    let p = Project::new();
    p.client().batch_execute("create table t (id int)").unwrap();
    p.write("001_add.sql", "alter table t add column c int;\n");
    let (_pid, release, handle) = hold_lock(p.db.url(), "LOCK TABLE t IN ACCESS SHARE MODE");
    let child = p.spawn(&["migrate"]);
    // Let lull watch the holder for a while, then release it.
    wait_until(
        &p,
        "SELECT EXISTS (SELECT FROM pg_stat_activity WHERE application_name = 'lull monitor' AND datname = current_database())",
        Duration::from_secs(30),
    );
    thread::sleep(Duration::from_millis(1500));
    release.send(()).unwrap();
    handle.join().unwrap();
    let out = child.wait_with_output().unwrap();
    let text = output_text(&out);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("waiting for a gap"), "{text}");
    assert_eq!(p.scalar_i64("SELECT count(*) FROM information_schema.columns WHERE table_name = 't' AND column_name = 'c'"), 1);
}

#[test]
fn lock_never_released_exhausts_with_blocker_report_and_consistent_state() {
    let p = Project::new();
    p.config(SHORT_BUDGET);
    p.client()
        .batch_execute("create table t (id int); create table log (n int)")
        .unwrap();
    p.write(
        "001_add.sql",
        "insert into log values (1);\nalter table t add column c int;\n",
    );
    let (pid, release, handle) = hold_lock(p.db.url(), "LOCK TABLE t IN ACCESS SHARE MODE");
    // A holder younger than a try's lock_timeout (50 ms) may be waited out
    // by one try; this test is about one lull never queues behind, so the
    // holder is made old first.
    wait_until(
        &p,
        &format!("SELECT now() - xact_start > interval '1 second' FROM pg_stat_activity WHERE pid = {pid}"),
        Duration::from_secs(30),
    );
    let out = p.lull().arg("migrate").assert().code(1);
    let text = output_text(out.get_output());
    assert!(
        text.contains("could not take its locks within its wait budget"),
        "{text}"
    );
    assert!(
        text.contains(&format!("pid {pid}")),
        "blocker pid {pid} missing: {text}"
    );
    assert!(text.contains("LOCK TABLE t"), "{text}");
    // Consistent: nothing of the step committed, the failure recorded.
    assert_eq!(p.scalar_i64("SELECT count(*) FROM log"), 0);
    assert_eq!(p.statuses(), [("001".into(), "failed".into())]);
    assert_eq!(
        p.scalar_i64("SELECT tries::bigint FROM lull.steps WHERE version = '001'"),
        0,
        "the step never queued behind the holder, and records that it made no try"
    );
    release.send(()).unwrap();
    handle.join().unwrap();
    p.lull().arg("migrate").assert().success();
    assert_eq!(p.scalar_i64("SELECT count(*) FROM log"), 1);
    assert_eq!(p.statuses(), [("001".into(), "applied".into())]);
}

#[test]
fn lock_exhaustion_in_json_reports_the_blocker() {
    let p = Project::new();
    p.config(SHORT_BUDGET);
    p.client().batch_execute("create table t (id int)").unwrap();
    p.write("001_add.sql", "alter table t add column c int;\n");
    let (pid, release, handle) = hold_lock(p.db.url(), "LOCK TABLE t IN ACCESS SHARE MODE");
    let out = p
        .lull()
        .args(["migrate", "--format", "json"])
        .assert()
        .code(1);
    let stdout = String::from_utf8_lossy(&out.get_output().stdout).to_string();
    let last: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert_eq!(last["event"], "error");
    assert_eq!(last["blockers"]["blockers"][0]["pid"], pid, "{stdout}");
    let waiting: Vec<serde_json::Value> = stdout
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .filter(|v: &serde_json::Value| v["event"] == "lock-waiting")
        .collect();
    assert!(!waiting.is_empty(), "{stdout}");
    assert_eq!(waiting[0]["holders"][0]["pid"], pid, "{stdout}");
    assert_eq!(
        waiting[0]["holders"][0]["mode"], "AccessShareLock",
        "{stdout}"
    );
    release.send(()).unwrap();
    handle.join().unwrap();
}

/// Runs inserts into `t` every 50 ms for `for_how_long` and returns the
/// worst latency.
fn writer(url: String, for_how_long: Duration) -> thread::JoinHandle<Duration> {
    thread::spawn(move || {
        let mut client = postgres::Client::connect(&url, postgres::NoTls).unwrap();
        let start = Instant::now();
        let mut worst = Duration::ZERO;
        while start.elapsed() < for_how_long {
            let t = Instant::now();
            client
                .batch_execute("INSERT INTO t (id) VALUES (1)")
                .unwrap();
            worst = worst.max(t.elapsed());
            thread::sleep(Duration::from_millis(50));
        }
        worst
    })
}

#[test]
fn alter_behind_a_long_read_does_not_stall_writers_but_plain_alter_does() {
    let blocker_life = Duration::from_secs(5);
    // lull: watching for the gap keeps the writer's worst wait near one
    // short try at most.
    let p = Project::new();
    p.client().batch_execute("create table t (id int)").unwrap();
    p.write("001_add.sql", "alter table t add column c int;\n");
    let (_pid, release, handle) = hold_lock(p.db.url(), "SELECT count(*) FROM t");
    let child = p.spawn(&["migrate"]);
    thread::sleep(Duration::from_millis(300));
    let w = writer(
        p.db.url().to_string(),
        blocker_life - Duration::from_millis(500),
    );
    thread::sleep(blocker_life - Duration::from_millis(300));
    release.send(()).unwrap();
    handle.join().unwrap();
    let lull_worst = w.join().unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", output_text(&out));

    // The same ALTER without lull: the writer queues behind it for the
    // blocker's whole life.
    let q = Project::new();
    q.client().batch_execute("create table t (id int)").unwrap();
    let (_pid, release, handle) = hold_lock(q.db.url(), "SELECT count(*) FROM t");
    let url = q.db.url().to_string();
    let plain = thread::spawn(move || {
        let mut c = postgres::Client::connect(&url, postgres::NoTls).unwrap();
        c.batch_execute("alter table t add column c int").unwrap();
    });
    thread::sleep(Duration::from_millis(300));
    let w = writer(q.db.url().to_string(), Duration::from_millis(500));
    thread::sleep(blocker_life - Duration::from_millis(300));
    release.send(()).unwrap();
    handle.join().unwrap();
    plain.join().unwrap();
    let plain_worst = w.join().unwrap();

    assert!(
        lull_worst < Duration::from_secs(1),
        "lull's ALTER stalled a writer for {lull_worst:?}"
    );
    assert!(
        plain_worst > Duration::from_secs(2),
        "the plain ALTER stalled the writer only {plain_worst:?}"
    );
}

#[test]
fn failed_unique_build_is_reported_and_leftover_rebuilt_after_fix() {
    let p = Project::new();
    p.client()
        .batch_execute("create table t (a int); insert into t values (1), (1), (2)")
        .unwrap();
    p.write("001_unique.sql", "create unique index t_a on t (a);\n");
    let out = p.lull().arg("migrate").assert().code(1);
    let text = output_text(out.get_output());
    assert!(text.contains("t_a") && text.contains("23505"), "{text}");
    assert!(text.contains("duplicate"), "{text}");
    // lull does not leave its INVALID index behind.
    assert_eq!(
        p.scalar_i64("SELECT count(*) FROM pg_class WHERE relname = 't_a'"),
        0
    );

    // An INVALID leftover from someone else's failed build.
    let err = p
        .client()
        .batch_execute("create unique index concurrently t_a on t (a)");
    assert!(err.is_err());
    assert_eq!(
        p.scalar_i64(
            "SELECT count(*) FROM pg_index WHERE indexrelid = 't_a'::regclass AND NOT indisvalid"
        ),
        1
    );
    p.client()
        .batch_execute("delete from t where ctid = (select max(ctid) from t where a = 1)")
        .unwrap();
    p.lull()
        .arg("migrate")
        .assert()
        .success()
        .stderr(predicate::str::contains("dropped INVALID index t_a"));
    assert_eq!(
        p.scalar_i64(
            "SELECT count(*) FROM pg_index WHERE indexrelid = 't_a'::regclass AND indisvalid"
        ),
        1
    );
}

#[test]
fn best_effort_index_failure_is_a_warning_and_a_pending_row() {
    let p = Project::new();
    p.client()
        .batch_execute("create table t (a int); insert into t values (1), (1)")
        .unwrap();
    p.write(
        "001_unique.sql",
        "-- lull:best-effort\ncreate unique index t_a on t (a);\ncreate table after_it (id int);\n",
    );
    p.lull()
        .arg("migrate")
        .assert()
        .success()
        .stderr(predicate::str::contains("warning:"));
    let mut c = p.client();
    let row = c.query_one("SELECT table_name, definition, last_error FROM lull.pending_indexes WHERE name = 't_a'", &[]).unwrap();
    assert_eq!(row.get::<_, String>(0), "t");
    assert!(row.get::<_, String>(1).contains("CONCURRENTLY"));
    assert!(row.get::<_, String>(2).contains("23505"));
    assert_eq!(
        p.scalar_i64("SELECT count(*) FROM pg_class WHERE relname = 'after_it'"),
        1
    );
}

fn kill9(child: &mut Child) {
    // SAFETY: plain kill(2) on our own child's pid.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGKILL);
    }
    let _ = child.wait();
}

#[test]
fn kill_during_a_transactional_step_then_rerun_applies_once() {
    let p = Project::new();
    p.client()
        .batch_execute("create table log (n int)")
        .unwrap();
    p.write(
        "001_slow.sql",
        "insert into log values (1);\nselect pg_sleep(3);\ncreate table done_marker (id int);\n",
    );
    let mut child = p.spawn(&["migrate"]);
    wait_until(
        &p,
        "SELECT EXISTS (SELECT FROM pg_stat_activity WHERE query LIKE 'select pg_sleep%' AND application_name = 'lull' AND datname = current_database())",
        Duration::from_secs(30),
    );
    kill9(&mut child);
    // The orphaned backend ends its sleep and rolls back on its own.
    let out = p
        .lull()
        .args(["migrate", "--lock-wait", "30s"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", output_text(&out));
    assert_eq!(p.scalar_i64("SELECT count(*) FROM log"), 1);
    assert_eq!(p.statuses(), [("001".into(), "applied".into())]);
}

#[test]
fn kill_during_an_index_step_then_rerun_rebuilds() {
    let p = Project::new();
    p.client()
        .batch_execute("create table t (a int); insert into t select g from generate_series(1, 1000) g; create table log (n int)")
        .unwrap();
    p.write(
        "001_index.sql",
        "insert into log values (1);\ncreate index t_a on t (a);\ninsert into log values (2);\n",
    );
    // An open snapshot keeps the CONCURRENTLY build waiting, with its
    // INVALID index already in the catalog.
    let (_pid, release, handle) = hold_lock(
        p.db.url(),
        "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ; SELECT count(*) FROM log",
    );
    let mut child = p.spawn(&["migrate"]);
    wait_until(&p, WAITING_FOR_SNAPSHOTS, Duration::from_secs(30));
    kill9(&mut child);
    // The orphaned build would finish once the snapshot ends; end it now,
    // as a crash of the whole host would, leaving the INVALID index.
    p.client()
        .batch_execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name LIKE 'lull%' AND datname = current_database() AND pid <> pg_backend_pid()")
        .unwrap();
    release.send(()).unwrap();
    handle.join().unwrap();
    assert_eq!(
        p.scalar_i64(
            "SELECT count(*) FROM pg_index WHERE indexrelid = 't_a'::regclass AND NOT indisvalid"
        ),
        1
    );
    let out = p
        .lull()
        .args(["migrate", "--lock-wait", "30s"])
        .output()
        .unwrap();
    let text = output_text(&out);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("dropped INVALID index t_a"), "{text}");
    assert!(text.contains("step 1 skipped"), "{text}");
    assert_eq!(
        p.scalar_i64(
            "SELECT count(*) FROM pg_index WHERE indexrelid = 't_a'::regclass AND indisvalid"
        ),
        1
    );
    assert_eq!(p.scalar_i64("SELECT count(*) FROM log WHERE n = 1"), 1);
    assert_eq!(p.scalar_i64("SELECT count(*) FROM log WHERE n = 2"), 1);
}

#[test]
fn second_runner_refuses_or_waits_without_deadlocking_a_concurrent_build() {
    let p = Project::new();
    p.client()
        .batch_execute(
            "create table t (a int); insert into t select g from generate_series(1, 1000) g",
        )
        .unwrap();
    p.write("001_index.sql", "create index t_a on t (a);\n");
    let (_pid, release, handle) = hold_lock(
        p.db.url(),
        "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ; SELECT count(*) FROM t",
    );
    let first = p.spawn(&["migrate"]);
    wait_until(&p, WAITING_FOR_SNAPSHOTS, Duration::from_secs(30));
    let out = p.lull().arg("migrate").assert().code(3);
    let text = output_text(out.get_output());
    assert!(
        text.contains("another lull runner holds the runner lock (pid"),
        "{text}"
    );
    assert!(text.contains("application lull"), "{text}");
    // A waiting second runner polls without a snapshot, so the build can
    // finish once the reader ends; then the second runner has nothing to do.
    let second = p.spawn(&["migrate", "--lock-wait", "60s"]);
    thread::sleep(Duration::from_millis(1500));
    release.send(()).unwrap();
    handle.join().unwrap();
    let first = first.wait_with_output().unwrap();
    assert!(first.status.success(), "{}", output_text(&first));
    let second = second.wait_with_output().unwrap();
    let text = output_text(&second);
    assert!(second.status.success(), "{text}");
    assert!(text.contains("nothing to apply"), "{text}");
}

#[test]
fn edited_applied_file_is_refused_with_both_checksums() {
    let p = Project::new();
    let path = p.write("001_t.sql", "create table t (id int);\n");
    p.lull().arg("migrate").assert().success();
    std::fs::write(&path, "create table t (id bigint);\n").unwrap();
    let old = lull_migrations::checksum("create table t (id int);\n");
    let new = lull_migrations::checksum("create table t (id bigint);\n");
    p.lull()
        .arg("migrate")
        .assert()
        .code(3)
        .stderr(predicate::str::contains(old.as_str()).and(predicate::str::contains(new.as_str())))
        .stderr(predicate::str::contains("--allow-changed"));
    p.lull()
        .args(["migrate", "--allow-changed"])
        .assert()
        .success();
}

#[test]
fn missing_down_is_reported_before_anything_is_reverted() {
    let p = Project::new();
    p.write(
        "001_a.sql",
        "create table a (id int);\n-- lull:down\ndrop table a;\n",
    );
    p.write("002_b.sql", "create table b (id int);\n");
    p.lull().arg("migrate").assert().success();
    p.lull()
        .args(["rollback", "--steps", "2"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("002_b has no down migration"));
    assert_eq!(p.statuses().len(), 2);
    assert_eq!(
        p.scalar_i64("SELECT count(*) FROM pg_class WHERE relname IN ('a', 'b')"),
        2
    );
}

#[test]
fn malformed_sql_is_reported_with_position_before_anything_runs() {
    let p = Project::new();
    p.write("001_ok.sql", "create table a (id int);\n");
    p.write(
        "002_bad.sql",
        "create table b (id int);\n\ncreate tabel c (id int);\n",
    );
    p.lull().arg("migrate").assert().code(2).stderr(
        predicate::str::contains("002_bad.sql:3:").and(predicate::str::contains("syntax error")),
    );
    assert_eq!(
        p.scalar_i64("SELECT count(*) FROM pg_class WHERE relname = 'a'"),
        0
    );
    // Nothing was created either: not even lull's own schema.
    assert_eq!(
        p.scalar_i64("SELECT count(*) FROM pg_namespace WHERE nspname = 'lull'"),
        0
    );
}

#[test]
fn mark_applied_records_without_running() {
    let p = Project::new();
    p.write("001_a.sql", "create table a (id int);\n");
    p.write("002_b.sql", "create table b (id int);\n");
    p.lull()
        .args(["mark-applied", "001"])
        .assert()
        .success()
        .stderr(predicate::str::contains("recorded 001"));
    p.lull()
        .args(["mark-applied", "999"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("no migration with version 999"));
    p.lull().arg("migrate").assert().success();
    assert_eq!(
        p.scalar_i64("SELECT count(*) FROM pg_class WHERE relname = 'a'"),
        0
    );
    assert_eq!(
        p.scalar_i64("SELECT count(*) FROM pg_class WHERE relname = 'b'"),
        1
    );
    p.lull()
        .arg("status")
        .assert()
        .success()
        .stdout(predicate::str::contains("by mark-applied"));
}

#[test]
fn unreachable_database_is_a_clear_error_without_password() {
    let p = Project::new();
    p.write("001_a.sql", "create table a (id int);\n");
    p.lull()
        .args([
            "migrate",
            "--database-url",
            "postgres://app:hunter2@127.0.0.1:1/x?connect_timeout=2",
        ])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "cannot connect to postgres://app:***@127.0.0.1:1/x",
        ))
        .stderr(predicate::str::contains("hunter2").not());
}

#[test]
fn dml_retries_lock_timeouts_and_fails_clearly_on_statement_timeout() {
    let p = Project::new();
    p.config(
        "[policy.dml]\nlock_timeout = \"100ms\"\nstatement_timeout = \"300ms\"\nmax_retries = 30\n\
         backoff_base = \"100ms\"\nbackoff_max = \"200ms\"\n",
    );
    p.client().batch_execute("create table t (id int)").unwrap();
    p.write("001_fill.sql", "insert into t values (1);\n");
    let (_pid, release, handle) = hold_lock(p.db.url(), "LOCK TABLE t IN ACCESS EXCLUSIVE MODE");
    let child = p.spawn(&["migrate"]);
    wait_until(
        &p,
        "SELECT EXISTS (SELECT FROM pg_stat_activity WHERE application_name = 'lull' \
         AND wait_event_type = 'Lock' AND datname = current_database())",
        Duration::from_secs(30),
    );
    thread::sleep(Duration::from_millis(800));
    release.send(()).unwrap();
    handle.join().unwrap();
    let out = child.wait_with_output().unwrap();
    let text = output_text(&out);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("try 1 failed") && text.contains("lock timeout"),
        "{text}"
    );
    assert_eq!(p.scalar_i64("SELECT count(*) FROM t"), 1);

    p.write(
        "002_slow.sql",
        "update t set id = id + 1 where pg_sleep(2) is not null;\n",
    );
    p.lull().arg("migrate").assert().code(1).stderr(
        predicate::str::contains("57014")
            .and(predicate::str::contains("policy.dml.statement_timeout")),
    );
    assert_eq!(p.scalar_i64("SELECT max(id)::bigint FROM t"), 1);
}

#[test]
fn migrate_to_and_rollback_to_stop_at_the_version() {
    let p = Project::new();
    for v in 1..=3 {
        p.write(
            &format!("00{v}_t{v}.sql"),
            &format!("create table t{v} (id int);\n-- lull:down\ndrop table t{v};\n"),
        );
    }
    p.lull().args(["migrate", "--to", "002"]).assert().success();
    assert_eq!(p.statuses().len(), 2);
    p.lull()
        .args(["migrate", "--to", "7"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("no migration with version 7"));
    p.lull().arg("migrate").assert().success();
    p.lull()
        .args(["rollback", "--to", "001"])
        .assert()
        .success()
        .stderr(predicate::str::contains("rolled back 2 migrations"));
    assert_eq!(p.statuses(), [("001".into(), "applied".into())]);
    assert_eq!(
        p.scalar_i64("SELECT count(*) FROM pg_class WHERE relname IN ('t2', 't3')"),
        0
    );
}

#[test]
fn statements_outside_transactions_run_as_autocommit_steps() {
    let p = Project::new();
    p.write(
        "001_no_tx.sql",
        "-- lull:no-transaction\ncreate table a (id int);\ninsert into a values (1);\nvacuum a;\n",
    );
    p.write(
        "002_vacuum.sql",
        "create table b (id int);\nvacuum b;\ncreate table c (id int);\n",
    );
    p.lull().arg("migrate").assert().success();
    let kinds: Vec<(String, i32, String)> = p
        .client()
        .query(
            "SELECT version, step, kind FROM lull.steps ORDER BY version, step",
            &[],
        )
        .unwrap()
        .into_iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    let expect = |v: &str, s: i32, k: &str| (v.to_string(), s, k.to_string());
    assert_eq!(
        kinds,
        [
            expect("001", 1, "autocommit"),
            expect("001", 2, "autocommit"),
            expect("001", 3, "autocommit"),
            expect("002", 1, "transaction"),
            expect("002", 2, "autocommit"),
            expect("002", 3, "transaction"),
        ]
    );
    assert_eq!(p.scalar_i64("SELECT count(*) FROM a"), 1);
}
