//! One index definition, parsed with the real PostgreSQL parser and
//! normalized so that a definition written by hand in a migration and the
//! one `pg_get_indexdef()` prints for the same index compare equal.
//!
//! The catalog prints what the server resolved: casts it inserted
//! (`lower((email)::text)`, `'x'::text`), the default schema, the default
//! method `btree`, parentheses around a predicate. Hand-written SQL has none
//! of that. The comparison therefore works on the parse tree with source
//! positions removed, casts on literals and to the string types removed,
//! and `pg_catalog`/`public` qualifiers of functions removed. It is not a
//! proof of equivalence, only a comparison that does not cry wolf on the
//! usual spellings and still sees a changed column, method, opclass,
//! collation, order, predicate, INCLUDE list or uniqueness.

use pg_query::protobuf::{self, node::Node as N, Node};
use serde::Serialize;

use lull_analyzer::sql::{quote_ident, quote_qualified};

/// A parse problem in an index definition.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DefinitionError {
    /// The text is not valid SQL.
    #[error("cannot parse `{sql}`: {message}")]
    Parse {
        /// The text that failed.
        sql: String,
        /// The parser's message.
        message: String,
    },
    /// The text is valid SQL but not one `CREATE INDEX` statement.
    #[error("`{0}` is not a single CREATE INDEX statement")]
    NotCreateIndex(String),
    /// `CREATE INDEX` without a name: lull keys its queue by index name.
    #[error("`{0}` has no index name; write `CREATE INDEX name ON …` so lull can track it")]
    Unnamed(String),
}

/// One element of the index key: a column or an expression with its
/// opclass, collation and order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KeyPart {
    /// The column or expression as SQL, for people.
    pub sql: String,
    /// The operator class, when one is named.
    pub opclass: Option<String>,
    /// The collation, when one is named.
    pub collation: Option<String>,
    /// `DESC`.
    pub descending: bool,
    /// `NULLS FIRST`, made explicit (the default follows the direction).
    pub nulls_first: bool,
    /// The normalized parse tree of the column or expression.
    #[serde(skip)]
    norm: String,
}

/// A `CREATE INDEX` statement, parsed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IndexDef {
    /// Index name (never empty: unnamed definitions are refused).
    pub name: String,
    /// Schema of the table as written; `None` when unqualified.
    pub schema: Option<String>,
    /// Table name.
    pub table: String,
    /// `UNIQUE`.
    pub unique: bool,
    /// Access method, lower case (`btree` when not written).
    pub method: String,
    /// The key columns and expressions, in order.
    pub keys: Vec<KeyPart>,
    /// `INCLUDE` columns.
    pub include: Vec<String>,
    /// The `WHERE` predicate as SQL, for people.
    pub predicate: Option<String>,
    /// The statement as given.
    pub sql: String,
    #[serde(skip)]
    predicate_norm: Option<String>,
}

impl IndexDef {
    /// Parses one `CREATE INDEX` statement.
    pub fn parse(sql: &str) -> Result<IndexDef, DefinitionError> {
        let parsed = pg_query::parse(sql).map_err(|e| DefinitionError::Parse {
            sql: sql.trim().to_string(),
            message: e.to_string(),
        })?;
        let stmts = &parsed.protobuf.stmts;
        let stmt = match stmts.as_slice() {
            [one] => one.stmt.as_ref().and_then(|n| n.node.as_ref()),
            _ => None,
        };
        match stmt {
            Some(N::IndexStmt(index)) => IndexDef::from_stmt(index, sql),
            _ => Err(DefinitionError::NotCreateIndex(sql.trim().to_string())),
        }
    }

    /// Builds the definition from a parsed statement; `sql` is its text.
    pub(crate) fn from_stmt(
        stmt: &protobuf::IndexStmt,
        sql: &str,
    ) -> Result<IndexDef, DefinitionError> {
        let sql = sql.trim().trim_end_matches(';').trim().to_string();
        if stmt.idxname.is_empty() {
            return Err(DefinitionError::Unnamed(sql));
        }
        let relation = stmt.relation.clone().unwrap_or_default();
        let keys = stmt
            .index_params
            .iter()
            .filter_map(|n| match &n.node {
                Some(N::IndexElem(e)) => Some(key_part(e)),
                _ => None,
            })
            .collect();
        let include = stmt
            .index_including_params
            .iter()
            .filter_map(|n| match &n.node {
                Some(N::IndexElem(e)) => Some(e.name.clone()),
                _ => None,
            })
            .collect();
        let method = if stmt.access_method.is_empty() {
            "btree".to_string()
        } else {
            stmt.access_method.to_lowercase()
        };
        Ok(IndexDef {
            name: stmt.idxname.clone(),
            schema: (!relation.schemaname.is_empty()).then(|| relation.schemaname.clone()),
            table: relation.relname.clone(),
            unique: stmt.unique,
            method,
            keys,
            include,
            predicate: stmt.where_clause.as_deref().map(expr_sql),
            predicate_norm: stmt.where_clause.as_deref().map(normalized),
            sql,
        })
    }

