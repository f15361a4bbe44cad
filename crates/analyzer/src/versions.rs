//! What differs between the PostgreSQL majors lull supports: SQL a major
//! does not accept yet, and lock modes that changed from one major to the
//! next.
//!
//! lull parses with the newest grammar, so the parser alone cannot say
//! that PostgreSQL 14 rejects `MERGE`; the [`Requirement`]s written here
//! do, and every statement's facts list its own
//! ([`crate::Facts::requires`]). The facts of a statement are derived for
//! one target major ([`crate::parse_for`]); where a lock mode changed, the
//! change is written down here, per major, in [`LOCK_CHANGES`], and the
//! facts follow it. Every entry is proven on each supported major by
//! `tests/locks.rs`, which runs the statements on a real server of that
//! major and compares the claims with `pg_locks` (and, for a statement a
//! major rejects, checks that the server does reject it).
//!
//! Not for: behaviour that is the same on every supported major (that is
//! in `facts.rs`), or anything that needs a live server.

use serde::Serialize;

use pg_query::protobuf::{AlterTableType, ConstrType, MergeMatchKind, ObjectType};
use pg_query::{NodeEnum, NodeRef};

use crate::ast;
use crate::facts::LockMode;

/// The oldest PostgreSQL major lull supports and tests.
pub const OLDEST_SUPPORTED: u32 = 14;

/// The newest PostgreSQL major lull knows; the target when none is given
/// (a current server).
pub const NEWEST_KNOWN: u32 = 18;

/// The major a statement is analyzed for: the given one, or the newest
/// known when it is unknown.
pub fn target_or_newest(pg_version: Option<u32>) -> u32 {
    pg_version.unwrap_or(NEWEST_KNOWN)
}

/// SQL that majors before [`Requirement::major`] reject: with a syntax
/// error, a "not supported" error or, for JSON_VALUE and the other SQL/JSON
/// query functions, as a call of a function that does not exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct Requirement {
    /// The first major that accepts it.
    pub major: u32,
    /// What needs it, e.g. `MERGE`.
    pub what: &'static str,
    /// What to write instead for an older server.
    pub help: &'static str,
}

const REINDEX_CONCURRENTLY: Requirement = Requirement {
    major: 12,
    what: "REINDEX CONCURRENTLY",
    help: "build a new index CONCURRENTLY, drop the old one CONCURRENTLY, and rename the new one",
};

const DETACH_CONCURRENTLY: Requirement = Requirement {
    major: 14,
    what: "DETACH PARTITION ... CONCURRENTLY",
    help: "detach without CONCURRENTLY, with a short lock_timeout, when the table is quiet",
};

const MERGE: Requirement = Requirement {
    major: 15,
    what: "MERGE",
    help: "use INSERT ... ON CONFLICT, or an UPDATE and an INSERT in one transaction",
};

const NULLS_NOT_DISTINCT: Requirement = Requirement {
    major: 15,
    what: "UNIQUE ... NULLS NOT DISTINCT",
    help: "keep NULLs distinct, or index COALESCE(col, <a value never used>) instead",
};

const SET_ACCESS_METHOD: Requirement = Requirement {
    major: 15,
    what: "ALTER TABLE ... SET ACCESS METHOD",
    help: "create a new table USING the access method, copy the rows, and swap the names",
};

const SQL_JSON_CONSTRUCTORS: Requirement = Requirement {
    major: 16,
    what: "SQL/JSON constructors and IS JSON (JSON_OBJECT(k VALUE v), JSON_ARRAY, JSON_OBJECTAGG, JSON_ARRAYAGG)",
    help: "use json_build_object, json_build_array, json_object_agg, json_agg",
};

const MERGE_RETURNING: Requirement = Requirement {
    major: 17,
    what: "MERGE ... RETURNING",
    help: "read the changed rows in a separate query in the same transaction",
};

const NOT_MATCHED_BY_SOURCE: Requirement = Requirement {
    major: 17,
    what: "MERGE ... WHEN NOT MATCHED BY SOURCE",
    help: "delete or update the unmatched target rows in a separate statement",
};

const SET_EXPRESSION: Requirement = Requirement {
    major: 17,
    what: "ALTER COLUMN ... SET EXPRESSION",
    help: "drop the generated column and add it again with the new expression",
};

const SET_ACCESS_METHOD_DEFAULT: Requirement = Requirement {
    major: 17,
    what: "ALTER TABLE ... SET ACCESS METHOD DEFAULT",
    help: "name the access method, e.g. SET ACCESS METHOD heap",
};

const SQL_JSON_QUERY_FUNCTIONS: Requirement = Requirement {
    major: 17,
    what: "SQL/JSON query functions (JSON_TABLE, JSON_QUERY, JSON_VALUE, JSON_EXISTS, JSON(), JSON_SCALAR, JSON_SERIALIZE)",
    help: "use jsonb_path_query, jsonb_path_exists, ->> and jsonb_to_recordset",
};

