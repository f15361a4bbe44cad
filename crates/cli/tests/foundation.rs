//! The foundation through the CLI: `lull sandbox`, `lull config`.

use std::path::Path;

use assert_cmd::Command;
use predicates::prelude::*;

fn lull(dir: &Path) -> Command {
    let mut cmd = Command::cargo_bin("lull").unwrap();
    cmd.current_dir(dir)
        .env_remove("DATABASE_URL")
        .env_remove("LULL_ENV");
    cmd
}

#[test]
fn version_and_help_list_the_commands() {
    let dir = tempfile::tempdir().unwrap();
    lull(dir.path())
        .arg("--version")
        .assert()
        .success()
        .stdout(predicate::str::starts_with("lull "));
    lull(dir.path())
        .arg("--help")
        .assert()
        .success()
        .stdout(predicate::str::contains("sandbox").and(predicate::str::contains("Exit codes")));
}

#[test]
fn sandbox_start_url_stop_leaves_nothing_behind() {
    let state = tempfile::tempdir().unwrap();
    let sd = state.path().to_str().unwrap();
    let out = lull(state.path())
        .args(["sandbox", "--state-dir", sd, "start"])
        .assert()
        .success();
    let url = String::from_utf8(out.get_output().stdout.clone())
        .unwrap()
        .trim()
        .to_string();
    assert!(url.starts_with("postgres://postgres@127.0.0.1:"), "{url}");
    // Starting again reuses the running one.
    lull(state.path())
        .args(["sandbox", "--state-dir", sd, "start"])
        .assert()
        .success()
        .stdout(predicate::str::contains(url.as_str()))
        .stderr(predicate::str::contains("already running"));
    lull(state.path())
        .args(["sandbox", "--state-dir", sd, "url"])
        .assert()
        .success()
        .stdout(format!("{url}\n"));
    let mut client = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    let one: i32 = client.query_one("select 1", &[]).unwrap().get(0);
    assert_eq!(one, 1);
    drop(client);
    let info: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(state.path().join("sandbox.json")).unwrap())
            .unwrap();
    let root = std::path::PathBuf::from(info["root"].as_str().unwrap());
    let pid = info["pid"].as_u64().unwrap();
    assert!(root.exists());
    lull(state.path())
        .args(["sandbox", "--state-dir", sd, "stop"])
        .assert()
        .success()
        .stdout(predicate::str::contains("sandbox stopped"));
    assert!(!root.exists(), "data directory left behind");
    // Gone, or a zombie waiting for a reaper that is not ours.
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let running = stat
        .rsplit_once(')')
        .is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z'));
    assert!(!running, "postmaster {pid} still runs");
    lull(state.path())
        .args(["sandbox", "--state-dir", sd, "status"])
        .assert()
        .code(1);
    lull(state.path())
        .args(["sandbox", "--state-dir", sd, "url"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("lull sandbox start"));
}

const CONFIG: &str = r#"
database_url = "postgres://app:hunter2@db.dev:5432/shop"

[policy.ddl]
statement_timeout = "30s"

[env.production]
database_url = "postgres://deploy:s3cr3t@db.prod:5432/shop"
schema = "lull_prod"

[env.production.policy.ddl]
lock_timeout = "80ms"
wait_budget = "2m"

[env.production.policy.blockers]
terminate_idle_in_transaction_after = "30s"
"#;

#[test]
fn config_is_found_in_a_parent_and_env_overrides_apply() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("lull.toml"), CONFIG).unwrap();
    let nested = dir.path().join("services/api");
    std::fs::create_dir_all(&nested).unwrap();
    let out = lull(&nested).args(["config", "--json"]).assert().success();
    let base: serde_json::Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    assert_eq!(base["schema"], "lull");
    assert_eq!(base["database_url"], "postgres://app:***@db.dev:5432/shop");
    assert_eq!(base["policies"]["ddl"]["statement_timeout"], "30s");
    assert_eq!(base["policies"]["ddl"]["lock_timeout"], "50ms");
    assert_eq!(base["policies"]["ddl"]["wait_budget"], "10m");
    assert_eq!(
        base["policies"]["blockers"]["terminate_idle_in_transaction_after"],
        serde_json::Value::Null
    );
    let out = lull(&nested)
        .args(["config", "--json", "--env", "production"])
        .assert()
        .success();
    let prod: serde_json::Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    assert_eq!(prod["schema"], "lull_prod");
    assert_eq!(
        prod["database_url"],
        "postgres://deploy:***@db.prod:5432/shop"
    );
    assert_eq!(prod["policies"]["ddl"]["lock_timeout"], "80ms");
    assert_eq!(prod["policies"]["ddl"]["wait_budget"], "2m");
    assert_eq!(
        prod["policies"]["blockers"]["terminate_idle_in_transaction_after"],
        "30s"
    );
    assert_eq!(prod["policies"]["ddl"]["statement_timeout"], "30s");
}

#[test]
fn passwords_never_reach_the_output() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("lull.toml"), CONFIG).unwrap();
    for args in [
        &["config"][..],
        &["config", "--env", "production"],
        &["config", "--json"],
    ] {
        let out = lull(dir.path()).args(args).assert().success();
        let all = format!(
            "{}{}",
            String::from_utf8_lossy(&out.get_output().stdout),
            String::from_utf8_lossy(&out.get_output().stderr)
        );
        assert!(!all.contains("hunter2") && !all.contains("s3cr3t"), "{all}");
        assert!(all.contains(":***@"), "{all}");
    }
    // The flag and DATABASE_URL win over the file, still redacted.
    lull(dir.path())
        .args(["config"])
        .env("DATABASE_URL", "postgres://me:topsecret@localhost/x")
        .assert()
        .success()
        .stdout(
            predicate::str::contains("postgres://me:***@localhost/x")
                .and(predicate::str::contains("topsecret").not()),
        );
}

#[test]
fn unknown_key_is_an_error_with_file_line_and_choices() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("lull.toml"),
        "schema = \"ops\"\n[indexes]\nwindow = \"02:00-05:00\"\nmax_connections = 5\n",
    )
    .unwrap();
    lull(dir.path()).arg("config").assert().code(2).stderr(
        predicate::str::contains("lull.toml:4:")
            .and(predicate::str::contains("unknown field `max_connections`"))
            .and(predicate::str::contains("max_active_connections")),
    );
}

#[test]
fn unknown_env_and_missing_config_file_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("lull.toml"), CONFIG).unwrap();
    lull(dir.path())
        .args(["config", "--env", "staging"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("`staging`").and(predicate::str::contains("production")));
    lull(dir.path())
        .args(["config", "--config", "nope.toml"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("nope.toml does not exist"));
}

#[test]
fn config_text_shows_the_lint_and_indexes_sections_as_set() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("lull.toml"),
        "[indexes]\nwindow = \"02:00-05:00\"\n\n[env.production.indexes]\nmax_active_connections = 20\n",
    )
    .unwrap();
    lull(dir.path())
        .args(["config", "--env", "production"])
        .assert()
        .success()
        .stdout(
            predicate::str::contains("[indexes]")
                .and(predicate::str::contains("window = \"02:00-05:00\""))
                .and(predicate::str::contains("max_active_connections = 20"))
                .and(predicate::str::contains(
                    "[lint]       (nothing set; defaults)",
                )),
        );
}
