//! `lull indexes …` and `lull daemon` through the real binary against a
//! real PostgreSQL: check against a pg_dump file, guarded builds in a
//! window of seconds, the load guards, monitor, cancel, report, daemon.
//!
//! Builds are held up deterministically by a session that keeps an old
//! snapshot open (REPEATABLE READ, idle in transaction): a concurrent build
//! waits for it in its "waiting for old snapshots" phase without taking any
//! lock on the table, so the INVALID leftover can be dropped right after a
//! cancel. No assertion depends on speed; waits have wide margins.

use std::path::{Path, PathBuf};
use std::process::{Child, Command as StdCommand, Output, Stdio};
use std::time::{Duration, Instant};

use assert_cmd::Command;
use lull_sandbox::testing::TestDb;

fn bin() -> PathBuf {
    assert_cmd::cargo::cargo_bin("lull")
}

/// A scratch directory holding a config file (and the working directory,
/// so no lull.toml of the checkout is picked up).
struct Scratch {
    dir: tempfile::TempDir,
}

impl Scratch {
    fn new() -> Scratch {
        Scratch {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn config(&self, text: &str) -> PathBuf {
        let path = self.dir.path().join("lull.toml");
        std::fs::write(&path, text).unwrap();
        path
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

fn lull(scratch: &Scratch, url: &str) -> Command {
    let mut cmd = Command::new(bin());
    cmd.current_dir(scratch.path())
        .env_remove("DATABASE_URL")
        .env_remove("LULL_ENV")
        .arg("--database-url")
        .arg(url);
    cmd
}

fn spawn_lull(scratch: &Scratch, url: &str, args: &[&str]) -> Child {
    StdCommand::new(bin())
        .current_dir(scratch.path())
        .env_remove("DATABASE_URL")
        .env_remove("LULL_ENV")
        .arg("--database-url")
        .arg(url)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn wait_output(child: Child, timeout: Duration) -> Output {
    let pid = child.id();
    let deadline = Instant::now() + timeout;
    let mut child = child;
    loop {
        if child.try_wait().unwrap().is_some() {
            return child.wait_with_output().unwrap();
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "lull (pid {pid}) did not finish within {timeout:?}\nstdout:\n{}\nstderr:\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// One `lull indexes auto` pass with `config`; it must exit 0 (a skip or
/// cancel is a decision, not a failure). Returns its output text.
fn auto_pass(scratch: &Scratch, url: &str, config: &Path) -> String {
    let out = lull(scratch, url)
        .arg("--config")
        .arg(config)
        .args(["indexes", "auto"])
        .output()
        .unwrap();
    let t = text(&out);
    assert_eq!(out.status.code(), Some(0), "{t}");
    t
}

fn wait_for(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !cond() {
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A window `HH:MM:SS-HH:MM:SS` in UTC from `from` to `to` seconds from
/// the server's now.
fn window(client: &mut postgres::Client, from: i32, to: i32) -> String {
    client
        .query_one(
            "SELECT to_char(now() AT TIME ZONE 'UTC' + make_interval(secs => $1), 'HH24:MI:SS') || '-' ||
                    to_char(now() AT TIME ZONE 'UTC' + make_interval(secs => $2), 'HH24:MI:SS')",
            &[&f64::from(from), &f64::from(to)],
        )
        .unwrap()
        .get(0)
}

/// A session holding an old snapshot: concurrent builds wait for it.
fn snapshot_blocker(db: &TestDb) -> postgres::Client {
    let mut c = db.client();
    c.batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT count(*) FROM pg_class;")
        .unwrap();
    c
}

fn items_table(db: &TestDb) -> postgres::Client {
    let mut c = db.client();
    c.batch_execute(
        "CREATE TABLE items (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, a int, b text);
         INSERT INTO items (a, b) SELECT g % 500, md5(g::text) FROM generate_series(1, 20000) g;
         ANALYZE items;",
    )
    .unwrap();
    c
}

/// (valid) of an index, or None when it does not exist.
fn index_valid(c: &mut postgres::Client, name: &str) -> Option<bool> {
    c.query_opt(
        "SELECT i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid WHERE c.relname = $1",
        &[&name],
    )
    .unwrap()
    .map(|r| r.get(0))
}

/// (attempts, last_error) of a queue row, or None when not queued.
fn queued(c: &mut postgres::Client, name: &str) -> Option<(i32, Option<String>)> {
    c.query_opt(
        "SELECT attempts, last_error FROM lull.pending_indexes WHERE name = $1",
        &[&name],
    )
    .unwrap()
    .map(|r| (r.get(0), r.get(1)))
}

fn builds_running(c: &mut postgres::Client) -> i64 {
    c.query_one(
        "SELECT count(*) FROM pg_stat_progress_create_index WHERE datname = current_database()",
        &[],
    )
    .unwrap()
    .get(0)
}

const DUMP: &str = r#"--
-- PostgreSQL database dump
--

SET statement_timeout = 0;
SET lock_timeout = 0;
SET client_encoding = 'UTF8';
SET standard_conforming_strings = on;
SELECT pg_catalog.set_config('search_path', '', false);
SET check_function_bodies = false;
SET client_min_messages = warning;

SET default_table_access_method = heap;

CREATE TABLE public.users (
    id bigint NOT NULL,
    email text NOT NULL,
    deleted_at timestamp with time zone
);

CREATE TABLE public.orders (
    id bigint NOT NULL,
    user_id bigint NOT NULL,
    ref text,
    status text NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL
);

ALTER TABLE ONLY public.orders
    ADD CONSTRAINT orders_pkey PRIMARY KEY (id);

ALTER TABLE ONLY public.users
    ADD CONSTRAINT users_pkey PRIMARY KEY (id);

CREATE INDEX orders_open ON public.orders USING btree (created_at) WHERE (status = 'open'::text);

CREATE UNIQUE INDEX orders_ref ON public.orders USING btree (ref);

CREATE INDEX orders_user_created ON public.orders USING btree (user_id, created_at DESC);

CREATE UNIQUE INDEX users_email_live ON public.users USING btree (lower(email)) WHERE (deleted_at IS NULL);

--
-- PostgreSQL database dump complete
--
"#;

#[test]
fn check_finds_missing_invalid_redefined_and_unexpected_then_enqueue_and_build() {
    let db = TestDb::new();
    let scratch = Scratch::new();
    let dump = scratch.path().join("schema.sql");
    std::fs::write(&dump, DUMP).unwrap();
    let mut c = db.client();
    c.batch_execute(DUMP).unwrap();
    c.batch_execute(
        "SET search_path = public;
         DROP INDEX orders_user_created;
         DROP INDEX orders_ref;
         INSERT INTO orders (id, user_id, ref, status) VALUES (1, 1, 'dup', 'open'), (2, 1, 'dup', 'open');
         DROP INDEX orders_open;
         CREATE INDEX orders_open ON orders (created_at) WHERE status = 'pending';
         CREATE INDEX orders_status ON orders (status);",
    )
    .unwrap();
    // A failed unique concurrent build leaves orders_ref INVALID.
    assert!(c
        .batch_execute("CREATE UNIQUE INDEX CONCURRENTLY orders_ref ON public.orders (ref)")
        .is_err());
    assert_eq!(index_valid(&mut c, "orders_ref"), Some(false));

    let out = lull(&scratch, db.url())
        .args(["indexes", "check", "--expected"])
        .arg(&dump)
        .output()
        .unwrap();
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    for expected in [
        "missing    public.orders_user_created",
        "INVALID    public.orders_ref",
        "different  public.orders_open",
        "predicate: expected status = 'open'::text, found status = 'pending'::text",
        "unexpected public.orders_status",
    ] {
        assert!(t.contains(expected), "`{expected}` not in:\n{t}");
    }
    assert!(
        !t.contains("users_email_live"),
        "an unchanged index was reported:\n{t}"
    );
    assert!(
        !t.contains("pkey"),
        "constraint indexes are not compared:\n{t}"
    );

    let out = lull(&scratch, db.url())
        .args([
            "indexes",
            "check",
            "--format",
            "json",
            "--enqueue",
            "--expected",
        ])
        .arg(&dump)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut kinds: Vec<(String, String)> = v["report"]["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["kind"].as_str().unwrap().to_string(),
                f["name"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    kinds.sort();
    assert_eq!(
        kinds,
        vec![
            ("different".into(), "orders_open".into()),
            ("invalid".into(), "orders_ref".into()),
            ("missing".into(), "orders_user_created".into()),
            ("unexpected".into(), "orders_status".into()),
        ]
    );
    assert_eq!(
        v["queued"],
        serde_json::json!(["orders_ref", "orders_user_created"])
    );

    // The missing one builds; the unique one fails on the duplicates, its
    // INVALID leftover is dropped and it stays pending with the error.
    let out = lull(&scratch, db.url())
        .args(["indexes", "build"])
        .output()
        .unwrap();
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(t.contains("built orders_user_created"), "{t}");
    assert!(t.contains("failed orders_ref"), "{t}");
    assert_eq!(index_valid(&mut c, "orders_user_created"), Some(true));
    assert_eq!(index_valid(&mut c, "orders_ref"), None);
    assert_eq!(queued(&mut c, "orders_user_created"), None);
    let (attempts, last) = queued(&mut c, "orders_ref").unwrap();
    assert_eq!(attempts, 1);
    assert!(last.unwrap().contains("could not create unique index"));
}

#[test]
fn check_reads_a_migration_directory_written_by_hand() {
    let db = TestDb::new();
    let scratch = Scratch::new();
    let dir = scratch.path().join("migrations");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(
        dir.join("20240101000000_users.sql"),
        "create table users (id bigint primary key, email varchar(200), deleted_at timestamptz);\n\
         create unique index users_email on users (lower(email)) where deleted_at is null;\n\
         create index users_deleted on users (deleted_at);\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("20240102000000_drop.sql"),
        "drop index users_deleted;\n",
    )
    .unwrap();
    let mut c = db.client();
    c.batch_execute(
        "create table users (id bigint primary key, email varchar(200), deleted_at timestamptz);
         create unique index users_email on users (lower(email)) where deleted_at is null;",
    )
    .unwrap();
    let out = lull(&scratch, db.url())
        .args(["indexes", "check", "--expected"])
        .arg(&dir)
        .output()
        .unwrap();
    let t = text(&out);
    assert_eq!(out.status.code(), Some(0), "{t}");
    assert!(t.contains("1 declared, 1 in the database"), "{t}");
    assert!(t.contains("all match"), "{t}");
}

#[test]
fn window_skips_outside_cancels_when_it_closes_and_builds_in_the_next() {
    let db = TestDb::new();
    let scratch = Scratch::new();
    let mut c = items_table(&db);
    lull(&scratch, db.url())
        .args(["indexes", "add", "CREATE INDEX items_a ON items (a)"])
        .args(["--example-query", "SELECT * FROM items WHERE a = 7"])
        .assert()
        .success();

    // Outside the window: skipped, nothing built, the reason on the row.
    let later = window(&mut c, 3600, 7200);
    let config = scratch.config(&format!("[indexes]\nwindow = \"{later}\"\n"));
    let t = auto_pass(&scratch, db.url(), &config);
    assert!(t.contains("skipped items_a: outside the window"), "{t}");
    assert_eq!(index_valid(&mut c, "items_a"), None);
    let (attempts, last) = queued(&mut c, "items_a").unwrap();
    assert_eq!(attempts, 0);
    assert!(last.unwrap().starts_with("skipped: outside the window"));

    // A window that closes while the build waits for an old snapshot.
    let blocker = snapshot_blocker(&db);
    let closing = window(&mut c, -5, 10);
    let config = scratch.config(&format!(
        "[indexes]\nwindow = \"{closing}\"\ncheck_interval = \"500ms\"\n"
    ));
    let t = auto_pass(&scratch, db.url(), &config);
    assert!(t.contains("cancelled items_a: outside the window"), "{t}");
    assert!(t.contains("INVALID leftover dropped"), "{t}");
    assert_eq!(
        index_valid(&mut c, "items_a"),
        None,
        "the INVALID leftover must be gone"
    );
    let (attempts, last) = queued(&mut c, "items_a").unwrap();
    assert_eq!(attempts, 1);
    assert!(last.unwrap().starts_with("cancelled: outside the window"));
    drop(blocker);

    // The next pass in a window builds it.
    let open = window(&mut c, -60, 3600);
    let config = scratch.config(&format!("[indexes]\nwindow = \"{open}\"\n"));
    let t = auto_pass(&scratch, db.url(), &config);
    assert!(t.contains("built items_a"), "{t}");
    assert!(t.contains("the example query uses it"), "{t}");
    assert_eq!(index_valid(&mut c, "items_a"), Some(true));
    assert_eq!(queued(&mut c, "items_a"), None);
}

/// Sessions busy with `pg_sleep` until cancelled: active load.
struct Load {
    threads: Vec<std::thread::JoinHandle<()>>,
    url: String,
}

impl Load {
    fn start(db: &TestDb, sessions: usize) -> Load {
        let threads = (0..sessions)
            .map(|_| {
                let url = db.url().to_string();
                std::thread::spawn(move || {
                    let mut c = postgres::Client::connect(&url, postgres::NoTls).unwrap();
                    let _ = c.batch_execute("SELECT pg_sleep(120)");
                })
            })
            .collect();
        let load = Load {
            threads,
            url: db.url().to_string(),
        };
        let mut c = db.client();
        wait_for("the load sessions", Duration::from_secs(30), || {
            let n: i64 = c
                .query_one(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()
                        AND state = 'active' AND query LIKE 'SELECT pg_sleep(120)%'",
                    &[],
                )
                .unwrap()
                .get(0);
            n as usize >= sessions
        });
        load
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        if let Ok(mut c) = postgres::Client::connect(&self.url, postgres::NoTls) {
            let _ = c.batch_execute(
                "SELECT pg_cancel_backend(pid) FROM pg_stat_activity
                  WHERE datname = current_database() AND query LIKE 'SELECT pg_sleep(120)%'",
            );
        }
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

#[test]
fn active_connections_guard_skips_and_cancels() {
    let db = TestDb::new();
    let scratch = Scratch::new();
    let mut c = items_table(&db);
    lull(&scratch, db.url())
        .args(["indexes", "add", "CREATE INDEX items_b ON items (b)"])
        .assert()
        .success();
    let config =
        scratch.config("[indexes]\nmax_active_connections = 1\ncheck_interval = \"500ms\"\n");

    {
        let _load = Load::start(&db, 2);
        let t = auto_pass(&scratch, db.url(), &config);
        assert!(
            t.contains("skipped items_b: 2 active sessions, more than max_active_connections = 1"),
            "{t}"
        );
        assert_eq!(index_valid(&mut c, "items_b"), None);
    }

    // Load that rises during the build cancels it.
    let blocker = snapshot_blocker(&db);
    let child = spawn_lull(
        &scratch,
        db.url(),
        &["--config", config.to_str().unwrap(), "indexes", "auto"],
    );
    wait_for("the build to start", Duration::from_secs(60), || {
        builds_running(&mut c) > 0
    });
    let load = Load::start(&db, 2);
    let out = wait_output(child, Duration::from_secs(90));
    drop(load);
    drop(blocker);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(0), "{t}");
    assert!(t.contains("cancelled items_b: "), "{t}");
    assert!(t.contains("more than max_active_connections = 1"), "{t}");
    assert_eq!(index_valid(&mut c, "items_b"), None);
    let (attempts, last) = queued(&mut c, "items_b").unwrap();
    assert_eq!(attempts, 1);
    assert!(last.unwrap().contains("active sessions"));
}

#[test]
fn old_transaction_guard_skips_and_cancels() {
    let db = TestDb::new();
    let scratch = Scratch::new();
    let mut c = items_table(&db);
    lull(&scratch, db.url())
        .args(["indexes", "add", "CREATE INDEX items_ab ON items (a, b)"])
        .assert()
        .success();

    // A transaction already older than the bound: the build would wait for it.
    let old = snapshot_blocker(&db);
    std::thread::sleep(Duration::from_millis(2500));
    let config = scratch.config("[indexes]\nmax_transaction_age = \"2s\"\n");
    let t = auto_pass(&scratch, db.url(), &config);
    assert!(t.contains("skipped items_ab: transaction of pid"), "{t}");
    assert!(t.contains("above max_transaction_age (2s)"), "{t}");
    assert_eq!(index_valid(&mut c, "items_ab"), None);
    drop(old);

    // A young transaction that grows old while the build waits for it.
    let young = snapshot_blocker(&db);
    let config =
        scratch.config("[indexes]\nmax_transaction_age = \"8s\"\ncheck_interval = \"500ms\"\n");
    let t = auto_pass(&scratch, db.url(), &config);
    drop(young);
    assert!(t.contains("cancelled items_ab: transaction of pid"), "{t}");
    assert!(t.contains("INVALID leftover dropped"), "{t}");
    assert_eq!(index_valid(&mut c, "items_ab"), None);
    assert_eq!(queued(&mut c, "items_ab").unwrap().0, 1);
}

/// Kills the daemon and fails the test with its output.
fn fail(daemon: &mut Option<Child>, what: &str) -> ! {
    let child = daemon.take().unwrap();
    unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
    let out = child.wait_with_output().unwrap();
    panic!("{what}\n{}", text(&out));
}

#[test]
fn max_build_duration_cancels_a_long_build() {
    let db = TestDb::new();
    let scratch = Scratch::new();
    let mut c = items_table(&db);
    lull(&scratch, db.url())
        .args(["indexes", "add", "CREATE INDEX items_id_a ON items (id, a)"])
        .assert()
        .success();
    let blocker = snapshot_blocker(&db);
    let config =
        scratch.config("[indexes]\nmax_build_duration = \"2s\"\ncheck_interval = \"500ms\"\n");
    let t = auto_pass(&scratch, db.url(), &config);
    drop(blocker);
    assert!(
        t.contains("cancelled items_id_a: build ran longer than max_build_duration (2s)"),
        "{t}"
    );
    assert_eq!(index_valid(&mut c, "items_id_a"), None);
    assert!(queued(&mut c, "items_id_a")
        .unwrap()
        .1
        .unwrap()
        .contains("max_build_duration"));
}

/// Starts `CREATE INDEX CONCURRENTLY` from plain psql (another process,
/// another tool), or from a thread when psql is not installed.
fn foreign_build(db: &TestDb, sql: &str) -> Box<dyn FnOnce() -> bool> {
    let psql = std::env::var_os("PATH").and_then(|p| {
        std::env::split_paths(&p)
            .map(|d| d.join("psql"))
            .find(|p| p.is_file())
    });
    match psql {
        Some(psql) => {
            let mut child = StdCommand::new(psql)
                .arg(db.url())
                .args(["-X", "-q", "-c", sql])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            Box::new(move || child.wait().unwrap().success())
        }
        None => {
            let url = db.url().to_string();
            let sql = sql.to_string();
            let t = std::thread::spawn(move || {
                let mut c = postgres::Client::connect(&url, postgres::NoTls).unwrap();
                c.batch_execute(&sql).is_ok()
            });
            Box::new(move || t.join().unwrap())
        }
    }
}

#[test]
fn monitor_shows_a_build_started_by_psql_and_cancel_cleans_it_up() {
    let db = TestDb::new();
    let scratch = Scratch::new();
    let mut c = items_table(&db);
    let mut blocker = snapshot_blocker(&db);
    let blocker_pid: i32 = blocker
        .query_one("SELECT pg_backend_pid()", &[])
        .unwrap()
        .get(0);
    let finished = foreign_build(&db, "CREATE INDEX CONCURRENTLY items_by_psql ON items (b)");
    wait_for(
        "the psql build to wait for the old snapshot",
        Duration::from_secs(60),
        || {
            c.query_one(
                "SELECT count(*) FROM pg_stat_progress_create_index
              WHERE datname = current_database() AND phase = 'waiting for old snapshots'",
                &[],
            )
            .unwrap()
            .get::<_, i64>(0)
                > 0
        },
    );

    let out = lull(&scratch, db.url())
        .args(["indexes", "monitor", "--once"])
        .output()
        .unwrap();
    let t = text(&out);
    assert_eq!(out.status.code(), Some(0), "{t}");
    assert!(
        t.contains("items_by_psql: waiting for old snapshots"),
        "{t}"
    );
    assert!(t.contains(&format!("waiting for pid {blocker_pid}")), "{t}");
    assert!(t.contains("CREATE INDEX CONCURRENTLY"), "{t}");

    let out = lull(&scratch, db.url())
        .args(["indexes", "monitor", "--once", "--format", "json"])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let build = v
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["index"] == "items_by_psql")
        .expect("the psql build is listed");
    assert_eq!(build["waiting_for"]["pid"], blocker_pid);
    assert_eq!(build["database"], db.name());

    let out = lull(&scratch, db.url())
        .args(["indexes", "cancel", "items_by_psql"])
        .output()
        .unwrap();
    let t = text(&out);
    assert_eq!(out.status.code(), Some(0), "{t}");
    assert!(t.contains("cancelled the build of items_by_psql"), "{t}");
    assert!(
        t.contains("dropped the INVALID index public.items_by_psql"),
        "{t}"
    );
    assert!(!finished(), "the psql build should have been cancelled");
    assert_eq!(index_valid(&mut c, "items_by_psql"), None);
    blocker.batch_execute("COMMIT").unwrap();

    let out = lull(&scratch, db.url())
        .args(["indexes", "cancel", "items_by_psql"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(2),
        "nothing left to cancel: {}",
        text(&out)
    );
}

#[test]
fn cancel_stops_a_lull_build_for_good_and_it_stays_pending() {
    let db = TestDb::new();
    let scratch = Scratch::new();
    let mut c = items_table(&db);
    lull(&scratch, db.url())
        .args(["indexes", "add", "CREATE INDEX items_ba ON items (b, a)"])
        .assert()
        .success();
    let blocker = snapshot_blocker(&db);
    let build = spawn_lull(&scratch, db.url(), &["indexes", "build"]);
    wait_for("the build to start", Duration::from_secs(60), || {
        builds_running(&mut c) > 0
    });
    let out = lull(&scratch, db.url())
        .args(["indexes", "cancel", "items_ba"])
        .output()
        .unwrap();
    let t = text(&out);
    assert_eq!(out.status.code(), Some(0), "{t}");
    assert!(t.contains("cancelled the build of items_ba"), "{t}");
    let out = wait_output(build, Duration::from_secs(60));
    drop(blocker);
    let t = text(&out);
    assert_eq!(
        out.status.code(),
        Some(1),
        "a cancelled `build` is not a success: {t}"
    );
    assert!(
        t.contains("cancelled items_ba: cancelled from another session"),
        "{t}"
    );
    assert!(
        !t.contains("try 2"),
        "a cancelled build must not start again: {t}"
    );
    assert_eq!(index_valid(&mut c, "items_ba"), None);
    assert!(queued(&mut c, "items_ba").is_some());
}

#[test]
fn report_names_unused_index_and_duplicate_pair() {
    let db = TestDb::new();
    let scratch = Scratch::new();
    let mut c = items_table(&db);
    c.batch_execute(
        "CREATE INDEX items_a_1 ON items (a);
         CREATE INDEX items_a_2 ON items (a);
         CREATE INDEX items_a_b ON items (a, b);
         CREATE INDEX items_b_unused ON items (b);
         CREATE INDEX items_lower_b ON items (lower(b));
         SET enable_seqscan = off; SET enable_bitmapscan = off;
         SELECT count(*) FROM items WHERE lower(b) = 'x';
         SELECT pg_stat_force_next_flush();",
    )
    .unwrap();
    // Statistics reach the shared view when the session reports them.
    drop(c);
    let mut c = db.client();
    wait_for("index statistics", Duration::from_secs(30), || {
        c.query_one(
            "SELECT idx_scan FROM pg_stat_user_indexes WHERE indexrelname = 'items_lower_b'",
            &[],
        )
        .unwrap()
        .get::<_, i64>(0)
            > 0
    });
    let out = lull(&scratch, db.url())
        .args(["indexes", "report"])
        .output()
        .unwrap();
    let t = text(&out);
    assert_eq!(out.status.code(), Some(0), "{t}");
    assert!(
        t.contains(
            "duplicate public.items_a_2: same table, key, predicate and method as public.items_a_1"
        ),
        "{t}"
    );
    assert!(
        t.contains("DROP INDEX CONCURRENTLY IF EXISTS public.items_a_2;"),
        "{t}"
    );
    assert!(
        t.contains("unused public.items_b_unused: no scan since"),
        "{t}"
    );
    assert!(
        t.contains("redundant public.items_a_1: its key is a prefix of public.items_a_b"),
        "{t}"
    );
    assert!(
        !t.contains("unused public.items_lower_b"),
        "a scanned index is reported unused:\n{t}"
    );
    assert!(
        !t.contains("items_pkey:"),
        "a primary key is never suggested:\n{t}"
    );
}

#[test]
fn daemon_builds_at_its_tick_survives_a_restart_and_stops_on_sigterm() {
    let mut sandbox = lull_sandbox::Sandbox::start().unwrap();
    let url = sandbox.url("postgres");
    let scratch = Scratch::new();
    let connect = |url: &str| postgres::Client::connect(url, postgres::NoTls).unwrap();
    let mut c = connect(&url);
    c.batch_execute(
        "CREATE TABLE events (id bigint, kind int, at timestamptz DEFAULT now());
         INSERT INTO events (id, kind) SELECT g, g % 7 FROM generate_series(1, 5000) g;",
    )
    .unwrap();
    let config =
        scratch.config("[indexes]\nschedule = \"*/2 * * * * *\"\ncheck_interval = \"500ms\"\n");
    lull(&scratch, &url)
        .args([
            "indexes",
            "add",
            "CREATE INDEX events_kind ON events (kind)",
        ])
        .assert()
        .success();
    let daemon = spawn_lull(
        &scratch,
        &url,
        &["--config", config.to_str().unwrap(), "daemon"],
    );
    let daemon_pid = daemon.id() as i32;
    let mut daemon = Some(daemon);

    let built = |c: &mut postgres::Client, name: &str| {
        index_valid(c, name) == Some(true) && queued(c, name).is_none()
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while !built(&mut c, "events_kind") {
        if Instant::now() > deadline {
            fail(
                &mut daemon,
                "the daemon did not build events_kind at a tick",
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }

    sandbox.restart().unwrap();
    let mut c = connect(&url);
    lull(&scratch, &url)
        .args(["indexes", "add", "CREATE INDEX events_at ON events (at)"])
        .assert()
        .success();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !built(&mut c, "events_at") {
        if Instant::now() > deadline {
            fail(
                &mut daemon,
                "the daemon did not build after the server restart",
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }

    // SIGTERM during a build: the build is cancelled and cleaned up.
    let mut blocker = connect(&url);
    blocker
        .batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT count(*) FROM pg_class;")
        .unwrap();
    lull(&scratch, &url)
        .args(["indexes", "add", "CREATE INDEX events_id ON events (id)"])
        .assert()
        .success();
    let deadline = Instant::now() + Duration::from_secs(60);
    while builds_running(&mut c) == 0 {
        if Instant::now() > deadline {
            fail(&mut daemon, "the daemon did not start building events_id");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    unsafe { libc::kill(daemon_pid, libc::SIGTERM) };
    let out = wait_output(daemon.take().unwrap(), Duration::from_secs(60));
    drop(blocker);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(0), "{t}");
    assert!(t.contains("built events_kind"), "{t}");
    assert!(t.contains("built events_at"), "{t}");
    assert!(t.contains("cancelled events_id: stopped on request"), "{t}");
    assert!(t.contains("lull daemon stopped"), "{t}");
    assert_eq!(
        index_valid(&mut c, "events_id"),
        None,
        "the INVALID leftover must be gone"
    );
    assert!(queued(&mut c, "events_id")
        .unwrap()
        .1
        .unwrap()
        .contains("stopped on request"));
}

#[test]
fn report_keeps_a_foreign_keys_only_index_and_skips_young_ones() {
    // Commit timestamps tell an index's age; without them it is unknown.
    let sandbox = lull_sandbox::Sandbox::start_with(lull_sandbox::Options {
        settings: vec![("track_commit_timestamp".into(), "on".into())],
        ..lull_sandbox::Options::default()
    })
    .unwrap();
    let url = sandbox.url("postgres");
    let scratch = Scratch::new();
    let mut c = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    c.batch_execute(
        "CREATE TABLE customers (id int PRIMARY KEY);
         CREATE TABLE orders (id int PRIMARY KEY, customer_id int REFERENCES customers, note text);
         CREATE INDEX orders_customer_id ON orders (customer_id);
         CREATE INDEX orders_note ON orders (note);",
    )
    .unwrap();
    let report = |min_age: &str| {
        let out = lull(&scratch, &url)
            .args(["indexes", "report", "--min-age", min_age])
            .output()
            .unwrap();
        let t = text(&out);
        assert_eq!(out.status.code(), Some(0), "{t}");
        t
    };
    // Built a moment ago: too young to call unused by default.
    let t = report("7d");
    assert!(!t.contains("unused public.orders_note"), "{t}");
    // With no minimum age it is unused, with its age said; the foreign
    // key's only index never is.
    let t = report("0s");
    assert!(
        t.contains("unused public.orders_note: no scan since")
            && t.contains("it has existed for 0 minutes"),
        "{t}"
    );
    assert!(!t.contains("unused public.orders_customer_id"), "{t}");
    // A second index serving the key: the narrower one is redundant, and
    // the key keeps the other.
    c.batch_execute("CREATE INDEX orders_customer_note ON orders (customer_id, note)")
        .unwrap();
    let t = report("0s");
    assert!(
        t.contains(
            "redundant public.orders_customer_id: its key is a prefix of public.orders_customer_note"
        ),
        "{t}"
    );
    assert!(!t.contains("unused public.orders_customer_note"), "{t}");
    // JSON names the foreign keys an index serves.
    let out = lull(&scratch, &url)
        .args(["indexes", "report", "--format", "json"])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let served: Vec<&serde_json::Value> = v["indexes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["name"] == "orders_customer_id")
        .collect();
    assert_eq!(
        served[0]["foreign_keys"][0], "orders_customer_id_fkey",
        "{v}"
    );
    assert!(served[0]["since"].is_string(), "{v}");
}

#[test]
fn remove_takes_an_index_off_the_queue_and_names_unknown_ones() {
    let db = TestDb::new();
    let scratch = Scratch::new();
    let mut c = items_table(&db);
    lull(&scratch, db.url())
        .args([
            "indexes",
            "add",
            "CREATE INDEX items_bad ON items (no_such_column)",
        ])
        .assert()
        .success();
    assert!(queued(&mut c, "items_bad").is_some());
    let out = lull(&scratch, db.url())
        .args(["indexes", "remove", "items_bad"])
        .output()
        .unwrap();
    let t = text(&out);
    assert_eq!(out.status.code(), Some(0), "{t}");
    assert!(
        t.contains("removed items_bad from the pending queue"),
        "{t}"
    );
    assert!(queued(&mut c, "items_bad").is_none());
    let out = lull(&scratch, db.url())
        .args(["indexes", "remove", "items_bad"])
        .output()
        .unwrap();
    let t = text(&out);
    assert_eq!(out.status.code(), Some(2), "{t}");
    assert!(t.contains("not in the pending queue: items_bad"), "{t}");
    assert!(t.contains("lull indexes pending"), "{t}");
}
