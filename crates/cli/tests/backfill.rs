//! `lull backfill` through the CLI against a real PostgreSQL: exactly-once
//! batches across `kill -9` and a server restart, per-tenant batches,
//! pause and resume from a second process, DELETE backfills, the final
//! count, and the refusals.
//!
//! Waits are for behaviour (a batch committed, a hold recorded) with wide
//! limits, never for speed.

use std::path::Path;
use std::process::{Child, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use assert_cmd::Command;
use lull_sandbox::testing::TestDb;
use predicates::prelude::*;

/// Slow, fixed-size batches so a test can act mid-way.
const SLOW: &str = "[backfill]\nbatch_size = 50\nmin_batch_size = 50\nmax_batch_size = 50\n\
                    pause_between = \"30ms\"\nhold_check_interval = \"50ms\"\n";

struct Project {
    dir: tempfile::TempDir,
    url: String,
}

impl Project {
    fn new(url: &str, toml: &str) -> Project {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("lull.toml"), toml).unwrap();
        Project {
            dir,
            url: url.to_string(),
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn lull(&self) -> Command {
        let mut cmd = Command::cargo_bin("lull").unwrap();
        cmd.current_dir(self.path())
            .env_remove("LULL_ENV")
            .env("DATABASE_URL", &self.url)
            .env("NO_COLOR", "1");
        cmd
    }

    fn spawn(&self, args: &[&str]) -> Child {
        std::process::Command::new(assert_cmd::cargo::cargo_bin("lull"))
            .args(args)
            .current_dir(self.path())
            .env_remove("LULL_ENV")
            .env("DATABASE_URL", &self.url)
            .env("NO_COLOR", "1")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    }

    fn client(&self) -> postgres::Client {
        postgres::Client::connect(&self.url, postgres::NoTls).unwrap()
    }

    fn scalar(&self, sql: &str) -> i64 {
        self.client().query_one(sql, &[]).unwrap().get(0)
    }
}

fn wait_until(p: &Project, sql: &str, limit: Duration) {
    let start = Instant::now();
    loop {
        let ok = p
            .client()
            .query_one(sql, &[])
            .map(|r| r.get::<_, bool>(0))
            .unwrap_or(false);
        if ok {
            return;
        }
        assert!(start.elapsed() < limit, "timed out waiting for: {sql}");
        thread::sleep(Duration::from_millis(50));
    }
}

/// The output of a spawned run, killing it (and failing the test) when it
/// does not end within `limit`: a hung run must not hang the suite.
fn finish(mut child: Child, limit: Duration) -> std::process::Output {
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > limit {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!("lull did not end within {limit:?}:\n{}", text(&out));
        }
        thread::sleep(Duration::from_millis(100));
    }
    child.wait_with_output().unwrap()
}

const LIMIT: Duration = Duration::from_secs(300);

fn text(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Waits until no session holds a backfill's lock: the killed run's
/// backend has ended (and with it its open batch, rolled back).
fn wait_for_session_end(p: &Project) {
    wait_until(
        p,
        "SELECT NOT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND classid = 1819634796 AND database = (SELECT oid FROM pg_database WHERE datname = current_database()))",
        Duration::from_secs(60),
    );
}

fn counter_table(p: &Project, rows: i64) {
    p.client()
        .batch_execute(&format!(
            "CREATE TABLE t (id bigint PRIMARY KEY, c int NOT NULL DEFAULT 0);
             INSERT INTO t (id) SELECT g FROM generate_series(1, {rows}) g;
             ANALYZE t;"
        ))
        .unwrap();
}

const INCREMENT: &[&str] = &[
    "backfill",
    "run",
    "--table",
    "t",
    "--set",
    "c = c + 1",
    "--name",
    "inc",
    "--format",
    "json",
];

const MID_WAY: &str =
    "SELECT coalesce((SELECT batches >= 5 FROM lull.backfills WHERE name = 'inc'), false)";

#[test]
fn kill_9_mid_way_then_resume_increments_every_row_once() {
    let db = TestDb::new();
    let p = Project::new(db.url(), SLOW);
    counter_table(&p, 3000);
    let mut child = p.spawn(INCREMENT);
    wait_until(&p, MID_WAY, Duration::from_secs(120));
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    wait_for_session_end(&p);
    let (done, untouched) = (
        p.scalar("SELECT count(*) FROM t WHERE c = 1"),
        p.scalar("SELECT count(*) FROM t WHERE c = 0"),
    );
    assert!(
        done > 0 && untouched > 0,
        "killed mid-way: {done} done, {untouched} not"
    );
    assert_eq!(p.scalar("SELECT count(*) FROM t WHERE c > 1"), 0);
    // The recorded progress is exactly what the table shows.
    assert_eq!(
        p.scalar("SELECT rows_done FROM lull.backfills WHERE name = 'inc'"),
        done
    );
    p.lull()
        .args(["backfill", "status", "inc"])
        .assert()
        .success()
        .stdout(predicate::str::contains("interrupted"));

    let out = p.lull().args(INCREMENT).output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("\"resumed\":true"), "{stdout}");
    assert_eq!(p.scalar("SELECT count(*) FROM t WHERE c = 1"), 3000);
    assert_eq!(p.scalar("SELECT count(*) FROM t WHERE c <> 1"), 0);

    // Once more: recorded as done, nothing is applied again.
    p.lull()
        .args([
            "backfill",
            "run",
            "--table",
            "t",
            "--set",
            "c = c + 1",
            "--name",
            "inc",
            "--format",
            "human",
        ])
        .assert()
        .success()
        .stderr(predicate::str::contains("finished by an earlier run"));
    assert_eq!(p.scalar("SELECT count(*) FROM t WHERE c <> 1"), 0);
}

#[test]
fn a_server_restart_mid_way_then_resume_increments_every_row_once() {
    // A server of this test's own: restarting the shared one would break
    // the other tests.
    let mut sandbox = lull_sandbox::testing::start_sandbox().expect("a sandbox of the test's own");
    let p = Project::new(&sandbox.url("postgres"), SLOW);
    counter_table(&p, 3000);
    let child = p.spawn(INCREMENT);
    wait_until(&p, MID_WAY, Duration::from_secs(120));
    sandbox.restart().unwrap();
    let out = finish(child, LIMIT);
    assert!(
        !out.status.success(),
        "the run cannot survive its server going away"
    );
    let done = p.scalar("SELECT count(*) FROM t WHERE c = 1");
    assert!(done > 0 && done < 3000, "{done}");
    assert_eq!(
        p.scalar("SELECT rows_done FROM lull.backfills WHERE name = 'inc'"),
        done
    );
    let out = p.lull().args(INCREMENT).output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(p.scalar("SELECT count(*) FROM t WHERE c <> 1"), 0);
}

#[test]
fn per_tenant_batches_never_mix_tenants() {
    let db = TestDb::new();
    let p = Project::new(
        db.url(),
        "[backfill]\nbatch_size = 7\nmin_batch_size = 7\nmax_batch_size = 7\n",
    );
    // Tenants interleaved in key order, one NULL tenant, a composite key;
    // a statement trigger logs how many tenants each UPDATE touched.
    p.client()
        .batch_execute(
            "CREATE TABLE orders (shard int NOT NULL, id int NOT NULL, tenant_id int, \
                 region text, PRIMARY KEY (shard, id));
             CREATE TABLE tenants (id int PRIMARY KEY, region text);
             INSERT INTO tenants SELECT g, 'r' || g FROM generate_series(1, 4) g;
             INSERT INTO orders (shard, id, tenant_id) \
                 SELECT g % 3, g, CASE WHEN g % 10 = 0 THEN NULL ELSE g % 4 + 1 END \
                 FROM generate_series(1, 200) g;
             CREATE TABLE batch_log (tenants bigint, nulls bigint, n bigint);
             CREATE FUNCTION log_batch() RETURNS trigger LANGUAGE plpgsql AS $$
             BEGIN
               INSERT INTO batch_log SELECT count(DISTINCT tenant_id), count(*) FILTER (WHERE tenant_id IS NULL), count(*) FROM new_rows;
               RETURN NULL;
             END $$;
             CREATE TRIGGER log_batch AFTER UPDATE ON orders REFERENCING NEW TABLE AS new_rows \
                 FOR EACH STATEMENT EXECUTE FUNCTION log_batch();",
        )
        .unwrap();
    let out = p
        .lull()
        .args([
            "backfill",
            "run",
            "--table",
            "orders",
            "--set",
            "region = t.region FROM tenants t",
            "--where",
            "t.id = orders.tenant_id AND orders.region IS NULL",
            "--per",
            "tenant_id",
            "--format",
            "json",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        p.scalar("SELECT count(*) FROM orders WHERE tenant_id IS NOT NULL AND region IS DISTINCT FROM 'r' || tenant_id"),
        0
    );
    assert_eq!(
        p.scalar("SELECT count(*) FROM orders WHERE tenant_id IS NULL AND region IS NOT NULL"),
        0
    );
    // Every batch that changed rows changed rows of one tenant only.
    assert_eq!(
        p.scalar("SELECT count(*) FROM batch_log WHERE n > 0 AND tenants <> 1"),
        0
    );
    assert!(p.scalar("SELECT count(*) FROM batch_log WHERE n > 0") >= 4 * 180 / 4 / 7);
    let stdout = String::from_utf8_lossy(&out.stdout);
    for tenant in 1..=4 {
        assert!(
            stdout.contains(&format!("\"event\":\"part_done\",\"part\":{tenant}")),
            "{stdout}"
        );
    }
    // Five parts: four tenants and the NULL tenant, progress per tenant.
    assert_eq!(
        p.scalar("SELECT count(*) FROM lull.backfill_parts WHERE done"),
        5
    );
    assert_eq!(
        p.scalar("SELECT sum(rows_done)::bigint FROM lull.backfill_parts"),
        180
    );
    let out = p.lull().args(["backfill", "status"]).output().unwrap();
    assert!(text(&out).contains("5/5 tenants done"), "{}", text(&out));
}

#[test]
fn pause_and_resume_from_a_second_process() {
    let db = TestDb::new();
    let p = Project::new(db.url(), SLOW);
    counter_table(&p, 2000);
    let child = p.spawn(INCREMENT);
    wait_until(
        &p,
        "SELECT coalesce((SELECT batches >= 2 FROM lull.backfills WHERE name = 'inc'), false)",
        Duration::from_secs(120),
    );
    p.lull()
        .args(["backfill", "pause", "inc"])
        .assert()
        .success()
        .stdout(predicate::str::contains("paused"));
    wait_until(
        &p,
        "SELECT coalesce((SELECT hold_reason LIKE 'paused%' FROM lull.backfills WHERE name = 'inc'), false)",
        Duration::from_secs(60),
    );
    let held_at = p.scalar("SELECT rows_done FROM lull.backfills WHERE name = 'inc'");
    thread::sleep(Duration::from_millis(1500));
    assert_eq!(
        p.scalar("SELECT rows_done FROM lull.backfills WHERE name = 'inc'"),
        held_at,
        "no batch runs while paused"
    );
    assert!(held_at < 2000);
    p.lull()
        .args(["backfill", "status", "inc"])
        .assert()
        .success()
        .stdout(predicate::str::contains("held: paused"));
    p.lull()
        .args(["backfill", "resume", "inc"])
        .assert()
        .success();
    let out = finish(child, LIMIT);
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("\"event\":\"held\""), "{stdout}");
    assert!(stdout.contains("\"event\":\"released\""), "{stdout}");
    assert_eq!(p.scalar("SELECT count(*) FROM t WHERE c <> 1"), 0);
}

#[test]
fn cancel_stops_after_the_batch_and_refuses_to_run_until_resumed() {
    let db = TestDb::new();
    let p = Project::new(db.url(), SLOW);
    counter_table(&p, 2000);
    let child = p.spawn(INCREMENT);
    wait_until(
        &p,
        "SELECT coalesce((SELECT batches >= 2 FROM lull.backfills WHERE name = 'inc'), false)",
        Duration::from_secs(120),
    );
    p.lull()
        .args(["backfill", "cancel", "inc"])
        .assert()
        .success();
    let out = finish(child, LIMIT);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("cancelled"), "{}", text(&out));
    let done = p.scalar("SELECT count(*) FROM t WHERE c = 1");
    assert!(done < 2000);
    assert_eq!(p.scalar("SELECT count(*) FROM t WHERE c > 1"), 0);
    p.lull()
        .args(INCREMENT)
        .assert()
        .code(3)
        .stderr(predicate::str::contains("lull backfill resume inc"));
    p.lull()
        .args(["backfill", "resume", "inc"])
        .assert()
        .success();
    p.lull().args(INCREMENT).assert().success();
    assert_eq!(p.scalar("SELECT count(*) FROM t WHERE c <> 1"), 0);
}

