//! Safe-by-default rewrites of single statements: what the runner executes
//! instead of a statement that would hold a blocking lock on an existing
//! table, and what `lull fix` and lint's help text suggest.
//!
//! Every rewrite keeps the statement's meaning and only changes how it
//! locks: CONCURRENTLY index work, constraints added `NOT VALID` and
//! validated separately, NOT NULL proven by a validated CHECK first, and
//! UNIQUE / PRIMARY KEY attached to a concurrently built index. Identifiers
//! in generated SQL are quoted with [`crate::sql`].

use std::collections::{BTreeMap, BTreeSet};

use pg_query::protobuf::{self, AlterTableType, ConstrType, ObjectType, ReindexObjectType, Token};
use pg_query::NodeEnum;
use serde::Serialize;

use crate::ast;
use crate::parse::Statement;
use crate::sql::{quote_ident, quote_qualified};

/// PostgreSQL's identifier limit in bytes (NAMEDATALEN - 1).
pub const MAX_IDENTIFIER_BYTES: usize = 63;

/// The safe form of one statement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SafeForm {
    /// Statements to run instead, in order, without trailing `;`. Each one
    /// parses; CONCURRENTLY ones must run outside a transaction block (their
    /// facts say so).
    pub statements: Vec<String>,
    /// Which rewrite this is: `concurrently`, `not-valid-then-validate`,
    /// `check-then-set-not-null`, `unique-index-concurrently` or
    /// `partitioned-index`.
    pub rewrite: &'static str,
    /// One sentence on what changed and why, for plans and help text.
    pub note: String,
}

impl SafeForm {
    /// The rewrite in a few words, for "lull migrate runs this as ...".
    pub fn rewrite_phrase(&self) -> &'static str {
        match self.rewrite {
            "concurrently" => "CONCURRENTLY, outside a transaction",
            "not-valid-then-validate" => "NOT VALID, then VALIDATE",
            "check-then-set-not-null" => "a validated CHECK, then SET NOT NULL",
            "unique-index-concurrently" => "a unique index built CONCURRENTLY, then USING INDEX",
            "partitioned-index" => {
                "an index ON ONLY the parent, each partition's built CONCURRENTLY and attached"
            }
            _ => "its safe form",
        }
    }
}

/// Relations created earlier in the same migration or run. Statements on
/// them need no safe form: nobody else can be using a table that did not
/// exist before this run.
#[derive(Debug, Clone, Default)]
pub struct NewRelations {
    names: BTreeSet<String>,
    /// Relation name (last part) → (seen schema-qualified, seen bare), so
    /// lookups stay cheap over a run of thousands of files.
    by_relname: BTreeMap<String, (bool, bool)>,
    /// `CHECK (column IS NOT NULL)` constraints added so far, as
    /// (table, constraint, column, validated): a SET NOT NULL after a
    /// validated one is already cheap and must not be rewritten again
    /// (the rewrite would add the same CHECK a second time).
    not_null_checks: Vec<(String, String, String, bool)>,
    /// Constraint names created by earlier statements (given or chosen the
    /// way PostgreSQL chooses them), so an unnamed constraint gets the
    /// suffix PostgreSQL would give it on a clash (`t_a_check1`).
    constraint_names: BTreeSet<String>,
}

impl NewRelations {
    /// An empty set: every relation existed before.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records the relations `stmt` creates, and the new name of a new
    /// relation it renames.
    pub fn record(&mut self, stmt: &Statement) {
        for name in &stmt.facts.creates {
            self.insert(name.clone());
        }
        self.record_not_null_checks(stmt);
        self.record_constraint_names(stmt);
        if let NodeEnum::RenameStmt(r) = stmt.ast() {
            let renames_relation =
                r.rename_type == r.relation_type || r.rename_type == ObjectType::ObjectTable as i32;
            if let Some(rel) = r
                .relation
                .as_ref()
                .filter(|_| renames_relation && !r.newname.is_empty())
            {
                if self.contains(&ast::rel_name(rel)) {
                    let renamed = match ast::rel_schema(rel) {
                        Some(schema) => format!("{schema}.{}", r.newname),
                        None => r.newname.clone(),
                    };
                    self.insert(renamed);
                }
            }
        }
    }

