//! `lull migrate` on partitioned tables, on a real server: a plain
//! `CREATE INDEX` on a partitioned table cannot become `CONCURRENTLY`
//! (PostgreSQL rejects that), so lull runs it as the index `ON ONLY` the
//! parent, each partition's index built concurrently in its own step and
//! attached. The catalog must end up as the plain file leaves it (same
//! index names, definitions, validity and attachments), compared with
//! `lull_sandbox::testing::equivalence`.

use lull_sandbox::testing::equivalence::{Equivalence, Outcome};

const LULL: &str = env!("CARGO_BIN_EXE_lull");

fn project(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("migrations")).unwrap();
    for (name, sql) in files {
        std::fs::write(dir.path().join("migrations").join(name), sql).unwrap();
    }
    dir
}

/// The SQL of every step lull recorded, in order.
fn steps(outcome: &Outcome) -> Vec<String> {
    outcome
        .lull_db
        .client()
        .query("SELECT sql FROM lull.steps ORDER BY version, step", &[])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

const EVENTS: &str = "CREATE TABLE events (id bigint NOT NULL, at date NOT NULL, kind text NOT NULL) \
                        PARTITION BY RANGE (at);\n\
     CREATE TABLE events_2024 PARTITION OF events FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');\n\
     CREATE TABLE events_2025 PARTITION OF events FOR VALUES FROM ('2025-01-01') TO ('2026-01-01') \
        PARTITION BY LIST (kind);\n\
     CREATE TABLE events_2025_a PARTITION OF events_2025 FOR VALUES IN ('a');\n\
     CREATE TABLE events_2025_b PARTITION OF events_2025 FOR VALUES IN ('b');\n\
     CREATE TABLE events_rest PARTITION OF events DEFAULT;\n\
     INSERT INTO events SELECT g, date '2024-06-01' + (g % 700), CASE WHEN g % 2 = 0 THEN 'a' ELSE 'b' END \
        FROM generate_series(1, 2000) g;\n";

#[test]
fn an_index_on_a_partitioned_table_is_built_per_partition_and_leaves_the_plain_catalog() {
    let dir = project(&[
        ("1_events.sql", EVENTS),
        (
            "2_indexes.sql",
            "CREATE INDEX events_at_idx ON events (at);\n\
             CREATE UNIQUE INDEX ON events (id, at, kind);\n\
             CREATE INDEX ON events (lower(kind)) WHERE id > 10;\n",
        ),
    ]);
    let outcome = Equivalence::new(LULL, dir.path()).run();
    outcome.assert_same();
    let steps = steps(&outcome);
    let joined = steps.join("\n");
    // Each leaf partition's index was built concurrently in its own step.
    for leaf in [
        "events_2024",
        "events_2025_a",
        "events_2025_b",
        "events_rest",
    ] {
        let built = steps
            .iter()
            .filter(|s| {
                s.starts_with("CREATE INDEX CONCURRENTLY") && s.contains(&format!(" ON {leaf} "))
            })
            .count();
        assert_eq!(
            built, 2,
            "two plain indexes built concurrently on {leaf}:\n{joined}"
        );
    }
    assert!(
        joined
            .contains("CREATE UNIQUE INDEX CONCURRENTLY events_2024_id_at_kind_idx ON events_2024"),
        "{joined}"
    );
    assert!(
        joined.contains("ALTER INDEX events_at_idx ATTACH PARTITION events_2025_at_idx"),
        "the sub-partitioned partition is attached:\n{joined}"
    );
    assert!(
        !steps
            .iter()
            .any(|s| s.contains("CONCURRENTLY") && s.contains(" ON events ")),
        "never CONCURRENTLY on the partitioned table itself:\n{joined}"
    );
    // The catalog comparison covers this too, but say it plainly: every
    // index ends valid and attached.
    let invalid: i64 = outcome
        .lull_db
        .client()
        .query_one("SELECT count(*) FROM pg_index WHERE NOT indisvalid", &[])
        .unwrap()
        .get(0);
    assert_eq!(invalid, 0);
    assert!(
        outcome
            .lull
            .objects
            .iter()
            .any(|(k, v)| k.contains("events_2025_a_at_idx")
                && v.contains("[partition of events_2025_at_idx]")),
        "{}",
        outcome.lull
    );
}

/// The partitions are read from the catalog when the table was created
/// before lull ran; a partition that already has an index on the same
/// columns (which PostgreSQL attaches instead of building) keeps the
/// statement plain, with a note in the plan.
#[test]
fn partitions_come_from_the_catalog_and_a_matching_partition_index_keeps_it_plain() {
    let setup = "CREATE TABLE m (id bigint NOT NULL, at date NOT NULL) PARTITION BY RANGE (at);\n\
                 CREATE TABLE m_1 PARTITION OF m FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');\n\
                 CREATE TABLE m_2 PARTITION OF m FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');\n\
                 CREATE INDEX m_2_id_idx ON m_2 (id);\n\
                 CREATE TABLE m_1_at_idx (x int);\n\
                 INSERT INTO m SELECT g, date '2024-06-01' + (g % 500) FROM generate_series(1, 1000) g;";
    let dir = project(&[(
        "1_indexes.sql",
        "CREATE INDEX ON m (at);\nCREATE INDEX m_id ON m (id);\n",
    )]);
    let outcome = Equivalence::new(LULL, dir.path()).setup_sql(setup).run();
    outcome.assert_same();
    let joined = steps(&outcome).join("\n");
    // `m_1_at_idx` is a table already: PostgreSQL (and lull) pick `…1`.
    assert!(
        joined.contains("CREATE INDEX CONCURRENTLY m_1_at_idx1 ON public.m_1"),
        "{joined}"
    );
    assert!(
        joined.contains("CREATE INDEX m_id ON m (id)"),
        "kept as written:\n{joined}"
    );

    // `lull plan` says why the second one runs as written.
    let db = lull_sandbox::testing::TestDb::new();
    db.client().batch_execute(setup).unwrap();
    let out = std::process::Command::new(LULL)
        .args(["plan"])
        .current_dir(dir.path())
        .env_remove("LULL_ENV")
        .env("DATABASE_URL", db.url())
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    let plan = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{plan}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        plan.contains("partitioned-index")
            && plan.contains("m_2` has an index on the same columns"),
        "{plan}"
    );
}
