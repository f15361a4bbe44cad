//! The safe form of an index build on a partitioned table.
//!
//! PostgreSQL refuses `CREATE INDEX CONCURRENTLY` on a partitioned table
//! ("cannot create index on partitioned table … concurrently"), and a
//! plain `CREATE INDEX` there builds every partition's index under a SHARE
//! lock. The safe form, from the PostgreSQL manual (`CREATE INDEX`,
//! "Building Indexes Concurrently"), is:
//!
//! ```sql
//! CREATE INDEX events_at_idx ON ONLY events (at);            -- INVALID, no data
//! CREATE INDEX CONCURRENTLY events_2024_at_idx ON events_2024 (at);
//! ALTER INDEX events_at_idx ATTACH PARTITION events_2024_at_idx;
//! -- … per partition; the parent index is valid once all are attached
//! ```
//!
//! A sub-partitioned partition gets its own `ON ONLY` index, its
//! partitions are handled the same way, and it is attached last.
//!
//! The names are the ones PostgreSQL gives when the plain statement
//! recurses (`ChooseIndexName` on each partition: `<table>_<columns>_idx`,
//! with `1`, `2`, … while the name is used), so the result leaves the
//! catalog the plain statement leaves. Where that name cannot be worked out
//! with certainty (an expression whose column name is not obvious) there is
//! no safe form.

use std::collections::BTreeSet;

use pg_query::protobuf::{self, RangeVar};
use pg_query::NodeEnum;

use crate::ast;
use crate::known::Known;
use crate::parse::Statement;
use crate::safe::{choose_constraint_name, SafeForm, MAX_IDENTIFIER_BYTES};
use crate::sql::quote_qualified;

/// The rewrite name of the per-partition form.
pub const REWRITE: &str = "partitioned-index";

/// Whether `stmt` is a CREATE INDEX on a table `known` says is partitioned.
pub fn on_partitioned_table(stmt: &Statement, known: &Known) -> Option<String> {
    let NodeEnum::IndexStmt(s) = stmt.ast() else {
        return None;
    };
    let table = ast::rel_name(s.relation.as_ref()?);
    // `ON ONLY` is the first statement of the safe form itself.
    (s.relation.as_ref()?.inh && known.is_partitioned(&table)).then_some(table)
}

/// The per-partition form of a CREATE INDEX on a partitioned table (see
/// the module docs), or `None` when the table is not known to be
/// partitioned, the statement is already `ON ONLY`, it is a plain build
/// on a table without known partitions (nothing to gain), or the names
/// PostgreSQL would choose are not certain. `taken(name)` says whether a
/// relation of that name (`schema.name` when the table is qualified,
/// else bare) exists already.
pub fn partitioned_index_form(
    stmt: &Statement,
    known: &Known,
    taken: &dyn Fn(&str) -> bool,
) -> Option<SafeForm> {
    let NodeEnum::IndexStmt(s) = stmt.ast() else {
        return None;
    };
    let rel = s.relation.as_ref()?;
    let table = ast::rel_name(rel);
    if !rel.inh || !known.is_partitioned(&table) {
        return None;
    }
    let has_partitions = known
        .partitioned(&table)
        .is_some_and(|p| !p.partitions.is_empty());
    if !has_partitions && !s.concurrent {
        return None;
    }
    let addition = name_addition(s)?;
    let mut chosen: BTreeSet<String> = BTreeSet::new();
    let mut statements = Vec::new();
    let parent_index = if s.idxname.is_empty() {
        choose(rel, &addition, taken, &mut chosen)
    } else {
        let name = s.idxname.clone();
        chosen.insert(qualified(ast::rel_schema(rel), &name));
        name
    };
    statements.push(only_statement(s, rel, &parent_index)?);
    let mut seen = BTreeSet::new();
    seen.insert(table.clone());
    partitions(
        s,
        known,
        &table,
        &(ast::rel_schema(rel).map(str::to_string), parent_index),
        &addition,
        taken,
        &mut chosen,
        &mut seen,
        &mut statements,
    )?;
    let count = statements
        .iter()
        .filter(|s| {
            s.starts_with("CREATE INDEX CONCURRENTLY")
                || s.starts_with("CREATE UNIQUE INDEX CONCURRENTLY")
        })
        .count();
    Some(SafeForm {
        statements,
        rewrite: REWRITE,
        note: format!(
            "a partitioned table cannot be indexed CONCURRENTLY: creates the index ON ONLY the parent \
             (invalid, no data), builds each of the {count} partitions' indexes CONCURRENTLY and \
             attaches it; the parent index is valid once all are attached"
        ),
    })
}

