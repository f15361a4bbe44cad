//! `indexes report`: what every index costs and whether it earns it —
//! size and scans from `pg_stat_user_indexes`, INVALID ones, ones unused
//! since the statistics were reset, exact duplicates and btree indexes
//! whose key is a prefix of another's, each with a drop statement.
//!
//! Indexes that back a constraint (primary key, unique, exclusion) or
//! enforce uniqueness are never suggested as unused: they do their work
//! without being scanned.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio_postgres::Client;

use crate::error::{QueryContext, Result};
use lull_analyzer::sql::quote_qualified;

/// One index and its usage.
#[derive(Debug, Clone, Serialize)]
pub struct IndexUsage {
    /// Schema.
    pub schema: String,
    /// Table.
    pub table: String,
    /// Index name.
    pub name: String,
    /// `pg_get_indexdef()`.
    pub definition: String,
    /// Size in bytes.
    pub size_bytes: i64,
    /// Index scans since the statistics reset.
    pub scans: i64,
    /// Index entries returned by scans.
    pub tuples_read: i64,
    /// Live table rows fetched by simple index scans.
    pub tuples_fetched: i64,
    /// `indisvalid`.
    pub valid: bool,
    /// `indisunique`.
    pub unique: bool,
    /// The constraint it backs, if any.
    pub constraint: Option<String>,
    #[serde(skip)]
    shape: Shape,
}

/// Everything that makes two indexes interchangeable.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Default)]
struct Shape {
    table_oid: u32,
    method: String,
    /// Per key column: attnum (0 for expressions), opclass, collation, options.
    keys: Vec<(i16, u32, u32, i16)>,
    include: Vec<i16>,
    expressions: String,
    predicate: String,
}

/// What the report suggests for one index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SuggestionKind {
    /// INVALID: costs writes, serves no query.
    Invalid,
    /// Never scanned since the statistics reset.
    Unused,
    /// Same table, method, key, predicate as another index.
    Duplicate,
    /// Its key is a prefix of another btree index's key.
    Redundant,
}

/// One suggestion with its drop statement.
#[derive(Debug, Clone, Serialize)]
pub struct Suggestion {
    /// What is wrong.
    pub kind: SuggestionKind,
    /// `schema.index`, quoted.
    pub index: String,
    /// The index that makes it unnecessary, for duplicates and redundant ones.
    pub covered_by: Option<String>,
    /// In words.
    pub reason: String,
    /// `DROP INDEX CONCURRENTLY IF EXISTS …;`
    pub drop_sql: String,
}

/// The whole report.
#[derive(Debug, Clone, Serialize)]
pub struct UsageReport {
    /// When this database's statistics were last reset (`None`: never,
    /// i.e. since the cluster was created).
    pub stats_reset: Option<DateTime<Utc>>,
    /// Every index, largest first.
    pub indexes: Vec<IndexUsage>,
    /// What to drop and why.
    pub suggestions: Vec<Suggestion>,
}

