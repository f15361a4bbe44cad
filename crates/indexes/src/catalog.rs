//! The indexes the database has, read from `pg_index`.

use serde::Serialize;
use tokio_postgres::Client;

use crate::error::{QueryContext, Result};

/// One index in the catalog.
#[derive(Debug, Clone, Serialize)]
pub struct CatalogIndex {
    /// Schema of the index.
    pub schema: String,
    /// Index name.
    pub name: String,
    /// Table name (same schema).
    pub table: String,
    /// `pg_get_indexdef()`.
    pub definition: String,
    /// `indisvalid`: usable by queries.
    pub valid: bool,
    /// `indisready`: maintained by writes.
    pub ready: bool,
    /// `indisunique`.
    pub unique: bool,
    /// `indisprimary`.
    pub primary: bool,
    /// The constraint the index backs (primary key, unique, exclusion), if any.
    pub constraint: Option<String>,
    /// Size on disk in bytes.
    pub size_bytes: i64,
}

/// The indexes of ordinary and partitioned tables in `schemas`, or in
/// every user schema except `exclude_schema` when `schemas` is empty.
pub async fn indexes(
    client: &Client,
    schemas: &[String],
    exclude_schema: &str,
) -> Result<Vec<CatalogIndex>> {
    let rows = client
        .query(
            "SELECT n.nspname, c.relname, t.relname, pg_get_indexdef(i.indexrelid), \
                    i.indisvalid, i.indisready, i.indisunique, i.indisprimary, \
                    (SELECT con.conname::text FROM pg_constraint con WHERE con.conindid = i.indexrelid \
                       AND con.contype IN ('p', 'u', 'x') LIMIT 1), \
                    pg_relation_size(i.indexrelid) \
               FROM pg_index i \
               JOIN pg_class c ON c.oid = i.indexrelid \
               JOIN pg_class t ON t.oid = i.indrelid \
               JOIN pg_namespace n ON n.oid = c.relnamespace \
              WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') \
                AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp%' \
                AND (cardinality($1::text[]) = 0 OR n.nspname = ANY($1)) \
                AND n.nspname <> $2 \
              ORDER BY 1, 3, 2",
            &[&schemas, &exclude_schema],
        )
        .await
        .during("reading the indexes from the catalog")?;
    Ok(rows
        .iter()
        .map(|r| CatalogIndex {
            schema: r.get(0),
            name: r.get(1),
            table: r.get(2),
            definition: r.get(3),
            valid: r.get(4),
            ready: r.get(5),
            unique: r.get(6),
            primary: r.get(7),
            constraint: r.get(8),
            size_bytes: r.get(9),
        })
        .collect())
}

/// One index by schema and name, if it exists.
pub async fn find(client: &Client, schema: &str, name: &str) -> Result<Option<CatalogIndex>> {
    let all = indexes(client, &[schema.to_string()], "").await?;
    Ok(all.into_iter().find(|i| i.name == name))
}
