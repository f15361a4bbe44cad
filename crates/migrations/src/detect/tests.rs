//! One test group per layout, each on a fresh temporary directory.

use std::fs;
use std::path::Path;

use tempfile::TempDir;

use crate::{checksum, discover, discover_as, DiscoverError, Layout};

fn dir_with(files: &[(&str, &str)]) -> TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in files {
        let path = dir.path().join(name);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, text).unwrap();
    }
    dir
}

fn versions(dir: &Path) -> Vec<String> {
    discover(dir)
        .unwrap()
        .into_iter()
        .map(|m| m.version)
        .collect()
}

#[test]
fn empty_directory_has_no_migrations() {
    let dir = dir_with(&[]);
    assert!(discover(dir.path()).unwrap().is_empty());
}

#[test]
fn missing_directory_is_a_clear_error() {
    let err = discover(Path::new("/nonexistent/lull/migrations")).unwrap_err();
    assert!(matches!(err, DiscoverError::NotADirectory { .. }));
    assert!(err.to_string().contains("--dir"), "{err}");
}

#[test]
fn sqlx_simple_files_sorted_numerically() {
    let dir = dir_with(&[
        ("10_third.sql", "create table c (id int);"),
        ("9_second.sql", "create table b (id int);"),
        (
            "1_first.sql",
            "-- no-transaction\ncreate index concurrently i on a (id);",
        ),
        ("README.md", "notes"),
        (".gitkeep", ""),
    ]);
    let ms = discover(dir.path()).unwrap();
    assert_eq!(
        ms.iter().map(|m| m.version.as_str()).collect::<Vec<_>>(),
        ["1", "9", "10"]
    );
    assert!(ms.iter().all(|m| m.layout == Layout::Sqlx));
    assert_eq!(ms[0].name, "first");
    assert!(ms[0].no_transaction);
    assert!(!ms[1].no_transaction);
    assert_eq!(ms[1].up_sql(), "create table b (id int);");
    assert_eq!(ms[1].checksum, checksum("create table b (id int);"));
    assert_eq!(ms[1].label(), "9_second");
    assert!(ms[1].down.is_none());
}

#[test]
fn sqlx_reversible_with_no_transaction() {
    let dir = dir_with(&[
        (
            "20240101000000_users.up.sql",
            "-- no-transaction\ncreate table users (id int);",
        ),
        ("20240101000000_users.down.sql", "drop table users;"),
        ("20240102000000_simple.sql", "select 1;"),
    ]);
    let ms = discover(dir.path()).unwrap();
    assert_eq!(ms.len(), 2);
    assert_eq!(ms[0].layout, Layout::Sqlx);
    assert!(ms[0].no_transaction);
    assert_eq!(ms[0].down.as_ref().unwrap().sql, "drop table users;");
    assert!(ms[1].down.is_none());
}

#[test]
fn golang_migrate_pairs() {
    let dir = dir_with(&[
        (
            "000002_add_email.up.sql",
            "alter table users add column email text;",
        ),
        (
            "000002_add_email.down.sql",
            "alter table users drop column email;",
        ),
        ("000001_create_users.up.sql", "create table users (id int);"),
        ("000001_create_users.down.sql", "drop table users;"),
    ]);
    let ms = discover(dir.path()).unwrap();
    assert_eq!(ms.len(), 2);
    assert_eq!(ms[0].layout, Layout::GolangMigrate);
    assert_eq!(ms[0].version, "000001");
    assert_eq!(ms[0].name, "create_users");
    assert!(ms[0]
        .down
        .as_ref()
        .unwrap()
        .path
        .ends_with("000001_create_users.down.sql"));
    assert_eq!(ms[1].name, "add_email");
}

#[test]
fn golang_migrate_down_without_up_is_an_error() {
    let dir = dir_with(&[("1_x.down.sql", "drop table x;")]);
    let err = discover(dir.path()).unwrap_err();
    assert!(err.to_string().contains("no up file"), "{err}");
}