#[test]
fn delete_backfill_leaves_no_matching_row_and_counts_at_the_end() {
    let db = TestDb::new();
    let p = Project::new(db.url(), "[backfill]\nbatch_size = 100\n");
    p.client()
        .batch_execute(
            "CREATE TABLE events (id uuid PRIMARY KEY DEFAULT gen_random_uuid(), n int NOT NULL, note text);
             INSERT INTO events (n) SELECT g FROM generate_series(1, 5000) g;",
        )
        .unwrap();
    let out = p
        .lull()
        .args([
            "backfill",
            "run",
            "--table",
            "events",
            "--delete",
            "--where",
            "n % 3 = 0",
            "--format",
            "human",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("1666 rows")
            && text(&out).contains("no row matches the WHERE any more"),
        "{}",
        text(&out)
    );
    assert_eq!(p.scalar("SELECT count(*) FROM events WHERE n % 3 = 0"), 0);
    assert_eq!(p.scalar("SELECT count(*) FROM events"), 5000 - 1666);

    // An UPDATE whose WHERE still matches afterwards: the count says so.
    let out = p
        .lull()
        .args([
            "backfill",
            "run",
            "--table",
            "events",
            "--set",
            "note = 'seen'",
            "--where",
            "n < 100",
            "--format",
            "json",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let last: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert_eq!(last["event"], "done");
    assert_eq!(last["outcome"]["rows"], 66);
    assert_eq!(last["outcome"]["remaining"], 66);
}

#[test]
fn refuses_what_it_cannot_batch_and_changes_nothing() {
    let db = TestDb::new();
    let p = Project::new(db.url(), "");
    p.client()
        .batch_execute(
            "CREATE TABLE heap (a int, b int); INSERT INTO heap SELECT g, g FROM generate_series(1, 10) g;
             CREATE TABLE t (id int PRIMARY KEY, b int); INSERT INTO t SELECT g, g FROM generate_series(1, 10) g;",
        )
        .unwrap();
    p.lull()
        .args(["backfill", "run", "--table", "heap", "--set", "b = 0"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("no primary key"));
    p.lull()
        .args([
            "backfill",
            "run",
            "--sql",
            "UPDATE t SET b = 0 RETURNING id",
        ])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("RETURNING"));
    p.lull()
        .args(["backfill", "run", "--table", "t", "--set", "id = id + 100"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("key column id"));
    p.lull()
        .args([
            "backfill",
            "run",
            "--table",
            "t",
            "--set",
            "b = (SELECT max(b) FROM t)",
        ])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("reads `t` again"));
    p.lull()
        .args(["backfill", "run", "--table", "missing", "--set", "b = 0"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("does not exist"));
    p.lull()
        .args([
            "backfill",
            "run",
            "--table",
            "t",
            "--set",
            "b = 0; DROP TABLE t",
        ])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("2 statements"));
    p.lull()
        .args([
            "backfill", "run", "--table", "t", "--set", "b = 0", "--per", "nope",
        ])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("no column nope"));
    assert_eq!(p.scalar("SELECT count(*) FROM heap WHERE b = 0"), 0);
    assert_eq!(p.scalar("SELECT count(*) FROM t WHERE b = 0 OR id > 10"), 0);
    p.lull()
        .args(["backfill", "pause", "nothing-here"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("no backfill named"));
}

#[test]
fn a_probe_that_fails_holds_until_it_reads_false() {
    let db = TestDb::new();
    // The probe reads a table that does not exist yet: unknown, so it
    // holds (fail closed); once the table says false, it runs.
    let p = Project::new(
        db.url(),
        "[backfill]\nprobe = \"SELECT stop FROM gate\"\nhold_check_interval = \"50ms\"\n",
    );
    counter_table(&p, 100);
    let child = p.spawn(INCREMENT);
    wait_until(
        &p,
        "SELECT coalesce((SELECT hold_reason LIKE '%probe could not be read%' FROM lull.backfills WHERE name = 'inc'), false)",
        Duration::from_secs(60),
    );
    assert_eq!(p.scalar("SELECT count(*) FROM t WHERE c = 1"), 0);
    p.client()
        .batch_execute("CREATE TABLE gate (stop boolean); INSERT INTO gate VALUES (false);")
        .unwrap();
    let out = finish(child, LIMIT);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(p.scalar("SELECT count(*) FROM t WHERE c <> 1"), 0);
}

/// The repository's example, relative to this crate.
fn example_dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/backfill-per-tenant/migrations")
}

#[test]
fn the_per_tenant_example_migrates_in_batches_per_business() {
    let db = TestDb::new();
    let p = Project::new(db.url(), "[backfill]\nbatch_size = 500\n");
    let dir = example_dir();
    let dir = dir.to_str().unwrap();
    let out = p.lull().args(["plan", "--dir", dir]).output().unwrap();
    let plan = text(&out);
    assert!(out.status.success(), "{plan}");
    assert!(
        plan.contains("backfill") && plan.contains("rewrite batched-backfill"),
        "{plan}"
    );
    assert!(
        plan.contains("$tenant") && plan.contains("key > $last"),
        "{plan}"
    );

    let out = p.lull().args(["migrate", "--dir", dir]).output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("tenant 7 done"), "{}", text(&out));
    assert_eq!(
        p.scalar("SELECT count(*) FROM invoices i JOIN businesses b ON b.id = i.business_id WHERE i.currency IS DISTINCT FROM b.currency"),
        0
    );
    assert_eq!(
        p.scalar("SELECT count(*) FROM lull.backfill_parts bp JOIN lull.backfills bf ON bf.id = bp.backfill_id WHERE bf.name = 'migration 004 step 1' AND bp.done"),
        20
    );
    assert_eq!(
        p.scalar("SELECT count(*) FROM pg_constraint WHERE conrelid = 'invoices'::regclass AND contype = 'c'"),
        0,
        "the helper CHECK is gone, NOT NULL stays"
    );
    assert_eq!(
        p.scalar("SELECT count(*) FROM pg_attribute WHERE attrelid = 'invoices'::regclass AND attname = 'currency' AND attnotnull"),
        1
    );
    assert_eq!(
        p.scalar("SELECT count(*) FROM pg_class WHERE relname = 'invoices_missing_currency'"),
        0
    );
}

#[test]
fn migrate_killed_during_a_backfill_step_resumes_it_exactly_once() {
    let db = TestDb::new();
    let p = Project::new(db.url(), SLOW);
    counter_table(&p, 3000);
    let migrations = p.path().join("migrations");
    std::fs::create_dir(&migrations).unwrap();
    std::fs::write(
        migrations.join("001_bump.sql"),
        "ALTER TABLE t ADD COLUMN note text;\nUPDATE t SET c = c + 1;\n",
    )
    .unwrap();
    let mut child = p.spawn(&["migrate"]);
    wait_until(
        &p,
        "SELECT coalesce((SELECT batches >= 5 FROM lull.backfills WHERE name = 'migration 001 step 2'), false)",
        Duration::from_secs(120),
    );
    child.kill().unwrap();
    child.wait().unwrap();
    wait_for_session_end(&p);
    let done = p.scalar("SELECT count(*) FROM t WHERE c = 1");
    assert!(done > 0 && done < 3000, "{done}");
    let out = p.lull().arg("migrate").output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("resuming after"), "{}", text(&out));
    assert_eq!(p.scalar("SELECT count(*) FROM t WHERE c <> 1"), 0);
    assert_eq!(
        p.scalar(
            "SELECT count(*) FROM lull.migrations WHERE version = '001' AND status = 'applied'"
        ),
        1
    );
}

