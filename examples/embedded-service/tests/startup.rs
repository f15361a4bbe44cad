//! The example's start-up migration against a real server: applies both
//! migrations (the index CONCURRENTLY), and a second start applies nothing.

use std::path::Path;

use lull_sandbox::testing::TestDb;

/// The synchronous test harness (TestDb) cannot run inside a runtime, so
/// each test drives the async start-up on a runtime of its own.
fn block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(future)
}

#[test]
fn applies_pending_migrations_once() {
    let db = TestDb::new();
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = here.join("migrations");
    let config = here.join("lull.toml");
    let first = block_on(lull_example_service::migrate_on_startup(
        db.url(),
        &dir,
        Some(&config),
    ))
    .expect("first start applies the migrations");
    assert_eq!(first.versions, ["20240101000000", "20240102000000"]);
    let second = block_on(lull_example_service::migrate_on_startup(
        db.url(),
        &dir,
        Some(&config),
    ))
    .expect("second start succeeds");
    assert!(second.versions.is_empty(), "{:?}", second.versions);

    let valid: bool = db
        .client()
        .query_one(
            "SELECT indisvalid FROM pg_index WHERE indexrelid = 'accounts_email_key'::regclass",
            &[],
        )
        .unwrap()
        .get(0);
    assert!(valid, "the unique index was built and is valid");
}

#[test]
fn a_bad_config_stops_startup_with_the_reason() {
    let db = TestDb::new();
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    let bad = tempfile_path("lull.toml", "[policy.ddl]\nlock_timeouts = \"soon\"\n");
    let err = block_on(lull_example_service::migrate_on_startup(
        db.url(),
        &here.join("migrations"),
        Some(&bad),
    ))
    .expect_err("an invalid lull.toml stops start-up");
    assert!(err.to_string().contains("lull.toml"), "{err}");
}

fn tempfile_path(name: &str, text: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("lull-example-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}