#[test]
fn dbmate_sections_and_line_offsets() {
    let text = "-- migrate:up transaction:false\ncreate index concurrently i on t (a);\n\n\
                -- migrate:down\ndrop index i;\n";
    let dir = dir_with(&[
        ("20240101000000_index.sql", text),
        (
            "20230101000000_table.sql",
            "-- migrate:up\ncreate table t (a int);\n-- migrate:down\n",
        ),
    ]);
    let ms = discover(dir.path()).unwrap();
    assert_eq!(ms.len(), 2);
    let table = &ms[0];
    assert_eq!(table.layout, Layout::Dbmate);
    assert_eq!(table.up.as_ref().unwrap().sql, "create table t (a int);\n");
    // dbmate's default empty down section means there is no down.
    assert!(table.down.is_none());
    assert!(!table.no_transaction);

    let index = &ms[1];
    assert!(index.no_transaction);
    let up = index.up.as_ref().unwrap();
    assert_eq!(up.sql, "create index concurrently i on t (a);\n\n");
    assert_eq!(up.line_offset, 1);
    let down = index.down.as_ref().unwrap();
    assert_eq!(down.sql, "drop index i;\n");
    assert_eq!(down.line_offset, 4);
    assert_eq!(text.lines().nth(down.line_offset), Some("drop index i;"));
    assert_eq!(index.checksum, checksum(&up.sql));
}

#[test]
fn dbmate_file_without_up_marker_is_malformed() {
    let dir = dir_with(&[
        ("1_a.sql", "-- migrate:up\nselect 1;\n"),
        ("2_b.sql", "select 2;\n"),
    ]);
    let err = discover(dir.path()).unwrap_err();
    assert!(err.to_string().contains("-- migrate:up"), "{err}");
    assert!(err.to_string().contains("2_b.sql"), "{err}");
}

#[test]
fn diesel_directories() {
    let dir = dir_with(&[
        (
            "2023-01-02-030405_create_posts/up.sql",
            "create table posts (id int);",
        ),
        (
            "2023-01-02-030405_create_posts/down.sql",
            "drop table posts;",
        ),
        (
            "2023-01-03-000000_index/up.sql",
            "create index concurrently i on posts (id);",
        ),
        (
            "2023-01-03-000000_index/metadata.toml",
            "run_in_transaction = false\n",
        ),
        ("00000000000000_diesel_initial_setup/up.sql", "select 1;"),
    ]);
    let ms = discover(dir.path()).unwrap();
    assert_eq!(
        versions(dir.path()),
        ["00000000000000", "20230102030405", "20230103000000"]
    );
    assert!(ms.iter().all(|m| m.layout == Layout::Diesel));
    assert_eq!(ms[1].name, "create_posts");
    assert_eq!(ms[1].down.as_ref().unwrap().sql, "drop table posts;");
    assert!(ms[2].no_transaction);
    assert!(ms[2].down.is_none());
}

#[test]
fn prisma_directories() {
    let dir = dir_with(&[
        ("migration_lock.toml", "provider = \"postgresql\""),
        (
            "20240102000000_add_posts/migration.sql",
            "create table posts (id int);",
        ),
        (
            "20240101000000_init/migration.sql",
            "create table users (id int);",
        ),
        ("20240102000000_add_posts/down.sql", "drop table posts;"),
    ]);
    let ms = discover(dir.path()).unwrap();
    assert_eq!(ms.len(), 2);
    assert_eq!(ms[0].name, "init");
    assert_eq!(ms[0].layout, Layout::Prisma);
    assert!(ms[0].down.is_none());
    assert!(!ms[0].no_transaction);
    assert_eq!(ms[1].down.as_ref().unwrap().sql, "drop table posts;");
}

#[test]
fn drizzle_with_journal_and_breakpoints() {
    let dir = dir_with(&[
        ("0000_brave_wolf.sql", "CREATE TABLE \"a\" (\"id\" int);"),
        (
            "0001_calm_fox.sql",
            "ALTER TABLE \"a\" ADD COLUMN \"b\" int;--> statement-breakpoint\nCREATE INDEX \"i\" ON \"a\" (\"b\");",
        ),
        ("meta/_journal.json", "{\"entries\": []}"),
        ("meta/0000_snapshot.json", "{}"),
    ]);
    let ms = discover(dir.path()).unwrap();
    assert_eq!(ms.len(), 2);
    assert!(ms.iter().all(|m| m.layout == Layout::Drizzle));
    assert_eq!(ms[1].version, "0001");
    assert!(ms[1].up_sql().contains("statement-breakpoint"));
}

#[test]
fn drizzle_without_journal_detected_by_breakpoint() {
    let dir = dir_with(&[("0000_x.sql", "SELECT 1;--> statement-breakpoint\nSELECT 2;")]);
    assert_eq!(discover(dir.path()).unwrap()[0].layout, Layout::Drizzle);
}

