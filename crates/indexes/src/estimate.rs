//! Size and duration of an index before it is built, from catalog
//! statistics: the table's row estimate (`reltuples`), the average widths
//! of the indexed columns (`pg_stats`), and the table's size.
//!
//! The numbers are rough on purpose and labelled so: they exist to catch
//! the build that will not fit on the disk or in the window, not to
//! promise a finish time. A partial index is estimated as if it covered
//! every row (an upper bound).

use serde::Serialize;
use tokio_postgres::Client;

use crate::definition::IndexDef;
use crate::error::{QueryContext, Result};

/// Bytes per second one backend reads and sorts at on modest hardware;
/// a concurrent build scans the table twice.
const SCAN_BYTES_PER_SEC: f64 = 150.0 * 1024.0 * 1024.0;
/// Rows per second the build sorts and loads.
const ROWS_PER_SEC: f64 = 1_000_000.0;
/// Width assumed for an expression or a column without statistics.
const UNKNOWN_WIDTH: f64 = 16.0;

/// What a build is expected to cost.
#[derive(Debug, Clone, Serialize)]
pub struct Estimate {
    /// Rows in the table (planner estimate).
    pub rows: f64,
    /// Table size on disk, bytes (heap, without indexes and TOAST).
    pub table_bytes: i64,
    /// Expected index size, bytes.
    pub index_bytes: i64,
    /// Expected build time, seconds.
    pub seconds: f64,
    /// Caveats (never analyzed, partial index, non-btree method).
    pub notes: Vec<String>,
    /// Set when the index would take more than the allowed share of the
    /// free space (or, without `--free-space`, of the table size).
    pub warning: Option<String>,
}

/// Default share of the free space an index may take before a warning.
pub const DEFAULT_FREE_SPACE_SHARE: f64 = 0.5;
/// Default share of the table size an index may take before a warning.
pub const DEFAULT_TABLE_SHARE: f64 = 1.0;

/// Estimates the build of `def`. `free_space` is the free disk space in
/// bytes if the user knows it; `share` overrides the default share.
pub async fn estimate(
    client: &Client,
    def: &IndexDef,
    free_space: Option<u64>,
    share: Option<f64>,
) -> Result<Estimate> {
    let table = def.qualified_table();
    let row = client
        .query_opt(
            "SELECT c.reltuples::float8, pg_relation_size(c.oid), c.relpages::int8
               FROM pg_class c WHERE c.oid = to_regclass($1)",
            &[&table],
        )
        .await
        .during("reading table statistics")?;
    let mut notes = Vec::new();
    let Some(row) = row else {
        notes.push(format!("table {table} does not exist"));
        return Ok(Estimate {
            rows: 0.0,
            table_bytes: 0,
            index_bytes: 0,
            seconds: 0.0,
            notes,
            warning: None,
        });
    };
    let (reltuples, table_bytes, relpages): (f64, i64, i64) = (row.get(0), row.get(1), row.get(2));
    let columns: Vec<String> = def
        .key_columns()
        .into_iter()
        .flatten()
        .chain(def.include.iter().cloned())
        .collect();
    let widths = client
        .query(
            "SELECT a.attname::text, coalesce(s.avg_width::float8, nullif(a.attlen, -1)::float8)
               FROM pg_attribute a
               LEFT JOIN pg_stats s ON s.schemaname = $2 AND s.tablename = $3 AND s.attname = a.attname
              WHERE a.attrelid = to_regclass($1) AND a.attname = ANY($4)",
            &[&table, &def.schema_or_public(), &def.table, &columns],
        )
        .await
        .during("reading column widths")?;
    let width_of = |name: &str| {
        widths
            .iter()
            .find(|r| r.get::<_, String>(0) == name)
            .and_then(|r| r.get::<_, Option<f64>>(1))
            .unwrap_or(UNKNOWN_WIDTH)
    };
    let data_width: f64 = def
        .key_columns()
        .iter()
        .map(|c| c.as_deref().map_or(UNKNOWN_WIDTH, width_of))
        .chain(def.include.iter().map(|c| width_of(c)))
        .sum();
    let pages_now = table_bytes as f64 / 8192.0;
    let rows = if reltuples >= 0.0 && relpages > 0 {
        // As the planner does: the density seen at the last ANALYZE times
        // the pages the table has now, so rows added since count.
        reltuples / relpages as f64 * pages_now
    } else if reltuples >= 0.0 {
        reltuples
    } else {
        notes.push(
            "the table was never analyzed; rows guessed from its size (run ANALYZE for a better estimate)"
                .into(),
        );
        pages_now.max(1.0) * 8192.0 / 100.0
    };
    if def.predicate.is_some() {
        notes.push("partial index: estimated as if it covered every row".into());
    }
    if def.method != "btree" {
        notes.push(format!(
            "{} index: the size model is for btree, take it as an order of magnitude",
            def.method
        ));
    }
    let tuple = align8(8.0 + data_width) + 4.0;
    // Leaf pages are filled to 90% by default, plus one page in ~300 for the upper levels.
    let index_bytes = ((rows * tuple / 0.9) * 1.004 + 8192.0 * 2.0) as i64;
    let seconds = 2.0 * table_bytes as f64 / SCAN_BYTES_PER_SEC + rows / ROWS_PER_SEC;
    let warning = match free_space {
        Some(free) => {
            let share = share.unwrap_or(DEFAULT_FREE_SPACE_SHARE);
            (index_bytes as f64 > share * free as f64).then(|| {
                format!(
                    "estimated index size {} is more than {:.0}% of the free space ({})",
                    human_bytes(index_bytes),
                    share * 100.0,
                    human_bytes(free as i64)
                )
            })
        }
        None => {
            let share = share.unwrap_or(DEFAULT_TABLE_SHARE);
            (table_bytes > 0 && index_bytes as f64 > share * table_bytes as f64).then(|| {
                format!(
                    "estimated index size {} is more than {:.0}% of the table ({}); give --free-space to compare with the disk",
                    human_bytes(index_bytes),
                    share * 100.0,
                    human_bytes(table_bytes)
                )
            })
        }
    };
    Ok(Estimate {
        rows,
        table_bytes,
        index_bytes,
        seconds,
        notes,
        warning,
    })
}

fn align8(x: f64) -> f64 {
    (x / 8.0).ceil() * 8.0
}

/// `1.5 GB`-style sizes for people.
pub fn human_bytes(b: i64) -> String {
    let units = ["B", "kB", "MB", "GB", "TB"];
    let mut v = b as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit < units.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{b} B")
    } else {
        format!("{v:.1} {}", units[unit])
    }
}

/// Parses a size such as `20GB`, `512MB`, `1.5TB` or plain bytes.
pub fn parse_bytes(s: &str) -> Option<u64> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: f64 = num.parse().ok()?;
    let mult = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "kb" | "k" => 1024.0,
        "mb" | "m" => 1024.0 * 1024.0,
        "gb" | "g" => 1024.0 * 1024.0 * 1024.0,
        "tb" | "t" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
        _ => return None,
    };
    Some((n * mult) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_round_trip_for_people() {
        assert_eq!(parse_bytes("20GB"), Some(20 * 1024 * 1024 * 1024));
        assert_eq!(parse_bytes("1.5 kB"), Some(1536));
        assert_eq!(parse_bytes("12"), Some(12));
        assert_eq!(parse_bytes("lots"), None);
        assert_eq!(human_bytes(1536), "1.5 kB");
        assert_eq!(human_bytes(12), "12 B");
    }
}
