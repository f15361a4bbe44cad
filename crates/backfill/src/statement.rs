//! Reading the user's UPDATE or DELETE: whether it can be batched by key
//! without changing what any row ends up as, and the pieces the batched
//! form is built from (the statement without its WHERE, the WHERE alone).
//!
//! Only the parse tree is used here (no database): the key is looked up
//! at run time by [`crate::key`].
//!
//! What is refused, and why (the statement then runs as written):
//!
//! - `RETURNING`: the caller expects one result set of every changed row.
//! - a data-modifying `WITH`: it would run once per batch.
//! - `WHERE CURRENT OF`: a cursor position is not a set of keys.
//! - any reference to the target table other than the target itself (a
//!   subquery, a `FROM`/`USING` item or a CTE reading it): each batch
//!   would see the rows earlier batches changed, where the one statement
//!   sees none of its own changes (`SET x = (SELECT max(x) FROM t)`).
//! - window functions and `LIMIT`/`OFFSET` anywhere: they depend on the
//!   whole set of rows the statement sees, not on one row.
//!
//! `FROM`/`USING` joins with *other* tables are batched: PostgreSQL
//! changes each target row at most once even when the join yields several
//! matches, in the batches exactly as in the one statement.

use lull_analyzer::sql::quote_qualified;
use pg_query::protobuf::{self, node::Node as NodeEnum, Node};
use serde::Serialize;
use serde_json::Value;

/// UPDATE or DELETE.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verb {
    /// `UPDATE`.
    Update,
    /// `DELETE`.
    Delete,
}

impl Verb {
    /// `UPDATE` or `DELETE`.
    pub fn as_str(self) -> &'static str {
        match self {
            Verb::Update => "UPDATE",
            Verb::Delete => "DELETE",
        }
    }
}

/// A statement that can be batched, taken apart.
#[derive(Debug, Clone, Serialize)]
pub struct Batchable {
    /// The statement as given.
    pub text: String,
    /// UPDATE or DELETE.
    pub verb: Verb,
    /// The target table's schema, when written.
    pub schema: Option<String>,
    /// The target table.
    pub table: String,
    /// The name the statement refers to the target by (its alias, or the
    /// table name).
    pub reference: String,
    /// `ONLY` was written: child tables are not touched.
    pub only: bool,
    /// The statement without its WHERE clause, deparsed.
    pub head: String,
    /// The WHERE condition alone, deparsed, if there is one.
    pub filter: Option<String>,
    /// Columns the UPDATE assigns (empty for DELETE).
    pub assigned: Vec<String>,
    /// `SELECT 1 FROM <target and FROM/USING items> WHERE <condition>`,
    /// for counting the rows that still match at the end.
    pub verify_from: String,
}

impl Batchable {
    /// The target table, quoted.
    pub fn qualified(&self) -> String {
        quote_qualified(self.schema.as_deref(), &self.table)
    }
}

/// Why a statement is run as written instead of batched.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NotBatchable {
    /// For people: what in the statement prevents batching.
    pub reason: String,
}

impl std::fmt::Display for NotBatchable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.reason)
    }
}

fn no(reason: impl Into<String>) -> NotBatchable {
    NotBatchable {
        reason: reason.into(),
    }
}

/// Takes a single UPDATE or DELETE apart for batching, or says why it
/// cannot be batched.
pub fn analyze(sql: &str) -> Result<Batchable, NotBatchable> {
    let parsed = pg_query::parse(sql).map_err(|e| no(format!("it does not parse: {e}")))?;
    let stmts = &parsed.protobuf.stmts;
    if stmts.len() != 1 {
        return Err(no(format!(
            "it is {} statements, not one UPDATE or DELETE",
            stmts.len()
        )));
    }
    let node = stmts[0]
        .stmt
        .as_ref()
        .and_then(|n| n.node.clone())
        .ok_or_else(|| no("it is empty"))?;
    let text = sql.trim().trim_end_matches(';').trim().to_string();
    match node {
        NodeEnum::UpdateStmt(u) => analyze_update(*u, text),
        NodeEnum::DeleteStmt(d) => analyze_delete(*d, text),
        _ => Err(no("it is not an UPDATE or DELETE")),
    }
}

