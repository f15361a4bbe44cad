//! Every lock claim of the analyzer, proven on a real server.
//!
//! Transactional statements run inside `BEGIN` on a fresh schema; the
//! session's own `pg_locks` rows are then compared with the claimed modes
//! (strongest mode per relation). Statements that cannot run in a
//! transaction are started on a second connection while a third one holds
//! an open transaction that makes them wait; their locks are read from
//! `pg_locks` while they wait.
//!
//! Claims cover relations named in the statement and the relations it
//! creates. Locks PostgreSQL takes on relations it finds through the
//! catalog (a table's indexes and sequences, the table of an index named
//! in DROP INDEX, the referenced table of a validated foreign key) are not
//! claimed; the cases list them under `extra`, so this file also documents
//! them. Indexes and sequences that are neither claimed nor listed are
//! ignored.
//!
//! The same harness checks the `rewrites` claims (a relation's filenode
//! changes exactly for the claimed tables), the `scans` claims (each
//! claimed full read shows up in `pg_stat_xact_user_tables`), and that
//! each safe form reads tables only under locks that let writes continue.

use std::collections::BTreeMap;
use std::thread;
use std::time::{Duration, Instant};

use lull_analyzer::{parse_for, safe_form, LockMode, NewRelations, Statement};
use lull_sandbox::testing::{server_major, TestDb};
use postgres::{Client, GenericClient};

const SETUP: &str = "
    CREATE TABLE t (id int PRIMARY KEY, a int, b text, c varchar(10));
    CREATE INDEX t_a ON t (a);
    CREATE TABLE u (id int PRIMARY KEY, t_id int);
    ALTER TABLE u ADD CONSTRAINT fkv FOREIGN KEY (t_id) REFERENCES t (id) NOT VALID;
    ALTER TABLE t ADD CONSTRAINT ck CHECK (a > 0) NOT VALID;
    CREATE MATERIALIZED VIEW mv AS SELECT id FROM t;
    CREATE UNIQUE INDEX mv_id ON mv (id);
    CREATE TABLE p (id int, k int) PARTITION BY RANGE (k);
    CREATE TABLE p1 PARTITION OF p FOR VALUES FROM (0) TO (10);
    CREATE TABLE p2 (id int, k int);
    CREATE TABLE q (id int, k int) PARTITION BY LIST (k);
    CREATE TABLE qd PARTITION OF q DEFAULT;
    CREATE TABLE q1 (id int, k int);
    CREATE TABLE r (id int, k int) PARTITION BY LIST (k);
    CREATE TABLE r1 PARTITION OF r FOR VALUES IN (1);
    CREATE INDEX r_k ON ONLY r (k);
    CREATE INDEX r1_k ON r1 (k);
    CREATE TABLE n0 (id int);
    CREATE SEQUENCE sq;
    CREATE TABLE g (a int, d int GENERATED ALWAYS AS (a * 2) STORED);
    CREATE SCHEMA IF NOT EXISTS other;
    CREATE FUNCTION trg() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$;
    INSERT INTO t SELECT g, g, 'x', 'y' FROM generate_series(1, 100) g;
    INSERT INTO u SELECT g, g FROM generate_series(1, 100) g;
    ANALYZE;
";

/// One statement and the locks PostgreSQL takes that the text cannot show.
struct Case {
    sql: &'static str,
    extra: &'static [(&'static str, LockMode)],
}

const fn case(sql: &'static str) -> Case {
    Case { sql, extra: &[] }
}

use LockMode::*;

