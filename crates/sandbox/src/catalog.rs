//! A database's schema as a sorted, diffable list of objects, and the
//! comparison of two of them.
//!
//! lull's rule for rewrites is that a rewritten migration leaves exactly
//! the catalog the plain file leaves: same names, definitions and
//! validity. This module is how tests check it. [`Catalog::snapshot`]
//! reads one database's catalog into a [`Catalog`], one entry per object,
//! each keyed by what it is and its qualified name
//! (`constraint public.users.users_email_check`) and described by the text
//! PostgreSQL itself prints for it (`pg_get_constraintdef`,
//! `pg_get_indexdef`, `pg_get_viewdef`, ...) plus its state (validity,
//! nullability, enabled). Two catalogs compare with
//! [`Catalog::diff`]; [`assert_same_catalog`] panics with a readable diff.
//!
//! ```no_run
//! use lull_sandbox::catalog::{assert_same_catalog, Catalog, Ignore};
//! use lull_sandbox::testing::TestDb;
//!
//! let (a, b) = (TestDb::new(), TestDb::new());
//! a.client().batch_execute("create table t (x int check (x > 0))").unwrap();
//! b.client().batch_execute("create table t (x int); alter table t add check (x > 0)").unwrap();
//! let ignore = Ignore::default();
//! assert_same_catalog(
//!     ("plain", &Catalog::snapshot(&mut a.client(), &ignore)),
//!     ("rewritten", &Catalog::snapshot(&mut b.client(), &ignore)),
//! );
//! ```
//!
//! What is compared: schemas, extensions (name, schema and version);
//! tables, partitioned tables, views, materialized views, foreign tables,
//! composite types and sequences (kind, persistence, row-level security,
//! partitioning); their columns (position among live columns, type,
//! collation, NOT NULL, default, identity, generated expression);
//! constraints of tables and domains (name, definition, validity,
//! deferrability; on PostgreSQL 18 also the catalogued NOT NULL
//! constraints); indexes (definition, validity, readiness, the
//! partitioned index each is attached to); view definitions; functions
//! and procedures (full definition); aggregates (by signature);
//! triggers (definition and enabled state); enums (labels in order);
//! domains; sequences (type, start, increment, bounds, cache,
//! cycle, owner column); row-level security policies.
//!
//! What is not compared: data, owners, grants, comments, statistics,
//! storage parameters (`relfilenode`, fill state), the current value of a
//! sequence, and objects that belong to an extension (PostGIS' thousands
//! of functions are the extension's, not the migration's). System schemas
//! are never read, and [`Ignore`] leaves out more (by default lull's own
//! state schema).

use std::collections::BTreeMap;
use std::fmt;

/// What a snapshot leaves out.
#[derive(Debug, Clone)]
pub struct Ignore {
    /// Schemas left out entirely (besides the system schemas).
    pub schemas: Vec<String>,
    /// Relations left out with their columns, constraints, indexes and
    /// triggers: `schema.name`, or a bare `name` for that name in any
    /// schema (e.g. a migration tool's history table).
    pub relations: Vec<String>,
}

impl Default for Ignore {
    /// Leaves out lull's own state schema, `lull`.
    fn default() -> Self {
        Ignore {
            schemas: vec!["lull".to_string()],
            relations: Vec::new(),
        }
    }
}

impl Ignore {
    /// Leaves nothing out but the system schemas.
    pub fn nothing() -> Ignore {
        Ignore {
            schemas: Vec::new(),
            relations: Vec::new(),
        }
    }

    /// Also leaves out this schema.
    pub fn schema(mut self, name: &str) -> Ignore {
        self.schemas.push(name.to_string());
        self
    }

    /// Also leaves out this relation (`schema.name` or a bare `name`).
    pub fn relation(mut self, name: &str) -> Ignore {
        self.relations.push(name.to_string());
        self
    }

    /// Also leaves out the history tables migration tools keep
    /// (`_sqlx_migrations`, `schema_migrations`, `flyway_schema_history`,
    /// `__diesel_schema_migrations`, `_prisma_migrations`,
    /// `__drizzle_migrations`, `alembic_version`, `ar_internal_metadata`,
    /// `knex_migrations`, `knex_migrations_lock`, `refinery_schema_history`),
    /// which a tool writes and a plain `psql` does not.
    pub fn tool_history_tables(mut self) -> Ignore {
        for name in [
            "_sqlx_migrations",
            "schema_migrations",
            "flyway_schema_history",
            "__diesel_schema_migrations",
            "_prisma_migrations",
            "__drizzle_migrations",
            "alembic_version",
            "ar_internal_metadata",
            "knex_migrations",
            "knex_migrations_lock",
            "refinery_schema_history",
        ] {
            self.relations.push(name.to_string());
        }
        self
    }