#[test]
fn no_batch_marker_and_a_table_without_key_run_as_one_statement() {
    let db = TestDb::new();
    let p = Project::new(db.url(), "");
    p.client()
        .batch_execute(
            "CREATE TABLE heap (a int, b int); INSERT INTO heap SELECT g, g FROM generate_series(1, 10) g;
             CREATE TABLE t (id int PRIMARY KEY, b int); INSERT INTO t SELECT g, g FROM generate_series(1, 10) g;",
        )
        .unwrap();
    let migrations = p.path().join("migrations");
    std::fs::create_dir(&migrations).unwrap();
    std::fs::write(
        migrations.join("001_changes.sql"),
        "-- lull:no-batch\nUPDATE t SET b = 0;\nUPDATE heap SET b = 0;\n",
    )
    .unwrap();
    let out = p.lull().arg("plan").output().unwrap();
    let plan = text(&out);
    assert!(out.status.success(), "{plan}");
    // The first stays in a transaction step; the second is a backfill step.
    assert!(
        plan.contains("step 1  transaction") && plan.contains("step 2  backfill"),
        "{plan}"
    );
    let out = p.lull().arg("migrate").output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("not batched, runs as one statement")
            && text(&out).contains("no primary key"),
        "{}",
        text(&out)
    );
    assert_eq!(p.scalar("SELECT count(*) FROM heap WHERE b <> 0"), 0);
    assert_eq!(p.scalar("SELECT count(*) FROM t WHERE b <> 0"), 0);
    // Nothing was recorded as a backfill (not even lull's tables made).
    assert_eq!(
        p.scalar("SELECT count(*) FROM pg_class WHERE oid = to_regclass('lull.backfills')"),
        0
    );
}

