//! lull against a real streaming standby (the sandbox's `pg_basebackup -R`
//! copy): the index window's replication-lag guard skips and cancels
//! builds while the standby lags, and writing commands refuse a standby.
//!
//! Lag is made on demand by pausing replay on the standby
//! (`pg_wal_replay_pause()`), so nothing depends on the machine's speed:
//! a paused standby's lag only grows until replay resumes.

use std::path::{Path, PathBuf};
use std::process::{Child, Command as StdCommand, Output, Stdio};
use std::time::{Duration, Instant};

use assert_cmd::Command;
use lull_sandbox::testing::WithStandby;

fn bin() -> PathBuf {
    assert_cmd::cargo::cargo_bin("lull")
}

fn lull(dir: &Path, url: &str) -> Command {
    let mut cmd = Command::new(bin());
    cmd.current_dir(dir)
        .env_remove("DATABASE_URL")
        .env_remove("LULL_ENV")
        .env("NO_COLOR", "1")
        .arg("--database-url")
        .arg(url);
    cmd
}

fn spawn_lull(dir: &Path, url: &str, args: &[&str]) -> Child {
    StdCommand::new(bin())
        .current_dir(dir)
        .env_remove("DATABASE_URL")
        .env_remove("LULL_ENV")
        .env("NO_COLOR", "1")
        .arg("--database-url")
        .arg(url)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn wait_output(mut child: Child, timeout: Duration) -> Output {
    let deadline = Instant::now() + timeout;
    loop {
        if child.try_wait().unwrap().is_some() {
            return child.wait_with_output().unwrap();
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!("lull did not finish within {timeout:?}\n{}", text(&out));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
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

/// One `lull indexes auto` pass; a skip or a cancel is a decision and
/// exits 0.
fn auto_pass(dir: &Path, url: &str, config: &Path) -> String {
    let out = lull(dir, url)
        .arg("--config")
        .arg(config)
        .args(["indexes", "auto"])
        .output()
        .unwrap();
    let t = text(&out);
    assert_eq!(out.status.code(), Some(0), "{t}");
    t
}

fn index_valid(c: &mut postgres::Client, name: &str) -> Option<bool> {
    c.query_opt(
        "SELECT i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid WHERE c.relname = $1",
        &[&name],
    )
    .unwrap()
    .map(|r| r.get(0))
}

#[test]
fn replication_lag_guard_cancels_a_build_skips_the_next_and_builds_after_catch_up() {
    let rep = WithStandby::new();
    let scratch = tempfile::tempdir().unwrap();
    let dir = scratch.path();
    let url = rep.primary_url();
    let mut c = rep.primary_client();
    c.batch_execute(
        "CREATE TABLE items (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, a int, b text);
         INSERT INTO items (a, b) SELECT g % 500, md5(g::text) FROM generate_series(1, 20000) g;",
    )
    .unwrap();
    lull(dir, &url)
        .args(["indexes", "add", "CREATE INDEX items_b ON items (b)"])
        .assert()
        .success();
    let config = dir.join("lull.toml");
    std::fs::write(
        &config,
        "[indexes]\nmax_replication_lag = \"2s\"\ncheck_interval = \"500ms\"\n",
    )
    .unwrap();

    // A build held in "waiting for old snapshots" by an open snapshot;
    // the standby starts lagging while it waits: the guard cancels it.
    let mut blocker = rep.primary_client();
    blocker
        .batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT count(*) FROM pg_class;")
        .unwrap();
    let child = spawn_lull(
        dir,
        &url,
        &["--config", config.to_str().unwrap(), "indexes", "auto"],
    );
    wait_for("the build to start", Duration::from_secs(60), || {
        c.query_one(
            "SELECT count(*) FROM pg_stat_progress_create_index WHERE datname = current_database()",
            &[],
        )
        .unwrap()
        .get::<_, i64>(0)
            > 0
    });
    rep.standby().pause_replay().unwrap();
    rep.standby()
        .wait_for_lag(Duration::from_secs(3), Duration::from_secs(120))
        .unwrap();
    let out = wait_output(child, Duration::from_secs(120));
    drop(blocker);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(0), "{t}");
    assert!(t.contains("cancelled items_b: replication lag"), "{t}");
    assert!(t.contains("above max_replication_lag (2s)"), "{t}");
    assert_eq!(index_valid(&mut c, "items_b"), None, "{t}");
    let last: Option<String> = c
        .query_one(
            "SELECT last_error FROM lull.pending_indexes WHERE name = 'items_b'",
            &[],
        )
        .unwrap()
        .get(0);
    assert!(last.unwrap().contains("replication lag"));

    // Still lagging: the next pass does not start the build at all.
    let t = auto_pass(dir, &url, &config);
    assert!(t.contains("skipped items_b: replication lag"), "{t}");
    assert_eq!(index_valid(&mut c, "items_b"), None, "{t}");

    // Caught up: the guard lets the build through.
    rep.standby().resume_replay().unwrap();
    rep.standby()
        .wait_caught_up(Duration::from_secs(120))
        .unwrap();
    wait_for(
        "the primary to stop reporting the old lag",
        Duration::from_secs(120),
        || {
            rep.standby()
                .lag()
                .unwrap()
                .replay_lag
                .is_none_or(|l| l < Duration::from_secs(1))
        },
    );
    let t = auto_pass(dir, &url, &config);
    assert_eq!(index_valid(&mut c, "items_b"), Some(true), "{t}");
}

#[test]
fn writing_commands_refuse_a_standby_and_reading_ones_work() {
    let rep = WithStandby::new();
    let scratch = tempfile::tempdir().unwrap();
    let dir = scratch.path();
    std::fs::create_dir(dir.join("migrations")).unwrap();
    std::fs::write(
        dir.join("migrations/001_items.sql"),
        "CREATE TABLE items (id bigint PRIMARY KEY, b text);\n",
    )
    .unwrap();
    // The sandbox trusts local connections, so the password is never
    // checked; it is there to prove it is never printed.
    let standby = rep
        .standby_url()
        .replace("postgres@", "postgres:s3cret-pw@");

    let out = lull(dir, &standby).arg("migrate").output().unwrap();
    let t = text(&out);
    assert_eq!(out.status.code(), Some(3), "{t}");
    assert!(t.contains("is a standby"), "{t}");
    assert!(t.contains("nothing was done"), "{t}");
    assert!(t.contains("point --database-url"), "{t}");
    assert!(!t.contains("s3cret-pw"), "{t}");

    let out = lull(dir, &standby)
        .args(["indexes", "add", "CREATE INDEX items_b ON items (b)"])
        .output()
        .unwrap();
    let t = text(&out);
    assert_eq!(out.status.code(), Some(3), "{t}");
    assert!(t.contains("is a standby"), "{t}");
    assert!(!t.contains("s3cret-pw"), "{t}");

    // The primary takes the migration; the standby gets it by
    // replication, and read-only commands work there.
    lull(dir, &rep.primary_url())
        .arg("migrate")
        .assert()
        .success();
    rep.standby()
        .wait_caught_up(Duration::from_secs(120))
        .unwrap();
    let out = lull(dir, &standby).arg("status").output().unwrap();
    let t = text(&out);
    assert_eq!(out.status.code(), Some(0), "{t}");
    assert!(t.contains("001"), "{t}");
    let mut s = postgres::Client::connect(&rep.standby_url(), postgres::NoTls).unwrap();
    let n: i64 = s
        .query_one(
            "SELECT count(*) FROM pg_tables WHERE tablename = 'items'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(n, 1);
}