const TRANSACTIONAL: &[Case] = &[
    case("CREATE INDEX i ON t (a)"),
    case("CREATE UNIQUE INDEX IF NOT EXISTS i ON t (id)"),
    Case {
        sql: "DROP INDEX t_a",
        extra: &[("t", AccessExclusive)],
    },
    case("ALTER TABLE t ADD COLUMN d int"),
    case("ALTER TABLE t ADD COLUMN d int NOT NULL DEFAULT 1"),
    case("ALTER TABLE t ADD COLUMN d timestamptz DEFAULT now()"),
    case("ALTER TABLE t ADD COLUMN d float DEFAULT random()"),
    case("ALTER TABLE t ADD COLUMN d bigserial"),
    case("ALTER TABLE t ADD COLUMN d int GENERATED ALWAYS AS (a * 2) STORED"),
    case("ALTER TABLE u ADD CONSTRAINT fk2 FOREIGN KEY (t_id) REFERENCES t (id)"),
    case("ALTER TABLE u ADD CONSTRAINT fk2 FOREIGN KEY (t_id) REFERENCES t (id) NOT VALID"),
    Case {
        sql: "ALTER TABLE u VALIDATE CONSTRAINT fkv",
        extra: &[("t", RowShare)],
    },
    case("ALTER TABLE t VALIDATE CONSTRAINT ck"),
    case("ALTER TABLE t ADD CONSTRAINT ck2 CHECK (a > 0)"),
    case("ALTER TABLE t ADD CONSTRAINT ck2 CHECK (a > 0) NOT VALID"),
    case("ALTER TABLE t ALTER COLUMN a SET NOT NULL"),
    case("ALTER TABLE t ALTER COLUMN a DROP NOT NULL"),
    case("ALTER TABLE t ALTER COLUMN c TYPE text"),
    case("ALTER TABLE t ALTER COLUMN c TYPE varchar(20)"),
    case("ALTER TABLE t ALTER COLUMN a TYPE bigint"),
    case("ALTER TABLE t ALTER COLUMN a SET DEFAULT 5"),
    case("ALTER TABLE t ALTER COLUMN a SET STATISTICS 100"),
    case("ALTER TABLE t SET (fillfactor = 70)"),
    case("ALTER TABLE t DROP COLUMN b"),
    case("ALTER TABLE t RENAME COLUMN b TO z"),
    case("ALTER TABLE n0 RENAME TO n1"),
    case("ALTER INDEX t_a RENAME TO t_a2"),
    case("ALTER TABLE t ADD CONSTRAINT uq UNIQUE (id)"),
    case("ALTER TABLE n0 ADD PRIMARY KEY (id)"),
    case("ALTER TABLE t ADD CONSTRAINT ex EXCLUDE USING btree (id WITH =)"),
    case("ALTER TABLE n0 SET UNLOGGED"),
    case("ALTER TABLE t DISABLE TRIGGER ALL"),
    case("ALTER TABLE p DETACH PARTITION p1"),
    case("ALTER TABLE p ATTACH PARTITION p2 FOR VALUES FROM (10) TO (20)"),
    // With a DEFAULT partition, PostgreSQL also scans that one to prove
    // none of its rows belongs to the new partition.
    Case {
        sql: "ALTER TABLE q ATTACH PARTITION q1 FOR VALUES IN (1)",
        extra: &[("qd", AccessExclusive)],
    },
    // The per-partition index build of a partitioned table.
    case("CREATE INDEX pi ON ONLY p (k)"),
    // The indexes' tables are found through the catalog.
    Case {
        sql: "ALTER INDEX r_k ATTACH PARTITION r1_k",
        extra: &[("r", AccessShare), ("r1", AccessShare)],
    },
    case("CREATE TABLE n (id int)"),
    case("CREATE TABLE n (id int REFERENCES t (id))"),
    case("CREATE TABLE p3 PARTITION OF p FOR VALUES FROM (20) TO (30)"),
    case("CREATE VIEW v AS SELECT * FROM t"),
    case("CREATE MATERIALIZED VIEW mv2 AS SELECT * FROM t"),
    case("CREATE SEQUENCE s"),
    case("DROP TABLE n0"),
    case("TRUNCATE n0"),
    case("LOCK TABLE t IN SHARE MODE"),
    case("LOCK t"),
    case("UPDATE t SET a = 1"),
    case("DELETE FROM u WHERE id = 1"),
    case("INSERT INTO t (id) VALUES (1000)"),
    case("SELECT * FROM t"),
    case("SELECT * FROM t FOR UPDATE"),
    case("CLUSTER t USING t_a"),
    // The view's query reads its tables, which only the catalog knows.
    Case {
        sql: "REFRESH MATERIALIZED VIEW mv",
        extra: &[("t", AccessShare)],
    },
    Case {
        sql: "REFRESH MATERIALIZED VIEW CONCURRENTLY mv",
        extra: &[("t", AccessShare)],
    },
    case("REINDEX TABLE t"),
    Case {
        sql: "REINDEX INDEX t_a",
        extra: &[("t", Share)],
    },
    case("COMMENT ON TABLE t IS 'x'"),
    case("ANALYZE t"),
    case("ALTER TABLE t ADD COLUMN d int REFERENCES u (id)"),
    case("ALTER TABLE t ADD COLUMN d int CHECK (d > 0)"),
    case("CREATE TRIGGER tg BEFORE INSERT ON t FOR EACH ROW EXECUTE FUNCTION trg()"),
    case("CREATE POLICY pol ON t USING (true)"),
    case("ALTER TABLE t ENABLE ROW LEVEL SECURITY"),
    case("ALTER TABLE n0 SET SCHEMA other"),
    case("ALTER TABLE t OWNER TO CURRENT_USER"),
    case("ALTER TABLE t REPLICA IDENTITY FULL"),
    case("ALTER TABLE t CLUSTER ON t_a"),
    case("ALTER TABLE t ALTER COLUMN b SET STORAGE EXTERNAL"),
    case("ALTER MATERIALIZED VIEW mv RENAME TO mv2"),
    case("INSERT INTO u (id, t_id) SELECT id, id FROM t WHERE false"),
    case("MERGE INTO u USING t ON u.id = t.id WHEN MATCHED THEN DO NOTHING"),
    // SQL that only newer majors accept: on an older one the claim
    // checked is that the server refuses it (see `check_rejected`).
    case("CREATE UNIQUE INDEX i ON t (a) NULLS NOT DISTINCT"),
    case("ALTER TABLE t ADD CONSTRAINT uq2 UNIQUE NULLS NOT DISTINCT (a)"),
    case("MERGE INTO u USING t ON u.id = t.id WHEN MATCHED THEN DO NOTHING RETURNING u.id"),
    case("MERGE INTO u USING t ON u.id = t.id WHEN NOT MATCHED BY SOURCE THEN DELETE"),
    case("ALTER TABLE g ALTER COLUMN d SET EXPRESSION AS (a * 3)"),
    case("CREATE VIEW vs AS SELECT * FROM (SELECT id FROM t)"),
    case("CREATE VIEW vj AS SELECT JSON_OBJECT('id' VALUE id) FROM t"),
    case("CREATE VIEW vq AS SELECT JSON_VALUE(b::jsonb, '$.x') FROM t"),
    case("GRANT SELECT ON t TO PUBLIC"),
    case("REVOKE SELECT ON t FROM PUBLIC"),
    case("GRANT SELECT (a) ON t TO PUBLIC"),
    case("GRANT SELECT ON t, u TO PUBLIC"),
    case("GRANT USAGE ON SEQUENCE sq TO PUBLIC"),
    // The partitions of a partitioned table are found in the catalog.
    Case {
        sql: "CREATE INDEX pi ON p (k)",
        extra: &[("p1", Share)],
    },
];