#[test]
fn a_standby_with_replay_paused_holds_the_backfill_until_it_catches_up() {
    let major = lull_sandbox::testing::server_major();
    if lull_sandbox::client_tool("pg_basebackup", major).is_err() {
        eprintln!(
            "SKIPPED a_standby_with_replay_paused_holds_the_backfill_until_it_catches_up: \
             no pg_basebackup for PostgreSQL {major} on this machine (a standby needs one)"
        );
        return;
    }
    let rep = lull_sandbox::testing::WithStandby::new();
    let p = Project::new(
        &rep.primary_url(),
        &format!("{SLOW}max_replication_lag = \"1s\"\n"),
    );
    counter_table(&p, 5000);
    rep.standby()
        .wait_caught_up(Duration::from_secs(120))
        .unwrap();
    // A standby takes no backfill: refused before anything is written.
    p.lull()
        .env("DATABASE_URL", rep.standby_url())
        .args(INCREMENT)
        .assert()
        .code(3)
        .stderr(predicate::str::contains("is a standby"));
    rep.standby().pause_replay().unwrap();
    let child = p.spawn(INCREMENT);
    wait_until(
        &p,
        "SELECT coalesce((SELECT hold_reason LIKE '%replays%behind%' FROM lull.backfills WHERE name = 'inc'), false)",
        Duration::from_secs(120),
    );
    let held_at = p.scalar("SELECT rows_done FROM lull.backfills WHERE name = 'inc'");
    thread::sleep(Duration::from_millis(1500));
    assert_eq!(
        p.scalar("SELECT rows_done FROM lull.backfills WHERE name = 'inc'"),
        held_at,
        "no batch runs while the standby lags"
    );
    assert!(held_at < 5000, "{held_at}");
    rep.standby().resume_replay().unwrap();
    let out = finish(child, LIMIT);
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("\"event\":\"held\""), "{stdout}");
    assert!(stdout.contains("\"event\":\"released\""), "{stdout}");
    assert_eq!(p.scalar("SELECT count(*) FROM t WHERE c <> 1"), 0);
}

