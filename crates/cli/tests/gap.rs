//! Gap-aware lock acquisition through the CLI against a real PostgreSQL:
//! with a long reader open, lull watches instead of queueing, so a writer
//! never waits behind it for more than one short try; it gets in right
//! after the reader commits; on a hot table of short transactions it
//! still gets in; the wait budget ends in the blocker report; the opt-in
//! `[policy.blockers]` terminates only the sessions it is told to, and
//! says so.
//!
//! Timings are behaviour with wide margins (a writer stalled for about a
//! try versus the reader's whole life), never speed.

use std::path::Path;
use std::process::{Child, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::{Duration, Instant};

use lull_sandbox::testing::TestDb;

struct Project {
    dir: tempfile::TempDir,
    db: TestDb,
}

impl Project {
    fn new(table_sql: &str, migration: &str) -> Project {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("migrations")).unwrap();
        std::fs::write(dir.path().join("migrations/001_change.sql"), migration).unwrap();
        let db = TestDb::new();
        db.client().batch_execute(table_sql).unwrap();
        Project { dir, db }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn config(&self, toml: &str) {
        std::fs::write(self.path().join("lull.toml"), toml).unwrap();
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

    fn connect(&self, application: &str) -> postgres::Client {
        let url = format!(
            "{}{}application_name={}",
            self.db.url(),
            if self.db.url().contains('?') {
                "&"
            } else {
                "?"
            },
            application.replace(' ', "%20")
        );
        postgres::Client::connect(&url, postgres::NoTls).unwrap()
    }

    fn has_column(&self, column: &str) -> bool {
        self.db
            .client()
            .query_one(
                "SELECT count(*) = 1 FROM information_schema.columns WHERE table_name = 't' AND column_name = $1",
                &[&column],
            )
            .unwrap()
            .get(0)
    }
}

/// An open transaction holding what `sql` locked, as `application`,
/// until told to commit. Returns its pid.
fn open_transaction(
    p: &Project,
    application: &str,
    sql: &str,
) -> (
    i32,
    mpsc::Sender<()>,
    thread::JoinHandle<Result<(), String>>,
) {
    let mut client = p.connect(application);
    let pid: i32 = client
        .query_one("SELECT pg_backend_pid()", &[])
        .unwrap()
        .get(0);
    client.batch_execute("BEGIN").unwrap();
    client.batch_execute(sql).unwrap();
    let (tx, rx) = mpsc::channel::<()>();
    let handle = thread::spawn(move || {
        let _ = rx.recv();
        client.batch_execute("COMMIT").map_err(|e| e.to_string())
    });
    (pid, tx, handle)
}

/// Single-row writes every 20 ms until `stop`; returns each write's
/// latency with the time it started.
fn writer(url: String, stop: Arc<AtomicBool>) -> thread::JoinHandle<Vec<(Instant, Duration)>> {
    thread::spawn(move || {
        let mut client = postgres::Client::connect(&url, postgres::NoTls).unwrap();
        let mut out = Vec::new();
        while !stop.load(Ordering::SeqCst) {
            let t = Instant::now();
            client
                .batch_execute("INSERT INTO t (id) VALUES (1)")
                .unwrap();
            out.push((t, t.elapsed()));
            thread::sleep(Duration::from_millis(20));
        }
        out
    })
}

fn json_events(out: &Output) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Waits until lull's monitor connection is there (the run has started).
fn wait_for_lull(p: &Project) {
    let start = Instant::now();
    let mut c = p.db.client();
    loop {
        let up: bool = c
            .query_one(
                "SELECT EXISTS (SELECT FROM pg_stat_activity WHERE application_name = 'lull monitor' AND datname = current_database())",
                &[],
            )
            .unwrap()
            .get(0);
        if up {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "lull never connected"
        );
        thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn long_reader_costs_writers_at_most_a_short_try_and_lull_goes_in_right_after_it() {
    let p = Project::new(
        "CREATE TABLE t (id int)",
        "ALTER TABLE t ADD COLUMN c int;\n",
    );
    let (reader, release, reader_done) =
        open_transaction(&p, "nightly report", "SELECT count(*) FROM t");
    let child = p.spawn(&["migrate", "--format", "json"]);
    wait_for_lull(&p);
    let stop = Arc::new(AtomicBool::new(false));
    let w = writer(p.db.url().to_string(), stop.clone());
    // The reader stays open for 4 s while lull runs and the writer writes.
    thread::sleep(Duration::from_secs(4));
    assert!(
        !p.has_column("c"),
        "the ALTER cannot have run while the reader was open"
    );
    let released = Instant::now();
    release.send(()).unwrap();
    reader_done.join().unwrap().unwrap();
    let out = child.wait_with_output().unwrap();
    let finished = Instant::now();
    stop.store(true, Ordering::SeqCst);
    let writes = w.join().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert!(p.has_column("c"));

    // While the reader was open, lull watched it instead of queueing: no
    // write waited anywhere near the reader's life (a plain ALTER stalls
    // them all for the whole 4 s); one short try is 50 ms.
    let during: Vec<Duration> = writes
        .iter()
        .filter(|(at, _)| *at < released)
        .map(|(_, l)| *l)
        .collect();
    assert!(during.len() > 20, "the writer hardly wrote: {during:?}");
    let worst = during.iter().max().unwrap();
    assert!(
        *worst < Duration::from_millis(1500),
        "a write waited {worst:?} behind lull's ALTER"
    );
    // It went in right after the reader committed, not after a sleep of
    // a retry schedule.
    assert!(
        finished.duration_since(released) < Duration::from_secs(5),
        "lull finished {:?} after the reader committed",
        finished.duration_since(released)
    );

    let events = json_events(&out);
    let waiting: Vec<&serde_json::Value> = events
        .iter()
        .filter(|e| e["event"] == "lock-waiting")
        .collect();
    assert!(!waiting.is_empty(), "{}", text(&out));
    let holder = &waiting[0]["holders"][0];
    assert_eq!(holder["pid"], reader, "{holder}");
    assert_eq!(holder["application"], "nightly report");
    assert_eq!(holder["state"], "idle in transaction");
    assert_eq!(holder["mode"], "AccessShareLock");
    assert!(holder["query"].as_str().unwrap().contains("count(*)"));
    assert!(holder["transaction_age_secs"].as_f64().unwrap() > 0.0);
    // A live report: it kept coming while lull waited.
    assert!(
        waiting.len() >= 2,
        "one waiting event in 4 s: {}",
        text(&out)
    );
}

#[test]
fn hot_table_of_short_transactions_still_gets_in() {
    let p = Project::new(
        "CREATE TABLE t (id int, n int); INSERT INTO t SELECT g, 0 FROM generate_series(1, 8) g",
        "ALTER TABLE t ADD COLUMN c int;\n",
    );
    p.config("[policy.ddl]\nwait_budget = \"2m\"\n");
    // Four sessions that always have a transaction open on t: 60 ms each,
    // back to back, overlapping, so some holder is older than a 50 ms try
    // nearly all the time.
    let stop = Arc::new(AtomicBool::new(false));
    let workers: Vec<_> = (0..4)
        .map(|k| {
            let url = p.db.url().to_string();
            let stop = stop.clone();
            thread::spawn(move || {
                let mut c = postgres::Client::connect(&url, postgres::NoTls).unwrap();
                let mut n = 0u32;
                thread::sleep(Duration::from_millis(15 * k));
                while !stop.load(Ordering::SeqCst) {
                    c.batch_execute(&format!(
                        "BEGIN; UPDATE t SET n = n + 1 WHERE id = {}; SELECT pg_sleep(0.06); COMMIT",
                        k + 1
                    ))
                    .unwrap();
                    n += 1;
                }
                n
            })
        })
        .collect();
    thread::sleep(Duration::from_millis(500));
    let child = p.spawn(&["migrate", "--format", "json"]);
    let out = child.wait_with_output().unwrap();
    stop.store(true, Ordering::SeqCst);
    let done: u32 = workers.into_iter().map(|w| w.join().unwrap()).sum();
    assert!(out.status.success(), "{}", text(&out));
    assert!(p.has_column("c"));
    assert!(done > 8, "the hot table was not hot: {done} transactions");
    let finished = json_events(&out)
        .into_iter()
        .find(|e| e["event"] == "step-finished")
        .expect("a step-finished event");
    assert!(finished["tries"].as_u64().unwrap() >= 1);
}

#[test]
fn wait_budget_ends_in_the_blocker_report_and_says_who_it_waited_for() {
    let p = Project::new(
        "CREATE TABLE t (id int); CREATE TABLE log (n int)",
        "INSERT INTO log VALUES (1);\nALTER TABLE t ADD COLUMN c int;\n",
    );
    p.config("[policy.ddl]\nwait_budget = \"2s\"\n");
    let (pid, release, done) = open_transaction(&p, "forgotten psql", "LOCK TABLE t IN SHARE MODE");
    let started = Instant::now();
    let out = p.spawn(&["migrate"]).wait_with_output().unwrap();
    let took = started.elapsed();
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    // The live line names who lull waits for.
    assert!(t.contains("waiting for a gap"), "{t}");
    assert!(
        t.contains(&format!("pid {pid} (forgotten psql, idle in transaction")),
        "{t}"
    );
    // The end: the budget, then the blocker report.
    assert!(t.contains("within its wait budget"), "{t}");
    assert!(t.contains("blocked by"), "{t}");
    assert!(t.contains("LOCK TABLE t IN SHARE MODE"), "{t}");
    assert!(took >= Duration::from_secs(2), "gave up after {took:?}");
    assert!(!p.has_column("c"));
    let logged: i64 =
        p.db.client()
            .query_one("SELECT count(*) FROM log", &[])
            .unwrap()
            .get(0);
    assert_eq!(logged, 0, "the step's other statement must not commit");
    release.send(()).unwrap();
    done.join().unwrap().unwrap();
}

#[test]
fn blocker_policy_terminates_only_the_configured_kind_and_logs_it() {
    let p = Project::new(
        "CREATE TABLE t (id int)",
        "ALTER TABLE t ADD COLUMN c int;\n",
    );
    // Only in the `ci` environment; only idle-in-transaction sessions.
    p.config(
        "[policy.ddl]\nwait_budget = \"2m\"\n\n\
         [env.ci.policy.blockers]\nterminate_idle_in_transaction_after = \"1s\"\n",
    );
    // An idle transaction (to be terminated) and a running query (to be
    // waited for: cancelling queries is not switched on).
    let (idle, _keep_idle, idle_done) =
        open_transaction(&p, "forgotten psql", "SELECT count(*) FROM t");
    let url = format!(
        "{}{}application_name=report",
        p.db.url(),
        if p.db.url().contains('?') { "&" } else { "?" }
    );
    let mut report = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    let report_pid: i32 = report
        .query_one("SELECT pg_backend_pid()", &[])
        .unwrap()
        .get(0);
    let running = thread::spawn(move || {
        report
            .batch_execute("BEGIN; SELECT count(*) FROM t; SELECT pg_sleep(6); COMMIT")
            .map_err(|e| e.to_string())
    });
    thread::sleep(Duration::from_millis(300));
    let out = p
        .spawn(&["--env", "ci", "migrate", "--format", "json"])
        .wait_with_output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert!(p.has_column("c"));
    // The running report was left alone and committed.
    running.join().unwrap().expect("the report was not touched");
    // The idle one was terminated: its COMMIT fails on a closed connection.
    drop(_keep_idle);
    assert!(
        idle_done.join().unwrap().is_err(),
        "the idle transaction should have been terminated"
    );
    let actions: Vec<serde_json::Value> = json_events(&out)
        .into_iter()
        .filter(|e| e["event"] == "blocker-action")
        .collect();
    assert_eq!(actions.len(), 1, "{}", text(&out));
    let a = &actions[0];
    assert_eq!(a["action"], "terminate");
    assert_eq!(a["ok"], true);
    assert_eq!(a["session"]["pid"], idle);
    assert_ne!(a["session"]["pid"], report_pid);
    assert_eq!(a["session"]["application"], "forgotten psql");
    assert!(a["session"]["user"].as_str().is_some_and(|u| !u.is_empty()));
    assert!(a["session"]["query"].as_str().unwrap().contains("count(*)"));
}

#[test]
fn blocker_policy_is_off_by_default() {
    let p = Project::new(
        "CREATE TABLE t (id int)",
        "ALTER TABLE t ADD COLUMN c int;\n",
    );
    p.config(
        "[policy.ddl]\nwait_budget = \"3s\"\n\n\
         [env.ci.policy.blockers]\nterminate_idle_in_transaction_after = \"1s\"\n",
    );
    let (_idle, release, idle_done) =
        open_transaction(&p, "forgotten psql", "SELECT count(*) FROM t");
    // Without --env ci nothing is terminated: the budget runs out.
    let out = p.spawn(&["migrate"]).wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(!text(&out).contains("terminated"), "{}", text(&out));
    release.send(()).unwrap();
    idle_done
        .join()
        .unwrap()
        .expect("the idle session is alive");
}