/// Statements that cannot run in a transaction, and the query an open
/// transaction runs to make them wait where their locks can be seen.
const NON_TRANSACTIONAL: &[(Case, &str)] = &[
    (
        case("CREATE INDEX CONCURRENTLY i ON t (a)"),
        "SELECT * FROM t",
    ),
    (
        Case {
            sql: "DROP INDEX CONCURRENTLY t_a",
            extra: &[("t", ShareUpdateExclusive)],
        },
        "SELECT * FROM t",
    ),
    (
        Case {
            sql: "REINDEX INDEX CONCURRENTLY t_a",
            extra: &[("t", ShareUpdateExclusive)],
        },
        "SELECT * FROM t",
    ),
    (case("REINDEX TABLE CONCURRENTLY t"), "SELECT * FROM t"),
    (
        case("VACUUM t"),
        "LOCK TABLE t IN SHARE UPDATE EXCLUSIVE MODE",
    ),
    (
        case("VACUUM FULL t"),
        "LOCK TABLE t IN SHARE UPDATE EXCLUSIVE MODE",
    ),
    (
        case("ALTER TABLE p DETACH PARTITION p1 CONCURRENTLY"),
        "SELECT * FROM p1",
    ),
];

/// A relation of the test schema as it was before the statement.
#[derive(Debug, Clone)]
struct Rel {
    name: String,
    kind: String,
    filenode: Option<u32>,
}

