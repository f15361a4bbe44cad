//! The name PostgreSQL gives an unnamed `CREATE INDEX`, chosen by lull
//! before the build so the build can be found again.
//!
//! `CREATE INDEX CONCURRENTLY ON t (a)` killed mid-build leaves an INVALID
//! `t_a_idx`; run again as written, PostgreSQL picks `t_a_idx1` and the
//! INVALID one stays behind, slowing every write. So lull names the index
//! itself, the way PostgreSQL would (`ChooseIndexColumnNames`,
//! `ChooseIndexNameAddition`, `ChooseRelationName` in `indexcmds.c`):
//! column names (or the function name of an expression, else `expr`)
//! joined by `_`, then `_idx`, shortened to 63 bytes, with `idx1`, `idx2`,
//! ... while a relation of that name exists in the table's schema. The
//! runner records the name on the step before the build starts and builds
//! `CREATE INDEX CONCURRENTLY <name> ON ...`, so a resumed run finds its
//! own earlier build (valid: done; INVALID: dropped and rebuilt) instead of
//! adding a second index.
//!
//! Not for statements that name their index, and not a parser: the
//! statement is parsed by the analyzer.

use lull_analyzer::pg_ast::{self, node::Node as N, AExprKind, MinMaxOp};
use lull_analyzer::sql::{quote_ident, quote_qualified};
use lull_analyzer::{make_object_name, parse, NodeEnum};
use tokio_postgres::Client;

use crate::error::EngineError;

/// PostgreSQL's NAMEDATALEN - 1.
const MAX_NAME: usize = 63;

/// An unnamed CREATE INDEX with the name chosen for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamedIndex {
    /// The schema of the table (and so of the index).
    pub schema: String,
    /// The index name.
    pub name: String,
    /// The statement with the name written in.
    pub sql: String,
}

/// The index statement of `sql`, if it is one unnamed CREATE INDEX.
fn unnamed_index(sql: &str) -> Option<pg_ast::IndexStmt> {
    let parsed = parse(sql).ok()?;
    match parsed.as_slice() {
        [s] => match s.ast() {
            NodeEnum::IndexStmt(ix) if ix.idxname.is_empty() => Some((**ix).clone()),
            _ => None,
        },
        _ => None,
    }
}

/// `name`, plus the "strength" PostgreSQL's `FigureColnameInternal` gives
/// it (2: a real name, 1: a fallback such as a type or `case`).
fn figure_colname(node: &pg_ast::Node) -> Option<(String, u8)> {
    let last_string = |nodes: &[pg_ast::Node]| {
        nodes.last().and_then(|n| match &n.node {
            Some(N::String(s)) => Some(s.sval.clone()),
            _ => None,
        })
    };
    match node.node.as_ref()? {
        N::ColumnRef(c) => last_string(&c.fields).map(|n| (n, 2)),
        N::FuncCall(f) => last_string(&f.funcname).map(|n| (n, 2)),
        N::TypeCast(t) => {
            let inner = t.arg.as_deref().and_then(figure_colname);
            match inner {
                Some((n, 2)) => Some((n, 2)),
                other => t
                    .type_name
                    .as_ref()
                    .and_then(|tn| last_string(&tn.names))
                    .map(|n| (n, 1))
                    .or(other),
            }
        }
        N::CollateClause(c) => c.arg.as_deref().and_then(figure_colname),
        N::CaseExpr(_) => Some(("case".into(), 1)),
        N::CoalesceExpr(_) => Some(("coalesce".into(), 2)),
        N::AArrayExpr(_) => Some(("array".into(), 2)),
        N::RowExpr(_) => Some(("row".into(), 2)),
        N::MinMaxExpr(m) => match MinMaxOp::try_from(m.op).ok()? {
            MinMaxOp::IsGreatest => Some(("greatest".into(), 2)),
            MinMaxOp::IsLeast => Some(("least".into(), 2)),
            _ => None,
        },
        N::AExpr(a) if AExprKind::try_from(a.kind) == Ok(AExprKind::AexprNullif) => {
            Some(("nullif".into(), 2))
        }
        _ => None,
    }
}

/// The longest prefix of `s` of at most `len` bytes on a character
/// boundary.
fn clip(s: &str, mut len: usize) -> &str {
    len = len.min(s.len());
    while !s.is_char_boundary(len) {
        len -= 1;
    }
    &s[..len]
}

/// `ChooseIndexColumnNames`: one name per key and INCLUDE column, made
/// unique with a number.
fn column_names(ix: &pg_ast::IndexStmt) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for param in ix.index_params.iter().chain(&ix.index_including_params) {
        let Some(N::IndexElem(e)) = &param.node else {
            continue;
        };
        let orig = if !e.indexcolname.is_empty() {
            e.indexcolname.clone()
        } else if !e.name.is_empty() {
            e.name.clone()
        } else {
            e.expr
                .as_deref()
                .and_then(figure_colname)
                .map(|(n, _)| n)
                .unwrap_or_else(|| "expr".into())
        };
        let mut name = orig.clone();
        let mut i = 1;
        while out.contains(&name) {
            let suffix = i.to_string();
            name = format!("{}{suffix}", clip(&orig, MAX_NAME - suffix.len()));
            i += 1;
        }
        out.push(name);
    }
    out
}

