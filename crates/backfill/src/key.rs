//! The key a backfill walks: the primary key, else the narrowest unique
//! index over NOT NULL columns (no expressions, no predicate), and the SQL
//! that compares and orders by it. Composite keys compare as row values,
//! `(a, b) > (x, y)`, which is exactly the order of `ORDER BY a, b` and
//! of the btree index behind the key.
//!
//! Key values travel as text (`col::text`) and come back as typed
//! literals (`'42'::bigint`), so any key type works, and every identifier
//! and literal goes through [`lull_analyzer::sql`].

use lull_analyzer::sql::{quote_ident, quote_literal};
use serde::Serialize;
use tokio_postgres::Client;

use crate::error::{db, BackfillError};

/// One column of a key (or the per-tenant column).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Column {
    /// Its name.
    pub name: String,
    /// Its type as `format_type` writes it (e.g. `bigint`,
    /// `character varying(20)`), for casting literals.
    pub type_name: String,
}

/// The table as the catalog knows it.
#[derive(Debug, Clone, Serialize)]
pub struct TableInfo {
    /// `pg_class.oid`.
    pub oid: u32,
    /// The catalog's row estimate (`reltuples`), if the table was ever
    /// analyzed or vacuumed.
    pub estimate: Option<i64>,
    /// The key to walk, if the table has one lull can use.
    pub key: Option<Key>,
}

/// A key: its columns in index order, and where it came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Key {
    /// The columns, in index order.
    pub columns: Vec<Column>,
    /// The index that makes it unique.
    pub index: String,
    /// Whether it is the primary key.
    pub primary: bool,
}

/// Looks the table up: its oid, row estimate and usable key. `qualified`
/// is the quoted (possibly schema-qualified) name.
pub async fn table_info(client: &Client, qualified: &str) -> Result<TableInfo, BackfillError> {
    let row = client
        .query_opt(
            "SELECT c.oid, CASE WHEN c.reltuples >= 0 THEN c.reltuples::bigint END \
             FROM pg_class c WHERE c.oid = to_regclass($1::text)",
            &[&qualified],
        )
        .await
        .map_err(|e| db("looking up the table", e))?
        .ok_or_else(|| BackfillError::Invalid {
            message: format!("table {qualified} does not exist"),
            hint: "check the name (and its schema); names are case-sensitive as given".into(),
        })?;
    let oid: u32 = row.get(0);
    let estimate: Option<i64> = row.get(1);
    let keys = client
        .query(
            "SELECT ic.relname, i.indisprimary, \
                    array_agg(a.attname::text ORDER BY k.ord), \
                    array_agg(format_type(a.atttypid, a.atttypmod) ORDER BY k.ord) \
             FROM pg_index i \
             JOIN pg_class ic ON ic.oid = i.indexrelid \
             CROSS JOIN LATERAL unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord) \
             JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum \
             WHERE i.indrelid = $1 AND i.indisunique AND i.indisvalid AND i.indisready \
               AND i.indpred IS NULL AND i.indexprs IS NULL AND k.ord <= i.indnkeyatts \
             GROUP BY ic.relname, i.indisprimary, i.indexrelid \
             HAVING bool_and(a.attnotnull) \
             ORDER BY i.indisprimary DESC, count(*), i.indexrelid \
             LIMIT 1",
            &[&oid],
        )
        .await
        .map_err(|e| db("looking for the table's key", e))?;
    let key = keys.first().map(|r| {
        let names: Vec<String> = r.get(2);
        let types: Vec<String> = r.get(3);
        Key {
            columns: names
                .into_iter()
                .zip(types)
                .map(|(name, type_name)| Column { name, type_name })
                .collect(),
            index: r.get(0),
            primary: r.get(1),
        }
    });
    Ok(TableInfo { oid, estimate, key })
}

/// The type of one column, for the per-tenant column.
pub async fn column(
    client: &Client,
    oid: u32,
    name: &str,
) -> Result<Option<Column>, BackfillError> {
    let row = client
        .query_opt(
            "SELECT format_type(atttypid, atttypmod) FROM pg_attribute \
             WHERE attrelid = $1 AND attname = $2 AND attnum > 0 AND NOT attisdropped",
            &[&oid, &name],
        )
        .await
        .map_err(|e| db("looking up the per-tenant column", e))?;
    Ok(row.map(|r| Column {
        name: name.to_string(),
        type_name: r.get(0),
    }))
}

impl Key {
    /// The key's column names.
    pub fn names(&self) -> Vec<String> {
        self.columns.iter().map(|c| c.name.clone()).collect()
    }

    /// `a` or `(a, b)`, each column prefixed with `qualifier.` when given.
    pub fn row(&self, qualifier: Option<&str>) -> String {
        let cols: Vec<String> = self
            .columns
            .iter()
            .map(|c| match qualifier {
                Some(q) => format!("{}.{}", quote_ident(q), quote_ident(&c.name)),
                None => quote_ident(&c.name),
            })
            .collect();
        wrap(cols)
    }

    /// A key value as a typed literal row: `'5'::bigint` or
    /// `('5'::bigint, 'x'::text)`.
    pub fn literal(&self, values: &[String]) -> String {
        wrap(
            self.columns
                .iter()
                .zip(values)
                .map(|(c, v)| typed_literal(v, &c.type_name))
                .collect(),
        )
    }

    /// `a, b` for ORDER BY, with ` DESC` on each when `desc`.
    pub fn order(&self, desc: bool) -> String {
        self.columns
            .iter()
            .map(|c| {
                let q = quote_ident(&c.name);
                if desc {
                    format!("{q} DESC")
                } else {
                    q
                }
            })
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// `a::text AS "lull key 1", b::text AS "lull key 2"`. The aliases
    /// matter: a bare `ORDER BY a` picks an output column named `a` before
    /// the table's column, and would then sort the keys as text.
    pub fn as_text(&self) -> String {
        self.columns
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{}::text AS \"lull key {}\"", quote_ident(&c.name), i + 1))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// `'v'::type`.
pub fn typed_literal(value: &str, type_name: &str) -> String {
    // format_type output is already a valid, quoted type name.
    format!("{}::{}", quote_literal(value), type_name)
}

fn wrap(items: Vec<String>) -> String {
    if items.len() == 1 {
        items.into_iter().next().unwrap_or_default()
    } else {
        format!("({})", items.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(cols: &[(&str, &str)]) -> Key {
        Key {
            columns: cols
                .iter()
                .map(|(n, t)| Column {
                    name: n.to_string(),
                    type_name: t.to_string(),
                })
                .collect(),
            index: "k".into(),
            primary: true,
        }
    }

    #[test]
    fn single_and_composite_keys_render_as_rows() {
        let k = key(&[("id", "bigint")]);
        assert_eq!(k.row(Some("t")), "t.id");
        assert_eq!(k.literal(&["5".into()]), "'5'::bigint");
        let k = key(&[("Tenant", "integer"), ("order", "text")]);
        assert_eq!(k.row(Some("o")), "(o.\"Tenant\", o.\"order\")");
        assert_eq!(k.row(None), "(\"Tenant\", \"order\")");
        assert_eq!(
            k.literal(&["1".into(), "it's".into()]),
            "('1'::integer, 'it''s'::text)"
        );
        assert_eq!(k.order(true), "\"Tenant\" DESC, \"order\" DESC");
        assert_eq!(
            k.as_text(),
            "\"Tenant\"::text AS \"lull key 1\", \"order\"::text AS \"lull key 2\""
        );
    }
}