    /// Tracks `ADD CONSTRAINT ... CHECK (col IS NOT NULL)` and its
    /// `VALIDATE CONSTRAINT`.
    fn record_not_null_checks(&mut self, stmt: &Statement) {
        let NodeEnum::AlterTableStmt(s) = stmt.ast() else {
            return;
        };
        let Some(rel) = s.relation.as_ref() else {
            return;
        };
        let table = ast::rel_name(rel);
        for cmd in s.cmds.iter().filter_map(|n| match &n.node {
            Some(NodeEnum::AlterTableCmd(c)) => Some(c),
            _ => None,
        }) {
            match AlterTableType::try_from(cmd.subtype) {
                Ok(AlterTableType::AtAddConstraint) => {
                    let Some(c) = cmd.def.as_deref().and_then(ast::as_constraint) else {
                        continue;
                    };
                    if c.contype != ConstrType::ConstrCheck as i32 {
                        continue;
                    }
                    let column = c
                        .raw_expr
                        .as_deref()
                        .and_then(crate::rules::set_not_null::not_null_column);
                    if let Some(column) = column {
                        self.not_null_checks.push((
                            table.clone(),
                            c.conname.clone(),
                            column,
                            !c.skip_validation,
                        ));
                    }
                }
                Ok(AlterTableType::AtValidateConstraint) => {
                    for check in self
                        .not_null_checks
                        .iter_mut()
                        .filter(|c| c.0 == table && c.1 == cmd.name)
                    {
                        check.3 = true;
                    }
                }
                _ => {}
            }
        }
    }

    /// Records the names of the constraints `stmt` adds: those it names
    /// and those PostgreSQL would name for it.
    fn record_constraint_names(&mut self, stmt: &Statement) {
        let mut added: Vec<(&protobuf::RangeVar, &protobuf::Constraint, Option<&str>)> = Vec::new();
        match stmt.ast() {
            NodeEnum::AlterTableStmt(s) => {
                let Some(rel) = s.relation.as_ref() else {
                    return;
                };
                for cmd in s.cmds.iter().filter_map(|n| match &n.node {
                    Some(NodeEnum::AlterTableCmd(c)) => Some(c),
                    _ => None,
                }) {
                    if cmd.subtype == AlterTableType::AtAddConstraint as i32 {
                        if let Some(c) = cmd.def.as_deref().and_then(ast::as_constraint) {
                            added.push((rel, c, None));
                        }
                    }
                    if let Some(col) = cmd.def.as_deref().and_then(ast::as_column_def) {
                        for c in col.constraints.iter().filter_map(ast::as_constraint) {
                            added.push((rel, c, Some(col.colname.as_str())));
                        }
                    }
                }
            }
            NodeEnum::CreateStmt(s) => {
                let Some(rel) = s.relation.as_ref() else {
                    return;
                };
                for elt in &s.table_elts {
                    if let Some(c) = ast::as_constraint(elt) {
                        added.push((rel, c, None));
                    } else if let Some(col) = ast::as_column_def(elt) {
                        for c in col.constraints.iter().filter_map(ast::as_constraint) {
                            added.push((rel, c, Some(col.colname.as_str())));
                        }
                    }
                }
            }
            _ => return,
        }
        for (rel, c, column) in added {
            let schema = schema_or_public(rel);
            let name = if c.conname.is_empty() {
                let taken = |n: &str| self.constraint_name_taken(&format!("{schema}.{n}"));
                match default_constraint_name(rel, c, column, &taken) {
                    Some(n) => n,
                    None => continue,
                }
            } else {
                c.conname.clone()
            };
            self.constraint_names.insert(format!("{schema}.{name}"));
        }
    }

    /// Whether a constraint `schema.name` exists already: created by an
    /// earlier statement, or given by [`NewRelations::take_constraint_names`]
    /// (what the database holds). PostgreSQL keeps constraint names unique
    /// per schema when it chooses one.
    pub fn constraint_name_taken(&self, qualified: &str) -> bool {
        self.constraint_names.contains(qualified)
    }

    /// Marks constraint names (`schema.name`) as used, e.g. those the
    /// target database holds, so an unnamed constraint is named the way
    /// PostgreSQL would name it there.
    pub fn take_constraint_names(&mut self, names: impl IntoIterator<Item = String>) {
        self.constraint_names.extend(names);
    }

    /// The constraint names (`schema.name`) known to be used.
    pub fn constraint_names(&self) -> &BTreeSet<String> {
        &self.constraint_names
    }