    /// The schema, with unqualified names taken as `public`.
    pub fn schema_or_public(&self) -> &str {
        self.schema.as_deref().unwrap_or("public")
    }

    /// `schema.table`, quoted for SQL.
    pub fn qualified_table(&self) -> String {
        quote_qualified(Some(self.schema_or_public()), &self.table)
    }

    /// `schema.name` of the index, quoted for SQL.
    pub fn qualified_name(&self) -> String {
        quote_qualified(Some(self.schema_or_public()), &self.name)
    }

    /// What differs between this (expected) definition and `actual`, in
    /// words; empty when they are the same index.
    pub fn differences(&self, actual: &IndexDef) -> Vec<String> {
        let mut out = Vec::new();
        if self.schema_or_public() != actual.schema_or_public() || self.table != actual.table {
            out.push(format!(
                "table: expected {}, found {}",
                self.qualified_table(),
                actual.qualified_table()
            ));
        }
        if self.unique != actual.unique {
            out.push(format!(
                "uniqueness: expected {}, found {}",
                if self.unique { "UNIQUE" } else { "not unique" },
                if actual.unique {
                    "UNIQUE"
                } else {
                    "not unique"
                }
            ));
        }
        if self.method != actual.method {
            out.push(format!(
                "method: expected {}, found {}",
                self.method, actual.method
            ));
        }
        let same_keys = self.keys.len() == actual.keys.len()
            && self.keys.iter().zip(&actual.keys).all(|(a, b)| {
                a.norm == b.norm
                    && a.opclass == b.opclass
                    && a.collation == b.collation
                    && a.descending == b.descending
                    && a.nulls_first == b.nulls_first
            });
        if !same_keys {
            out.push(format!(
                "key: expected ({}), found ({})",
                keys_sql(&self.keys),
                keys_sql(&actual.keys)
            ));
        }
        if self.include != actual.include {
            out.push(format!(
                "INCLUDE: expected ({}), found ({})",
                self.include.join(", "),
                actual.include.join(", ")
            ));
        }
        if self.predicate_norm != actual.predicate_norm {
            out.push(format!(
                "predicate: expected {}, found {}",
                self.predicate.as_deref().unwrap_or("none"),
                actual.predicate.as_deref().unwrap_or("none")
            ));
        }
        out
    }

    /// The key columns (plain column names only; `None` when the key has an
    /// expression), used to look up column widths for estimates.
    pub fn key_columns(&self) -> Vec<Option<String>> {
        self.keys
            .iter()
            .map(|k| {
                let plain = k.sql.trim_matches('"');
                (k.sql == quote_ident(plain)).then(|| plain.to_string())
            })
            .collect()
    }

    /// The statement to run: the same index, `CONCURRENTLY`, never inside a
    /// transaction. `IF NOT EXISTS` is dropped on purpose: it would keep an
    /// INVALID leftover of the same name and report success.
    pub fn concurrent_sql(&self) -> Result<String, DefinitionError> {
        let mut parsed = pg_query::parse(&self.sql).map_err(|e| DefinitionError::Parse {
            sql: self.sql.clone(),
            message: e.to_string(),
        })?;
        for raw in &mut parsed.protobuf.stmts {
            if let Some(N::IndexStmt(stmt)) = raw.stmt.as_mut().and_then(|n| n.node.as_mut()) {
                stmt.concurrent = true;
                stmt.if_not_exists = false;
            }
        }
        parsed
            .protobuf
            .deparse()
            .map_err(|e| DefinitionError::Parse {
                sql: self.sql.clone(),
                message: e.to_string(),
            })
    }
}