const UNALIASED_SUBQUERY: Requirement = Requirement {
    major: 16,
    what: "a subquery in FROM without an alias",
    help: "give the subquery an alias: FROM (SELECT ...) AS sub",
};

const NOT_NULL_NOT_VALID: Requirement = Requirement {
    major: 18,
    what: "ADD CONSTRAINT ... NOT NULL ... NOT VALID",
    help: "add CHECK (col IS NOT NULL) NOT VALID, VALIDATE it, then SET NOT NULL",
};

/// Everything in one statement that some major rejects, oldest first.
pub(crate) fn requirements(node: &NodeEnum) -> Vec<Requirement> {
    let mut found = Vec::new();
    match node {
        NodeEnum::ReindexStmt(s) if ast::has_option(&s.params, "concurrently") => {
            found.push(REINDEX_CONCURRENTLY);
        }
        NodeEnum::IndexStmt(s) if s.nulls_not_distinct => found.push(NULLS_NOT_DISTINCT),
        NodeEnum::CreateStmt(s) => {
            let column_constraints = s.table_elts.iter().filter_map(|n| match &n.node {
                Some(NodeEnum::ColumnDef(c)) => Some(c.constraints.iter()),
                _ => None,
            });
            let any = column_constraints
                .flatten()
                .chain(s.table_elts.iter())
                .chain(s.constraints.iter())
                .filter_map(ast::as_constraint)
                .any(|c| c.nulls_not_distinct);
            if any {
                found.push(NULLS_NOT_DISTINCT);
            }
        }
        NodeEnum::MergeStmt(s) => {
            found.push(MERGE);
            if !s.returning_list.is_empty() {
                found.push(MERGE_RETURNING);
            }
        }
        NodeEnum::AlterTableStmt(s) if s.objtype == ObjectType::ObjectTable as i32 => {
            for cmd in s.cmds.iter().filter_map(|n| match &n.node {
                Some(NodeEnum::AlterTableCmd(c)) => Some(c.as_ref()),
                _ => None,
            }) {
                let subtype =
                    AlterTableType::try_from(cmd.subtype).unwrap_or(AlterTableType::Undefined);
                match subtype {
                    AlterTableType::AtDetachPartition
                        if ast::partition_cmd(cmd).is_some_and(|p| p.concurrent) =>
                    {
                        found.push(DETACH_CONCURRENTLY);
                    }
                    AlterTableType::AtAddConstraint => {
                        if let Some(c) = cmd.def.as_deref().and_then(ast::as_constraint) {
                            if c.contype == ConstrType::ConstrNotnull as i32 && c.skip_validation {
                                found.push(NOT_NULL_NOT_VALID);
                            }
                            if c.nulls_not_distinct {
                                found.push(NULLS_NOT_DISTINCT);
                            }
                        }
                    }
                    AlterTableType::AtAddColumn => {
                        if let Some(col) = cmd.def.as_deref().and_then(ast::as_column_def) {
                            if col
                                .constraints
                                .iter()
                                .filter_map(ast::as_constraint)
                                .any(|c| c.nulls_not_distinct)
                            {
                                found.push(NULLS_NOT_DISTINCT);
                            }
                        }
                    }
                    AlterTableType::AtSetAccessMethod => found.push(if cmd.name.is_empty() {
                        SET_ACCESS_METHOD_DEFAULT
                    } else {
                        SET_ACCESS_METHOD
                    }),
                    AlterTableType::AtSetExpression => found.push(SET_EXPRESSION),
                    _ => {}
                }
            }
        }
        _ => {}
    }
    for (n, ..) in node.nodes() {
        match n {
            NodeRef::RangeSubselect(s) if s.alias.is_none() => found.push(UNALIASED_SUBQUERY),
            NodeRef::MergeWhenClause(w)
                if w.match_kind == MergeMatchKind::MergeWhenNotMatchedBySource as i32 =>
            {
                found.push(NOT_MATCHED_BY_SOURCE);
            }
            NodeRef::JsonObjectConstructor(_)
            | NodeRef::JsonArrayConstructor(_)
            | NodeRef::JsonArrayQueryConstructor(_)
            | NodeRef::JsonObjectAgg(_)
            | NodeRef::JsonArrayAgg(_)
            | NodeRef::JsonIsPredicate(_) => found.push(SQL_JSON_CONSTRUCTORS),
            NodeRef::JsonFuncExpr(_)
            | NodeRef::JsonTable(_)
            | NodeRef::JsonParseExpr(_)
            | NodeRef::JsonScalarExpr(_)
            | NodeRef::JsonSerializeExpr(_) => found.push(SQL_JSON_QUERY_FUNCTIONS),
            _ => {}
        }
    }
    found.sort_by_key(|r| (r.major, r.what));
    found.dedup();
    found
}