    /// Whether a validated `CHECK (column IS NOT NULL)` on `table` was
    /// recorded, so `SET NOT NULL` needs no scan.
    pub fn proves_not_null(&self, table: &str, column: &str) -> bool {
        self.not_null_checks
            .iter()
            .any(|c| c.3 && c.0 == table && c.2 == column)
    }

    /// Adds one relation by name.
    pub fn insert(&mut self, name: impl Into<String>) {
        let name = name.into();
        let (qualified, relname) = split_last(&name);
        let entry = self.by_relname.entry(relname.to_string()).or_default();
        if qualified {
            entry.0 = true;
        } else {
            entry.1 = true;
        }
        self.names.insert(name);
    }

    /// Whether `name` was created in this run. An unqualified name matches
    /// a qualified one with the same relation name (and the other way
    /// round), since `search_path` is unknown here.
    pub fn contains(&self, name: &str) -> bool {
        if self.names.contains(name) {
            return true;
        }
        let (qualified, relname) = split_last(name);
        match self.by_relname.get(relname) {
            Some((seen_qualified, seen_bare)) => {
                if qualified {
                    *seen_bare
                } else {
                    *seen_qualified
                }
            }
            None => false,
        }
    }
}

/// Whether a name is schema-qualified, and its relation name.
fn split_last(name: &str) -> (bool, &str) {
    match name.rsplit_once('.') {
        Some((_, last)) => (true, last),
        None => (false, name),
    }
}

/// The safe-by-default rewrite of one statement, or `None` when the
/// statement is already safe, targets a relation created in this run
/// (`new`), or has no mechanical rewrite (e.g. several ALTER TABLE actions
/// in one statement, DROP INDEX ... CASCADE).
pub fn safe_form(stmt: &Statement, new: &NewRelations) -> Option<SafeForm> {
    if sets_proven_not_null(stmt, new) {
        return None;
    }
    safe_form_with(stmt, &|name| new.contains(name), &|qualified| {
        new.constraint_name_taken(qualified)
    })
}

/// Whether `stmt` is `ALTER TABLE t ALTER COLUMN c SET NOT NULL` after a
/// validated `CHECK (c IS NOT NULL)` on `t`: PostgreSQL then skips the
/// scan, so the statement is already safe.
fn sets_proven_not_null(stmt: &Statement, new: &NewRelations) -> bool {
    let NodeEnum::AlterTableStmt(s) = stmt.ast() else {
        return false;
    };
    let (Some(rel), [cmd]) = (s.relation.as_ref(), s.cmds.as_slice()) else {
        return false;
    };
    match &cmd.node {
        Some(NodeEnum::AlterTableCmd(c)) => {
            c.subtype == AlterTableType::AtSetNotNull as i32
                && new.proves_not_null(&ast::rel_name(rel), &c.name)
        }
        _ => false,
    }
}

/// [`safe_form`] with any test for "created in this run" and for
/// "constraint name already used".
pub(crate) fn safe_form_with(
    stmt: &Statement,
    is_new: &dyn Fn(&str) -> bool,
    taken: &dyn Fn(&str) -> bool,
) -> Option<SafeForm> {
    match stmt.ast() {
        NodeEnum::IndexStmt(s) if !s.concurrent => {
            let table = s.relation.as_ref()?;
            if is_new(&ast::rel_name(table)) {
                return None;
            }
            let at = keyword_end(&stmt.text, Token::Index)?;
            let text = format!("{} CONCURRENTLY{}", &stmt.text[..at], &stmt.text[at..]);
            Some(SafeForm {
                statements: vec![text],
                rewrite: "concurrently",
                note:
                    "builds the index with CONCURRENTLY, outside a transaction, so writes continue \
                       (SHARE UPDATE EXCLUSIVE instead of SHARE)"
                        .into(),
            })
        }
        NodeEnum::DropStmt(s)
            if s.remove_type == ObjectType::ObjectIndex as i32 && !s.concurrent =>
        {
            if s.behavior == protobuf::DropBehavior::DropCascade as i32 {
                return None;
            }
            let names: Vec<Vec<String>> = s
                .objects
                .iter()
                .map(ast::name_parts)
                .collect::<Option<_>>()?;
            if names.iter().all(|parts| is_new(&parts.join("."))) {
                return None;
            }
            let if_exists = if s.missing_ok { " IF EXISTS" } else { "" };
            let statements = names
                .iter()
                .map(|parts| format!("DROP INDEX CONCURRENTLY{if_exists} {}", quote_parts(parts)))
                .collect();
            Some(SafeForm {
                statements,
                rewrite: "concurrently",
                note: "drops the index with CONCURRENTLY, outside a transaction, so queries on the table \
                       are not blocked while it waits"
                    .into(),
            })
        }
        NodeEnum::ReindexStmt(s) if !ast::has_option(&s.params, "concurrently") => {
            let rel = s.relation.as_ref()?;
            if is_new(&ast::rel_name(rel)) {
                return None;
            }
            let kind = if s.kind == ReindexObjectType::ReindexObjectIndex as i32 {
                "INDEX"
            } else if s.kind == ReindexObjectType::ReindexObjectTable as i32 {
                "TABLE"
            } else {
                return None;
            };
            Some(SafeForm {
                statements: vec![format!("REINDEX {kind} CONCURRENTLY {}", quote_rel(rel))],
                rewrite: "concurrently",
                note: "rebuilds with CONCURRENTLY, outside a transaction, so writes continue"
                    .into(),
            })
        }
        NodeEnum::AlterTableStmt(s) => alter_table_safe_form(stmt, s, is_new, taken),
        _ => None,
    }
}

