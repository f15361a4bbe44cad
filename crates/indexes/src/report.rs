//! `indexes report`: what every index costs and whether it earns it —
//! size and scans from `pg_stat_user_indexes`, INVALID ones, ones unused
//! since the statistics were reset, exact duplicates and btree indexes
//! whose key is a prefix of another's, each with a drop statement.
//!
//! Indexes that back a constraint (primary key, unique, exclusion) or
//! enforce uniqueness are never suggested as unused: they do their work
//! without being scanned. Nor is the only index that serves a foreign key
//! (its leading columns are the key's: deletes and key updates on the
//! referenced table look rows up through it, and lint asks for it), nor
//! one younger than the report's minimum age: a new index has had no time
//! to be scanned. PostgreSQL keeps no creation time; with
//! `track_commit_timestamp = on` the commit time of the index's catalog
//! row is its age (since it was created or last altered), else the age is
//! unknown and the report says so.

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
    /// Foreign keys of its table it serves (their columns are its leading
    /// key columns).
    pub foreign_keys: Vec<String>,
    /// When it was created or last altered, when the server tracks commit
    /// timestamps.
    pub since: Option<DateTime<Utc>>,
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

/// Reads usage of every user index outside `exclude_schema`. Unused
/// indexes younger than `min_age` are not suggested.
pub async fn report(
    client: &Client,
    exclude_schema: &str,
    min_age: std::time::Duration,
) -> Result<UsageReport> {
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
                    coalesce(pg_get_expr(i.indpred, i.indrelid), ''),
                    CASE WHEN current_setting('track_commit_timestamp')::bool
                         THEN pg_xact_commit_timestamp(c.xmin) END
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
    let fk_rows = client
        .query(
            "SELECT conrelid::oid, conname::text, conkey::int2[] FROM pg_constraint WHERE contype = 'f'",
            &[],
        )
        .await
        .during("reading the foreign keys")?;
    let fks: Vec<(u32, String, Vec<i16>)> = fk_rows
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    let now: DateTime<Utc> = client
        .query_one("SELECT now()", &[])
        .await
        .during("reading the server's clock")?
        .get(0);
    let mut indexes: Vec<IndexUsage> = rows
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
                foreign_keys: Vec::new(),
                since: r.get(20),
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
    for i in &mut indexes {
        i.foreign_keys = fks
            .iter()
            .filter(|(table, _, cols)| *table == i.shape.table_oid && serves(i, cols))
            .map(|(_, name, _)| name.clone())
            .collect();
    }
    let suggestions = suggest(&indexes, stats_reset, now, min_age);
    Ok(UsageReport {
        stats_reset,
        indexes,
        suggestions,
    })
}

/// Whether `i` can look up the rows of a foreign key on `cols`: a valid,
/// non-partial btree index whose leading key columns are those columns.
fn serves(i: &IndexUsage, cols: &[i16]) -> bool {
    if !i.valid || i.shape.method != "btree" || !i.shape.predicate.is_empty() {
        return false;
    }
    let Some(lead) = i.shape.keys.get(..cols.len()) else {
        return false;
    };
    let mut lead: Vec<i16> = lead.iter().map(|k| k.0).collect();
    let mut cols = cols.to_vec();
    lead.sort_unstable();
    cols.sort_unstable();
    lead == cols
}

/// "3 days", "5 minutes": how long ago `since` was.
fn age_words(now: DateTime<Utc>, since: DateTime<Utc>) -> String {
    let secs = (now - since).num_seconds().max(0);
    let (n, unit) = match secs {
        s if s < 3600 => (s / 60, "minute"),
        s if s < 86_400 => (s / 3600, "hour"),
        s => (s / 86_400, "day"),
    };
    format!("{n} {unit}{}", if n == 1 { "" } else { "s" })
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

fn suggest(
    indexes: &[IndexUsage],
    stats_reset: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
    min_age: std::time::Duration,
) -> Vec<Suggestion> {
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
        // The only index a foreign key can use stays, scanned or not; an
        // index suggested for dropping does not count as another.
        let sole_fk_index = i.foreign_keys.iter().any(|fk| {
            !indexes.iter().any(|o| {
                o.name != i.name
                    && o.shape.table_oid == i.shape.table_oid
                    && o.foreign_keys.contains(fk)
                    && !suggested.contains(&qualified(o))
            })
        });
        if sole_fk_index {
            continue;
        }
        let age = match i.since {
            Some(t) if (now - t).to_std().is_ok_and(|a| a < min_age) => continue,
            Some(t) => format!("it has existed for {}", age_words(now, t)),
            None => "its age is unknown (PostgreSQL records no creation time; with \
                     track_commit_timestamp = on lull can tell)"
                .to_string(),
        };
        suggested.insert(qualified(i));
        out.push(Suggestion {
            kind: SuggestionKind::Unused,
            index: qualified(i),
            covered_by: None,
            reason: format!(
                "no scan {since}; {age}; check replicas and rare jobs before dropping (statistics are per server)"
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
            foreign_keys: Vec::new(),
            since: None,
            shape: Shape {
                table_oid: 1,
                method: "btree".into(),
                keys: keys.iter().map(|k| (*k, 1978, 0, 0)).collect(),
                ..Default::default()
            },
        }
    }

    const DAY: std::time::Duration = std::time::Duration::from_secs(86_400);

    #[test]
    fn the_only_index_of_a_foreign_key_and_young_ones_are_not_unused() {
        let now = Utc::now();
        let mut fk_only = index("t_customer", &[2], 0);
        fk_only.foreign_keys = vec!["t_customer_fkey".into()];
        let mut fk_a = index("t_order", &[3], 0);
        fk_a.foreign_keys = vec!["t_order_fkey".into()];
        let mut fk_b = index("t_order_b", &[3, 4], 7);
        fk_b.foreign_keys = vec!["t_order_fkey".into()];
        let mut young = index("t_young", &[5], 0);
        young.since = Some(now - chrono::Duration::minutes(1));
        let mut old = index("t_old", &[6], 0);
        old.since = Some(now - chrono::Duration::days(40));
        let s = suggest(&[fk_only, fk_a, fk_b, young, old], None, now, DAY);
        assert_eq!(
            kinds(&s),
            vec![
                (SuggestionKind::Redundant, "public.t_order"),
                (SuggestionKind::Unused, "public.t_old"),
            ]
        );
        assert!(
            s[1].reason.contains("it has existed for 40 days"),
            "{}",
            s[1].reason
        );
        let s = suggest(&[index("t_x", &[7], 0)], None, now, DAY);
        assert!(
            s[0].reason.contains("its age is unknown"),
            "{}",
            s[0].reason
        );
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
        let s = suggest(
            &[pkey, dup, prefix, wider, unused, partial],
            None,
            Utc::now(),
            DAY,
        );
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
        let s = suggest(&[unique, broken], None, Utc::now(), DAY);
        // A unique index enforces something even when never scanned.
        assert_eq!(
            kinds(&s),
            vec![(SuggestionKind::Invalid, "public.t_broken")]
        );
    }
}