/// Reads usage of every user index outside `exclude_schema`.
pub async fn report(client: &Client, exclude_schema: &str) -> Result<UsageReport> {
    let stats_reset: Option<DateTime<Utc>> = client
        .query_one(
            "SELECT stats_reset FROM pg_stat_database WHERE datname = current_database()",
            &[],
        )
        .await
        .during("reading the statistics reset time")?
        .get(0);
    let rows = client
        .query(
            "SELECT s.schemaname::text, s.relname::text, s.indexrelname::text, pg_get_indexdef(i.indexrelid),
                    pg_relation_size(i.indexrelid), s.idx_scan, s.idx_tup_read, s.idx_tup_fetch,
                    i.indisvalid, i.indisunique,
                    (SELECT con.conname::text FROM pg_constraint con WHERE con.conindid = i.indexrelid
                       AND con.contype IN ('p', 'u', 'x') LIMIT 1),
                    i.indrelid::oid, am.amname::text, i.indnkeyatts::int,
                    i.indkey::int2[], i.indclass::oid[], i.indcollation::oid[], i.indoption::int2[],
                    coalesce(pg_get_expr(i.indexprs, i.indrelid), ''),
                    coalesce(pg_get_expr(i.indpred, i.indrelid), '')
               FROM pg_stat_user_indexes s
               JOIN pg_index i ON i.indexrelid = s.indexrelid
               JOIN pg_class c ON c.oid = s.indexrelid
               JOIN pg_am am ON am.oid = c.relam
              WHERE s.schemaname <> $1
              ORDER BY pg_relation_size(i.indexrelid) DESC, 1, 3",
            &[&exclude_schema],
        )
        .await
        .during("reading pg_stat_user_indexes")?;
    let indexes: Vec<IndexUsage> = rows
        .iter()
        .map(|r| {
            let nkey = r.get::<_, i32>(13) as usize;
            let indkey: Vec<i16> = r.get(14);
            let class: Vec<u32> = r.get(15);
            let coll: Vec<u32> = r.get(16);
            let opt: Vec<i16> = r.get(17);
            let keys = (0..nkey.min(indkey.len()))
                .map(|k| {
                    (
                        indkey[k],
                        class.get(k).copied().unwrap_or(0),
                        coll.get(k).copied().unwrap_or(0),
                        opt.get(k).copied().unwrap_or(0),
                    )
                })
                .collect();
            IndexUsage {
                schema: r.get(0),
                table: r.get(1),
                name: r.get(2),
                definition: r.get(3),
                size_bytes: r.get(4),
                scans: r.get(5),
                tuples_read: r.get(6),
                tuples_fetched: r.get(7),
                valid: r.get(8),
                unique: r.get(9),
                constraint: r.get(10),
                shape: Shape {
                    table_oid: r.get(11),
                    method: r.get(12),
                    keys,
                    include: indkey.get(nkey..).map(<[i16]>::to_vec).unwrap_or_default(),
                    expressions: r.get(18),
                    predicate: r.get(19),
                },
            }
        })
        .collect();
    let suggestions = suggest(&indexes, stats_reset);
    Ok(UsageReport {
        stats_reset,
        indexes,
        suggestions,
    })
}

fn qualified(i: &IndexUsage) -> String {
    quote_qualified(Some(&i.schema), &i.name)
}

fn drop_sql(i: &IndexUsage) -> String {
    format!("DROP INDEX CONCURRENTLY IF EXISTS {};", qualified(i))
}

/// Which of two interchangeable indexes to keep: the one a constraint
/// needs, then a unique one, then the more used, then the older name.
fn keep_rank(i: &IndexUsage) -> (bool, bool, i64, std::cmp::Reverse<String>) {
    (
        i.constraint.is_some(),
        i.unique,
        i.scans,
        std::cmp::Reverse(i.name.clone()),
    )
}

