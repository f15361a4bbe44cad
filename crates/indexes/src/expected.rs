//! The indexes a schema declares, read from SQL: a `pg_dump --schema-only`
//! file, a Rails `structure.sql`, or migration files in order. Every
//! `CREATE INDEX` adds an index, a later `DROP INDEX` removes it and
//! `ALTER INDEX … RENAME TO` renames it, so the result is what the
//! files leave behind when run top to bottom.
//!
//! Indexes that back constraints (`PRIMARY KEY`, `UNIQUE` constraints,
//! exclusion constraints) are declared with `ALTER TABLE … ADD
//! CONSTRAINT`; they are not part of this set, and the catalog side leaves
//! them out too.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use pg_query::protobuf::node::Node as N;
use serde::Serialize;

use crate::definition::{dropped_indexes, IndexDef};

/// A problem reading the expected indexes.
#[derive(Debug, thiserror::Error)]
pub enum ExpectedError {
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A file holds a psql meta-command lull cannot honour (`\set`,
    /// `\i`, `\connect`; `\restrict` lines are ignored).
    #[error("{file}:{line}: {message}")]
    MetaCommand {
        /// The file (or label) the text came from.
        file: String,
        /// 1-based line of the meta-command.
        line: usize,
        /// What it is and what to do.
        message: String,
    },
    /// A migration directory could not be read.
    #[error("cannot read migrations in {path}: {message}")]
    Migrations {
        /// The directory.
        path: PathBuf,
        /// Why.
        message: String,
    },
}

/// One declared index and where it was declared.
#[derive(Debug, Clone, Serialize)]
pub struct ExpectedIndex {
    /// The definition.
    pub def: IndexDef,
    /// `file:line` of the `CREATE INDEX`.
    pub source: String,
}

/// Schema-qualified index name, the key of both sides of a comparison.
pub type IndexKey = (String, String);

/// What the files declare, keyed by (schema, index name).
#[derive(Debug, Clone, Default, Serialize)]
pub struct ExpectedSet {
    /// Declared indexes.
    pub indexes: BTreeMap<IndexKey, ExpectedIndex>,
    /// Statements that could not be parsed (`file:line: message`); they
    /// are skipped, so the user should know.
    pub warnings: Vec<String>,
}

impl ExpectedSet {
    /// Reads `text` (from `source`, used in messages) and applies its
    /// index statements to the set, in order. A psql meta-command other
    /// than `\restrict` / `\unrestrict` is an error naming its line.
    pub fn add_sql(&mut self, text: &str, source: &str) -> Result<(), ExpectedError> {
        self.add_sql_at(text, source, 0)
    }

    /// Like [`ExpectedSet::add_sql`] for text that starts `line_offset`
    /// lines into its file (one section of a dbmate file, say).
    pub fn add_sql_at(
        &mut self,
        text: &str,
        source: &str,
        line_offset: usize,
    ) -> Result<(), ExpectedError> {
        let text = lull_analyzer::meta::blank_meta_commands(text).map_err(|e| {
            ExpectedError::MetaCommand {
                file: source.to_string(),
                line: e.line + line_offset,
                message: e.message,
            }
        })?;
        let text: &str = &text;
        let statements = match pg_query::split_with_scanner(text) {
            Ok(s) => s,
            Err(e) => {
                self.warnings.push(format!("{source}: {e}"));
                return Ok(());
            }
        };
        // Lines are counted incrementally: statements come in order.
        let mut counted = (0usize, 1usize);
        for stmt in statements {
            // The scanner hands out slices of `text`, each with the blank
            // lines and comments before it; their address gives the
            // position of the statement's first word.
            let offset = stmt.as_ptr() as usize - text.as_ptr() as usize;
            let body = skip_comments(stmt);
            let start = offset + (stmt.len() - body.len());
            counted.1 += text[counted.0..start].matches('\n').count();
            counted.0 = start;
            let at = format!("{source}:{}", counted.1 + line_offset);
            self.apply(body, &at);
        }
        Ok(())
    }