/// Adds the statements for the partitions of `table` (recursively).
#[allow(clippy::too_many_arguments)]
fn partitions(
    s: &protobuf::IndexStmt,
    known: &Known,
    table: &str,
    parent_index: &(Option<String>, String),
    addition: &str,
    taken: &dyn Fn(&str) -> bool,
    chosen: &mut BTreeSet<String>,
    seen: &mut BTreeSet<String>,
    out: &mut Vec<String>,
) -> Option<()> {
    // By name, so the steps do not depend on whether the partitions were
    // learnt from the catalog or from the statements (a resumed run plans
    // the same steps).
    let mut parts = known.partitioned(table)?.partitions.clone();
    let last = |n: &str| n.rsplit('.').next().unwrap_or(n).to_string();
    parts.sort_by(|a, b| last(a).cmp(&last(b)).then_with(|| a.cmp(b)));
    let attach_to = quote_qualified(parent_index.0.as_deref(), &parent_index.1);
    for part in parts {
        if !seen.insert(part.clone()) {
            // A cycle in what the statements said: give up.
            return None;
        }
        let rel = range_var(&part);
        let name = choose(&rel, addition, taken, chosen);
        let schema = ast::rel_schema(&rel).map(str::to_string);
        if known.is_partitioned(&part) {
            out.push(only_statement(s, &rel, &name)?);
            partitions(
                s,
                known,
                &part,
                &(schema.clone(), name.clone()),
                addition,
                taken,
                chosen,
                seen,
                out,
            )?;
        } else {
            let mut child = s.clone();
            child.relation = Some(rel.clone());
            child.idxname = name.clone();
            child.concurrent = true;
            child.if_not_exists = false;
            out.push(NodeEnum::IndexStmt(Box::new(child)).deparse().ok()?);
        }
        out.push(format!(
            "ALTER INDEX {attach_to} ATTACH PARTITION {}",
            quote_qualified(schema.as_deref(), &name)
        ));
    }
    Some(())
}

/// `CREATE INDEX name ON ONLY rel …`, not concurrent.
fn only_statement(s: &protobuf::IndexStmt, rel: &RangeVar, name: &str) -> Option<String> {
    let mut only = s.clone();
    let mut r = rel.clone();
    r.inh = false;
    only.relation = Some(r);
    only.idxname = name.to_string();
    only.concurrent = false;
    NodeEnum::IndexStmt(Box::new(only)).deparse().ok()
}

fn qualified(schema: Option<&str>, name: &str) -> String {
    match schema {
        Some(schema) => format!("{schema}.{name}"),
        None => name.to_string(),
    }
}

/// PostgreSQL's `ChooseRelationName(table, addition, "idx")` in the
/// table's schema, avoiding names used already and names chosen earlier.
fn choose(
    rel: &RangeVar,
    addition: &str,
    taken: &dyn Fn(&str) -> bool,
    chosen: &mut BTreeSet<String>,
) -> String {
    let schema = ast::rel_schema(rel);
    let used = |n: &str| {
        let q = qualified(schema, n);
        taken(&q) || chosen.contains(&q)
    };
    let addition = (!addition.is_empty()).then_some(addition);
    let name = choose_constraint_name(&rel.relname, addition, "idx", &used);
    chosen.insert(qualified(schema, &name));
    name
}

/// A name as written (`schema.name` or `name`) as a relation.
fn range_var(name: &str) -> RangeVar {
    let (schema, relname) = match name.rsplit_once('.') {
        Some((schema, relname)) => (schema.to_string(), relname.to_string()),
        None => (String::new(), name.to_string()),
    };
    RangeVar {
        schemaname: schema,
        relname,
        inh: true,
        relpersistence: "p".into(),
        ..RangeVar::default()
    }
}

/// PostgreSQL's `ChooseIndexNameAddition(ChooseIndexColumnNames(…))`: the
/// column names of the key and INCLUDE columns joined with `_`, each made
/// unique with a number, the whole cut once it reaches NAMEDATALEN.
fn name_addition(s: &protobuf::IndexStmt) -> Option<String> {
    let mut names: Vec<String> = Vec::new();
    for p in s.index_params.iter().chain(&s.index_including_params) {
        let Some(NodeEnum::IndexElem(e)) = &p.node else {
            return None;
        };
        let orig = if !e.indexcolname.is_empty() {
            e.indexcolname.clone()
        } else if !e.name.is_empty() {
            e.name.clone()
        } else {
            expression_name(e.expr.as_deref()?)?
        };
        let mut name = orig.clone();
        let mut i = 1;
        while names.contains(&name) {
            name = format!("{orig}{i}");
            i += 1;
        }
        names.push(name);
    }
    let mut out = String::new();
    for name in names {
        if !out.is_empty() {
            out.push('_');
        }
        out.push_str(&name);
        if out.len() > MAX_IDENTIFIER_BYTES {
            break;
        }
    }
    Some(out)
}