fn suggest(indexes: &[IndexUsage], stats_reset: Option<DateTime<Utc>>) -> Vec<Suggestion> {
    let mut out = Vec::new();
    let mut suggested = std::collections::BTreeSet::new();
    for i in indexes.iter().filter(|i| !i.valid) {
        suggested.insert(qualified(i));
        out.push(Suggestion {
            kind: SuggestionKind::Invalid,
            index: qualified(i),
            covered_by: None,
            reason:
                "INVALID (a failed or cancelled concurrent build): slows writes, serves no query; \
                     drop it, or rebuild it with `lull indexes add`"
                    .into(),
            drop_sql: drop_sql(i),
        });
    }
    // Duplicates: same shape; uniqueness may differ (a plain index next to
    // a unique one on the same key is redundant).
    let mut groups: BTreeMap<&Shape, Vec<&IndexUsage>> = BTreeMap::new();
    for i in indexes.iter().filter(|i| i.valid) {
        groups.entry(&i.shape).or_default().push(i);
    }
    for group in groups.values().filter(|g| g.len() > 1) {
        let keep = group
            .iter()
            .max_by_key(|i| keep_rank(i))
            .copied()
            .unwrap_or(group[0]);
        for i in group.iter().filter(|i| i.name != keep.name) {
            if i.constraint.is_some() || suggested.contains(&qualified(i)) {
                continue;
            }
            suggested.insert(qualified(i));
            out.push(Suggestion {
                kind: SuggestionKind::Duplicate,
                index: qualified(i),
                covered_by: Some(qualified(keep)),
                reason: format!(
                    "same table, key, predicate and method as {}{}",
                    qualified(keep),
                    if i.unique && keep.unique {
                        " (both unique)"
                    } else {
                        ""
                    }
                ),
                drop_sql: drop_sql(i),
            });
        }
    }
    // Prefix-redundant: a btree key that is the leading part of another
    // btree key on the same table with the same predicate serves the same
    // queries (except as a uniqueness check).
    for a in indexes
        .iter()
        .filter(|i| i.valid && !i.unique && i.constraint.is_none())
    {
        if a.shape.method != "btree"
            || !a.shape.expressions.is_empty()
            || suggested.contains(&qualified(a))
        {
            continue;
        }
        let cover = indexes.iter().find(|b| {
            b.name != a.name
                && b.valid
                && b.shape.table_oid == a.shape.table_oid
                && b.shape.method == "btree"
                && b.shape.expressions.is_empty()
                && b.shape.predicate == a.shape.predicate
                && b.shape.keys.len() > a.shape.keys.len()
                && b.shape.keys[..a.shape.keys.len()] == a.shape.keys[..]
                && a.shape
                    .include
                    .iter()
                    .all(|c| b.shape.keys.iter().any(|k| k.0 == *c) || b.shape.include.contains(c))
        });
        if let Some(b) = cover {
            suggested.insert(qualified(a));
            out.push(Suggestion {
                kind: SuggestionKind::Redundant,
                index: qualified(a),
                covered_by: Some(qualified(b)),
                reason: format!("its key is a prefix of {}'s key", qualified(b)),
                drop_sql: drop_sql(a),
            });
        }
    }
    let since = stats_reset.map_or(
        "since the statistics began (never reset)".to_string(),
        |t| {
            format!(
                "since the statistics reset at {}",
                t.format("%Y-%m-%d %H:%M UTC")
            )
        },
    );
    for i in indexes
        .iter()
        .filter(|i| i.valid && i.scans == 0 && !i.unique && i.constraint.is_none())
    {
        if suggested.contains(&qualified(i)) {
            continue;
        }
        out.push(Suggestion {
            kind: SuggestionKind::Unused,
            index: qualified(i),
            covered_by: None,
            reason: format!(
                "no scan {since}; check replicas and rare jobs before dropping (statistics are per server)"
            ),
            drop_sql: drop_sql(i),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn index(name: &str, keys: &[i16], scans: i64) -> IndexUsage {
        IndexUsage {
            schema: "public".into(),
            table: "t".into(),
            name: name.into(),
            definition: String::new(),
            size_bytes: 8192,
            scans,
            tuples_read: 0,
            tuples_fetched: 0,
            valid: true,
            unique: false,
            constraint: None,
            shape: Shape {
                table_oid: 1,
                method: "btree".into(),
                keys: keys.iter().map(|k| (*k, 1978, 0, 0)).collect(),
                ..Default::default()
            },
        }
    }

    fn kinds(s: &[Suggestion]) -> Vec<(SuggestionKind, &str)> {
        s.iter().map(|s| (s.kind, s.index.as_str())).collect()
    }

    #[test]
    fn duplicate_keeps_the_constraint_index_and_prefix_is_redundant() {
        let mut pkey = index("t_pkey", &[1], 10);
        pkey.unique = true;
        pkey.constraint = Some("t_pkey".into());
        let dup = index("t_id", &[1], 50);
        let prefix = index("t_a", &[2], 5);
        let wider = index("t_a_b", &[2, 3], 5);
        let unused = index("t_c", &[4], 0);
        let mut partial = index("t_c_partial", &[4], 0);
        partial.shape.predicate = "(c > 0)".into();
        partial.scans = 3;
        let s = suggest(&[pkey, dup, prefix, wider, unused, partial], None);
        assert_eq!(
            kinds(&s),
            vec![
                (SuggestionKind::Duplicate, "public.t_id"),
                (SuggestionKind::Redundant, "public.t_a"),
                (SuggestionKind::Unused, "public.t_c"),
            ]
        );
        assert_eq!(s[0].covered_by.as_deref(), Some("public.t_pkey"));
        assert_eq!(
            s[0].drop_sql,
            "DROP INDEX CONCURRENTLY IF EXISTS public.t_id;"
        );
        assert!(s[2].reason.contains("never reset"));
    }

    #[test]
    fn unique_and_invalid_indexes() {
        let mut unique = index("t_u", &[1], 0);
        unique.unique = true;
        let mut broken = index("t_broken", &[1], 0);
        broken.valid = false;
        let s = suggest(&[unique, broken], None);
        // A unique index enforces something even when never scanned.
        assert_eq!(
            kinds(&s),
            vec![(SuggestionKind::Invalid, "public.t_broken")]
        );
    }
}