/// `ChooseIndexNameAddition`: the names joined by `_`, stopping once the
/// result reaches 64 bytes (it is shortened later).
fn addition(names: &[String]) -> String {
    let mut buf = String::new();
    for n in names {
        if !buf.is_empty() {
            buf.push('_');
        }
        buf.push_str(clip(n, MAX_NAME));
        if buf.len() > MAX_NAME {
            break;
        }
    }
    buf
}

/// `sql` with `name` written before its `ON [ONLY] table`, or `None` when
/// the text around the table is not the plain form.
fn with_name(sql: &str, ix: &pg_ast::IndexStmt, name: &str) -> Option<String> {
    let loc = usize::try_from(ix.relation.as_ref()?.location).ok()?;
    let before = sql.get(..loc)?.trim_end();
    let lower = before.to_ascii_lowercase();
    let before_on = if lower.ends_with(" only") || lower.ends_with("\tonly") {
        before[..before.len() - 4].trim_end()
    } else {
        before
    };
    let at = before_on.len().checked_sub(2)?;
    if !before_on[at..].eq_ignore_ascii_case("on")
        || !before_on[..at].ends_with(|c: char| c.is_whitespace())
    {
        return None;
    }
    Some(format!(
        "{}{} {}",
        &sql[..at],
        quote_ident(name),
        &sql[at..]
    ))
}

/// The name PostgreSQL would give the unnamed index of `sql` in the
/// database now, with the statement rewritten to use it. `None` when
/// `sql` is not an unnamed CREATE INDEX, its table does not exist, or the
/// name cannot be written into the text (then it runs as written).
pub async fn choose(client: &Client, sql: &str) -> Result<Option<NamedIndex>, EngineError> {
    let Some(ix) = unnamed_index(sql) else {
        return Ok(None);
    };
    let Some((schema, table)) = table_of(client, &ix).await? else {
        return Ok(None);
    };
    let label = if ix.primary {
        "pkey"
    } else if !ix.exclude_op_names.is_empty() {
        "excl"
    } else {
        "idx"
    };
    let add = addition(&column_names(&ix));
    let mut pass = 0;
    let name = loop {
        let modlabel = if pass == 0 {
            label.to_string()
        } else {
            format!("{label}{pass}")
        };
        let candidate = make_object_name(&table, Some(&add), &modlabel);
        let taken: bool = client
            .query_one(
                "SELECT EXISTS (SELECT FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
                 WHERE n.nspname = $1 AND c.relname = $2)",
                &[&schema, &candidate],
            )
            .await
            .map_err(|e| EngineError::db("choosing the index name", e))?
            .get(0);
        if !taken {
            break candidate;
        }
        pass += 1;
    };
    Ok(named(sql, &ix, schema, name))
}

/// The statement of `sql` built under an already chosen `name` (a resumed
/// step), or `None` as for [`choose`].
pub async fn reuse(
    client: &Client,
    sql: &str,
    name: &str,
) -> Result<Option<NamedIndex>, EngineError> {
    let Some(ix) = unnamed_index(sql) else {
        return Ok(None);
    };
    let Some((schema, _)) = table_of(client, &ix).await? else {
        return Ok(None);
    };
    Ok(named(sql, &ix, schema, name.to_string()))
}

fn named(sql: &str, ix: &pg_ast::IndexStmt, schema: String, name: String) -> Option<NamedIndex> {
    let sql = with_name(sql, ix, &name)?;
    Some(NamedIndex { schema, name, sql })
}

/// The table's schema and name as the catalog has them.
async fn table_of(
    client: &Client,
    ix: &pg_ast::IndexStmt,
) -> Result<Option<(String, String)>, EngineError> {
    let Some(rel) = &ix.relation else {
        return Ok(None);
    };
    let schema = (!rel.schemaname.is_empty()).then_some(rel.schemaname.as_str());
    let qualified = quote_qualified(schema, &rel.relname);
    let row = client
        .query_opt(
            "SELECT n.nspname::text, c.relname::text FROM pg_class c \
             JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = to_regclass($1::text)",
            &[&qualified],
        )
        .await
        .map_err(|e| EngineError::db("looking up the index's table", e))?;
    Ok(row.map(|r| (r.get(0), r.get(1))))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(sql: &str) -> String {
        addition(&column_names(&unnamed_index(sql).unwrap()))
    }

    #[test]
    fn column_part_is_what_postgres_uses() {
        assert_eq!(names("CREATE INDEX ON t (a, b)"), "a_b");
        assert_eq!(names("CREATE INDEX ON t (lower(email))"), "lower");
        assert_eq!(names("CREATE INDEX ON t ((a + b), (a * b))"), "expr_expr1");
        assert_eq!(names("CREATE INDEX ON t (a) INCLUDE (b)"), "a_b");
        assert_eq!(names("CREATE INDEX ON t ((a::text))"), "a");
        assert!(unnamed_index("CREATE INDEX i ON t (a)").is_none());
    }

    #[test]
    fn the_name_is_written_before_on() {
        let sql = "CREATE INDEX CONCURRENTLY ON ONLY s.t USING btree (a)";
        let ix = unnamed_index(sql).unwrap();
        assert_eq!(
            with_name(sql, &ix, "t_a_idx").unwrap(),
            "CREATE INDEX CONCURRENTLY t_a_idx ON ONLY s.t USING btree (a)"
        );
        let sql = "create unique index concurrently on \"T\" (a)";
        let ix = unnamed_index(sql).unwrap();
        assert_eq!(
            with_name(sql, &ix, "T_a_idx").unwrap(),
            "create unique index concurrently \"T_a_idx\" on \"T\" (a)"
        );
    }
}