    fn skips(&self, schema: &str, relation: Option<&str>) -> bool {
        if self.schemas.iter().any(|s| s == schema) {
            return true;
        }
        let Some(rel) = relation else {
            return false;
        };
        self.relations.iter().any(|r| match r.split_once('.') {
            Some((s, n)) => s == schema && n == rel,
            None => r == rel,
        })
    }
}

/// One database's schema: object key → description, sorted by key.
///
/// Keys are `<kind> <schema>.<name>` for objects of a schema and
/// `<kind> <schema>.<relation>.<name>` for objects of a relation
/// (`column public.users.email`, `index public.users.users_email_key`,
/// `trigger public.users.users_touch`); descriptions are the server's own
/// text for the object with its state appended (`[NOT VALID]`,
/// `[INVALID]`, `[disabled]`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Catalog {
    /// Every object, sorted by key.
    pub objects: BTreeMap<String, String>,
}

/// One way two catalogs differ.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Difference {
    /// The object exists only in the first catalog.
    OnlyLeft {
        /// The object's key.
        key: String,
        /// Its description.
        description: String,
    },
    /// The object exists only in the second catalog.
    OnlyRight {
        /// The object's key.
        key: String,
        /// Its description.
        description: String,
    },
    /// The object exists in both, described differently.
    Changed {
        /// The object's key.
        key: String,
        /// Its description in the first catalog.
        left: String,
        /// Its description in the second catalog.
        right: String,
    },
}

impl Catalog {
    /// Reads the catalog of the database `client` is connected to,
    /// leaving out the system schemas and what `ignore` names. Panics
    /// with the query's error when the catalog cannot be read: a test
    /// that cannot see the schema cannot mean anything.
    pub fn snapshot(client: &mut postgres::Client, ignore: &Ignore) -> Catalog {
        Catalog::try_snapshot(client, ignore)
            .unwrap_or_else(|e| panic!("cannot read the catalog: {e}"))
    }

    /// [`Catalog::snapshot`], returning the error instead of panicking.
    pub fn try_snapshot(
        client: &mut postgres::Client,
        ignore: &Ignore,
    ) -> Result<Catalog, postgres::Error> {
        let mut objects = BTreeMap::new();
        for query in queries() {
            for row in client.query(query.as_str(), &[])? {
                let kind: &str = row.get(0);
                let schema: &str = row.get(1);
                let relation: Option<&str> = row.get(2);
                let name: &str = row.get(3);
                let description: Option<&str> = row.get(4);
                if ignore.skips(schema, relation) || (kind == "schema" && ignore.skips(name, None))
                {
                    continue;
                }
                // A relation (or sequence, view) is ignored by its own name.
                if relation.is_none()
                    && matches!(kind, "relation" | "sequence" | "view")
                    && ignore.skips(schema, Some(name))
                {
                    continue;
                }
                let key = match relation {
                    Some(rel) => format!("{kind} {schema}.{rel}.{name}"),
                    None if schema.is_empty() => format!("{kind} {name}"),
                    None => format!("{kind} {schema}.{name}"),
                };
                objects.insert(key, description.unwrap_or("").to_string());
            }
        }
        Ok(Catalog { objects })
    }

    /// The differences from `self` (left) to `other` (right), in key
    /// order. Empty when the catalogs are the same.
    pub fn diff(&self, other: &Catalog) -> Vec<Difference> {
        let mut out = Vec::new();
        for (key, left) in &self.objects {
            match other.objects.get(key) {
                None => out.push(Difference::OnlyLeft {
                    key: key.clone(),
                    description: left.clone(),
                }),
                Some(right) if right != left => out.push(Difference::Changed {
                    key: key.clone(),
                    left: left.clone(),
                    right: right.clone(),
                }),
                Some(_) => {}
            }
        }
        for (key, right) in &other.objects {
            if !self.objects.contains_key(key) {
                out.push(Difference::OnlyRight {
                    key: key.clone(),
                    description: right.clone(),
                });
            }
        }
        out.sort_by(|a, b| a.key().cmp(b.key()));
        out
    }

    /// The objects whose key starts with `prefix` (e.g. `"constraint
    /// public.users."`), for assertions about part of a catalog.
    pub fn with_prefix<'a>(&'a self, prefix: &'a str) -> impl Iterator<Item = (&'a str, &'a str)> {
        self.objects
            .range(prefix.to_string()..)
            .take_while(move |(k, _)| k.starts_with(prefix))
            .map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// How many objects the catalog holds.
    pub fn len(&self) -> usize {
        self.objects.len()
    }

