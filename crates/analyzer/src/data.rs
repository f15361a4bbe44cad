//! What lint asks the target database about today's rows.
//!
//! Some statements are safe in their locks but fail on the data they
//! meet: a UNIQUE index over values that already repeat, SET NOT NULL on a
//! column that still holds NULLs, an `IF NOT EXISTS` build whose name is
//! taken by an INVALID index (PostgreSQL keeps the broken index and
//! reports success). With a database URL, the rules for these ask a
//! [`DataSource`] one bounded question each, as a [`Probe`]: a query this
//! module writes that counts the offending rows or groups, at most
//! [`PROBE_LIMIT`] of them. The analyzer does no I/O; the CLI answers the
//! probes on a read-only connection with a statement timeout.

use pg_query::protobuf::{self, Node};
use pg_query::NodeEnum;

use crate::ast;
use crate::sql::{quote_ident, quote_literal};

/// At most this many offending rows or groups are counted.
pub const PROBE_LIMIT: i64 = 1000;

/// One question about today's data.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Probe {
    /// The table asked about, as SQL (quoted, schema-qualified when the
    /// migration qualifies it); the source answers [`Outcome::NoTable`]
    /// when it does not exist.
    pub table: String,
    /// A query returning one `bigint`: how many offending rows or groups
    /// there are, at most [`PROBE_LIMIT`].
    pub sql: String,
}

/// The answer to a [`Probe`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// This many offending rows or groups (0: the statement will pass).
    Count(i64),
    /// The table does not exist there (yet): nothing to check.
    NoTable,
    /// The question could not be answered (timeout, privileges, …).
    Unknown(String),
}

/// Answers probes, e.g. on a connection to the target database.
pub trait DataSource: std::fmt::Debug + Send + Sync {
    /// Answers one probe; never fails, an error is [`Outcome::Unknown`].
    fn answer(&self, probe: &Probe) -> Outcome;
}

/// A column reference node.
fn column(name: &str) -> Node {
    let field = Node {
        node: Some(NodeEnum::String(protobuf::String {
            sval: name.to_string(),
        })),
    };
    Node {
        node: Some(NodeEnum::ColumnRef(protobuf::ColumnRef {
            fields: vec![field],
            location: -1,
        })),
    }
}

/// The relation as SQL text.
pub(crate) fn relation_sql(rel: &protobuf::RangeVar) -> String {
    match ast::rel_schema(rel) {
        Some(schema) => format!("{}.{}", quote_ident(schema), quote_ident(&rel.relname)),
        None => quote_ident(&rel.relname),
    }
}

/// Parses a query this module writes; its templates always parse.
fn template(sql: &str) -> NodeEnum {
    pg_query::parse(sql)
        .ok()
        .and_then(|r| r.protobuf.stmts.into_iter().next())
        .and_then(|s| s.stmt)
        .and_then(|s| s.node)
        .unwrap_or_else(|| unreachable!("probe template does not parse: {sql}"))
}

/// Counts groups of rows of `rel` that share the key `keys` (columns or
/// expressions), among the rows `predicate` selects (a partial index). With
/// `nulls_distinct` rows with a NULL in the key never clash, as in a
/// default UNIQUE index.
pub(crate) fn duplicates(
    rel: &protobuf::RangeVar,
    keys: Vec<Node>,
    predicate: Option<Node>,
    nulls_distinct: bool,
) -> Option<Probe> {
    if keys.is_empty() {
        return None;
    }
    let mut outer = template(&format!(
        "SELECT count(*) FROM (SELECT 1 FROM t WHERE true AND ROW(1) IS NOT NULL \
         GROUP BY 1 HAVING count(*) > 1 LIMIT {PROBE_LIMIT}) AS duplicates"
    ));
    let NodeEnum::SelectStmt(select) = &mut outer else {
        return None;
    };
    let Some(NodeEnum::RangeSubselect(sub)) = select.from_clause.first_mut()?.node.as_mut() else {
        return None;
    };
    let Some(NodeEnum::SelectStmt(inner)) = sub.subquery.as_mut()?.node.as_mut() else {
        return None;
    };
    let mut from = rel.clone();
    from.alias = None;
    inner.from_clause = vec![Node {
        node: Some(NodeEnum::RangeVar(from)),
    }];
    inner.group_clause = keys.clone();
    let Some(NodeEnum::BoolExpr(and)) = inner.where_clause.as_mut()?.node.as_mut() else {
        return None;
    };
    if let Some(predicate) = predicate {
        and.args[0] = predicate;
    }
    if nulls_distinct {
        let Some(NodeEnum::NullTest(test)) = and.args.get_mut(1)?.node.as_mut() else {
            return None;
        };
        let Some(NodeEnum::RowExpr(row)) = test.arg.as_mut()?.node.as_mut() else {
            return None;
        };
        row.args = keys;
    } else {
        and.args.truncate(1);
    }
    Some(Probe {
        table: relation_sql(rel),
        sql: outer.deparse().ok()?,
    })
}

/// Counts rows of `rel` where any of `columns` is NULL.
pub(crate) fn nulls(rel: &protobuf::RangeVar, columns: &[String]) -> Option<Probe> {
    if columns.is_empty() {
        return None;
    }
    let test = columns
        .iter()
        .map(|c| format!("{} IS NULL", quote_ident(c)))
        .collect::<Vec<_>>()
        .join(" OR ");
    let table = relation_sql(rel);
    Some(Probe {
        sql: format!(
            "SELECT count(*) FROM (SELECT 1 FROM {table} WHERE {test} LIMIT {PROBE_LIMIT}) AS nulls"
        ),
        table,
    })
}

