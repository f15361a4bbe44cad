//! The fault matrix: each way a run can be interrupted or raced, through
//! the CLI against a real PostgreSQL, asserting for each the data (a
//! counter column that proves each step ran exactly once), lull's state,
//! `lull status`, and that a re-run completes.
//!
//! Windows are made with `pg_sleep` and held locks on tiny tables, never
//! with big data; every wait is for an observable state with a wide limit,
//! so the tests are about behaviour, not speed.

use std::path::{Path, PathBuf};
use std::process::{Child, Output, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use assert_cmd::Command;
use lull_sandbox::testing::{start_sandbox_with, TestDb};
use lull_sandbox::{Options, Sandbox};

/// The database a [`Project`] works on: a fresh one on the shared test
/// server, or the `postgres` database of a cluster of the test's own (for
/// faults that restart the server).
struct Db {
    url: String,
    name: String,
    _shared: Option<TestDb>,
}

impl Db {
    fn url(&self) -> &str {
        &self.url
    }

    fn name(&self) -> &str {
        &self.name
    }

    fn client(&self) -> postgres::Client {
        postgres::Client::connect(&self.url, postgres::NoTls).unwrap()
    }
}

/// A project directory with `migrations/`, a database, and a table
/// `counter` whose single row `n` the migrations bump.
struct Project {
    dir: tempfile::TempDir,
    db: Db,
}

impl Project {
    fn new() -> Project {
        let db = TestDb::new();
        Project::with(Db {
            url: db.url().to_string(),
            name: db.name().to_string(),
            _shared: Some(db),
        })
    }

    /// A project on the `postgres` database of `sandbox`.
    fn on(sandbox: &Sandbox) -> Project {
        Project::with(Db {
            url: sandbox.url("postgres"),
            name: "postgres".into(),
            _shared: None,
        })
    }

    fn with(db: Db) -> Project {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("migrations")).unwrap();
        let p = Project { dir, db };
        p.sql("create table counter (id int primary key, n int not null); insert into counter values (1, 0)");
        p
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn write(&self, name: &str, sql: &str) -> PathBuf {
        let path = self.path().join("migrations").join(name);
        std::fs::write(&path, sql).unwrap();
        path
    }

    fn lull(&self) -> Command {
        let mut cmd = Command::cargo_bin("lull").unwrap();
        cmd.current_dir(self.path())
            .env_remove("LULL_ENV")
            .env("DATABASE_URL", self.db.url())
            .env("NO_COLOR", "1");
        cmd
    }

    fn run(&self, args: &[&str]) -> Output {
        self.lull().args(args).output().unwrap()
    }

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

    fn sql(&self, sql: &str) {
        self.client().batch_execute(sql).unwrap();
    }

    fn scalar_i64(&self, sql: &str) -> i64 {
        self.client().query_one(sql, &[]).unwrap().get(0)
    }

    fn counter(&self) -> i64 {
        self.scalar_i64("SELECT n::bigint FROM counter WHERE id = 1")
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

    /// `(step, status)` of a migration's up steps.
    fn steps(&self, version: &str) -> Vec<(i32, String)> {
        self.client()
            .query(
                "SELECT step, status FROM lull.steps WHERE version = $1 AND direction = 'up' ORDER BY step",
                &[&version],
            )
            .unwrap()
            .into_iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect()
    }

    /// Waits until `sql` returns true, or panics after `limit`.
    fn wait_until(&self, sql: &str, limit: Duration) {
        let start = Instant::now();
        let mut client = self.client();
        loop {
            let ok: bool = client.query_one(sql, &[]).unwrap().get(0);
            if ok {
                return;
            }
            assert!(start.elapsed() < limit, "timed out waiting for: {sql}");
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// `lull status` succeeds and shows every migration applied; a further
    /// `migrate` has nothing to do.
    fn assert_settled(&self) {
        let out = self.run(&["status"]);
        let text = text(&out);
        assert!(out.status.success(), "{text}");
        assert!(
            !text.contains("pending") && !text.contains("failed") && !text.contains("running"),
            "{text}"
        );
        let out = self.run(&["migrate"]);
        let text = self::text(&out);
        assert!(out.status.success(), "{text}");
        assert!(text.contains("nothing to apply"), "{text}");
    }
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn kill9(child: &mut Child) {
    // SAFETY: plain kill(2) on our own child's pid.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGKILL);
    }
    let _ = child.wait();
}

/// A session holding `lock_sql`'s locks (or snapshot) in an open
/// transaction until told to stop.
fn hold(url: &str, lock_sql: &str) -> (mpsc::Sender<()>, thread::JoinHandle<()>) {
    let mut client = postgres::Client::connect(url, postgres::NoTls).unwrap();
    client.batch_execute("BEGIN").unwrap();
    client.batch_execute(lock_sql).unwrap();
    let (tx, rx) = mpsc::channel::<()>();
    let handle = thread::spawn(move || {
        let _ = rx.recv();
        let _ = client.batch_execute("COMMIT");
    });
    (tx, handle)
}

/// True while a lull session of this database runs `pg_sleep`.
const LULL_SLEEPING: &str = "SELECT EXISTS (SELECT FROM pg_stat_activity WHERE query LIKE '%pg_sleep%' \
     AND application_name LIKE 'lull%' AND datname = current_database() AND pid <> pg_backend_pid())";

/// The backend holding the runner lock (an advisory lock in this database).
const TERMINATE_LOCK_HOLDER: &str = "SELECT pg_terminate_backend(pid) FROM pg_locks \
     WHERE locktype = 'advisory' AND granted \
       AND database = (SELECT oid FROM pg_database WHERE datname = current_database())";

/// True once a CONCURRENTLY build waits for an open snapshot.
const WAITING_FOR_SNAPSHOTS: &str = "SELECT EXISTS (SELECT FROM pg_stat_progress_create_index \
     WHERE phase = 'waiting for old snapshots' AND datname = current_database())";

// ---------------------------------------------------------------------------
// Defect 1: the runner lock fences the work.

/// The session holding the runner lock is terminated mid-step and a second
/// runner starts at once: the first must not commit without the lock, so
/// the step runs exactly once.
#[test]
fn terminated_lock_session_fences_the_step() {
    let p = Project::new();
    p.write(
        "001_bump.sql",
        "-- lull:no-batch (one transaction with the sleep)\nupdate counter set n = n + 1;\nselect pg_sleep(4);\n",
    );
    let first = p.spawn(&["migrate"]);
    p.wait_until(LULL_SLEEPING, Duration::from_secs(60));
    p.sql(TERMINATE_LOCK_HOLDER);
    let second = p.spawn(&["migrate", "--lock-wait", "60s"]);
    let first = first.wait_with_output().unwrap();
    let second = second.wait_with_output().unwrap();
    assert!(second.status.success(), "{}", text(&second));
    assert!(
        !first.status.success(),
        "a run that lost its lock must not report success: {}",
        text(&first)
    );
    assert_eq!(p.counter(), 1, "{}\n---\n{}", text(&first), text(&second));
    assert_eq!(p.statuses(), [("001".into(), "applied".into())]);
    assert_eq!(p.steps("001"), [(1, "done".into())]);
    p.assert_settled();
    assert_eq!(p.counter(), 1);
}

/// The server ends idle sessions after a second: a run whose step takes
/// longer keeps its lock (a second runner waits instead of applying the
/// step again), also while an index builds on another connection and the
/// work session sits idle.
#[test]
fn idle_session_timeout_does_not_take_the_lock_away() {
    let p = Project::new();
    p.sql(&format!(
        "create table t (a int); insert into t select generate_series(1, 100);\
         ALTER DATABASE \"{}\" SET idle_session_timeout = '1s'",
        p.db.name()
    ));
    p.write(
        "001_bump.sql",
        "update counter set n = n + 1;\nselect pg_sleep(4);\n",
    );
    p.write(
        "002_index.sql",
        "create index t_a on t (a);\nupdate counter set n = n + 10;\n",
    );
    let first = p.spawn(&["migrate", "--to", "001"]);
    p.wait_until(LULL_SLEEPING, Duration::from_secs(60));
    // Past the server's idle timeout, while the first run still sleeps.
    thread::sleep(Duration::from_millis(1500));
    let second = p.spawn(&["migrate", "--to", "001", "--lock-wait", "60s"]);
    let first = first.wait_with_output().unwrap();
    let second = second.wait_with_output().unwrap();
    assert!(first.status.success(), "{}", text(&first));
    assert!(second.status.success(), "{}", text(&second));
    assert_eq!(p.counter(), 1, "{}\n---\n{}", text(&first), text(&second));

    // An open snapshot keeps the build waiting well past the idle timeout.
    let (release, handle) = hold(
        p.db.url(),
        "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ; SELECT count(*) FROM t",
    );
    let run = p.spawn(&["migrate"]);
    p.wait_until(WAITING_FOR_SNAPSHOTS, Duration::from_secs(60));
    thread::sleep(Duration::from_millis(2500));
    release.send(()).unwrap();
    handle.join().unwrap();
    let run = run.wait_with_output().unwrap();
    assert!(run.status.success(), "{}", text(&run));
    assert_eq!(p.counter(), 11);
    p.assert_settled();
}

// ---------------------------------------------------------------------------
// Defect 2: autocommit statements of a killed run.

/// A `-- lull:no-transaction` UPDATE is killed with its runner: the
/// server cancels the orphan (client_connection_check_interval), and the
/// re-run does not run the statement blindly a second time: it stops,
/// names the statement and how to settle it. Settled as not applied, the
/// next run applies it once.
#[test]
fn killed_autocommit_dml_is_never_rerun_blindly() {
    let p = Project::new();
    p.write(
        "001_bump.sql",
        "-- lull:no-transaction\n-- lull:no-batch\nupdate counter set n = n + 1 from (select pg_sleep(6)) s;\n",
    );
    let mut child = p.spawn(&["migrate"]);
    p.wait_until(LULL_SLEEPING, Duration::from_secs(60));
    kill9(&mut child);
    let out = p.run(&["migrate", "--lock-wait", "30s"]);
    let msg = text(&out);
    assert_eq!(out.status.code(), Some(3), "{msg}");
    assert!(msg.contains("cannot know whether it took effect"), "{msg}");
    assert!(msg.contains("update counter set n = n + 1"), "{msg}");
    assert!(msg.contains("lull mark-applied 001 --step 1"), "{msg}");
    // The re-run waited for the orphan, which the server cancelled.
    assert_eq!(
        p.scalar_i64(
            "SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%pg_sleep(6)%' AND pid <> pg_backend_pid()"
        ),
        0
    );
    assert_eq!(p.counter(), 0);
    assert_eq!(p.steps("001"), [(1, "running".into())]);
    let status = p.run(&["status"]);
    assert!(text(&status).contains("running"), "{}", text(&status));

    let out = p.run(&["mark-applied", "001", "--step", "1", "--not-applied"]);
    assert!(out.status.success(), "{}", text(&out));
    let out = p.run(&["migrate"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(p.counter(), 1);
    p.assert_settled();
    assert_eq!(p.counter(), 1);
}

/// The operator checked that the killed statement did take effect: the
/// step is recorded done and the rest of the migration runs.
#[test]
fn uncertain_step_marked_done_is_not_run_again() {
    let p = Project::new();
    p.write(
        "001_bump.sql",
        "-- lull:no-transaction\n-- lull:no-batch\nupdate counter set n = n + 1 from (select pg_sleep(6)) s;\nupdate counter set n = n + 10;\n",
    );
    let mut child = p.spawn(&["migrate"]);
    p.wait_until(LULL_SLEEPING, Duration::from_secs(60));
    kill9(&mut child);
    let out = p.run(&["migrate", "--lock-wait", "30s"]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    // As if the statement had finished: the operator applies it by hand.
    p.sql("update counter set n = n + 1");
    // A step that never started cannot be settled.
    let out = p.run(&["mark-applied", "001", "--step", "2"]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(text(&out).contains("never started"), "{}", text(&out));
    let out = p.run(&["mark-applied", "001", "--step", "1"]);
    assert!(out.status.success(), "{}", text(&out));
    let out = p.run(&["migrate"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(p.counter(), 11);
    p.assert_settled();
}

// ---------------------------------------------------------------------------
// Item 7: smaller defects.

/// The work connection is terminated mid-step: the run fails clearly and
/// records the failure (it is not left `running` without an error); the
/// re-run applies the step once.
#[test]
fn lost_work_connection_records_the_failure() {
    let p = Project::new();
    p.write(
        "001_bump.sql",
        "-- lull:no-batch (one transaction with the sleep)\nupdate counter set n = n + 1;\nselect pg_sleep(4);\n",
    );
    let run = p.spawn(&["migrate"]);
    p.wait_until(LULL_SLEEPING, Duration::from_secs(60));
    p.sql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query LIKE '%pg_sleep%' \
           AND application_name LIKE 'lull%' AND datname = current_database() AND pid <> pg_backend_pid()");
    let out = run.wait_with_output().unwrap();
    let msg = text(&out);
    assert_eq!(out.status.code(), Some(1), "{msg}");
    assert!(msg.contains("connection to the server was lost"), "{msg}");
    assert_eq!(p.counter(), 0);
    assert_eq!(p.statuses(), [("001".into(), "failed".into())]);
    let error: Option<String> = p
        .client()
        .query_one("SELECT error FROM lull.steps WHERE version = '001'", &[])
        .unwrap()
        .get(0);
    assert!(
        error.unwrap_or_default().contains("connection"),
        "step error recorded"
    );
    let out = p.run(&["migrate"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(p.counter(), 1);
    p.assert_settled();
}

/// The runner lock of schema `lull`, as `lull_engine::lock::lock_key`
/// derives it, so a test can hold it the way another runner does.
const RUNNER_LOCK_KEY: &str =
    "('x' || substr(encode(sha256('lull runner lock lull'), 'hex'), 1, 16))::bit(64)::bigint";

/// `migrate --format json` counts the wait for another runner's lock in
/// `elapsed` and reports it as `lock_wait`.
#[test]
fn json_elapsed_includes_the_runner_lock_wait() {
    let p = Project::new();
    p.write("001_bump.sql", "update counter set n = n + 1;\n");
    let mut holder = p.client();
    holder
        .batch_execute(&format!("SELECT pg_advisory_lock({RUNNER_LOCK_KEY})"))
        .unwrap();
    let run = p.spawn(&["migrate", "--lock-wait", "60s", "--format", "json"]);
    // Between its tries the waiting run's last query is the look-up of the
    // holder in pg_locks, so either query shows it is polling.
    p.wait_until(
        "SELECT EXISTS (SELECT FROM pg_stat_activity WHERE application_name = 'lull' \
           AND datname = current_database() \
           AND (query LIKE '%pg_try_advisory_lock%' OR query LIKE '%FROM pg_locks l%'))",
        Duration::from_secs(60),
    );
    thread::sleep(Duration::from_millis(1500));
    drop(holder);
    let out = run.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let done: serde_json::Value = stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["event"] == "done")
        .unwrap_or_else(|| panic!("no done line in {stdout}"));
    let lock_wait = done["lock_wait"].as_u64().expect("lock_wait");
    let elapsed = done["elapsed"].as_u64().expect("elapsed");
    assert!(lock_wait >= 1000, "{done}");
    assert!(elapsed >= lock_wait, "{done}");
    assert_eq!(p.counter(), 1);
}

// ---------------------------------------------------------------------------
// Defect 5: a file's own timeouts never silently override the policy.

/// `SET lock_timeout = 0` and `SET statement_timeout = 0` in a file are
/// not run: the step runs under lull's policy (the values it sees are the
/// policy's), `lull plan` lists both SETs as not run, `lull migrate` warns,
/// and `lull lint` says so too.
#[test]
fn file_timeouts_do_not_override_the_policy() {
    let p = Project::new();
    p.write(
        "001_probe.sql",
        "SET lock_timeout = 0;\nSET statement_timeout = 0;\n\
         create table probe as select current_setting('lock_timeout') as lt, \
         current_setting('statement_timeout') as st;\n\
         update counter set n = n + 1;\n",
    );
    let plan = p.run(&["plan"]);
    let msg = text(&plan);
    assert!(plan.status.success(), "{msg}");
    assert!(msg.contains("line 1: SET lock_timeout = 0"), "{msg}");
    assert!(msg.contains("line 2: SET statement_timeout = 0"), "{msg}");
    assert!(msg.contains("not run: lull sets lock_timeout"), "{msg}");
    let json = p.run(&["plan", "--format", "json"]);
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    let overridden = &v["migrations"][0]["overridden"];
    assert_eq!(overridden.as_array().map(Vec::len), Some(2), "{v}");
    assert_eq!(overridden[0]["setting"], "lock_timeout");
    let steps = v["migrations"][0]["steps"].as_array().unwrap();
    assert!(
        steps
            .iter()
            .flat_map(|s| s["statements"].as_array().unwrap())
            .all(|s| !s["sql"]
                .as_str()
                .unwrap()
                .to_lowercase()
                .starts_with("set ")),
        "{v}"
    );
    let lint = p.run(&["lint", "--runner", "lull"]);
    assert!(
        text(&lint).contains("`lull migrate` does not run it"),
        "{}",
        text(&lint)
    );

    let out = p.run(&["migrate"]);
    let msg = text(&out);
    assert!(out.status.success(), "{msg}");
    assert!(
        msg.contains("warning:") && msg.contains("`SET lock_timeout = 0` is not run"),
        "{msg}"
    );
    let row = p
        .client()
        .query_one("SELECT lt, st FROM probe", &[])
        .unwrap();
    let (lt, st): (String, String) = (row.get(0), row.get(1));
    assert_ne!(lt, "0", "the file's lock_timeout won");
    assert_ne!(st, "0", "the file's statement_timeout won");
    assert_eq!(st, "2min", "the ddl policy's statement_timeout");
    assert_eq!(p.counter(), 1);
    p.assert_settled();
}

// ---------------------------------------------------------------------------
// Item 7: BEGIN ... ROLLBACK in a file.

/// A block that ends with ROLLBACK is refused before anything runs (it
/// would otherwise commit, or be recorded applied with its work thrown
/// away); nothing is created, and `plan` says the same. Fixed, it applies.
#[test]
fn rollback_in_a_file_is_refused_before_anything_runs() {
    let p = Project::new();
    p.write("001_bump.sql", "update counter set n = n + 1;\n");
    let out = p.run(&["migrate"]);
    assert!(out.status.success(), "{}", text(&out));
    let path = p.write(
        "002_try.sql",
        "BEGIN;\nupdate counter set n = n + 10;\nROLLBACK;\n",
    );
    let out = p.run(&["migrate"]);
    let msg = text(&out);
    assert_eq!(out.status.code(), Some(3), "{msg}");
    assert!(msg.contains("`ROLLBACK` at"), "{msg}");
    assert!(msg.contains("002_try.sql:3"), "{msg}");
    assert!(msg.contains("remove the ROLLBACK"), "{msg}");
    assert_eq!(p.counter(), 1);
    assert_eq!(p.statuses(), [("001".into(), "applied".into())]);
    let plan = p.run(&["plan", "--all"]);
    assert_eq!(plan.status.code(), Some(3), "{}", text(&plan));
    assert!(text(&plan).contains("`ROLLBACK` at"), "{}", text(&plan));

    std::fs::write(&path, "BEGIN;\nupdate counter set n = n + 10;\nCOMMIT;\n").unwrap();
    let out = p.run(&["migrate"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(p.counter(), 11);
    p.assert_settled();
}

// ---------------------------------------------------------------------------
// Item 7: out-of-order versions.

/// A pending 015 while 040 is applied is refused with both names and the
/// way out; `--allow-out-of-order` applies it once, with a warning.
#[test]
fn out_of_order_migration_is_refused_unless_allowed() {
    let p = Project::new();
    p.write("010_a.sql", "update counter set n = n + 1;\n");
    p.write("040_b.sql", "update counter set n = n + 10;\n");
    let out = p.run(&["migrate"]);
    assert!(out.status.success(), "{}", text(&out));
    p.write("015_late.sql", "update counter set n = n + 100;\n");

    let out = p.run(&["migrate"]);
    let msg = text(&out);
    assert_eq!(out.status.code(), Some(3), "{msg}");
    assert!(msg.contains("015_late"), "{msg}");
    assert!(
        msg.contains("before 040_b, which is already applied"),
        "{msg}"
    );
    assert!(msg.contains("--allow-out-of-order"), "{msg}");
    assert_eq!(p.counter(), 11);
    let status = p.run(&["status"]);
    assert!(text(&status).contains("pending"), "{}", text(&status));

    let plan = p.run(&["plan"]);
    assert!(plan.status.success(), "{}", text(&plan));
    assert!(
        text(&plan).contains("015_late sorts before 040_b, which is already applied"),
        "{}",
        text(&plan)
    );

    let help = p.run(&["migrate", "--help"]);
    assert!(
        text(&help).contains("--allow-out-of-order"),
        "{}",
        text(&help)
    );

    let out = p.run(&["migrate", "--allow-out-of-order"]);
    let msg = text(&out);
    assert!(out.status.success(), "{msg}");
    assert!(
        msg.contains("warning:") && msg.contains("applying 015_late out of order"),
        "{msg}"
    );
    assert_eq!(p.counter(), 111);
    p.assert_settled();
    assert_eq!(p.counter(), 111);
}

// ---------------------------------------------------------------------------
// Defect 3: overlapping index builders.

/// True once a build of `index` (in this database) waits for an open
/// snapshot.
fn build_waiting(index: &str) -> String {
    format!(
        "SELECT EXISTS (SELECT FROM pg_stat_progress_create_index \
         WHERE phase = 'waiting for old snapshots' AND datname = current_database() \
           AND index_relid = to_regclass('{index}'))"
    )
}

/// `(name, valid)` of every index on table `t`.
fn indexes_of_t(p: &Project) -> Vec<(String, bool)> {
    p.client()
        .query(
            "SELECT c.relname::text, i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid \
             WHERE i.indrelid = 't'::regclass ORDER BY 1",
            &[],
        )
        .unwrap()
        .into_iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
}

/// An open REPEATABLE READ snapshot on `t`: a CONCURRENTLY build started
/// after it waits in "waiting for old snapshots" until it is released.
fn hold_snapshot(p: &Project) -> (mpsc::Sender<()>, thread::JoinHandle<()>) {
    hold(
        p.db.url(),
        "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ; SELECT count(*) FROM t",
    )
}

/// Two `lull indexes build` of the same pending index at once: the second
/// sees the first one's build (INVALID while it runs) is alive, says it
/// waits, and once the first is done finds the index valid instead of
/// dropping and rebuilding it. Both succeed, one valid index, empty queue.
#[test]
fn two_index_builders_coordinate() {
    let p = Project::new();
    p.sql("create table t (a int); insert into t select generate_series(1, 1000)");
    let out = p.run(&["indexes", "add", "CREATE INDEX t_a ON t (a)"]);
    assert!(out.status.success(), "{}", text(&out));
    let (release, handle) = hold_snapshot(&p);
    let first = p.spawn(&["indexes", "build", "--ignore-window"]);
    p.wait_until(&build_waiting("t_a"), Duration::from_secs(60));
    let second = p.spawn(&["indexes", "build", "--ignore-window"]);
    // The second builder polls for the first one's builder lock.
    p.wait_until(
        "SELECT EXISTS (SELECT FROM pg_stat_activity WHERE datname = current_database() \
           AND application_name LIKE 'lull%' AND query LIKE '%pg_try_advisory_lock(hashtextextended(''lull index build%')",
        Duration::from_secs(60),
    );
    // The first build is still there, untouched by the second.
    assert!(p.scalar_i64(&format!("SELECT ({})::int::bigint", build_waiting("t_a"))) == 1);
    release.send(()).unwrap();
    handle.join().unwrap();
    let first = first.wait_with_output().unwrap();
    let second = second.wait_with_output().unwrap();
    assert!(first.status.success(), "{}", text(&first));
    assert!(second.status.success(), "{}", text(&second));
    let waited = format!("{}{}", text(&first), text(&second));
    assert!(
        waited.contains("is building this index; waiting for it to end"),
        "{waited}"
    );
    assert!(!waited.contains("dropped the INVALID"), "{waited}");
    assert_eq!(indexes_of_t(&p), [("t_a".to_string(), true)]);
    assert_eq!(
        p.scalar_i64("SELECT count(*) FROM lull.pending_indexes"),
        0,
        "{waited}"
    );
}

/// A build of the same index by another session (by hand, another tool)
/// is running when `lull migrate` reaches its index step: lull does not
/// drop it as a dead INVALID leftover; it waits, finds it valid, and
/// records the step done. The other session's build succeeds.
#[test]
fn migrate_waits_for_a_foreign_build_instead_of_dropping_it() {
    let p = Project::new();
    p.sql("create table t (a int); insert into t select generate_series(1, 1000)");
    p.write(
        "001_index.sql",
        "create index concurrently t_a on t (a);\nupdate counter set n = n + 1;\n",
    );
    let (release, handle) = hold_snapshot(&p);
    let url = p.db.url().to_string();
    let foreign = thread::spawn(move || {
        let mut c = postgres::Client::connect(&url, postgres::NoTls).unwrap();
        c.batch_execute("CREATE INDEX CONCURRENTLY t_a ON t (a)")
    });
    p.wait_until(&build_waiting("t_a"), Duration::from_secs(60));
    let run = p.spawn(&["migrate"]);
    p.wait_until(
        "SELECT EXISTS (SELECT FROM pg_stat_activity WHERE datname = current_database() \
           AND application_name = 'lull index progress' AND query LIKE '%pg_stat_progress_create_index%index_relid%')",
        Duration::from_secs(60),
    );
    release.send(()).unwrap();
    handle.join().unwrap();
    foreign
        .join()
        .unwrap()
        .expect("the other session's build was not disturbed");
    let out = run.wait_with_output().unwrap();
    let msg = text(&out);
    assert!(out.status.success(), "{msg}");
    assert!(msg.contains("is building index"), "{msg}");
    assert_eq!(indexes_of_t(&p), [("t_a".to_string(), true)]);
    assert_eq!(p.counter(), 1);
    p.assert_settled();
}

// ---------------------------------------------------------------------------
// Defect 4: an unnamed CREATE INDEX killed mid-build.

/// `create index on t (a)` (run CONCURRENTLY) is killed mid-build; the
/// re-run recognises its own INVALID leftover by the name it recorded,
/// drops and rebuilds it, instead of adding a second index beside it. The
/// name is the one PostgreSQL would choose: `t_a_idx` is taken (by a
/// table), so `t_a_idx1`.
#[test]
fn killed_unnamed_index_build_is_found_again() {
    let p = Project::new();
    p.sql(
        "create table t (a int); insert into t select generate_series(1, 1000); \
         create table t_a_idx (x int)",
    );
    p.write(
        "001_index.sql",
        "create index on t (a);\nupdate counter set n = n + 1;\n",
    );
    let (release, handle) = hold_snapshot(&p);
    let mut child = p.spawn(&["migrate"]);
    p.wait_until(&build_waiting("t_a_idx1"), Duration::from_secs(60));
    assert_eq!(
        p.scalar_i64(
            "SELECT count(*) FROM lull.steps WHERE version = '001' AND index_name = 't_a_idx1'"
        ),
        1,
        "the name is recorded before the build"
    );
    kill9(&mut child);
    // The server cancels the orphaned build (client_connection_check_interval);
    // its INVALID index stays.
    p.wait_until(
        "SELECT NOT EXISTS (SELECT FROM pg_stat_progress_create_index WHERE datname = current_database())",
        Duration::from_secs(60),
    );
    release.send(()).unwrap();
    handle.join().unwrap();
    assert_eq!(indexes_of_t(&p), [("t_a_idx1".to_string(), false)]);

    let out = p.run(&["migrate", "--lock-wait", "30s"]);
    let msg = text(&out);
    assert!(out.status.success(), "{msg}");
    assert_eq!(indexes_of_t(&p), [("t_a_idx1".to_string(), true)], "{msg}");
    assert_eq!(p.counter(), 1);
    p.assert_settled();
}

// ---------------------------------------------------------------------------
// A read-only database.

/// `default_transaction_read_only = on` for the database (a DBA froze it,
/// or a maintenance mode): `migrate` refuses clearly before creating or
/// running anything; once writable again it applies once.
#[test]
fn read_only_database_is_refused_clearly() {
    let p = Project::new();
    p.write("001_bump.sql", "update counter set n = n + 1;\n");
    p.sql(&format!(
        "ALTER DATABASE \"{}\" SET default_transaction_read_only = on",
        p.db.name()
    ));
    let out = p.run(&["migrate"]);
    let msg = text(&out);
    assert_eq!(out.status.code(), Some(3), "{msg}");
    assert!(msg.contains("read-only"), "{msg}");
    assert!(msg.contains("default_transaction_read_only"), "{msg}");
    assert_eq!(
        p.scalar_i64("SELECT count(*) FROM pg_namespace WHERE nspname = 'lull'"),
        0,
        "{msg}"
    );
    assert_eq!(p.counter(), 0);
    let mut owner = p.client();
    owner
        .batch_execute("SET default_transaction_read_only = off")
        .unwrap();
    owner
        .batch_execute(&format!(
            "ALTER DATABASE \"{}\" RESET default_transaction_read_only",
            p.db.name()
        ))
        .unwrap();
    let out = p.run(&["migrate"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(p.counter(), 1);
    p.assert_settled();
}

// ---------------------------------------------------------------------------
// A deadlock against the application.

/// The step locks `counter` then waits for a row of `b` an application
/// transaction holds; the application then wants `counter`: a deadlock.
/// Whichever side PostgreSQL aborts, the step commits exactly once (a
/// DML step retries 40P01) and the application's transaction is not
/// left waiting.
#[test]
fn deadlock_with_the_application_applies_once() {
    let p = Project::new();
    p.sql("create table b (id int primary key, x int not null); insert into b values (1, 0)");
    p.write(
        "001_bump.sql",
        "-- lull:no-batch: one transaction of both\nupdate counter set n = n + 1;\n\
         -- lull:no-batch\nupdate b set x = x + 1;\n",
    );
    let mut app = p.client();
    app.batch_execute("BEGIN; SELECT FROM b WHERE id = 1 FOR UPDATE")
        .unwrap();
    let run = p.spawn(&["migrate"]);
    // The step holds counter's row and waits for b's.
    p.wait_until(
        "SELECT EXISTS (SELECT FROM pg_stat_activity WHERE datname = current_database() \
           AND application_name LIKE 'lull%' AND wait_event_type = 'Lock' \
           AND query LIKE '%update b set x%')",
        Duration::from_secs(60),
    );
    let app_result = app.batch_execute("SELECT FROM counter WHERE id = 1 FOR UPDATE");
    let app_was_victim = match &app_result {
        Ok(()) => false,
        Err(e) => {
            assert_eq!(
                e.code(),
                Some(&postgres::error::SqlState::T_R_DEADLOCK_DETECTED),
                "{e}"
            );
            true
        }
    };
    let _ = app.batch_execute(if app_was_victim { "ROLLBACK" } else { "COMMIT" });
    let out = run.wait_with_output().unwrap();
    let msg = text(&out);
    assert!(out.status.success(), "{msg}");
    if !app_was_victim {
        assert!(
            msg.contains("deadlock"),
            "lull was the victim and retried: {msg}"
        );
    }
    assert_eq!(p.counter(), 1, "{msg}");
    assert_eq!(p.scalar_i64("SELECT x::bigint FROM b WHERE id = 1"), 1);
    p.assert_settled();
}

// ---------------------------------------------------------------------------
// Deleted applied files.

/// The file of an applied migration is deleted: `status` still lists it
/// as applied with its file missing, and later migrations apply once.
#[test]
fn deleted_applied_file_is_shown_and_nothing_reruns() {
    let p = Project::new();
    let first = p.write("001_bump.sql", "update counter set n = n + 1;\n");
    let out = p.run(&["migrate"]);
    assert!(out.status.success(), "{}", text(&out));
    std::fs::remove_file(first).unwrap();
    p.write("002_more.sql", "update counter set n = n + 10;\n");
    let out = p.run(&["migrate"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(p.counter(), 11);
    let status = p.run(&["status"]);
    let msg = text(&status);
    assert!(status.status.success(), "{msg}");
    let line = msg
        .lines()
        .find(|l| l.contains("001"))
        .unwrap_or_else(|| panic!("001 not listed: {msg}"));
    assert!(line.contains("applied"), "{msg}");
    assert!(line.contains("missing"), "{msg}");
    let out = p.run(&["migrate"]);
    assert!(text(&out).contains("nothing to apply"), "{}", text(&out));
    assert_eq!(p.counter(), 11);
    assert_eq!(
        p.statuses(),
        [
            ("001".into(), "applied".into()),
            ("002".into(), "applied".into())
        ]
    );
}

// ---------------------------------------------------------------------------
// The server restarts mid-step.

/// The server is shut down (`fast`: sessions are terminated; `immediate`:
/// no shutdown at all, crash recovery on start) and started again while a
/// transactional step runs: the run fails clearly, the step's transaction
/// is gone, and the re-run applies it exactly once.
#[test]
fn server_restart_mid_step_then_rerun_applies_once() {
    for (mode, signal) in [("fast", libc::SIGINT), ("immediate", libc::SIGQUIT)] {
        // Commits are durable, as on a real server: the sandbox's default
        // (synchronous_commit = off) may lose the last commits in an
        // immediate shutdown, the test's own set-up included.
        let mut sandbox = start_sandbox_with(Options {
            settings: vec![
                ("synchronous_commit".into(), "on".into()),
                ("fsync".into(), "on".into()),
            ],
            ..Options::default()
        })
        .unwrap();
        let p = Project::on(&sandbox);
        // The sleep makes the window only until the server was restarted.
        p.sql("create table restarted (done bool)");
        p.write(
            "001_bump.sql",
            "-- lull:no-batch: one transaction with the sleep\n\
             update counter set n = n + 1;\n\
             select pg_sleep(30) where not exists (select from restarted);\n",
        );
        p.write("002_more.sql", "update counter set n = n + 10;\n");
        let run = p.spawn(&["migrate"]);
        p.wait_until(LULL_SLEEPING, Duration::from_secs(60));
        // SAFETY: kill(2) on the postmaster this test started.
        unsafe {
            libc::kill(sandbox.pid() as i32, signal);
        }
        sandbox.stop_server().unwrap();
        let port = sandbox.port();
        sandbox.start_server(port).unwrap();
        let out = run.wait_with_output().unwrap();
        let msg = text(&out);
        assert_eq!(out.status.code(), Some(1), "{mode}: {msg}");
        assert!(msg.contains("connection"), "{mode}: {msg}");
        assert_eq!(
            p.counter(),
            0,
            "{mode}: the step's transaction did not commit"
        );
        p.sql("insert into restarted values (true)");
        let out = p.run(&["migrate"]);
        assert!(out.status.success(), "{mode}: {}", text(&out));
        assert_eq!(p.counter(), 11, "{mode}");
        p.assert_settled();
        assert_eq!(p.counter(), 11, "{mode}");
    }
}

// ---------------------------------------------------------------------------
// The index build's backend is terminated.

/// `pg_terminate_backend` on the backend building an index step's index:
/// lull retries on a new connection, drops the dead INVALID leftover and
/// builds again; one valid index, the migration applied once.
#[test]
fn terminated_index_build_is_retried_and_applied_once() {
    let p = Project::new();
    p.sql("create table t (a int); insert into t select generate_series(1, 1000)");
    p.write(
        "001_index.sql",
        "create index concurrently t_a on t (a);\nupdate counter set n = n + 1;\n",
    );
    // The snapshot is on another table, so dropping the leftover (which
    // waits for sessions locking `t`) does not wait for it; the builds do.
    let (release, handle) = hold(
        p.db.url(),
        "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ; SELECT count(*) FROM counter",
    );
    let run = p.spawn(&["migrate"]);
    p.wait_until(&build_waiting("t_a"), Duration::from_secs(60));
    let first: i32 = p
        .client()
        .query_one(
            "SELECT pid FROM pg_stat_progress_create_index WHERE index_relid = to_regclass('t_a')",
            &[],
        )
        .unwrap()
        .get(0);
    p.sql(&format!("SELECT pg_terminate_backend({first})"));
    // A new try, on another backend, waits for the same snapshot.
    p.wait_until(
        &format!(
            "SELECT EXISTS (SELECT FROM pg_stat_progress_create_index \
             WHERE index_relid = to_regclass('t_a') AND pid <> {first} \
               AND phase = 'waiting for old snapshots')"
        ),
        Duration::from_secs(120),
    );
    release.send(()).unwrap();
    handle.join().unwrap();
    let out = run.wait_with_output().unwrap();
    let msg = text(&out);
    assert!(out.status.success(), "{msg}");
    assert!(msg.contains("dropped INVALID index t_a"), "{msg}");
    assert_eq!(indexes_of_t(&p), [("t_a".to_string(), true)], "{msg}");
    assert_eq!(p.counter(), 1);
    p.assert_settled();
}

// ---------------------------------------------------------------------------
// The server is still starting up or recovering.

/// Connection refusals of a server that is not ready yet ("starting up",
/// 57P03), counted in its log.
fn not_ready_refusals(root: &Path) -> usize {
    std::fs::read_to_string(root.join("postgres.log"))
        .unwrap_or_default()
        .lines()
        .filter(|l| {
            l.contains("FATAL")
                && (l.contains("starting up")
                    || l.contains("accepting connections")
                    || l.contains("recovery mode"))
        })
        .count()
}

/// `lull migrate` started while the server is still recovering (held in
/// recovery by a restore_command that waits for a file) does not fail at
/// once: it retries until the server takes connections, then applies.
#[test]
fn migrate_waits_for_a_server_that_is_still_recovering() {
    let mut sandbox = start_sandbox_with(Options {
        settings: vec![
            ("synchronous_commit".into(), "on".into()),
            ("fsync".into(), "on".into()),
        ],
        ..Options::default()
    })
    .unwrap();
    let p = Project::on(&sandbox);
    p.write("001_bump.sql", "update counter set n = n + 1;\n");
    let gate = sandbox.root().join("recovery-gate");
    let script = sandbox.root().join("restore.sh");
    std::fs::write(
        &script,
        format!(
            "while [ ! -f '{}' ]; do sleep 0.1; done; exit 1\n",
            gate.display()
        ),
    )
    .unwrap();
    let mut c = p.client();
    c.batch_execute(&format!(
        "ALTER SYSTEM SET restore_command = 'sh {}'",
        script.display()
    ))
    .unwrap();
    c.batch_execute("ALTER SYSTEM SET hot_standby = off")
        .unwrap();
    drop(c);
    sandbox.stop_server().unwrap();
    std::fs::write(sandbox.root().join("data").join("recovery.signal"), "").unwrap();
    let port = sandbox.port();
    let url = p.db.url().to_string();
    let root = sandbox.root().to_path_buf();
    thread::scope(|s| {
        let starter = s.spawn(|| sandbox.start_server(port));
        // The server answers, and says it is not ready.
        let start = Instant::now();
        loop {
            match postgres::Client::connect(&url, postgres::NoTls) {
                Err(e) if e.code() == Some(&postgres::error::SqlState::CANNOT_CONNECT_NOW) => break,
                Ok(_) => panic!("the server took connections before recovery ended"),
                Err(_) => {}
            }
            assert!(
                start.elapsed() < Duration::from_secs(50),
                "the server never answered"
            );
            thread::sleep(Duration::from_millis(50));
        }
        let before = not_ready_refusals(&root);
        let mut run = p.spawn(&["migrate"]);
        // lull was refused at least twice and is still trying.
        let start = Instant::now();
        while not_ready_refusals(&root) < before + 2 {
            assert!(
                start.elapsed() < Duration::from_secs(40),
                "lull did not retry"
            );
            thread::sleep(Duration::from_millis(50));
        }
        assert!(
            run.try_wait().unwrap().is_none(),
            "lull gave up while the server recovered"
        );
        std::fs::write(&gate, "").unwrap();
        starter.join().unwrap().unwrap();
        let out = run.wait_with_output().unwrap();
        assert!(out.status.success(), "{}", text(&out));
    });
    assert_eq!(p.counter(), 1);
    p.assert_settled();
}