fn alter_table_safe_form(
    stmt: &Statement,
    s: &protobuf::AlterTableStmt,
    is_new: &dyn Fn(&str) -> bool,
    taken: &dyn Fn(&str) -> bool,
) -> Option<SafeForm> {
    if s.objtype != ObjectType::ObjectTable as i32 || s.cmds.len() != 1 {
        return None;
    }
    let rel = s.relation.as_ref()?;
    if is_new(&ast::rel_name(rel)) {
        return None;
    }
    let Some(NodeEnum::AlterTableCmd(cmd)) = &s.cmds[0].node else {
        return None;
    };
    let table = quote_rel(rel);
    let schema = schema_or_public(rel);
    let taken = &|n: &str| taken(&format!("{schema}.{n}"));
    match AlterTableType::try_from(cmd.subtype).ok()? {
        AlterTableType::AtAddConstraint => {
            let c = cmd.def.as_deref().and_then(ast::as_constraint)?;
            match ConstrType::try_from(c.contype).ok()? {
                ConstrType::ConstrForeign | ConstrType::ConstrCheck if !c.skip_validation => {
                    not_valid_then_validate(stmt, rel, &table, c, taken)
                }
                ConstrType::ConstrUnique | ConstrType::ConstrPrimary if c.indexname.is_empty() => {
                    unique_index_concurrently(rel, &table, c, is_new, taken)
                }
                _ => None,
            }
        }
        AlterTableType::AtSetNotNull => {
            let column = &cmd.name;
            // Not `<table>_<col>_not_null`: PostgreSQL 18 gives that name
            // to the NOT NULL constraint SET NOT NULL catalogues, and a
            // CHECK holding it would push that one to `…_not_null1`. The
            // helper is dropped again, so the catalog is the plain one.
            let check = choose_constraint_name(&rel.relname, Some(column), "lull_nn", taken);
            let (col, chk) = (quote_ident(column), quote_ident(&check));
            Some(SafeForm {
                statements: vec![
                    format!("ALTER TABLE {table} ADD CONSTRAINT {chk} CHECK ({col} IS NOT NULL) NOT VALID"),
                    format!("ALTER TABLE {table} VALIDATE CONSTRAINT {chk}"),
                    format!("ALTER TABLE {table} ALTER COLUMN {col} SET NOT NULL"),
                    format!("ALTER TABLE {table} DROP CONSTRAINT {chk}"),
                ],
                rewrite: "check-then-set-not-null",
                note: "proves NOT NULL with a CHECK validated under SHARE UPDATE EXCLUSIVE; SET NOT NULL \
                       then uses it and skips the full scan under ACCESS EXCLUSIVE"
                    .into(),
            })
        }
        _ => None,
    }
}