#[test]
fn the_hint_for_a_long_unbatched_update_names_a_command_that_works() {
    let db = TestDb::new();
    let p = Project::new(db.url(), "[policy.dml]\nstatement_timeout = \"1s\"\n");
    counter_table(&p, 40);
    let slow = "UPDATE t SET c = c + 1 WHERE pg_sleep(0.05) IS NOT NULL";
    let migrations = p.path().join("migrations");
    std::fs::create_dir(&migrations).unwrap();
    std::fs::write(
        migrations.join("001_slow.sql"),
        format!("-- lull:no-batch\n{slow};\n"),
    )
    .unwrap();
    let out = p.lull().arg("migrate").output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("lull backfill run --sql"),
        "{}",
        text(&out)
    );
    assert_eq!(p.scalar("SELECT count(*) FROM t WHERE c <> 0"), 0);
    // What the hint says, done: the same statement in batches, each far
    // shorter than the statement timeout the one statement hit.
    let out = p
        .lull()
        .args([
            "backfill",
            "run",
            "--sql",
            slow,
            "--batch-size",
            "10",
            "--format",
            "human",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(p.scalar("SELECT count(*) FROM t WHERE c <> 1"), 0);
}

#[test]
fn a_batch_that_hits_its_timeout_is_split_and_still_applied_once() {
    let db = TestDb::new();
    // 40 changed rows of 50 ms each (the sleep is in the SET, so only the
    // rows a batch changes pay) cannot finish in 1 s: the batch is rolled
    // back, split in half until it fits (one row has a 20-fold margin), and
    // no row is changed twice.
    let p = Project::new(
        db.url(),
        "[backfill]\nbatch_size = 40\nmin_batch_size = 1\nmax_batch_size = 40\n\
         batch_timeout = \"1s\"\n",
    );
    counter_table(&p, 60);
    let out = p
        .lull()
        .args([
            "backfill",
            "run",
            "--sql",
            "UPDATE t SET c = c + 1 + length(pg_sleep(0.05)::text)",
            "--format",
            "json",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("\"event\":\"split\",\"from\":40"),
        "{stdout}"
    );
    assert_eq!(p.scalar("SELECT count(*) FROM t WHERE c <> 1"), 0);
    assert_eq!(
        p.scalar("SELECT rows_done FROM lull.backfills"),
        60,
        "{stdout}"
    );
}