    fn apply(&mut self, stmt: &str, at: &str) {
        // Only index statements matter; not parsing the rest keeps a big
        // dump fast and immune to syntax this parser version lacks.
        let first: String = stmt
            .chars()
            .take_while(|c| c.is_ascii_alphabetic())
            .collect::<String>()
            .to_ascii_lowercase();
        let relevant = matches!(first.as_str(), "create" | "drop" | "alter")
            && stmt.to_ascii_lowercase().contains("index");
        if !relevant {
            return;
        }
        let parsed = match pg_query::parse(stmt) {
            Ok(p) => p,
            Err(e) => {
                self.warnings.push(format!("{at}: {e}"));
                return;
            }
        };
        for raw in &parsed.protobuf.stmts {
            match raw.stmt.as_ref().and_then(|n| n.node.as_ref()) {
                Some(N::IndexStmt(index)) => match IndexDef::from_stmt(index, stmt) {
                    Ok(def) => {
                        let key = (def.schema_or_public().to_string(), def.name.clone());
                        self.indexes.insert(
                            key,
                            ExpectedIndex {
                                def,
                                source: at.to_string(),
                            },
                        );
                    }
                    Err(e) => self.warnings.push(format!("{at}: {e}")),
                },
                Some(N::DropStmt(drop)) => {
                    for (schema, name) in dropped_indexes(drop) {
                        self.indexes
                            .remove(&(schema.unwrap_or_else(|| "public".into()), name));
                    }
                }
                Some(N::RenameStmt(rename))
                    if rename.rename_type == pg_query::protobuf::ObjectType::ObjectIndex as i32 =>
                {
                    let Some(rel) = &rename.relation else {
                        continue;
                    };
                    let schema = if rel.schemaname.is_empty() {
                        "public".to_string()
                    } else {
                        rel.schemaname.clone()
                    };
                    if let Some(mut found) =
                        self.indexes.remove(&(schema.clone(), rel.relname.clone()))
                    {
                        found.def.name = rename.newname.clone();
                        self.indexes.insert((schema, rename.newname.clone()), found);
                    }
                }
                _ => {}
            }
        }
    }