/// "1 row", "12 rows", "at least 1000 rows": a probe's count in words.
pub(crate) fn counted(n: i64, one: &str, many: &str) -> String {
    match n {
        1 => format!("1 {one}"),
        n if n >= PROBE_LIMIT => format!("at least {PROBE_LIMIT} {many}"),
        n => format!("{n} {many}"),
    }
}

/// The hits of a rule that counts offending rows: for each statement's
/// probes (table, probe), a hit built by `found` from a count above 0, or
/// an information hit "could not check `table` for {what}" when the
/// database could not answer.
pub(crate) fn count_hits(
    ctx: &crate::lint::FileCtx,
    probes: fn(&crate::parse::Statement) -> Vec<(String, Probe)>,
    what: &str,
    found: impl Fn(usize, &str, i64, &Probe) -> crate::lint::Hit,
) -> Vec<crate::lint::Hit> {
    let mut hits = Vec::new();
    for (i, stmt) in ctx.stmts.iter().enumerate() {
        for (table, probe) in probes(stmt) {
            let hit = match ctx.ask(i, &table, &probe) {
                None | Some(Outcome::NoTable) | Some(Outcome::Count(0)) => continue,
                Some(Outcome::Count(n)) => found(i, &table, n, &probe),
                Some(Outcome::Unknown(why)) => {
                    crate::lint::Hit::new(i, format!("could not check `{table}` for {what}: {why}"))
                        .at_most(crate::lint::Severity::Info)
                }
            };
            hits.push(hit.table(&table));
        }
    }
    hits
}

/// Counts INVALID indexes named `index` in the schema of `rel`.
pub(crate) fn invalid_index(rel: &protobuf::RangeVar, index: &str) -> Probe {
    let table = relation_sql(rel);
    Probe {
        sql: format!(
            "SELECT count(*) FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid \
             WHERE NOT i.indisvalid AND c.relname = {} AND c.relnamespace = \
             (SELECT relnamespace FROM pg_class WHERE oid = to_regclass({}))",
            quote_literal(index),
            quote_literal(&table),
        ),
        table,
    }
}

/// The key of an index element: its column or expression.
pub(crate) fn index_key(elem: &Node) -> Option<Node> {
    match &elem.node {
        Some(NodeEnum::IndexElem(e)) if !e.name.is_empty() => Some(column(&e.name)),
        Some(NodeEnum::IndexElem(e)) => e.expr.as_deref().cloned(),
        _ => None,
    }
}

/// Column keys as nodes.
pub(crate) fn column_keys(columns: &[String]) -> Vec<Node> {
    columns.iter().map(|c| column(c)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn index(sql: &str) -> protobuf::IndexStmt {
        match template(sql) {
            NodeEnum::IndexStmt(s) => *s,
            other => panic!("not an index: {other:?}"),
        }
    }

    fn probe_of(sql: &str) -> Probe {
        let s = index(sql);
        let keys = s.index_params.iter().filter_map(index_key).collect();
        duplicates(
            s.relation.as_ref().unwrap(),
            keys,
            s.where_clause.as_deref().cloned(),
            !s.nulls_not_distinct,
        )
        .unwrap()
    }

    #[test]
    fn duplicate_probes_follow_the_index() {
        assert_eq!(
            probe_of("CREATE UNIQUE INDEX ON app.\"Users\" (email, lower(name))").sql,
            "SELECT count(*) FROM (SELECT 1 FROM app.\"Users\" WHERE true AND ROW(email, lower(name)) \
             IS NOT NULL GROUP BY email, lower(name) HAVING count(*) > 1 LIMIT 1000) duplicates"
        );
        let partial = probe_of("CREATE UNIQUE INDEX ON t (a) WHERE deleted_at IS NULL");
        assert!(
            partial
                .sql
                .contains("WHERE deleted_at IS NULL AND ROW(a) IS NOT NULL"),
            "{}",
            partial.sql
        );
        assert_eq!(partial.table, "t");
        let nnd = probe_of("CREATE UNIQUE INDEX ON t (a) NULLS NOT DISTINCT");
        assert!(!nnd.sql.contains("IS NOT NULL"), "{}", nnd.sql);
    }

    #[test]
    fn probes_parse_and_quote_names() {
        let rel = match template("SELECT 1 FROM \"my schema\".\"T\"") {
            NodeEnum::SelectStmt(s) => ast::as_range_var(&s.from_clause[0]).unwrap().clone(),
            _ => unreachable!(),
        };
        let n = nulls(&rel, &["Email".into(), "x".into()]).unwrap();
        assert_eq!(n.table, "\"my schema\".\"T\"");
        assert!(
            n.sql.contains("\"Email\" IS NULL OR x IS NULL"),
            "{}",
            n.sql
        );
        let inv = invalid_index(&rel, "it's");
        for sql in [n.sql, inv.sql, probe_of("CREATE UNIQUE INDEX ON t (a)").sql] {
            pg_query::parse(&sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
        }
        assert!(inv_contains("'it''s'"));
        fn inv_contains(s: &str) -> bool {
            invalid_index(
                &protobuf::RangeVar {
                    relname: "t".into(),
                    ..Default::default()
                },
                "it's",
            )
            .sql
            .contains(s)
        }
    }
}