type Seen = BTreeMap<String, (LockMode, String)>;

/// Sequential scans per table counted by this backend so far.
fn seq_scans(client: &mut impl GenericClient) -> BTreeMap<String, i64> {
    client
        .query(
            "SELECT relname::text, seq_scan FROM pg_stat_xact_user_tables",
            &[],
        )
        .expect("xact stats")
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
}

/// The server's message for a failed statement.
fn pg(e: &postgres::Error) -> String {
    e.as_db_error()
        .map_or_else(|| e.to_string(), |d| d.message().to_string())
}

/// The statement with its facts for the major the tests run on.
fn one(sql: &str) -> Statement {
    let mut stmts = parse_for(sql, Some(server_major())).unwrap_or_else(|e| panic!("{sql}: {e}"));
    assert_eq!(stmts.len(), 1, "{sql}");
    stmts.remove(0)
}

fn reset(client: &mut Client) {
    client
        .batch_execute("DROP SCHEMA IF EXISTS public CASCADE; CREATE SCHEMA public;")
        .expect("reset schema");
    client.batch_execute(SETUP).expect("setup");
}

fn relations(client: &mut impl GenericClient) -> BTreeMap<u32, Rel> {
    client
        .query(
            "SELECT oid, relname::text, relkind::text, pg_relation_filenode(oid) FROM pg_class \
             WHERE relnamespace = 'public'::regnamespace",
            &[],
        )
        .expect("read pg_class")
        .iter()
        .map(|r| {
            (
                r.get::<_, u32>(0),
                Rel {
                    name: r.get(1),
                    kind: r.get(2),
                    filenode: r.get(3),
                },
            )
        })
        .collect()
}

/// Strongest mode per relation held or awaited by backend `pid`, named as
/// in `before` (so dropped and renamed relations keep their old names) or,
/// for new relations, as the catalog shows them to `client`.
fn locks_of(client: &mut impl GenericClient, pid: i32, before: &BTreeMap<u32, Rel>) -> Seen {
    let rows = client
        .query(
            "SELECT l.relation, l.mode, c.relname::text, c.relkind::text, \
                    c.relnamespace = 'public'::regnamespace \
             FROM pg_locks l LEFT JOIN pg_class c ON c.oid = l.relation \
             WHERE l.pid = $1 AND l.locktype = 'relation'",
            &[&pid],
        )
        .expect("read pg_locks");
    let mut seen = Seen::new();
    for row in rows {
        let oid: u32 = row.get(0);
        let mode = LockMode::from_pg_name(row.get(1)).expect("known lock mode");
        let (name, kind) = match before.get(&oid) {
            Some(rel) => (rel.name.clone(), rel.kind.clone()),
            None => match (
                row.get::<_, Option<String>>(2),
                row.get::<_, Option<bool>>(4),
            ) {
                (Some(name), Some(true)) => {
                    (name, row.get::<_, Option<String>>(3).unwrap_or_default())
                }
                _ => continue,
            },
        };
        let entry = seen.entry(name).or_insert((mode, kind));
        entry.0 = entry.0.max(mode);
    }
    seen
}

/// Compares what PostgreSQL did with what the analyzer claims; `Err`
/// says how they differ.
fn compare(
    sql: &str,
    stmt: &Statement,
    extra: &[(&str, LockMode)],
    seen: &Seen,
) -> Result<(), String> {
    let mut expected: BTreeMap<String, LockMode> = stmt
        .facts
        .locks
        .iter()
        .map(|l| (l.relation.clone(), l.mode))
        .collect();
    for (rel, mode) in extra {
        expected.insert(rel.to_string(), *mode);
    }
    // Relations that matter: tables, views and the like, plus anything
    // claimed. Unclaimed indexes and sequences follow their table's lock.
    let observed: BTreeMap<String, LockMode> = seen
        .iter()
        .filter(|(name, (_, kind))| {
            expected.contains_key(*name) || !matches!(kind.as_str(), "i" | "I" | "S")
        })
        .map(|(name, (mode, _))| (name.clone(), *mode))
        .collect();
    if observed == expected {
        Ok(())
    } else {
        Err(format!(
            "locks of `{sql}`: observed {observed:?}, claimed + extra {expected:?}"
        ))
    }
}