struct Parts<'a> {
    relation: Option<&'a protobuf::RangeVar>,
    where_clause: Option<&'a Node>,
    returning: bool,
    with: Option<&'a protobuf::WithClause>,
    from: &'a [Node],
}

fn common(p: &Parts<'_>, whole: &Value) -> Result<protobuf::RangeVar, NotBatchable> {
    let rel = p
        .relation
        .cloned()
        .ok_or_else(|| no("it has no target table"))?;
    if p.returning {
        return Err(no(
            "it has RETURNING: the caller expects every changed row from one statement",
        ));
    }
    if let Some(with) = p.with {
        for cte in &with.ctes {
            if let Some(NodeEnum::CommonTableExpr(c)) = &cte.node {
                let q = c.ctequery.as_ref().and_then(|q| q.node.as_ref());
                if matches!(
                    q,
                    Some(
                        NodeEnum::InsertStmt(_)
                            | NodeEnum::UpdateStmt(_)
                            | NodeEnum::DeleteStmt(_)
                            | NodeEnum::MergeStmt(_)
                    )
                ) {
                    return Err(no(format!(
                        "its WITH query `{}` changes data: it would run once per batch",
                        c.ctename
                    )));
                }
            }
        }
    }
    if let Some(w) = p.where_clause {
        if matches!(w.node, Some(NodeEnum::CurrentOfExpr(_))) {
            return Err(no("it uses WHERE CURRENT OF a cursor"));
        }
    }
    let mut refs = 0;
    let mut window = false;
    let mut limit = false;
    walk(whole, &mut |key, v| match key {
        "RangeVar" => {
            let name = v.get("relname").and_then(Value::as_str).unwrap_or("");
            let schema = v.get("schemaname").and_then(Value::as_str).unwrap_or("");
            if name == rel.relname
                && (schema.is_empty() || rel.schemaname.is_empty() || schema == rel.schemaname)
            {
                refs += 1;
            }
        }
        "FuncCall" if v.get("over").is_some_and(|o| !o.is_null()) => window = true,
        "SelectStmt"
            if ["limit_count", "limit_offset"]
                .iter()
                .any(|k| v.get(*k).is_some_and(|o| !o.is_null())) =>
        {
            limit = true
        }
        _ => {}
    });
    if refs > 0 {
        return Err(no(format!(
            "it reads `{}` again (subquery, FROM/USING or WITH): each batch would see what earlier \
             batches changed",
            rel.relname
        )));
    }
    if window {
        return Err(no(
            "it uses a window function: its value depends on all the rows of the statement",
        ));
    }
    if limit {
        return Err(no(
            "it has a LIMIT/OFFSET: which rows it picks depends on the whole statement",
        ));
    }
    let _ = p.from;
    Ok(rel)
}

/// Calls `f(variant_name, fields)` for every parse node in the JSON form
/// of a tree (nodes serialize as `{"Variant": {fields}}`).
fn walk(v: &Value, f: &mut impl FnMut(&str, &Value)) {
    match v {
        Value::Object(map) => {
            for (k, inner) in map {
                if k.chars().next().is_some_and(|c| c.is_ascii_uppercase()) {
                    f(k, inner);
                }
                walk(inner, f);
            }
        }
        Value::Array(items) => items.iter().for_each(|i| walk(i, f)),
        _ => {}
    }
}

fn deparse(node: NodeEnum) -> Result<String, NotBatchable> {
    node.deparse()
        .map_err(|e| no(format!("it cannot be rebuilt from its parse tree: {e}")))
}