    /// Whether the catalog holds no object at all.
    pub fn is_empty(&self) -> bool {
        self.objects.is_empty()
    }
}

impl Difference {
    /// The key of the object that differs.
    pub fn key(&self) -> &str {
        match self {
            Difference::OnlyLeft { key, .. }
            | Difference::OnlyRight { key, .. }
            | Difference::Changed { key, .. } => key,
        }
    }
}

impl fmt::Display for Catalog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (key, description) in &self.objects {
            writeln!(f, "{key}: {description}")?;
        }
        Ok(())
    }
}

/// The differences as lines for people: `- key: description` for an
/// object only on the left, `+ key: description` only on the right, and
/// both lines for one described differently.
pub fn render_diff(left_label: &str, right_label: &str, diff: &[Difference]) -> String {
    let mut out = format!("--- {left_label}\n+++ {right_label}\n");
    for d in diff {
        match d {
            Difference::OnlyLeft { key, description } => {
                out.push_str(&format!("- {key}: {description}\n"))
            }
            Difference::OnlyRight { key, description } => {
                out.push_str(&format!("+ {key}: {description}\n"))
            }
            Difference::Changed { key, left, right } => {
                out.push_str(&format!("- {key}: {left}\n+ {key}: {right}\n"))
            }
        }
    }
    out
}

/// Panics with a readable diff (see [`render_diff`]) unless the two
/// catalogs are the same. Each side is `(label, catalog)`; the labels say
/// which is which in the message (`("psql", &a), ("lull migrate", &b)`).
pub fn assert_same_catalog(left: (&str, &Catalog), right: (&str, &Catalog)) {
    let diff = left.1.diff(right.1);
    if !diff.is_empty() {
        panic!(
            "the catalogs differ in {} object(s):\n{}",
            diff.len(),
            render_diff(left.0, right.0, &diff)
        );
    }
}