fn not_valid_then_validate(
    stmt: &Statement,
    rel: &protobuf::RangeVar,
    table: &str,
    c: &protobuf::Constraint,
    taken: &dyn Fn(&str) -> bool,
) -> Option<SafeForm> {
    let is_fk = c.contype == ConstrType::ConstrForeign as i32;
    let name = if c.conname.is_empty() {
        default_constraint_name(rel, c, None, taken)?
    } else {
        c.conname.clone()
    };
    let mut text = stmt.text.clone();
    if c.conname.is_empty() {
        let at = stmt.offset_of(c.location)?.checked_sub(stmt.span.start)?;
        if !text.is_char_boundary(at) || at > text.len() {
            return None;
        }
        text.insert_str(at, &format!("CONSTRAINT {} ", quote_ident(&name)));
    }
    text.push_str(" NOT VALID");
    let what = if is_fk {
        "foreign key"
    } else {
        "check constraint"
    };
    Some(SafeForm {
        statements: vec![text, format!("ALTER TABLE {table} VALIDATE CONSTRAINT {}", quote_ident(&name))],
        rewrite: "not-valid-then-validate",
        note: format!(
            "adds the {what} NOT VALID (a short lock, no scan), then validates existing rows under \
             SHARE UPDATE EXCLUSIVE, which lets reads and writes continue; run the two in separate transactions"
        ),
    })
}

fn unique_index_concurrently(
    rel: &protobuf::RangeVar,
    table: &str,
    c: &protobuf::Constraint,
    is_new: &dyn Fn(&str) -> bool,
    taken: &dyn Fn(&str) -> bool,
) -> Option<SafeForm> {
    let primary = c.contype == ConstrType::ConstrPrimary as i32;
    let keys: Vec<&str> = c
        .keys
        .iter()
        .map(ast::string_value)
        .collect::<Option<_>>()?;
    if keys.is_empty() {
        return None;
    }
    // PostgreSQL names the index (and so the constraint) with
    // ChooseRelationName, which avoids relation names in the schema.
    let relation_taken = |n: &str| match ast::rel_schema(rel) {
        Some(schema) => is_new(&format!("{schema}.{n}")),
        None => is_new(n),
    };
    let index = if !c.conname.is_empty() {
        c.conname.clone()
    } else if primary {
        choose_constraint_name(&rel.relname, None, "pkey", &relation_taken)
    } else {
        choose_constraint_name(&rel.relname, Some(&keys.join("_")), "key", &relation_taken)
    };
    let cols = keys
        .iter()
        .map(|k| quote_ident(k))
        .collect::<Vec<_>>()
        .join(", ");
    let mut create = format!(
        "CREATE UNIQUE INDEX CONCURRENTLY {} ON {table} ({cols})",
        quote_ident(&index)
    );
    let including: Vec<&str> = c
        .including
        .iter()
        .map(ast::string_value)
        .collect::<Option<_>>()?;
    if !including.is_empty() {
        let inc = including
            .iter()
            .map(|k| quote_ident(k))
            .collect::<Vec<_>>()
            .join(", ");
        create.push_str(&format!(" INCLUDE ({inc})"));
    }
    if c.nulls_not_distinct {
        create.push_str(" NULLS NOT DISTINCT");
    }
    let kind = if primary { "PRIMARY KEY" } else { "UNIQUE" };
    let mut attach = format!(
        "ALTER TABLE {table} ADD CONSTRAINT {0} {kind} USING INDEX {0}",
        quote_ident(&index)
    );
    if c.deferrable {
        attach.push_str(" DEFERRABLE");
    }
    if c.initdeferred {
        attach.push_str(" INITIALLY DEFERRED");
    }
    let mut note = "builds the unique index CONCURRENTLY (writes continue), then attaches it as the constraint \
                    with a short ACCESS EXCLUSIVE lock and no scan"
        .to_string();
    let mut statements = Vec::new();
    if primary {
        // A primary key makes its columns NOT NULL, which scans the table
        // under ACCESS EXCLUSIVE unless a validated CHECK proves it.
        for key in &keys {
            let check = choose_constraint_name(&rel.relname, Some(key), "lull_nn", taken);
            let (col, chk) = (quote_ident(key), quote_ident(&check));
            statements.extend([
                format!(
                    "ALTER TABLE {table} ADD CONSTRAINT {chk} CHECK ({col} IS NOT NULL) NOT VALID"
                ),
                format!("ALTER TABLE {table} VALIDATE CONSTRAINT {chk}"),
                format!("ALTER TABLE {table} ALTER COLUMN {col} SET NOT NULL"),
                format!("ALTER TABLE {table} DROP CONSTRAINT IF EXISTS {chk}"),
            ]);
        }
        note = format!(
            "proves each key column NOT NULL with a CHECK validated under SHARE UPDATE EXCLUSIVE \
             (SET NOT NULL then skips its scan), then {note}"
        );
    }
    statements.extend([create, attach]);
    Some(SafeForm {
        statements,
        rewrite: "unique-index-concurrently",
        note,
    })
}