#[test]
fn flyway_versions_and_undo() {
    let dir = dir_with(&[
        ("V1__init.sql", "create table a (id int);"),
        ("V1_10__later.sql", "select 110;"),
        ("V1_2__next.sql", "select 12;"),
        ("U1_2__next.sql", "select 'undo';"),
    ]);
    let ms = discover(dir.path()).unwrap();
    assert_eq!(
        ms.iter().map(|m| m.version.as_str()).collect::<Vec<_>>(),
        ["1", "1.2", "1.10"]
    );
    assert_eq!(ms[1].name, "next");
    assert_eq!(ms[1].down.as_ref().unwrap().sql, "select 'undo';");
    assert!(ms[0].down.is_none());
    assert!(ms.iter().all(|m| m.layout == Layout::Flyway));
}

#[test]
fn flyway_repeatable_is_refused_with_a_reason() {
    let dir = dir_with(&[("V1__a.sql", "select 1;"), ("R__views.sql", "select 2;")]);
    let err = discover(dir.path()).unwrap_err();
    assert!(err.to_string().contains("repeatable"), "{err}");
}

#[test]
fn lull_layout_with_down_section() {
    let text = "create table t (id int);\ncreate index i on t (id);\n-- lull:down\ndrop table t;\n";
    let dir = dir_with(&[
        ("001_t.sql", text),
        ("002_u.sql", "-- lull:no-transaction\nselect 1;\n"),
    ]);
    let ms = discover(dir.path()).unwrap();
    assert!(ms.iter().all(|m| m.layout == Layout::Lull));
    let up = ms[0].up.as_ref().unwrap();
    assert_eq!(
        up.sql,
        "create table t (id int);\ncreate index i on t (id);\n"
    );
    let down = ms[0].down.as_ref().unwrap();
    assert_eq!(down.sql, "drop table t;\n");
    assert_eq!(down.line_offset, 3);
    assert!(!ms[0].no_transaction);
    assert!(ms[1].no_transaction);
    assert!(ms[1].down.is_none());
}

#[test]
fn unknown_file_lists_expected_layouts() {
    let dir = dir_with(&[("1_a.sql", "select 1;"), ("notes.txt", "hello")]);
    let err = discover(dir.path()).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("notes.txt"), "{msg}");
    assert!(msg.contains("V<version>__<name>.sql"), "{msg}");
    assert!(msg.contains("migration.sql"), "{msg}");
}

#[test]
fn mixed_layouts_are_refused() {
    let dir = dir_with(&[("V1__a.sql", "select 1;"), ("2_b.up.sql", "select 2;")]);
    let err = discover(dir.path()).unwrap_err();
    assert!(matches!(err, DiscoverError::MixedLayouts { .. }), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains("flyway") && msg.contains("golang-migrate"),
        "{msg}"
    );

    let dir = dir_with(&[
        ("1_a.sql", "-- migrate:up\nselect 1;"),
        ("2_b.sql", "select 2;\n-- lull:down\n"),
    ]);
    let err = discover(dir.path()).unwrap_err();
    assert!(
        err.to_string().contains("dbmate") && err.to_string().contains("lull"),
        "{err}"
    );
}

#[test]
fn duplicate_versions_are_refused() {
    let dir = dir_with(&[("1_a.sql", "select 1;"), ("001_b.sql", "select 2;")]);
    let err = discover(dir.path()).unwrap_err();
    assert!(
        matches!(err, DiscoverError::DuplicateVersion { .. }),
        "{err}"
    );
}

#[test]
fn forced_layout_rejects_other_files() {
    let dir = dir_with(&[("1_a.up.sql", "select 1;"), ("1_a.down.sql", "select 2;")]);
    assert_eq!(
        discover_as(dir.path(), Layout::Sqlx).unwrap()[0].layout,
        Layout::Sqlx
    );
    let err = discover_as(dir.path(), Layout::Flyway).unwrap_err();
    assert!(err.to_string().contains("V<version>__<name>.sql"), "{err}");
}

#[test]
fn not_utf8_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("1_a.sql"), [0xff, 0xfe, 0x00]).unwrap();
    let err = discover(dir.path()).unwrap_err();
    assert!(matches!(err, DiscoverError::NotUtf8 { .. }), "{err}");
}

#[test]
fn layout_names_round_trip() {
    for l in Layout::ALL {
        assert_eq!(l.name().parse::<Layout>().unwrap(), l);
    }
    assert!("rails"
        .parse::<Layout>()
        .unwrap_err()
        .contains("golang-migrate"));
}