/// Fails with every difference found, so one run lists them all.
fn assert_no_differences(what: &str, differences: &[String]) {
    assert!(
        differences.is_empty(),
        "{} {what} differ from the claims on PostgreSQL {}:\n  {}",
        differences.len(),
        server_major(),
        differences.join("\n  ")
    );
}

/// A statement the analyzer claims this major rejects (e.g. MERGE before
/// 15) has no locks to compare here: the claim checked instead is that the
/// server refuses it as SQL it does not know.
fn check_rejected(
    client: &mut Client,
    sql: &str,
    req: &lull_analyzer::Requirement,
) -> Result<(), String> {
    let major = server_major();
    reset(client);
    let mut tx = client.transaction().expect("begin");
    let outcome = tx.batch_execute(sql);
    tx.rollback().expect("rollback");
    let code = match &outcome {
        Ok(()) => {
            return Err(format!(
                "`{sql}` is claimed to need PostgreSQL {} ({}), but {major} ran it",
                req.major, req.what
            ))
        }
        Err(e) => e.code().cloned(),
    };
    // Before 17, JSON_VALUE(...) and friends parse as calls of functions
    // that do not exist.
    let refused = [
        postgres::error::SqlState::SYNTAX_ERROR,
        postgres::error::SqlState::FEATURE_NOT_SUPPORTED,
        postgres::error::SqlState::UNDEFINED_FUNCTION,
    ];
    if !code.as_ref().is_some_and(|c| refused.contains(c)) {
        return Err(format!(
            "`{sql}` is claimed to need PostgreSQL {}, but {major} failed otherwise: {}",
            req.major,
            outcome.err().map(|e| pg(&e)).unwrap_or_default()
        ));
    }
    eprintln!(
        "skipped on PostgreSQL {major}: `{sql}` ({} needs PostgreSQL {}; the server refused it, as claimed)",
        req.what, req.major
    );
    Ok(())
}

/// Runs one transactional case and checks its locks, rewrites and scans.
fn check_transactional(client: &mut Client, case: &Case, stmt: &Statement) -> Result<(), String> {
    reset(client);
    let before = relations(client);
    let mut tx = client.transaction().expect("begin");
    let baseline = seq_scans(&mut tx);
    tx.batch_execute(case.sql)
        .map_err(|e| format!("`{}` failed: {}", case.sql, pg(&e)))?;
    let pid: i32 = tx
        .query_one("SELECT pg_backend_pid()", &[])
        .expect("pid")
        .get(0);
    let seen = locks_of(&mut tx, pid, &before);
    let scanned: Vec<String> = seq_scans(&mut tx)
        .into_iter()
        .filter(|(table, n)| *n > baseline.get(table).copied().unwrap_or(0))
        .map(|(table, _)| table)
        .collect();
    let after = relations(&mut tx);
    tx.rollback().expect("rollback");
    let mut problems = Vec::new();
    // Scans: every claimed full read happened (on the table itself, or
    // for a partitioned table on the partitions listed in `extra`).
    for claimed in &stmt.facts.scans {
        let read = scanned.contains(claimed)
            || case
                .extra
                .iter()
                .any(|(r, _)| scanned.iter().any(|s| s == r));
        if !read {
            problems.push(format!(
                "`{}` claims a scan of {claimed}, but the tables read were {scanned:?}",
                case.sql
            ));
        }
    }
    if let Err(e) = compare(case.sql, stmt, case.extra, &seen) {
        problems.push(e);
    }
    // Rewrites: a table or materialized view gets a new file exactly
    // when claimed. TRUNCATE gives a new, empty file without copying
    // anything, which the claims do not count as a rewrite.
    if !case.sql.starts_with("TRUNCATE") {
        let rewritten: Vec<String> = before
            .iter()
            .filter(|(_, rel)| matches!(rel.kind.as_str(), "r" | "m"))
            .filter(|(oid, rel)| after.get(*oid).is_some_and(|a| a.filenode != rel.filenode))
            .map(|(_, rel)| rel.name.clone())
            .collect();
        let mut claimed = stmt.facts.rewrites.clone();
        claimed.sort();
        if rewritten != claimed {
            problems.push(format!(
                "rewrites of `{}`: observed {rewritten:?}, claimed {claimed:?}",
                case.sql
            ));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("\n  "))
    }
}