fn deparse_filter(w: &Node) -> Result<String, NotBatchable> {
    let text = verify_query(None, &[], Some(w))?;
    let at = text
        .find(" WHERE ")
        .ok_or_else(|| no("its WHERE clause cannot be rebuilt"))?;
    Ok(text[at + " WHERE ".len()..].to_string())
}

/// `SELECT 1 FROM <items> WHERE <w>`, deparsed.
fn verify_query(
    target: Option<&protobuf::RangeVar>,
    from: &[Node],
    w: Option<&Node>,
) -> Result<String, NotBatchable> {
    let mut items = Vec::new();
    if let Some(t) = target {
        items.push(Node {
            node: Some(NodeEnum::RangeVar(t.clone())),
        });
    }
    items.extend(from.iter().cloned());
    let one = Node {
        node: Some(NodeEnum::ResTarget(Box::new(protobuf::ResTarget {
            val: Some(Box::new(Node {
                node: Some(NodeEnum::AConst(protobuf::AConst {
                    isnull: false,
                    location: -1,
                    val: Some(protobuf::a_const::Val::Ival(protobuf::Integer { ival: 1 })),
                })),
            })),
            location: -1,
            ..Default::default()
        }))),
    };
    let select = protobuf::SelectStmt {
        target_list: vec![one],
        from_clause: items,
        where_clause: w.map(|w| Box::new(w.clone())),
        limit_option: protobuf::LimitOption::Default as i32,
        op: protobuf::SetOperation::SetopNone as i32,
        ..Default::default()
    };
    deparse(NodeEnum::SelectStmt(Box::new(select)))
}

fn analyze_update(u: protobuf::UpdateStmt, text: String) -> Result<Batchable, NotBatchable> {
    let whole = serde_json::to_value(&u).unwrap_or(Value::Null);
    let rel = common(
        &Parts {
            relation: u.relation.as_ref(),
            where_clause: u.where_clause.as_deref(),
            returning: !u.returning_list.is_empty(),
            with: u.with_clause.as_ref(),
            from: &u.from_clause,
        },
        &whole,
    )?;
    let assigned = u
        .target_list
        .iter()
        .filter_map(|t| match &t.node {
            Some(NodeEnum::ResTarget(r)) => Some(r.name.clone()),
            _ => None,
        })
        .collect();
    let filter = u.where_clause.as_deref().map(deparse_filter).transpose()?;
    let verify_from = verify_query(Some(&rel), &u.from_clause, u.where_clause.as_deref())?;
    let mut head = u.clone();
    head.where_clause = None;
    let head = deparse(NodeEnum::UpdateStmt(Box::new(head)))?;
    Ok(finish(
        text,
        Verb::Update,
        &rel,
        head,
        filter,
        assigned,
        verify_from,
    ))
}

fn analyze_delete(d: protobuf::DeleteStmt, text: String) -> Result<Batchable, NotBatchable> {
    let whole = serde_json::to_value(&d).unwrap_or(Value::Null);
    let rel = common(
        &Parts {
            relation: d.relation.as_ref(),
            where_clause: d.where_clause.as_deref(),
            returning: !d.returning_list.is_empty(),
            with: d.with_clause.as_ref(),
            from: &d.using_clause,
        },
        &whole,
    )?;
    let filter = d.where_clause.as_deref().map(deparse_filter).transpose()?;
    let verify_from = verify_query(Some(&rel), &d.using_clause, d.where_clause.as_deref())?;
    let mut head = d.clone();
    head.where_clause = None;
    let head = deparse(NodeEnum::DeleteStmt(Box::new(head)))?;
    Ok(finish(
        text,
        Verb::Delete,
        &rel,
        head,
        filter,
        Vec::new(),
        verify_from,
    ))
}