/// A lock mode that differs between majors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct LockChange {
    /// The statement, as the docs name it.
    pub statement: &'static str,
    /// Which relations get the lock.
    pub on: &'static str,
    /// The first major that takes [`LockChange::mode`].
    pub since: u32,
    /// The mode before `since` (`None`: no lock at all).
    pub before: Option<LockMode>,
    /// The mode from `since` on.
    pub mode: LockMode,
}

impl LockChange {
    /// The mode taken on the target major (`None`: no lock).
    pub fn mode_on(&self, major: u32) -> Option<LockMode> {
        if major >= self.since {
            Some(self.mode)
        } else {
            self.before
        }
    }
}

/// GRANT / REVOKE on tables, views, materialized views and sequences:
/// before 18 the ACL change takes no lock on the relation (only the
/// catalog row's); from 18 on each named relation is locked ACCESS SHARE,
/// so a GRANT waits behind, and is waited on by, ACCESS EXCLUSIVE work.
pub(crate) const GRANT_ON_RELATION: LockChange = LockChange {
    statement: "GRANT / REVOKE ... ON [TABLE | SEQUENCE] name",
    on: "each relation named",
    since: 18,
    before: None,
    mode: LockMode::AccessShare,
};

/// Every lock mode that differs between the supported majors.
pub const LOCK_CHANGES: &[LockChange] = &[GRANT_ON_RELATION];

#[cfg(test)]
mod tests {
    use super::*;

    fn needs(sql: &str) -> Vec<u32> {
        let parsed = pg_query::parse(sql).unwrap();
        let node = parsed.protobuf.stmts[0]
            .stmt
            .as_ref()
            .and_then(|n| n.node.clone())
            .unwrap();
        requirements(&node).iter().map(|r| r.major).collect()
    }

    #[test]
    fn requirements_name_the_first_major_that_accepts_the_sql() {
        assert_eq!(
            needs("MERGE INTO u USING t ON u.id = t.id WHEN MATCHED THEN DO NOTHING"),
            vec![15]
        );
        assert_eq!(needs("REINDEX INDEX CONCURRENTLY i"), vec![12]);
        assert_eq!(
            needs("ALTER TABLE p DETACH PARTITION p1 CONCURRENTLY"),
            vec![14]
        );
        assert_eq!(
            needs("INSERT INTO a SELECT * FROM (SELECT 1 FROM t) WHERE true"),
            vec![16]
        );
        assert_eq!(
            needs("CREATE UNIQUE INDEX i ON t (a) NULLS NOT DISTINCT"),
            vec![15]
        );
        assert_eq!(
            needs("ALTER TABLE t ADD CONSTRAINT u UNIQUE NULLS NOT DISTINCT (a)"),
            vec![15]
        );
        assert_eq!(
            needs("CREATE TABLE n (a int UNIQUE NULLS NOT DISTINCT)"),
            vec![15]
        );
        assert_eq!(needs("ALTER TABLE t SET ACCESS METHOD heap"), vec![15]);
        assert_eq!(needs("ALTER TABLE t SET ACCESS METHOD DEFAULT"), vec![17]);
        assert_eq!(
            needs("CREATE VIEW v AS SELECT JSON_OBJECT('id' VALUE id), id IS JSON FROM t"),
            vec![16]
        );
        assert_eq!(
            needs("SELECT JSON_VALUE(j, '$.a'), JSON_QUERY(j, '$') FROM t"),
            vec![17]
        );
        assert_eq!(
            needs("SELECT * FROM JSON_TABLE('[1]'::jsonb, '$[*]' COLUMNS (x int PATH '$')) AS jt"),
            vec![17]
        );
        assert_eq!(
            needs(
                "MERGE INTO u USING t ON u.id = t.id WHEN MATCHED THEN DO NOTHING RETURNING u.id"
            ),
            vec![15, 17]
        );
        assert_eq!(
            needs("MERGE INTO u USING t ON u.id = t.id WHEN NOT MATCHED BY SOURCE THEN DELETE"),
            vec![15, 17]
        );
        assert_eq!(
            needs("ALTER TABLE g ALTER COLUMN d SET EXPRESSION AS (a * 3)"),
            vec![17]
        );
        assert!(needs("SELECT * FROM (SELECT 1) AS s").is_empty());
        assert!(needs("SELECT json_build_object('a', 1), json_object('{a,1}')").is_empty());
        assert!(needs("CREATE UNIQUE INDEX i ON t (a)").is_empty());
        assert!(needs("ALTER TABLE p DETACH PARTITION p1").is_empty());
    }

    #[test]
    fn lock_changes_apply_from_their_major_on() {
        assert_eq!(GRANT_ON_RELATION.mode_on(17), None);
        assert_eq!(GRANT_ON_RELATION.mode_on(18), Some(LockMode::AccessShare));
        for change in LOCK_CHANGES {
            assert!((OLDEST_SUPPORTED..=NEWEST_KNOWN).contains(&change.since));
            assert_ne!(change.before, Some(change.mode), "{}", change.statement);
        }
    }
}
