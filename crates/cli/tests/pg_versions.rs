//! PostgreSQL majors through the CLI: `lull sandbox start --pg N`,
//! `lull sandbox install --pg N`, and the errors when a major cannot be
//! had. Run with `LULL_PG_VERSION=N` to test major N (CI does, for each
//! supported major); without it, the machine's default major is tested.

use std::path::{Path, PathBuf};

use assert_cmd::Command;
use predicates::prelude::*;

fn lull(dir: &Path) -> Command {
    let mut cmd = Command::cargo_bin("lull").unwrap();
    cmd.current_dir(dir)
        .env_remove("DATABASE_URL")
        .env_remove("LULL_ENV")
        .env_remove("LULL_PG_BINDIR");
    cmd
}

/// The major under test: `LULL_PG_VERSION`, else the machine's default.
fn major_under_test() -> u32 {
    match lull_sandbox::requested_version().expect("LULL_PG_VERSION") {
        Some(major) => {
            lull_sandbox::testing::ensure_installed(major)
                .unwrap_or_else(|e| panic!("PostgreSQL {major} for the tests: {e}"));
            major
        }
        None => lull_sandbox::server_major(&lull_sandbox::find_bindir().expect("server binaries"))
            .expect("the default server's version"),
    }
}

/// A supported major that neither the distribution nor `pg_config`
/// provides, so that with an empty cache it is missing.
fn major_the_distribution_lacks() -> Option<u32> {
    let from_pg_config = std::process::Command::new("pg_config")
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| {
            let text = String::from_utf8_lossy(&o.stdout).to_string();
            lull_sandbox::parse_major(text.rsplit(' ').next()?.trim())
        });
    lull_sandbox::npm_build::supported()
        .into_iter()
        .filter(|m| Some(*m) != from_pg_config)
        .find(|m| !PathBuf::from(format!("/usr/lib/postgresql/{m}/bin/initdb")).exists())
}

fn server_version_num(url: &str) -> u32 {
    let mut client = postgres::Client::connect(url, postgres::NoTls).expect("connect");
    let num: String = client
        .query_one("SHOW server_version_num", &[])
        .expect("server_version_num")
        .get(0);
    num.parse().expect("a number")
}

#[test]
fn sandbox_start_runs_the_major_asked_for() {
    let major = major_under_test();
    let state = tempfile::tempdir().unwrap();
    let sd = state.path().to_str().unwrap();
    let out = lull(state.path())
        .args(["sandbox", "--state-dir", sd, "start", "--pg"])
        .arg(major.to_string())
        .assert()
        .success()
        .stderr(predicate::str::contains(format!("PostgreSQL {major}")));
    let url = String::from_utf8(out.get_output().stdout.clone()).unwrap();
    let url = url.trim();
    assert_eq!(server_version_num(url) / 10000, major, "{url}");
    lull(state.path())
        .args(["sandbox", "--state-dir", sd, "status"])
        .assert()
        .success()
        .stdout(predicate::str::contains(format!(
            "running: PostgreSQL {major}, pid"
        )));
    // Asking for another major while this one runs is refused, not ignored.
    let other = if major == 18 { 17 } else { major + 1 };
    lull(state.path())
        .args(["sandbox", "--state-dir", sd, "start", "--pg"])
        .arg(other.to_string())
        .assert()
        .code(2)
        .stderr(
            predicate::str::contains(format!("a PostgreSQL {major} sandbox is already running"))
                .and(predicate::str::contains("lull sandbox stop")),
        );
    lull(state.path())
        .args(["sandbox", "--state-dir", sd, "stop"])
        .assert()
        .success();
}

#[test]
fn sandbox_start_rejects_majors_lull_does_not_support() {
    let state = tempfile::tempdir().unwrap();
    let sd = state.path().to_str().unwrap();
    for (given, says) in [
        (
            "13",
            "PostgreSQL 13 is not supported; supported are 14, 15, 16, 17, 18",
        ),
        ("eighteen", "not a PostgreSQL major version"),
    ] {
        lull(state.path())
            .args(["sandbox", "--state-dir", sd, "start", "--pg", given])
            .assert()
            .failure()
            .stderr(predicate::str::contains(says));
    }
    assert!(!state.path().join("sandbox.json").exists());
}