fn keys_sql(keys: &[KeyPart]) -> String {
    keys.iter()
        .map(|k| {
            let mut s = k.sql.clone();
            if let Some(c) = &k.collation {
                s.push_str(&format!(" COLLATE {c}"));
            }
            if let Some(o) = &k.opclass {
                s.push_str(&format!(" {o}"));
            }
            if k.descending {
                s.push_str(" DESC");
            }
            if k.nulls_first != k.descending {
                s.push_str(if k.nulls_first {
                    " NULLS FIRST"
                } else {
                    " NULLS LAST"
                });
            }
            s
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn key_part(e: &protobuf::IndexElem) -> KeyPart {
    let (sql, norm) = match &e.expr {
        Some(expr) => (expr_sql(expr), normalized(expr)),
        None => (quote_ident(&e.name), format!("column:{}", e.name)),
    };
    let descending = e.ordering == protobuf::SortByDir::SortbyDesc as i32;
    let nulls_first = match e.nulls_ordering {
        n if n == protobuf::SortByNulls::SortbyNullsFirst as i32 => true,
        n if n == protobuf::SortByNulls::SortbyNullsLast as i32 => false,
        _ => descending,
    };
    KeyPart {
        sql,
        opclass: names(&e.opclass)
            .filter(|n| !n.is_empty())
            .map(|n| strip_catalog(&n)),
        collation: names(&e.collation)
            .filter(|n| !n.is_empty())
            .map(|n| strip_catalog(&n)),
        descending,
        nulls_first,
        norm,
    }
}

/// A dotted name from a list of String nodes, e.g. `pg_catalog.text_ops`.
fn names(list: &[Node]) -> Option<String> {
    if list.is_empty() {
        return None;
    }
    Some(
        list.iter()
            .filter_map(|n| match &n.node {
                Some(N::String(s)) => Some(s.sval.clone()),
                _ => None,
            })
            .collect::<Vec<_>>()
            .join("."),
    )
}

/// An opclass or collation name without the schema the catalog prints
/// and hand-written SQL leaves out: `pg_catalog.` and `public.`
/// (`pg_dump` writes `public.gin_trgm_ops` for pg_trgm installed in
/// public, with its empty `search_path`).
fn strip_catalog(name: &str) -> String {
    name.strip_prefix("pg_catalog.")
        .or_else(|| name.strip_prefix("public."))
        .unwrap_or(name)
        .to_string()
}

/// An expression as SQL: `SELECT 1` parsed, its target swapped for the
/// expression, deparsed, and the `SELECT ` cut off.
fn expr_sql(expr: &Node) -> String {
    let rendered = pg_query::parse("SELECT 1").ok().and_then(|mut template| {
        let raw = template.protobuf.stmts.first_mut()?;
        let Some(N::SelectStmt(select)) = raw.stmt.as_mut()?.node.as_mut() else {
            return None;
        };
        let Some(N::ResTarget(target)) = select.target_list.first_mut()?.node.as_mut() else {
            return None;
        };
        target.val = Some(Box::new(expr.clone()));
        template.protobuf.deparse().ok()
    });
    match rendered {
        Some(s) => s.strip_prefix("SELECT ").unwrap_or(&s).to_string(),
        None => normalized(expr),
    }
}

/// The parse tree of an expression as canonical JSON, without positions
/// and the spellings the catalog adds.
fn normalized(expr: &Node) -> String {
    let mut value = serde_json::to_value(expr).unwrap_or(serde_json::Value::Null);
    normalize_value(&mut value);
    value.to_string()
}

/// String types whose casts the catalog adds to hand-written expressions.
const STRING_TYPES: &[&str] = &["text", "varchar", "bpchar", "name"];

fn normalize_value(v: &mut serde_json::Value) {
    use serde_json::Value;
    // Unwrap casts first: they are replaced by their argument, which is
    // then normalized in turn.
    while let Some(cast) = v.pointer("/node/TypeCast") {
        let arg = cast.get("arg").cloned().unwrap_or(Value::Null);
        let arg_is_literal = arg.pointer("/node/AConst").is_some();
        let type_name = cast
            .pointer("/type_name/names")
            .and_then(Value::as_array)
            .and_then(|names| names.last())
            .and_then(|n| n.pointer("/node/String/sval"))
            .and_then(Value::as_str)
            .unwrap_or("");
        if arg_is_literal || STRING_TYPES.contains(&type_name) {
            *v = arg;
        } else {
            break;
        }
    }
    match v {
        Value::Object(map) => {
            map.remove("location");
            if let Some(Value::Array(names)) = map.get_mut("funcname") {
                let first = names
                    .first()
                    .and_then(|n| n.pointer("/node/String/sval"))
                    .and_then(Value::as_str);
                if names.len() > 1 && matches!(first, Some("pg_catalog") | Some("public")) {
                    names.remove(0);
                }
            }
            for child in map.values_mut() {
                normalize_value(child);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(normalize_value),
        _ => {}
    }
}

/// Index names a `DROP INDEX` statement removes, as (schema, name).
pub(crate) fn dropped_indexes(stmt: &protobuf::DropStmt) -> Vec<(Option<String>, String)> {
    if stmt.remove_type != protobuf::ObjectType::ObjectIndex as i32 {
        return Vec::new();
    }
    stmt.objects
        .iter()
        .filter_map(|o| match &o.node {
            Some(N::List(list)) => {
                let parts: Vec<String> = list
                    .items
                    .iter()
                    .filter_map(|n| match &n.node {
                        Some(N::String(s)) => Some(s.sval.clone()),
                        _ => None,
                    })
                    .collect();
                match parts.as_slice() {
                    [name] => Some((None, name.clone())),
                    [.., schema, name] => Some((Some(schema.clone()), name.clone())),
                    [] => None,
                }
            }
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn def(sql: &str) -> IndexDef {
        IndexDef::parse(sql).unwrap()
    }

    #[test]
    fn hand_written_and_catalog_spellings_compare_equal() {
        let pairs = [
            (
                "CREATE INDEX users_email ON users (lower(email))",
                "CREATE INDEX users_email ON public.users USING btree (lower((email)::text))",
            ),
            (
                "create unique index concurrently if not exists o_open on orders(customer_id, created_at desc) where status = 'open'",
                "CREATE UNIQUE INDEX o_open ON public.orders USING btree (customer_id, created_at DESC) WHERE ((status)::text = 'open'::text)",
            ),
            (
                "CREATE INDEX t_a ON t (a) INCLUDE (b) WHERE deleted_at IS NULL",
                "CREATE INDEX t_a ON public.t USING btree (a) INCLUDE (b) WHERE (deleted_at IS NULL)",
            ),
            (
                "CREATE INDEX t_a ON t (a ASC NULLS LAST)",
                "CREATE INDEX t_a ON public.t USING btree (a)",
            ),
            (
                "CREATE INDEX t_n ON public.t USING gin (name public.gin_trgm_ops)",
                "CREATE INDEX t_n ON public.t USING gin (name gin_trgm_ops)",
            ),
            (
                "CREATE INDEX t_c ON t (name COLLATE \"C\")",
                "CREATE INDEX t_c ON public.t USING btree (name COLLATE pg_catalog.\"C\")",
            ),
        ];
        for (expected, actual) in pairs {
            let d = def(expected).differences(&def(actual));
            assert!(d.is_empty(), "{expected} vs {actual}: {d:?}");
        }
    }

    #[test]
    fn each_real_change_is_named() {
        let base = def("CREATE INDEX i ON t (a, b) WHERE x > 1");
        let cases = [
            ("CREATE INDEX i ON t (a, c) WHERE x > 1", "key"),
            ("CREATE INDEX i ON t (b, a) WHERE x > 1", "key"),
            ("CREATE INDEX i ON t (a DESC, b) WHERE x > 1", "key"),
            (
                "CREATE INDEX i ON t (a text_pattern_ops, b) WHERE x > 1",
                "key",
            ),
            (
                "CREATE INDEX i ON t (a COLLATE \"C\", b) WHERE x > 1",
                "key",
            ),
            (
                "CREATE INDEX i ON t USING hash (a, b) WHERE x > 1",
                "method",
            ),
            (
                "CREATE UNIQUE INDEX i ON t (a, b) WHERE x > 1",
                "uniqueness",
            ),
            ("CREATE INDEX i ON t (a, b) WHERE x > 2", "predicate"),
            ("CREATE INDEX i ON t (a, b)", "predicate"),
            (
                "CREATE INDEX i ON t (a, b) INCLUDE (c) WHERE x > 1",
                "INCLUDE",
            ),
            ("CREATE INDEX i ON other.t (a, b) WHERE x > 1", "table"),
        ];
        for (sql, what) in cases {
            let d = base.differences(&def(sql));
            assert_eq!(d.len(), 1, "{sql}: {d:?}");
            assert!(d[0].starts_with(what), "{sql}: {d:?}");
        }
    }

    #[test]
    fn renders_concurrently_without_if_not_exists() {
        let sql = def("create index if not exists \"Odd Name\" on s.t (a) where b")
            .concurrent_sql()
            .unwrap();
        assert!(
            sql.starts_with("CREATE INDEX CONCURRENTLY \"Odd Name\" ON s.t"),
            "{sql}"
        );
        assert!(!sql.contains("IF NOT EXISTS"), "{sql}");
    }

    #[test]
    fn refuses_other_statements_and_unnamed_indexes() {
        assert!(matches!(
            IndexDef::parse("select 1"),
            Err(DefinitionError::NotCreateIndex(_))
        ));
        assert!(matches!(
            IndexDef::parse("create index on t (a)"),
            Err(DefinitionError::Unnamed(_))
        ));
        assert!(matches!(
            IndexDef::parse("create index i on"),
            Err(DefinitionError::Parse { .. })
        ));
    }

    #[test]
    fn expressions_are_shown_as_sql() {
        let d = def("CREATE INDEX i ON t (lower(email), (a + 1)) WHERE deleted_at IS NULL");
        assert_eq!(d.keys[0].sql, "lower(email)");
        assert_eq!(d.keys[1].sql, "a + 1");
        assert_eq!(d.predicate.as_deref(), Some("deleted_at IS NULL"));
        assert_eq!(d.key_columns(), vec![None, None]);
        assert_eq!(
            def("CREATE INDEX i ON t (a, \"B\")").key_columns(),
            vec![Some("a".into()), Some("B".into())]
        );
    }
}
