//! Table sizes: what makes findings and risk honest. They come from a live
//! database (`lull lint --database-url`) or from a stats file written by
//! `lull stats export`, so CI can use production sizes without production
//! access. The format is plain JSON:
//!
//! ```json
//! { "tables": { "public.users": { "rows": 1200000, "bytes": 402653184 } } }
//! ```

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The size of one table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct TableSize {
    /// Estimated rows (`pg_class.reltuples`, 0 when never analyzed).
    pub rows: u64,
    /// Total bytes including indexes and TOAST (`pg_total_relation_size`).
    pub bytes: u64,
}

/// Sizes of tables by name (`schema.table`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableStats {
    /// Sizes keyed by `schema.table` (or a bare name).
    pub tables: BTreeMap<String, TableSize>,
}

impl TableStats {
    /// Records the size of a table.
    pub fn insert(&mut self, name: impl Into<String>, size: TableSize) {
        self.tables.insert(name.into(), size);
    }

    /// The size of `name` as written in a statement. A bare name also finds
    /// `public.name`, and failing that the only schema's table of that
    /// name; `public.name` also finds a bare `name` entry.
    pub fn get(&self, name: &str) -> Option<TableSize> {
        if let Some(size) = self.tables.get(name) {
            return Some(*size);
        }
        match name.split_once('.') {
            None => {
                if let Some(size) = self.tables.get(&format!("public.{name}")) {
                    return Some(*size);
                }
                let mut matches = self
                    .tables
                    .iter()
                    .filter(|(k, _)| k.rsplit_once('.').is_some_and(|(_, t)| t == name));
                match (matches.next(), matches.next()) {
                    (Some((_, size)), None) => Some(*size),
                    _ => None,
                }
            }
            Some(("public", bare)) => self.tables.get(bare).copied(),
            Some(_) => None,
        }
    }

    /// Parses a stats file.
    pub fn from_json(text: &str) -> Result<TableStats, serde_json::Error> {
        serde_json::from_str(text)
    }

    /// Writes the stats file format.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// Whether no sizes are known.
    pub fn is_empty(&self) -> bool {
        self.tables.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_resolve_like_search_path_public() {
        let mut stats = TableStats::default();
        stats.insert("public.users", TableSize { rows: 5, bytes: 10 });
        stats.insert("billing.invoices", TableSize { rows: 7, bytes: 10 });
        assert_eq!(stats.get("users").unwrap().rows, 5);
        assert_eq!(stats.get("public.users").unwrap().rows, 5);
        assert_eq!(stats.get("invoices").unwrap().rows, 7);
        assert_eq!(stats.get("other.users"), None);
        let json = stats.to_json();
        assert_eq!(TableStats::from_json(&json).unwrap(), stats);
    }
}