/// The name PostgreSQL gives an unnamed constraint, as its
/// `ChooseConstraintName` does: FOREIGN KEY `<table>_<cols>_fkey`; CHECK
/// `<table>_<col>_check` when the expression uses exactly one column, else
/// `<table>_check`; PRIMARY KEY `<table>_pkey`; UNIQUE `<table>_<cols>_key`;
/// each shortened to 63 bytes and, while the name is `taken`, given the
/// suffix 1, 2, … on its label. `column` is the column a column-level
/// constraint is written on. `None` for other kinds.
fn default_constraint_name(
    rel: &protobuf::RangeVar,
    c: &protobuf::Constraint,
    column: Option<&str>,
    taken: &dyn Fn(&str) -> bool,
) -> Option<String> {
    let table = rel.relname.as_str();
    let cols = |list: &[protobuf::Node]| -> Option<String> {
        let names: Vec<&str> = list.iter().map(ast::string_value).collect::<Option<_>>()?;
        Some(names.join("_"))
    };
    let (name2, label) = match ConstrType::try_from(c.contype).ok()? {
        ConstrType::ConstrForeign => {
            let mine = if c.fk_attrs.is_empty() {
                column.map(str::to_string)
            } else {
                Some(cols(&c.fk_attrs)?)
            };
            (mine, "fkey")
        }
        ConstrType::ConstrCheck => {
            let expr = c.raw_expr.as_deref()?.node.as_ref()?;
            let mut used: BTreeSet<&str> = BTreeSet::new();
            for (n, ..) in expr.nodes() {
                if let pg_query::NodeRef::ColumnRef(col) = n {
                    if let Some(name) = col.fields.iter().rev().find_map(ast::string_value) {
                        used.insert(name);
                    }
                }
            }
            let one = (used.len() == 1).then(|| used.into_iter().next().unwrap_or_default());
            (one.map(str::to_string), "check")
        }
        ConstrType::ConstrPrimary => (None, "pkey"),
        ConstrType::ConstrUnique => {
            let mine = if c.keys.is_empty() {
                column.map(str::to_string)
            } else {
                Some(cols(&c.keys)?)
            };
            (mine, "key")
        }
        _ => return None,
    };
    Some(choose_constraint_name(
        table,
        name2.as_deref(),
        label,
        taken,
    ))
}

/// PostgreSQL's `ChooseConstraintName`: [`make_object_name`], and while
/// the result is `taken`, the same with the label `label1`, `label2`, ….
pub fn choose_constraint_name(
    name1: &str,
    name2: Option<&str>,
    label: &str,
    taken: &dyn Fn(&str) -> bool,
) -> String {
    let mut name = make_object_name(name1, name2, label);
    let mut pass = 0;
    while taken(&name) {
        pass += 1;
        name = make_object_name(name1, name2, &format!("{label}{pass}"));
    }
    name
}

/// PostgreSQL's `makeObjectName`: `name1_name2_label`, shortening the
/// longer of the two names until the whole fits in 63 bytes.
pub fn make_object_name(name1: &str, name2: Option<&str>, label: &str) -> String {
    let overhead = label.len() + 1 + usize::from(name2.is_some());
    let avail = MAX_IDENTIFIER_BYTES.saturating_sub(overhead);
    let (mut len1, mut len2) = (name1.len(), name2.map_or(0, str::len));
    while len1 + len2 > avail {
        if len1 > len2 {
            len1 -= 1;
        } else {
            len2 -= 1;
        }
    }
    let mut out = clip(name1, len1).to_string();
    if let Some(name2) = name2 {
        out.push('_');
        out.push_str(clip(name2, len2));
    }
    out.push('_');
    out.push_str(label);
    out
}

/// The longest prefix of `s` of at most `len` bytes ending on a character
/// boundary.
fn clip(s: &str, mut len: usize) -> &str {
    while !s.is_char_boundary(len) {
        len -= 1;
    }
    &s[..len]
}

/// The schema a relation's constraints are named in: as written, else
/// `public` (the usual `search_path`; lull cannot see the session's).
fn schema_or_public(rel: &protobuf::RangeVar) -> &str {
    ast::rel_schema(rel).unwrap_or("public")
}

fn quote_rel(rel: &protobuf::RangeVar) -> String {
    quote_qualified(ast::rel_schema(rel), &rel.relname)
}