fn finish(
    text: String,
    verb: Verb,
    rel: &protobuf::RangeVar,
    head: String,
    filter: Option<String>,
    assigned: Vec<String>,
    verify_from: String,
) -> Batchable {
    let reference = rel
        .alias
        .as_ref()
        .map(|a| a.aliasname.clone())
        .unwrap_or_else(|| rel.relname.clone());
    Batchable {
        text,
        verb,
        schema: (!rel.schemaname.is_empty()).then(|| rel.schemaname.clone()),
        table: rel.relname.clone(),
        reference,
        only: !rel.inh,
        head,
        filter,
        assigned,
        verify_from,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(sql: &str) -> Batchable {
        analyze(sql).unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    fn refused(sql: &str) -> String {
        analyze(sql).map(|b| b.head).unwrap_err().reason
    }

    #[test]
    fn takes_an_update_apart() {
        let b =
            ok("UPDATE app.\"Orders\" o SET total = o.a * 2, note = 'x' WHERE o.total IS NULL;");
        assert_eq!(b.verb, Verb::Update);
        assert_eq!(b.schema.as_deref(), Some("app"));
        assert_eq!(b.table, "Orders");
        assert_eq!(b.reference, "o");
        assert_eq!(b.assigned, vec!["total", "note"]);
        assert_eq!(
            b.head,
            "UPDATE app.\"Orders\" o SET total = o.a * 2, note = 'x'"
        );
        assert_eq!(b.filter.as_deref(), Some("o.total IS NULL"));
        assert_eq!(
            b.verify_from,
            "SELECT 1 FROM app.\"Orders\" o WHERE o.total IS NULL"
        );
        assert_eq!(b.qualified(), "app.\"Orders\"");
    }

    #[test]
    fn update_from_another_table_is_batched() {
        let b = ok(
            "UPDATE orders SET region = c.region FROM customers c WHERE c.id = orders.customer_id",
        );
        assert_eq!(b.reference, "orders");
        assert!(b.head.ends_with("FROM customers c"), "{}", b.head);
        assert_eq!(
            b.verify_from,
            "SELECT 1 FROM orders, customers c WHERE c.id = orders.customer_id"
        );
    }

    #[test]
    fn delete_without_where() {
        let b = ok("DELETE FROM ONLY events");
        assert_eq!(b.verb, Verb::Delete);
        assert!(b.only);
        assert_eq!(b.filter, None);
        assert_eq!(b.head, "DELETE FROM ONLY events");
    }

    #[test]
    fn refuses_what_depends_on_the_whole_statement() {
        assert!(refused("UPDATE t SET a = 1 RETURNING id").contains("RETURNING"));
        assert!(refused(
            "WITH moved AS (DELETE FROM old RETURNING *) UPDATE t SET a = 1 WHERE id IN (SELECT id FROM moved)"
        )
        .contains("changes data"));
        assert!(refused("UPDATE t SET a = (SELECT max(a) FROM t)").contains("reads `t` again"));
        assert!(refused("DELETE FROM t USING t AS u WHERE u.id = t.id + 1").contains("again"));
        assert!(refused(
            "UPDATE t SET r = s.rn FROM (SELECT id, row_number() OVER (ORDER BY id) rn FROM other) s WHERE s.id = t.id"
        )
        .contains("window"));
        assert!(
            refused("DELETE FROM t WHERE id IN (SELECT id FROM other ORDER BY id LIMIT 10)")
                .contains("LIMIT")
        );
        assert!(refused("UPDATE t SET a = 1 WHERE CURRENT OF c").contains("CURRENT OF"));
        assert!(refused("UPDATE t SET a = 1; DELETE FROM t").contains("2 statements"));
        assert!(refused("SELECT 1").contains("not an UPDATE"));
    }

    #[test]
    fn a_read_only_cte_over_another_table_is_kept() {
        let b = ok("WITH c AS (SELECT id FROM customers WHERE vip) UPDATE orders SET prio = 1 WHERE customer_id IN (SELECT id FROM c)");
        assert!(b.head.starts_with("WITH c AS"), "{}", b.head);
    }
}
