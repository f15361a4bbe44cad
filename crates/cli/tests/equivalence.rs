//! Schema equivalence through the CLI: histories applied with plain psql
//! and with `lull migrate` leave the same catalog (see
//! `lull_sandbox::testing::equivalence`). The real histories under
//! `../shared/corpora` are read in place and skipped with a visible line
//! when absent.

use lull_sandbox::testing::equivalence::{repo_relative, Equivalence};

const LULL: &str = env!("CARGO_BIN_EXE_lull");

fn project(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("migrations")).unwrap();
    for (name, sql) in files {
        std::fs::write(dir.path().join("migrations").join(name), sql).unwrap();
    }
    dir
}

fn corpus(relative: &str, test: &str) -> Option<std::path::PathBuf> {
    repo_relative(
        env!("CARGO_MANIFEST_DIR"),
        &format!("../shared/corpora/{relative}"),
        test,
    )
}

#[test]
fn a_small_history_leaves_the_same_catalog() {
    let dir = project(&[
        (
            "1_users.sql",
            "CREATE TABLE users (id bigint PRIMARY KEY, email text);\n\
             CREATE INDEX users_email_idx ON users (email);\n",
        ),
        (
            "2_posts.sql",
            "CREATE TABLE posts (id bigint PRIMARY KEY, user_id bigint, title text);\n\
             ALTER TABLE posts ADD CONSTRAINT posts_user_fk FOREIGN KEY (user_id) REFERENCES users (id);\n",
        ),
    ]);
    let outcome = Equivalence::new(LULL, dir.path()).run();
    outcome.assert_same();
    assert!(outcome
        .plain
        .objects
        .contains_key("constraint public.posts.posts_user_fk"));
}

#[test]
fn atuin_history_leaves_the_same_catalog() {
    let Some(dir) = corpus("atuin/migrations", "atuin_history_leaves_the_same_catalog") else {
        return;
    };
    let project = tempfile::tempdir().unwrap();
    let outcome = Equivalence::new(LULL, project.path())
        .migrations(&dir)
        .run();
    outcome.assert_same();
    // The history's own objects are there, not just an empty schema.
    assert!(
        outcome
            .plain
            .objects
            .contains_key("relation public.history"),
        "{}",
        outcome.plain
    );
}