fn quote_parts(parts: &[String]) -> String {
    parts
        .iter()
        .map(|p| quote_ident(p))
        .collect::<Vec<_>>()
        .join(".")
}

/// Byte offset just after the first token of kind `kind` in `text`.
fn keyword_end(text: &str, kind: Token) -> Option<usize> {
    let scan = pg_query::scan(text).ok()?;
    scan.tokens
        .iter()
        .find(|t| t.token == kind as i32)
        .map(|t| t.end as usize)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse;

    fn form(sql: &str) -> Option<SafeForm> {
        let stmts = parse(sql).unwrap();
        let f = safe_form(&stmts[0], &NewRelations::new());
        if let Some(f) = &f {
            for s in &f.statements {
                assert!(parse(s).is_ok(), "safe form does not parse: {s}");
            }
        }
        f
    }

    fn statements(sql: &str) -> Vec<String> {
        form(sql)
            .unwrap_or_else(|| panic!("no safe form for {sql}"))
            .statements
    }

    #[test]
    fn create_index_becomes_concurrent_keeping_text() {
        assert_eq!(
            statements("create unique index if not exists i on t (a) where a > 0"),
            vec!["create unique index CONCURRENTLY if not exists i on t (a) where a > 0"]
        );
        assert_eq!(
            statements("CREATE INDEX ON \"T\" (a)"),
            vec!["CREATE INDEX CONCURRENTLY ON \"T\" (a)"]
        );
        assert!(form("CREATE INDEX CONCURRENTLY i ON t (a)").is_none());
    }

    #[test]
    fn new_tables_need_no_safe_form() {
        let stmts = parse("CREATE TABLE app.t (a int); CREATE INDEX i ON t (a)").unwrap();
        let mut new = NewRelations::new();
        new.record(&stmts[0]);
        assert!(safe_form(&stmts[1], &new).is_none());
        assert!(
            new.contains("t")
                && new.contains("app.t")
                && !new.contains("other.t")
                && !new.contains("u")
        );
        assert!(safe_form(&stmts[1], &NewRelations::new()).is_some());
    }

    #[test]
    fn drop_index_splits_per_index() {
        assert_eq!(
            statements("DROP INDEX IF EXISTS a, app.\"B\""),
            vec![
                "DROP INDEX CONCURRENTLY IF EXISTS a",
                "DROP INDEX CONCURRENTLY IF EXISTS app.\"B\""
            ]
        );
        assert!(form("DROP INDEX a CASCADE").is_none());
    }

    #[test]
    fn foreign_key_and_check_get_not_valid_and_validate() {
        assert_eq!(
            statements("ALTER TABLE orders ADD FOREIGN KEY (user_id) REFERENCES users (id)"),
            vec![
                "ALTER TABLE orders ADD CONSTRAINT orders_user_id_fkey FOREIGN KEY (user_id) REFERENCES users (id) NOT VALID",
                "ALTER TABLE orders VALIDATE CONSTRAINT orders_user_id_fkey",
            ]
        );
        assert_eq!(
            statements("alter table \"Order\" add constraint pos check (qty > 0)"),
            vec![
                "alter table \"Order\" add constraint pos check (qty > 0) NOT VALID",
                "ALTER TABLE \"Order\" VALIDATE CONSTRAINT pos",
            ]
        );
        assert_eq!(
            statements("ALTER TABLE t ADD CHECK (qty > 0)")[1],
            "ALTER TABLE t VALIDATE CONSTRAINT t_qty_check"
        );
        // One column, used twice: PostgreSQL names it after the column;
        // several columns, or none: after the table alone.
        for (sql, name) in [
            (
                "ALTER TABLE t ADD CHECK (qty > 0 AND qty < 10)",
                "t_qty_check",
            ),
            ("ALTER TABLE t ADD CHECK (lo < hi)", "t_check"),
            ("ALTER TABLE s.t ADD CHECK (t.lo < 5)", "t_lo_check"),
            ("ALTER TABLE t ADD CHECK (true)", "t_check"),
            (
                "ALTER TABLE t ADD FOREIGN KEY (a, b) REFERENCES u",
                "t_a_b_fkey",
            ),
        ] {
            assert!(statements(sql)[1].ends_with(&format!(" {name}")), "{sql}");
        }
        assert!(form("ALTER TABLE t ADD CONSTRAINT c CHECK (a > 0) NOT VALID").is_none());
        assert!(form("ALTER TABLE t ADD CHECK (a > 0), ADD COLUMN b int").is_none());
    }

    #[test]
    fn set_not_null_goes_through_a_check() {
        assert_eq!(
            statements("ALTER TABLE app.users ALTER COLUMN email SET NOT NULL"),
            vec![
                "ALTER TABLE app.users ADD CONSTRAINT users_email_lull_nn CHECK (email IS NOT NULL) NOT VALID",
                "ALTER TABLE app.users VALIDATE CONSTRAINT users_email_lull_nn",
                "ALTER TABLE app.users ALTER COLUMN email SET NOT NULL",
                "ALTER TABLE app.users DROP CONSTRAINT users_email_lull_nn",
            ]
        );
    }

    #[test]
    fn set_not_null_after_a_validated_check_is_left_alone() {
        let stmts = parse(
            "ALTER TABLE t ADD CONSTRAINT c CHECK (a IS NOT NULL) NOT VALID; \
             ALTER TABLE t VALIDATE CONSTRAINT c; \
             ALTER TABLE t ALTER COLUMN a SET NOT NULL; \
             ALTER TABLE t ALTER COLUMN b SET NOT NULL",
        )
        .unwrap();
        let mut new = NewRelations::new();
        new.record(&stmts[0]);
        assert!(safe_form(&stmts[2], &new).is_some(), "not validated yet");
        new.record(&stmts[1]);
        assert!(safe_form(&stmts[2], &new).is_none());
        assert!(safe_form(&stmts[3], &new).is_some(), "another column");
    }

    #[test]
    fn unique_and_primary_key_use_a_concurrent_index() {
        assert_eq!(
            statements("ALTER TABLE users ADD CONSTRAINT users_email_key UNIQUE (email)"),
            vec![
                "CREATE UNIQUE INDEX CONCURRENTLY users_email_key ON users (email)",
                "ALTER TABLE users ADD CONSTRAINT users_email_key UNIQUE USING INDEX users_email_key",
            ]
        );
        assert_eq!(
            statements("ALTER TABLE users ADD PRIMARY KEY (id)"),
            vec![
                "ALTER TABLE users ADD CONSTRAINT users_id_lull_nn CHECK (id IS NOT NULL) NOT VALID",
                "ALTER TABLE users VALIDATE CONSTRAINT users_id_lull_nn",
                "ALTER TABLE users ALTER COLUMN id SET NOT NULL",
                "ALTER TABLE users DROP CONSTRAINT IF EXISTS users_id_lull_nn",
                "CREATE UNIQUE INDEX CONCURRENTLY users_pkey ON users (id)",
                "ALTER TABLE users ADD CONSTRAINT users_pkey PRIMARY KEY USING INDEX users_pkey",
            ]
        );
    }

    #[test]
    fn clashing_names_get_the_suffix_postgres_gives() {
        let stmts = parse(
            "CREATE TABLE other (a int CONSTRAINT t_a_check CHECK (a > 1)); \
             ALTER TABLE t ADD CHECK (a > 0); \
             ALTER TABLE t ADD CHECK (a < 9); \
             ALTER TABLE t ADD CHECK (a <> 5)",
        )
        .unwrap();
        let mut new = NewRelations::new();
        let mut names = Vec::new();
        for stmt in &stmts {
            if let Some(f) = safe_form(stmt, &new) {
                names.push(f.statements[1].rsplit(' ').next().unwrap().to_string());
            }
            new.record(stmt);
        }
        assert_eq!(names, vec!["t_a_check1", "t_a_check2", "t_a_check3"]);
        assert_eq!(
            choose_constraint_name(&"x".repeat(70), None, "check", &|n| n.ends_with("_check")),
            format!("{}_check1", "x".repeat(56))
        );
    }

    #[test]
    fn reindex_becomes_concurrent() {
        assert_eq!(
            statements("REINDEX INDEX app.i"),
            vec!["REINDEX INDEX CONCURRENTLY app.i"]
        );
        assert!(form("REINDEX DATABASE x").is_none());
    }

    #[test]
    fn object_names_are_shortened_like_postgres() {
        let long = "a".repeat(70);
        let name = make_object_name(&long, Some("col"), "fkey");
        assert_eq!(name.len(), 63);
        assert!(name.ends_with("_col_fkey"));
        assert_eq!(make_object_name("t", Some("a_b"), "key"), "t_a_b_key");
    }
}