#[test]
fn a_missing_major_is_named_with_the_command_that_installs_it() {
    let Some(major) = major_the_distribution_lacks() else {
        eprintln!("skipped: the distribution provides every supported major");
        return;
    };
    let state = tempfile::tempdir().unwrap();
    let empty_cache = tempfile::tempdir().unwrap();
    let sd = state.path().to_str().unwrap();
    lull(state.path())
        .env("LULL_PG_CACHE", empty_cache.path())
        .args(["sandbox", "--state-dir", sd, "start", "--pg"])
        .arg(major.to_string())
        .assert()
        .code(2)
        .stderr(
            predicate::str::contains(format!("no PostgreSQL {major} server binaries found")).and(
                predicate::str::contains(format!("lull sandbox install --pg {major}")),
            ),
        );
    assert!(!state.path().join("sandbox.json").exists());
    // LULL_PG_BINDIR of another major is a conflict, not a fallback.
    let default_bindir = lull_sandbox::find_bindir().expect("server binaries");
    let default_major = lull_sandbox::server_major(&default_bindir).unwrap();
    if default_major != major {
        lull(state.path())
            .env("LULL_PG_BINDIR", &default_bindir)
            .args(["sandbox", "--state-dir", sd, "start", "--pg"])
            .arg(major.to_string())
            .assert()
            .code(2)
            .stderr(predicate::str::contains(format!(
                "holds PostgreSQL {default_major}, but PostgreSQL {major} was asked for"
            )));
    }
}

#[test]
fn sandbox_install_fetches_a_missing_major_that_then_starts() {
    let Some(major) = major_the_distribution_lacks() else {
        eprintln!("skipped: the distribution provides every supported major");
        return;
    };
    let state = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    let sd = state.path().to_str().unwrap();
    let install = |expect: &str| {
        lull(state.path())
            .env("LULL_PG_CACHE", cache.path())
            .args(["sandbox", "install", "--pg"])
            .arg(major.to_string())
            .assert()
            .success()
            .stdout(predicate::str::contains(format!(
                "PostgreSQL {major}: {expect}"
            )));
    };
    install("installed in");
    let bin = cache.path().join(major.to_string()).join("bin");
    assert_eq!(lull_sandbox::server_major(&bin).unwrap(), major);
    install("already here");
    let out = lull(state.path())
        .env("LULL_PG_CACHE", cache.path())
        .args(["sandbox", "--state-dir", sd, "start", "--pg"])
        .arg(major.to_string())
        .assert()
        .success();
    let url = String::from_utf8(out.get_output().stdout.clone()).unwrap();
    assert_eq!(server_version_num(url.trim()) / 10000, major);
    lull(state.path())
        .args(["sandbox", "--state-dir", sd, "stop"])
        .assert()
        .success();
}

#[test]
fn client_tools_are_found_where_they_work_and_refused_where_not() {
    let major = major_under_test();
    // psql talks to newer servers; one is always found when installed.
    if let Ok(psql) = lull_sandbox::client_tool("psql", major) {
        assert!(psql.ends_with("psql"));
    }
    match lull_sandbox::client_tool("pg_dump", major) {
        Ok(pg_dump) => {
            // It really dumps a server of this major.
            let db = lull_sandbox::testing::TestDb::new();
            db.client()
                .batch_execute("CREATE TABLE dumped (id int PRIMARY KEY)")
                .unwrap();
            let out = std::process::Command::new(&pg_dump)
                .args(["--schema-only", db.url()])
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            assert!(String::from_utf8_lossy(&out.stdout).contains("CREATE TABLE public.dumped"));
        }
        Err(e) => {
            let text = e.to_string();
            assert!(
                text.contains(&format!(
                    "no pg_dump that works with a PostgreSQL {major} server"
                )) && (text.contains("refuses servers newer than itself")
                    || text.contains("none is installed")),
                "{text}"
            );
            eprintln!("pg_dump cannot be tested on PostgreSQL {major} here: {text}");
        }
    }
}

#[test]
fn plan_and_status_name_the_server_version_they_planned_for() {
    let major = major_under_test();
    let db = lull_sandbox::testing::TestDb::new();
    assert_eq!(lull_sandbox::testing::server_major(), major);
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("migrations")).unwrap();
    std::fs::write(
        dir.path().join("migrations").join("001_t.sql"),
        "CREATE TABLE t (id int PRIMARY KEY);\n",
    )
    .unwrap();
    let run = |args: &[&str]| {
        let out = lull(dir.path())
            .env("DATABASE_URL", db.url())
            .args(args)
            .assert()
            .success();
        String::from_utf8(out.get_output().stdout.clone()).unwrap()
    };
    let plan = run(&["plan"]);
    assert!(
        plan.starts_with(&format!("planned for PostgreSQL {major}.")),
        "{plan}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&run(&["plan", "--format", "json"])).unwrap();
    assert_eq!(
        json["server_version"]["num"].as_u64().unwrap() / 10000,
        u64::from(major)
    );
    let status = run(&["status"]);
    assert!(
        status.starts_with(&format!("server: PostgreSQL {major}.")),
        "{status}"
    );
    assert!(status.contains("pending"), "{status}");
    // Offline, nothing claims a server version.
    let offline = lull(dir.path()).args(["plan", "--all"]).assert().success();
    let text = String::from_utf8(offline.get_output().stdout.clone()).unwrap();
    assert!(!text.contains("planned for"), "{text}");
}