/// PostgreSQL's `FigureIndexColname` for the expressions whose name is
/// certain: a column (`a`, `t.a`), a function call (its name), a cast of
/// either, and `expr` for an arithmetic or other operator expression.
/// `None` for the rest.
fn expression_name(expr: &pg_query::Node) -> Option<String> {
    match expr.node.as_ref()? {
        NodeEnum::ColumnRef(c) => c
            .fields
            .iter()
            .rev()
            .find_map(ast::string_value)
            .map(str::to_string),
        NodeEnum::FuncCall(f) => f
            .funcname
            .iter()
            .rev()
            .find_map(ast::string_value)
            .map(str::to_string),
        NodeEnum::TypeCast(t) => match t.arg.as_deref().map(expression_name) {
            Some(Some(name)) => Some(name),
            _ => t.type_name.as_ref().map(ast::type_name),
        },
        NodeEnum::AExpr(_) => Some("expr".into()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse;

    fn known(sql: &str) -> Known {
        let mut k = Known::new();
        k.absorb_all(&parse(sql).unwrap());
        k
    }

    const HISTORY: &str = "CREATE TABLE ev (id int, at date, kind text) PARTITION BY RANGE (at); \
        CREATE TABLE ev_1 PARTITION OF ev FOR VALUES FROM ('2020-01-01') TO ('2021-01-01'); \
        CREATE TABLE ev_2 PARTITION OF ev FOR VALUES FROM ('2021-01-01') TO ('2022-01-01') PARTITION BY LIST (kind); \
        CREATE TABLE ev_2a PARTITION OF ev_2 FOR VALUES IN ('a')";

    fn form(sql: &str, taken: &[&str]) -> Option<SafeForm> {
        let stmts = parse(sql).unwrap();
        let f = partitioned_index_form(&stmts[0], &known(HISTORY), &|n| taken.contains(&n))?;
        for s in &f.statements {
            assert!(parse(s).is_ok(), "does not parse: {s}");
        }
        Some(f)
    }

    #[test]
    fn builds_each_partition_concurrently_and_attaches() {
        let f = form("CREATE INDEX CONCURRENTLY ON ev (at)", &[]).unwrap();
        assert_eq!(
            f.statements,
            [
                "CREATE INDEX ev_at_idx ON ONLY ev USING btree (at)",
                "CREATE INDEX CONCURRENTLY ev_1_at_idx ON ev_1 USING btree (at)",
                "ALTER INDEX ev_at_idx ATTACH PARTITION ev_1_at_idx",
                "CREATE INDEX ev_2_at_idx ON ONLY ev_2 USING btree (at)",
                "CREATE INDEX CONCURRENTLY ev_2a_at_idx ON ev_2a USING btree (at)",
                "ALTER INDEX ev_2_at_idx ATTACH PARTITION ev_2a_at_idx",
                "ALTER INDEX ev_at_idx ATTACH PARTITION ev_2_at_idx",
            ]
        );
        assert_eq!(f.rewrite, REWRITE);
    }

    #[test]
    fn names_follow_postgres_and_keep_the_written_one() {
        let f = form(
            "CREATE UNIQUE INDEX IF NOT EXISTS ev_key ON ev (id, at) INCLUDE (kind) WHERE id > 0",
            &["ev_1_id_at_kind_idx"],
        )
        .unwrap();
        assert!(
            f.statements[0].starts_with("CREATE UNIQUE INDEX IF NOT EXISTS ev_key ON ONLY ev"),
            "{}",
            f.statements[0]
        );
        assert!(
            f.statements[1]
                .starts_with("CREATE UNIQUE INDEX CONCURRENTLY ev_1_id_at_kind_idx1 ON ev_1"),
            "{}",
            f.statements[1]
        );
        assert!(
            f.statements[1].contains("WHERE id > 0"),
            "{}",
            f.statements[1]
        );
        let f = form("CREATE INDEX ON ev (lower(kind), (id + 1), id, id)", &[]).unwrap();
        assert!(
            f.statements[0].starts_with("CREATE INDEX ev_lower_expr_id_id1_idx ON ONLY ev"),
            "{}",
            f.statements[0]
        );
    }

    #[test]
    fn no_form_where_not_needed_or_not_certain() {
        assert!(form("CREATE INDEX i ON ev_1 (at)", &[]).is_none(), "a leaf");
        assert!(form("CREATE INDEX i ON ONLY ev (at)", &[]).is_none());
        assert!(form("CREATE INDEX i ON ev ((CASE WHEN id > 0 THEN 1 END))", &[]).is_none());
        let stmts = parse("CREATE INDEX i ON p (a)").unwrap();
        let empty = known("CREATE TABLE p (a int) PARTITION BY LIST (a)");
        assert!(partitioned_index_form(&stmts[0], &empty, &|_| false).is_none());
        let stmts = parse("CREATE INDEX CONCURRENTLY i ON p (a)").unwrap();
        let f = partitioned_index_form(&stmts[0], &empty, &|_| false).unwrap();
        assert_eq!(f.statements, ["CREATE INDEX i ON ONLY p USING btree (a)"]);
    }
}
