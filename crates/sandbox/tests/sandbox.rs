//! The sandbox against the real server binaries: start, use, stop, and
//! cleanup however the owner ends.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use lull_sandbox::testing::TestDb;
use lull_sandbox::{Options, Sandbox};

fn query_one(url: &str) -> i32 {
    let mut c = postgres::Client::connect(url, postgres::NoTls).expect("connect");
    c.query_one("select 1", &[]).expect("query").get(0)
}

fn alive(pid: u32) -> bool {
    // A zombie is dead for our purposes.
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| !s.rsplit_once(')').unwrap().1.trim_start().starts_with('Z'))
        .unwrap_or(false)
}

fn wait_until(what: &str, timeout: Duration, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !ok() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn starts_serves_and_cleans_up_on_drop() {
    let sandbox = Sandbox::start().expect("start");
    let root = sandbox.root().to_path_buf();
    let pid = sandbox.pid();
    assert!(root.join("data").is_dir());
    assert!(alive(pid));
    assert_eq!(query_one(&sandbox.url("postgres")), 1);
    // The Unix socket is in the sandbox directory.
    assert!(root.join(format!(".s.PGSQL.{}", sandbox.port())).exists());
    drop(sandbox);
    assert!(!alive(pid), "postmaster {pid} survived drop");
    assert!(!root.exists(), "{} survived drop", root.display());
}

#[test]
fn two_sandboxes_run_side_by_side() {
    let a = Sandbox::start().expect("start a");
    let b = Sandbox::start().expect("start b");
    assert_ne!(a.port(), b.port());
    assert_ne!(a.root(), b.root());
    let mut ca = postgres::Client::connect(&a.url("postgres"), postgres::NoTls).unwrap();
    ca.batch_execute("create database only_in_a").unwrap();
    let mut cb = postgres::Client::connect(&b.url("postgres"), postgres::NoTls).unwrap();
    let n: i64 = cb
        .query_one(
            "select count(*) from pg_database where datname = 'only_in_a'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(n, 0, "the sandboxes share state");
    a.stop().expect("stop a");
    assert_eq!(query_one(&b.url("postgres")), 1, "stopping a broke b");
}

#[test]
fn restart_keeps_data_and_port() {
    let mut s = Sandbox::start().expect("start");
    let port = s.port();
    let old_pid = s.pid();
    postgres::Client::connect(&s.url("postgres"), postgres::NoTls)
        .unwrap()
        .batch_execute("create table kept (x int); insert into kept values (7)")
        .unwrap();
    s.restart().expect("restart");
    assert_eq!(s.port(), port);
    assert_ne!(s.pid(), old_pid);
    assert!(!alive(old_pid));
    let mut c = postgres::Client::connect(&s.url("postgres"), postgres::NoTls).unwrap();
    let x: i32 = c.query_one("select x from kept", &[]).unwrap().get(0);
    assert_eq!(x, 7);
}

#[test]
fn detached_sandbox_outlives_its_value_until_stopped() {
    let s = Sandbox::start_with(Options {
        detached: true,
        ..Options::default()
    })
    .expect("start");
    let state = s.detach();
    assert!(state.is_running());
    assert_eq!(query_one(&state.url("postgres")), 1);
    state.stop().expect("stop");
    assert!(!alive(state.pid));
    assert!(!state.root.exists());
    assert!(!state.is_running());
}

/// The `sandbox_child` example binary, built by `cargo test` beside us.
fn child_exe() -> PathBuf {
    let deps = std::env::current_exe().unwrap();
    let exe = deps
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("examples/sandbox_child");
    assert!(exe.is_file(), "{} not built", exe.display());
    exe
}

/// Starts a child process that owns a sandbox, prints where it is, then
/// ends the way `how` says.
fn child_with_sandbox(how: &str) -> (std::process::Child, PathBuf, u32) {
    let mut child = Command::new(child_exe())
        .arg(how)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    std::io::BufRead::read_line(&mut out, &mut line).unwrap();
    let rest = line
        .trim()
        .strip_prefix("SANDBOX ")
        .unwrap_or_else(|| panic!("child did not start a sandbox: {line}"));
    let (pid, root) = rest.split_once(' ').unwrap();
    (child, PathBuf::from(root), pid.parse().unwrap())
}

#[test]
fn cleans_up_after_a_panic() {
    let (mut child, root, pid) = child_with_sandbox("panic");
    let status = child.wait().unwrap();
    assert!(!status.success());
    wait_until("postmaster gone", Duration::from_secs(30), || !alive(pid));
    wait_until("directory gone", Duration::from_secs(30), || !root.exists());
}

#[test]
fn cleans_up_after_ctrl_c() {
    let (mut child, root, pid) = child_with_sandbox("wait");
    assert!(alive(pid));
    // SAFETY: sending a signal to our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    child.wait().unwrap();
    wait_until("postmaster gone", Duration::from_secs(30), || !alive(pid));
    wait_until("directory gone", Duration::from_secs(30), || !root.exists());
}

#[test]
fn cleans_up_after_kill_9() {
    let (mut child, root, pid) = child_with_sandbox("wait");
    child.kill().unwrap();
    child.wait().unwrap();
    wait_until("postmaster gone", Duration::from_secs(30), || !alive(pid));
    wait_until("directory gone", Duration::from_secs(30), || !root.exists());
}

#[test]
fn test_databases_are_fresh_and_separate() {
    let a = TestDb::new();
    let b = TestDb::new();
    assert_ne!(a.name(), b.name());
    a.client()
        .batch_execute("create table only_a (x int)")
        .unwrap();
    let n: i64 = b
        .client()
        .query_one(
            "select count(*) from pg_class where relname = 'only_a'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(n, 0);
    let name = a.name().to_string();
    let admin_url = a.server_url("postgres");
    drop(a);
    let mut admin = postgres::Client::connect(&admin_url, postgres::NoTls).unwrap();
    let left: i64 = admin
        .query_one(
            "select count(*) from pg_database where datname = $1",
            &[&name],
        )
        .unwrap()
        .get(0);
    assert_eq!(left, 0, "test database not dropped");
}

#[test]
fn missing_binaries_say_how_to_install_them() {
    let out = Command::new(child_exe())
        .arg("wait")
        .env("LULL_PG_BINDIR", "/nonexistent/pg/bin")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("LULL_PG_BINDIR=/nonexistent/pg/bin"),
        "{text}"
    );
    assert!(text.contains("apt-get install postgresql"), "{text}");
}

#[test]
fn external_server_variable_is_honoured() {
    let external = Sandbox::start().expect("start the 'external' server");
    let exe = child_exe().parent().unwrap().join("testdb_child");
    let mut child = Command::new(exe)
        .env("LULL_TEST_DATABASE_URL", external.url("postgres"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut url = String::new();
    std::io::BufRead::read_line(&mut out, &mut url).unwrap();
    let url = url.trim();
    assert!(
        url.starts_with(&format!(
            "postgres://postgres@127.0.0.1:{}/lull_test_",
            external.port()
        )),
        "{url}"
    );
    let name = url.rsplit('/').next().unwrap().to_string();
    let mut admin = postgres::Client::connect(&external.url("postgres"), postgres::NoTls).unwrap();
    let count = |admin: &mut postgres::Client| -> i64 {
        admin
            .query_one(
                "select count(*) from pg_database where datname = $1",
                &[&name],
            )
            .unwrap()
            .get(0)
    };
    assert_eq!(
        count(&mut admin),
        1,
        "database not made on the external server"
    );
    // No sandbox of its own was started for the child.
    assert!(
        !std::fs::read_dir(std::env::temp_dir())
            .unwrap()
            .flatten()
            .any(|e| e
                .file_name()
                .to_string_lossy()
                .starts_with(&format!("lull-sandbox-{}-", child.id()))),
        "the child started its own sandbox"
    );
    drop(child.stdin.take());
    assert!(child.wait().unwrap().success());
    assert_eq!(count(&mut admin), 0, "test database left behind");
}

#[test]
fn standby_streams_pauses_lags_and_cleans_up() {
    use lull_sandbox::testing::WithStandby;
    let rep = WithStandby::new();
    let standby_root = rep.standby().sandbox().root().to_path_buf();
    let standby_pid = rep.standby().sandbox().pid();
    assert_ne!(rep.standby().port(), rep.primary().port());

    let mut standby = postgres::Client::connect(&rep.standby_url(), postgres::NoTls).unwrap();
    let in_recovery: bool = standby
        .query_one("select pg_is_in_recovery()", &[])
        .unwrap()
        .get(0);
    assert!(in_recovery, "the standby is not in recovery");
    let err = standby
        .batch_execute("create table nope (x int)")
        .unwrap_err();
    let msg = err.as_db_error().map(|e| e.message().to_string());
    assert!(
        msg.as_deref().is_some_and(|m| m.contains("read-only")),
        "{err:?}"
    );

    rep.primary_client()
        .batch_execute("create table t (x int); insert into t values (1)")
        .unwrap();
    rep.standby()
        .wait_caught_up(Duration::from_secs(60))
        .unwrap();
    let n: i64 = standby
        .query_one("select count(*) from t", &[])
        .unwrap()
        .get(0);
    assert_eq!(n, 1, "the row did not reach the standby");

    rep.standby().pause_replay().unwrap();
    assert!(rep.standby().is_replay_paused().unwrap());
    rep.primary_client()
        .batch_execute("insert into t values (2)")
        .unwrap();
    let lag = rep
        .standby()
        .wait_for_lag(Duration::from_secs(2), Duration::from_secs(120))
        .unwrap();
    assert!(lag.replay_bytes > 0, "{lag:?}");
    let n: i64 = standby
        .query_one("select count(*) from t", &[])
        .unwrap()
        .get(0);
    assert_eq!(n, 1, "a paused standby applied the insert");

    rep.standby().resume_replay().unwrap();
    rep.standby()
        .wait_caught_up(Duration::from_secs(60))
        .unwrap();
    let n: i64 = standby
        .query_one("select count(*) from t", &[])
        .unwrap()
        .get(0);
    assert_eq!(n, 2, "the resumed standby did not catch up");

    drop(standby);
    drop(rep);
    assert!(
        !alive(standby_pid),
        "standby postmaster {standby_pid} survived drop"
    );
    assert!(
        !standby_root.exists(),
        "{} survived drop",
        standby_root.display()
    );
}