#[test]
fn transactional_lock_claims_match_pg_locks() {
    let db = TestDb::new();
    let mut client = db.client();
    let mut differences = Vec::new();
    for case in TRANSACTIONAL {
        let stmt = one(case.sql);
        assert!(
            stmt.facts.transactional,
            "{} claims it cannot run in a transaction",
            case.sql
        );
        if let Some(req) = stmt.facts.rejected_on(server_major()) {
            if let Err(e) = check_rejected(&mut client, case.sql, req) {
                differences.push(e);
            }
            continue;
        }
        if let Err(e) = check_transactional(&mut client, case, &stmt) {
            differences.push(e);
        }
    }
    assert_no_differences("transactional statements", &differences);
}

/// Runs `sql` on its own connection while another connection holds
/// `blocker` in an open transaction, and returns the locks `sql` holds or
/// awaits once it waits; `Err` when it fails or never waits. The schema
/// must be prepared.
fn observe_waiting(db: &TestDb, sql: &str, blocker: &str) -> Result<Seen, String> {
    let mut observer = db.client();
    let before = relations(&mut observer);
    let mut holder = db.client();
    // REPEATABLE READ keeps the snapshot for the whole transaction, which
    // CONCURRENTLY work waits for.
    holder
        .batch_execute(&format!(
            "BEGIN ISOLATION LEVEL REPEATABLE READ; {blocker};"
        ))
        .expect("blocker");
    let mut runner = db.client();
    let pid: i32 = runner
        .query_one("SELECT pg_backend_pid()", &[])
        .expect("pid")
        .get(0);
    let owned = sql.to_string();
    let worker = thread::spawn(move || runner.batch_execute(&owned).map_err(|e| pg(&e)));
    // Generous: the machine is shared; this only bounds a broken case.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut seen = Err(format!("`{sql}` never waited behind `{blocker}`"));
    loop {
        let waiting: bool = observer
            .query_one(
                "SELECT coalesce(bool_or(wait_event_type = 'Lock'), false) FROM pg_stat_activity WHERE pid = $1",
                &[&pid],
            )
            .expect("pg_stat_activity")
            .get(0);
        if waiting {
            seen = Ok(locks_of(&mut observer, pid, &before));
            break;
        }
        if worker.is_finished() {
            seen = Err(format!(
                "`{sql}` finished without waiting behind `{blocker}`"
            ));
            break;
        }
        if Instant::now() >= deadline {
            break;
        }
        thread::sleep(Duration::from_millis(20));
    }
    holder.batch_execute("COMMIT").expect("release blocker");
    let outcome = worker.join().expect("worker");
    match outcome {
        Err(e) => Err(format!("`{sql}` failed: {e}")),
        Ok(()) => seen,
    }
}

#[test]
fn non_transactional_lock_claims_match_pg_locks() {
    let db = TestDb::new();
    let mut client = db.client();
    let mut differences = Vec::new();
    for (case, blocker) in NON_TRANSACTIONAL {
        let stmt = one(case.sql);
        assert!(
            !stmt.facts.transactional,
            "{} claims it can run in a transaction",
            case.sql
        );
        if let Some(req) = stmt.facts.rejected_on(server_major()) {
            if let Err(e) = check_rejected(&mut client, case.sql, req) {
                differences.push(e);
            }
            continue;
        }
        reset(&mut client);
        match observe_waiting(&db, case.sql, blocker) {
            Ok(seen) => {
                if let Err(e) = compare(case.sql, &stmt, case.extra, &seen) {
                    differences.push(e);
                }
            }
            Err(e) => differences.push(e),
        }
    }
    assert_no_differences("non-transactional statements", &differences);
}