    /// Reads one SQL file, or every migration of a directory (in any
    /// layout `lull_migrations` knows) in order, up parts only.
    pub fn add_path(&mut self, path: &Path) -> Result<(), ExpectedError> {
        if path.is_dir() {
            let migrations =
                lull_migrations::discover(path).map_err(|e| ExpectedError::Migrations {
                    path: path.to_path_buf(),
                    message: e.to_string(),
                })?;
            for m in migrations {
                if let Some(up) = &m.up {
                    self.add_sql_at(&up.sql, &up.path.display().to_string(), up.line_offset)?;
                }
            }
            return Ok(());
        }
        let text = std::fs::read_to_string(path).map_err(|source| ExpectedError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        self.add_sql(&text, &path.display().to_string())
    }

    /// The schemas the declared indexes live in.
    pub fn schemas(&self) -> Vec<String> {
        let mut s: Vec<String> = self
            .indexes
            .keys()
            .map(|(schema, _)| schema.clone())
            .collect();
        s.sort();
        s.dedup();
        s
    }
}

/// `stmt` from its first word: leading blanks, `-- …` lines and
/// `/* … */` blocks (as every statement of a pg_dump, Rails structure.sql
/// or Prisma migration has) are skipped.
fn skip_comments(stmt: &str) -> &str {
    let mut rest = stmt.trim_start();
    loop {
        if let Some(after) = rest.strip_prefix("--") {
            rest = after
                .find('\n')
                .map_or("", |i| &after[i + 1..])
                .trim_start();
        } else if rest.starts_with("/*") {
            let mut depth = 0usize;
            let mut end = rest.len();
            let b = rest.as_bytes();
            let mut i = 0;
            while i + 1 < b.len() {
                if b[i] == b'/' && b[i + 1] == b'*' {
                    depth += 1;
                    i += 2;
                } else if b[i] == b'*' && b[i + 1] == b'/' {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        end = i;
                        break;
                    }
                } else {
                    i += 1;
                }
            }
            rest = rest[end..].trim_start();
        } else {
            return rest;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn later_drops_and_renames_apply_in_order() {
        let mut set = ExpectedSet::default();
        set.add_sql(
            "CREATE INDEX a ON t (x);\nCREATE INDEX b ON t (y);\n\nDROP INDEX CONCURRENTLY IF EXISTS b;\n",
            "1.sql",
        )
        .unwrap();
        set.add_sql(
            "ALTER INDEX a RENAME TO a2;\ncreate index c on s.t (z);",
            "2.sql",
        )
        .unwrap();
        let keys: Vec<_> = set.indexes.keys().cloned().collect();
        assert_eq!(
            keys,
            vec![("public".into(), "a2".into()), ("s".into(), "c".into())]
        );
        assert_eq!(set.indexes[&("public".into(), "a2".into())].def.name, "a2");
        assert_eq!(set.indexes[&("s".into(), "c".into())].source, "2.sql:2");
        assert_eq!(set.schemas(), vec!["public".to_string(), "s".to_string()]);
    }

    #[test]
    fn reads_pg_dump_output_with_meta_commands() {
        let dump =
            "--\n-- PostgreSQL database dump\n--\n\\restrict abc\nSET statement_timeout = 0;\n\
SELECT pg_catalog.set_config('search_path', '', false);\n\
CREATE TABLE public.users (\n    id bigint NOT NULL,\n    email text\n);\n\
ALTER TABLE ONLY public.users\n    ADD CONSTRAINT users_pkey PRIMARY KEY (id);\n\
CREATE UNIQUE INDEX users_email ON public.users USING btree (lower(email));\n\\unrestrict abc\n";
        let mut set = ExpectedSet::default();
        set.add_sql(dump, "dump.sql").unwrap();
        assert!(set.warnings.is_empty(), "{:?}", set.warnings);
        assert_eq!(set.indexes.len(), 1);
        let e = &set.indexes[&("public".into(), "users_email".into())];
        assert!(e.def.unique);
        assert_eq!(e.source, "dump.sql:13");
    }

    #[test]
    fn statements_after_comments_are_read() {
        let text = "--\n-- Name: users_email; Type: INDEX; Schema: public; Owner: -\n--\n\n\
CREATE INDEX users_email ON public.users USING btree (email);\n\n\
/* a /* nested */ block */ -- and a line\nCREATE UNIQUE INDEX \"a\" ON \"public\".\"t\"(\"x\");\n\
-- CreateIndex\nDROP INDEX users_email;\n-- CreateIndex\ncreate index b on t (y);\n";
        let mut set = ExpectedSet::default();
        set.add_sql(text, "s.sql").unwrap();
        assert!(set.warnings.is_empty(), "{:?}", set.warnings);
        let got: Vec<(&str, &str)> = set
            .indexes
            .iter()
            .map(|((_, n), e)| (n.as_str(), e.source.as_str()))
            .collect();
        assert_eq!(got, vec![("a", "s.sql:8"), ("b", "s.sql:12")]);
    }

    #[test]
    fn meta_commands_other_than_restrict_are_errors_with_the_line() {
        let mut set = ExpectedSet::default();
        let err = set
            .add_sql_at("CREATE INDEX a ON t (x);\n\\connect other\n", "d.sql", 10)
            .unwrap_err();
        assert!(err.to_string().starts_with("d.sql:12: "), "{err}");
        assert!(err.to_string().contains("\\connect"), "{err}");
    }

    #[test]
    fn migration_directory_in_order_with_drops() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("20240101000000_users.sql"), "CREATE TABLE users (id int, email text);\nCREATE INDEX users_email ON users (email);\n").unwrap();
        std::fs::write(
            dir.path().join("20240102000000_more.sql"),
            "CREATE INDEX users_id ON users (id);\nDROP INDEX users_email;\n",
        )
        .unwrap();
        let mut set = ExpectedSet::default();
        set.add_path(dir.path()).unwrap();
        let names: Vec<_> = set.indexes.keys().map(|(_, n)| n.as_str()).collect();
        assert_eq!(names, vec!["users_id"]);
        assert!(set.indexes[&("public".into(), "users_id".into())]
            .source
            .ends_with("20240102000000_more.sql:1"));
    }

    #[test]
    fn bad_index_statement_is_a_warning_not_a_silent_skip() {
        let mut set = ExpectedSet::default();
        set.add_sql("CREATE INDEX ON t (x);\nCREATE INDEX ok ON t (y);", "m.sql")
            .unwrap();
        assert_eq!(set.indexes.len(), 1);
        assert_eq!(set.warnings.len(), 1);
        assert!(
            set.warnings[0].starts_with("m.sql:1:"),
            "{:?}",
            set.warnings
        );
    }
}