/// The locks `lull plan --format json` claims for the GRANT migration.
fn grant_locks(plan: &serde_json::Value) -> Vec<(String, String)> {
    let migration = plan["migrations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == "grant")
        .unwrap_or_else(|| panic!("no grant migration in {plan}"));
    migration["steps"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["statements"].as_array().unwrap().clone())
        .flat_map(|s| s["locks"].as_array().unwrap().clone())
        .map(|l| {
            (
                l["relation"].as_str().unwrap().to_string(),
                l["mode"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn plan_claims_the_lock_modes_of_the_major_it_plans_for() {
    let major = major_under_test();
    let db = lull_sandbox::testing::TestDb::new();
    let dir = tempfile::tempdir().unwrap();
    let migrations = dir.path().join("migrations");
    std::fs::create_dir(&migrations).unwrap();
    std::fs::write(migrations.join("001_t.sql"), "CREATE TABLE t (id int);\n").unwrap();
    std::fs::write(
        migrations.join("002_grant.sql"),
        "GRANT SELECT ON t TO PUBLIC;\n",
    )
    .unwrap();
    let plan_json = |url: Option<&str>, args: &[&str]| {
        let mut cmd = lull(dir.path());
        if let Some(url) = url {
            cmd.env("DATABASE_URL", url);
        }
        let out = cmd
            .args(["plan", "--format", "json"])
            .args(args)
            .assert()
            .success();
        serde_json::from_slice::<serde_json::Value>(&out.get_output().stdout).unwrap()
    };
    // GRANT locks the table it names from PostgreSQL 18 on
    // (crates/analyzer/src/versions.rs; tests/locks.rs proves it on each
    // major); the plan claims what the server it talks to does.
    let locks_on = |m: u32| {
        if m >= 18 {
            vec![("t".to_string(), "AccessShare".to_string())]
        } else {
            Vec::new()
        }
    };
    assert_eq!(
        grant_locks(&plan_json(Some(db.url()), &[])),
        locks_on(major),
        "online on PostgreSQL {major}"
    );
    // Offline, pg_version in lull.toml is the target, and the text says so.
    for target in [17, 18] {
        std::fs::write(
            dir.path().join("lull.toml"),
            format!("pg_version = {target}\n"),
        )
        .unwrap();
        assert_eq!(
            grant_locks(&plan_json(None, &["--all"])),
            locks_on(target),
            "offline, pg_version = {target}"
        );
        lull(dir.path())
            .args(["plan", "--all"])
            .assert()
            .success()
            .stdout(predicate::str::starts_with(format!(
                "planned for PostgreSQL {target} (pg_version in lull.toml)"
            )));
    }
    // The server's own major wins over lull.toml once connected.
    let other = if major >= 18 { 17 } else { 18 };
    std::fs::write(
        dir.path().join("lull.toml"),
        format!("pg_version = {other}\n"),
    )
    .unwrap();
    assert_eq!(
        grant_locks(&plan_json(Some(db.url()), &[])),
        locks_on(major),
        "online on PostgreSQL {major} with pg_version = {other}"
    );
}

#[test]
fn lint_flags_sql_the_servers_major_rejects() {
    let major = major_under_test();
    let db = lull_sandbox::testing::TestDb::new();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("m.sql"),
        "MERGE INTO u USING t ON u.id = t.id WHEN MATCHED THEN DO NOTHING;\n",
    )
    .unwrap();
    let lint = |extra: &[&str]| {
        let out = lull(dir.path())
            .env("DATABASE_URL", db.url())
            .args(["lint", "--format", "json"])
            .args(extra)
            .arg("m.sql")
            .output()
            .unwrap();
        let report: serde_json::Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
        let messages: Vec<String> = report["findings"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|f| f["rule"] == "requires-newer-postgres")
            .map(|f| f["message"].as_str().unwrap().to_string())
            .collect();
        (messages, out.status.code())
    };
    // The server's own major is the target (tests/locks.rs proves that 14
    // refuses MERGE and 15 on run it).
    let (messages, code) = lint(&[]);
    if major < 15 {
        assert_eq!(
            messages,
            [format!("MERGE needs PostgreSQL 15; the target is {major}")]
        );
        assert_eq!(code, Some(1));
    } else {
        assert!(messages.is_empty(), "{messages:?}");
    }
    // --pg-version names the target whatever the server.
    let (messages, code) = lint(&["--pg-version", "14"]);
    assert_eq!(messages, ["MERGE needs PostgreSQL 15; the target is 14"]);
    assert_eq!(code, Some(1));
}