/// SQL that older majors reject and whose locks or rewrites the text
/// cannot tell exactly (`SET ACCESS METHOD heap` rewrites only a table
/// that is not heap already), so only the version claim is checked: the
/// majors it is claimed for run it, the older ones refuse it.
const VERSION_GATED: &[&str] = &["ALTER TABLE t SET ACCESS METHOD heap"];

#[test]
fn version_gated_sql_runs_exactly_from_the_claimed_major_on() {
    let db = TestDb::new();
    let mut client = db.client();
    let mut differences = Vec::new();
    for sql in VERSION_GATED {
        let stmt = one(sql);
        if let Some(req) = stmt.facts.rejected_on(server_major()) {
            if let Err(e) = check_rejected(&mut client, sql, req) {
                differences.push(e);
            }
            continue;
        }
        reset(&mut client);
        let mut tx = client.transaction().expect("begin");
        if let Err(e) = tx.batch_execute(sql) {
            differences.push(format!(
                "`{sql}` is claimed to run on PostgreSQL {}, but failed: {}",
                server_major(),
                pg(&e)
            ));
        }
        tx.rollback().expect("rollback");
    }
    assert_no_differences("version-gated statements", &differences);
}

/// Statements whose safe form must read the table only under locks that
/// let writes continue.
const SAFE_FORMS: &[&str] = &[
    "CREATE INDEX i ON t (a)",
    "DROP INDEX t_a",
    "REINDEX INDEX t_a",
    "ALTER TABLE u ADD CONSTRAINT fk2 FOREIGN KEY (t_id) REFERENCES t (id)",
    "ALTER TABLE t ADD CONSTRAINT ck2 CHECK (a > 0)",
    "ALTER TABLE t ALTER COLUMN a SET NOT NULL",
    "ALTER TABLE t ADD CONSTRAINT uq UNIQUE (id)",
];

#[test]
fn safe_forms_do_not_scan_under_blocking_locks() {
    let db = TestDb::new();
    let mut client = db.client();
    for sql in SAFE_FORMS {
        let stmt = one(sql);
        let form = safe_form(&stmt, &NewRelations::new())
            .unwrap_or_else(|| panic!("no safe form for {sql}"));
        reset(&mut client);
        for step in &form.statements {
            if !one(step).facts.transactional {
                // CONCURRENTLY work: nothing it takes may block writes.
                let seen = observe_waiting(&db, step, "SELECT * FROM t")
                    .unwrap_or_else(|e| panic!("safe form of `{sql}`: {e}"));
                for (rel, (mode, _)) in &seen {
                    assert!(
                        !mode.blocks_writes(),
                        "`{step}` (safe form of `{sql}`) takes {mode:?} on {rel}"
                    );
                }
                continue;
            }
            let before = relations(&mut client);
            let mut tx = client.transaction().expect("begin");
            // Scan counts not yet flushed from earlier transactions show up
            // too, so compare with a baseline taken in this transaction.
            let baseline = seq_scans(&mut tx);
            tx.batch_execute(step)
                .unwrap_or_else(|e| panic!("safe form step `{step}` of `{sql}`: {}", pg(&e)));
            let pid: i32 = tx
                .query_one("SELECT pg_backend_pid()", &[])
                .expect("pid")
                .get(0);
            let seen = locks_of(&mut tx, pid, &before);
            let scanned: Vec<String> = seq_scans(&mut tx)
                .into_iter()
                .filter(|(table, n)| *n > baseline.get(table).copied().unwrap_or(0))
                .map(|(table, _)| table)
                .collect();
            tx.commit().expect("commit safe form step");
            for table in scanned {
                let mode = seen.get(&table).map_or(AccessShare, |s| s.0);
                assert!(
                    !mode.blocks_writes(),
                    "`{step}` (safe form of `{sql}`) scanned {table} holding {mode:?}"
                );
            }
        }
    }
}