/// The queries, each returning (kind, schema, relation or NULL, name,
/// description) as text.
fn queries() -> Vec<String> {
    // Schemas lull never compares, and objects an extension owns.
    const USER_SCHEMA: &str = "n.nspname NOT LIKE 'pg\\_%' AND n.nspname <> 'information_schema'";
    let not_ext = |class: &str, oid: &str| {
        format!(
            "NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = '{class}'::regclass \
             AND d.objid = {oid} AND d.deptype = 'e')"
        )
    };
    let rel_not_ext = not_ext("pg_class", "c.oid");
    vec![
        format!(
            "SELECT 'schema', '', NULL::text, n.nspname::text, ''
             FROM pg_namespace n WHERE {USER_SCHEMA} AND {}",
            not_ext("pg_namespace", "n.oid")
        ),
        "SELECT 'extension', '', NULL::text, e.extname::text,
                'schema ' || n.nspname || ', version ' || e.extversion
         FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace"
            .to_string(),
        format!(
            "SELECT 'relation', n.nspname::text,
                    NULL::text, c.relname::text,
                    CASE c.relkind WHEN 'r' THEN 'table' WHEN 'p' THEN 'partitioned table'
                         WHEN 'v' THEN 'view' WHEN 'm' THEN 'materialized view'
                         WHEN 'f' THEN 'foreign table' WHEN 'c' THEN 'composite type' END
                    || CASE c.relpersistence WHEN 'u' THEN ', unlogged' WHEN 't' THEN ', temporary' ELSE '' END
                    || CASE WHEN c.relrowsecurity THEN ', row level security' ELSE '' END
                    || CASE WHEN c.relforcerowsecurity THEN ' (forced)' ELSE '' END
                    || CASE WHEN c.relkind = 'p' THEN ', partition by ' || pg_get_partkeydef(c.oid) ELSE '' END
                    || CASE WHEN c.relispartition THEN ', partition of '
                            || (SELECT i.inhparent::regclass::text FROM pg_inherits i WHERE i.inhrelid = c.oid)
                            || ' ' || pg_get_expr(c.relpartbound, c.oid) ELSE '' END
                    || COALESCE((SELECT ', inherits ' || string_agg(i.inhparent::regclass::text, ', ' ORDER BY i.inhseqno)
                                 FROM pg_inherits i WHERE i.inhrelid = c.oid AND NOT c.relispartition), '')
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE c.relkind IN ('r','p','v','m','f','c') AND {USER_SCHEMA} AND {rel_not_ext}"
        ),
        format!(
            "SELECT 'column', n.nspname::text, c.relname::text, a.attname::text,
                    '#' || row_number() OVER (PARTITION BY c.oid ORDER BY a.attnum)
                    || ' ' || format_type(a.atttypid, a.atttypmod)
                    || CASE WHEN a.attcollation <> t.typcollation
                            THEN ' collate ' || (SELECT quote_ident(co.collname) FROM pg_collation co WHERE co.oid = a.attcollation)
                            ELSE '' END
                    || CASE WHEN a.attnotnull THEN ' not null' ELSE '' END
                    || CASE WHEN a.attgenerated <> '' THEN ' generated always as ' || pg_get_expr(ad.adbin, ad.adrelid)
                            WHEN ad.adbin IS NOT NULL THEN ' default ' || pg_get_expr(ad.adbin, ad.adrelid)
                            ELSE '' END
                    || CASE a.attidentity WHEN 'a' THEN ' generated always as identity'
                                          WHEN 'd' THEN ' generated by default as identity' ELSE '' END
             FROM pg_attribute a
             JOIN pg_class c ON c.oid = a.attrelid
             JOIN pg_namespace n ON n.oid = c.relnamespace
             JOIN pg_type t ON t.oid = a.atttypid
             LEFT JOIN pg_attrdef ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum
             WHERE a.attnum > 0 AND NOT a.attisdropped AND c.relkind IN ('r','p','v','m','f','c')
               AND {USER_SCHEMA} AND {rel_not_ext}"
        ),
        format!(
            "SELECT 'constraint', n.nspname::text,
                    COALESCE(c.relname, ty.typname)::text, co.conname::text,
                    pg_get_constraintdef(co.oid)
                    || CASE WHEN NOT co.convalidated THEN ' [NOT VALID]' ELSE '' END
                    || CASE WHEN co.condeferrable THEN ' [deferrable'
                            || CASE WHEN co.condeferred THEN ', initially deferred' ELSE '' END || ']' ELSE '' END
             FROM pg_constraint co
             JOIN pg_namespace n ON n.oid = co.connamespace
             LEFT JOIN pg_class c ON c.oid = co.conrelid
             LEFT JOIN pg_type ty ON ty.oid = co.contypid
             WHERE {USER_SCHEMA} AND (c.oid IS NULL OR {rel_not_ext})
               AND (ty.oid IS NULL OR {})",
            not_ext("pg_type", "ty.oid")
        ),
        format!(
            "SELECT 'index', n.nspname::text, c.relname::text, ic.relname::text,
                    pg_get_indexdef(i.indexrelid)
                    || CASE WHEN NOT i.indisvalid THEN ' [INVALID]' ELSE '' END
                    || CASE WHEN NOT i.indisready THEN ' [not ready]' ELSE '' END
                    || COALESCE((SELECT ' [partition of ' || h.inhparent::regclass::text || ']'
                                 FROM pg_inherits h WHERE h.inhrelid = i.indexrelid), '')
             FROM pg_index i
             JOIN pg_class ic ON ic.oid = i.indexrelid
             JOIN pg_class c ON c.oid = i.indrelid
             JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE {USER_SCHEMA} AND {rel_not_ext}"
        ),
        format!(
            "SELECT 'view', n.nspname::text, NULL::text, c.relname::text, pg_get_viewdef(c.oid, true)
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE c.relkind IN ('v','m') AND {USER_SCHEMA} AND {rel_not_ext}"
        ),
        format!(
            "SELECT CASE p.prokind WHEN 'a' THEN 'aggregate' WHEN 'p' THEN 'procedure' ELSE 'function' END,
                    n.nspname::text, NULL::text,
                    p.proname || '(' || pg_get_function_identity_arguments(p.oid) || ')',
                    CASE WHEN p.prokind = 'a' THEN 'aggregate returning ' || format_type(p.prorettype, NULL)
                         ELSE pg_get_functiondef(p.oid) END
             FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
             WHERE {USER_SCHEMA} AND {}",
            not_ext("pg_proc", "p.oid")
        ),
        format!(
            "SELECT 'trigger', n.nspname::text, c.relname::text, t.tgname::text,
                    pg_get_triggerdef(t.oid)
                    || CASE t.tgenabled WHEN 'D' THEN ' [disabled]' WHEN 'R' THEN ' [replica]'
                                        WHEN 'A' THEN ' [always]' ELSE '' END
             FROM pg_trigger t
             JOIN pg_class c ON c.oid = t.tgrelid
             JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE NOT t.tgisinternal AND {USER_SCHEMA} AND {rel_not_ext}"
        ),
        format!(
            "SELECT 'enum', n.nspname::text, NULL::text, t.typname::text,
                    string_agg(quote_literal(e.enumlabel), ', ' ORDER BY e.enumsortorder)
             FROM pg_type t
             JOIN pg_namespace n ON n.oid = t.typnamespace
             JOIN pg_enum e ON e.enumtypid = t.oid
             WHERE {USER_SCHEMA} AND {}
             GROUP BY n.nspname, t.typname",
            not_ext("pg_type", "t.oid")
        ),
        format!(
            "SELECT 'domain', n.nspname::text, NULL::text, t.typname::text,
                    format_type(t.typbasetype, t.typtypmod)
                    || CASE WHEN t.typnotnull THEN ' not null' ELSE '' END
                    || COALESCE(' default ' || t.typdefault, '')
             FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
             WHERE t.typtype = 'd' AND {USER_SCHEMA} AND {}",
            not_ext("pg_type", "t.oid")
        ),
        format!(
            "SELECT 'sequence', n.nspname::text, NULL::text, c.relname::text,
                    format_type(s.seqtypid, NULL)
                    || ' start ' || s.seqstart || ' increment ' || s.seqincrement
                    || ' min ' || s.seqmin || ' max ' || s.seqmax || ' cache ' || s.seqcache
                    || CASE WHEN s.seqcycle THEN ' cycle' ELSE '' END
                    || COALESCE((SELECT ' owned by ' || d.refobjid::regclass::text || '.' || quote_ident(a.attname)
                                 FROM pg_depend d
                                 JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
                                 WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid
                                   AND d.refclassid = 'pg_class'::regclass AND d.deptype IN ('a','i')
                                 LIMIT 1), '')
             FROM pg_sequence s
             JOIN pg_class c ON c.oid = s.seqrelid
             JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE {USER_SCHEMA} AND {rel_not_ext}"
        ),
        format!(
            "SELECT 'policy', n.nspname::text, c.relname::text, p.polname::text,
                    CASE WHEN p.polpermissive THEN 'permissive' ELSE 'restrictive' END
                    || ' for ' || CASE p.polcmd WHEN 'r' THEN 'select' WHEN 'a' THEN 'insert'
                                   WHEN 'w' THEN 'update' WHEN 'd' THEN 'delete' ELSE 'all' END
                    || ' to ' || COALESCE((SELECT string_agg(CASE WHEN r = 0 THEN 'public' ELSE r::regrole::text END, ', ' ORDER BY 1)
                                           FROM unnest(p.polroles) r), '')
                    || COALESCE(' using ' || pg_get_expr(p.polqual, p.polrelid), '')
                    || COALESCE(' with check ' || pg_get_expr(p.polwithcheck, p.polrelid), '')
             FROM pg_policy p
             JOIN pg_class c ON c.oid = p.polrelid
             JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE {USER_SCHEMA} AND {rel_not_ext}"
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn catalog(entries: &[(&str, &str)]) -> Catalog {
        Catalog {
            objects: entries
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    #[test]
    fn diff_names_each_side_and_changes_in_key_order() {
        let a = catalog(&[
            ("constraint public.t.t_check", "CHECK ((a > 0))"),
            ("index public.t_a_idx", "CREATE INDEX ..."),
            ("relation public.t", "table"),
        ]);
        let b = catalog(&[
            ("constraint public.t.t_a_check", "CHECK ((a > 0))"),
            ("index public.t_a_idx", "CREATE INDEX ... [INVALID]"),
            ("relation public.t", "table"),
        ]);
        let diff = a.diff(&b);
        assert_eq!(
            render_diff("psql", "lull", &diff),
            "--- psql\n+++ lull\n\
             + constraint public.t.t_a_check: CHECK ((a > 0))\n\
             - constraint public.t.t_check: CHECK ((a > 0))\n\
             - index public.t_a_idx: CREATE INDEX ...\n\
             + index public.t_a_idx: CREATE INDEX ... [INVALID]\n"
        );
        assert!(a.diff(&a).is_empty());
    }

    #[test]
    #[should_panic(expected = "the catalogs differ in 1 object(s)")]
    fn assert_same_catalog_panics_on_a_difference() {
        let a = catalog(&[("relation public.t", "table")]);
        assert_same_catalog(("a", &a), ("b", &Catalog::default()));
    }

    #[test]
    fn ignore_matches_qualified_and_bare_names() {
        let ignore = Ignore::default()
            .relation("public.keep_out")
            .tool_history_tables();
        assert!(ignore.skips("lull", None));
        assert!(ignore.skips("public", Some("keep_out")));
        assert!(!ignore.skips("other", Some("keep_out")));
        assert!(ignore.skips("auth", Some("schema_migrations")));
        assert!(!ignore.skips("public", Some("users")));
    }
}
