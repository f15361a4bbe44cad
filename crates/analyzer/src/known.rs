//! What a migration history (or a catalog) says about the schema beyond
//! which relations exist: which tables are partitioned and what their
//! partitions are, which columns are declared NOT NULL, which columns an
//! index covers, and which CHECK constraints a table has and whether they
//! are validated.
//!
//! The rules that need such facts (`primary-key-using-index`,
//! `attach-partition-scan`, `concurrent-index-on-partitioned-table`), the
//! fixer and the runner's planner read them from a [`Known`] that has
//! absorbed every statement before the one in question. It is not a
//! schema model: what the statements do not say (a column made NOT NULL by
//! hand, a partition attached outside the migrations) is not known, and the
//! callers treat "not known" as "not proven".
//!
//! Names are kept as written (`schema.name` when a schema was written) and
//! matched loosely, as [`crate::NewRelations`] does: an unqualified name
//! matches a qualified one with the same last part, since `search_path` is
//! unknown here.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use pg_query::protobuf::{self, AlterTableType, ConstrType, ObjectType};
use pg_query::{NodeEnum, NodeRef};

use crate::ast;
use crate::parse::Statement;

/// A partitioned table and its partitions.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Partitioned {
    /// The table as written (`schema.name` when a schema was written).
    pub name: String,
    /// The partition key's columns (expressions left out); empty when
    /// unknown (e.g. learnt from the catalog or an ATTACH only).
    pub key: Vec<String>,
    /// Its direct partitions, in the order they were created or attached.
    pub partitions: Vec<String>,
}

/// An index whose definition the history holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KnownIndex {
    /// Its table as written.
    pub table: String,
    /// Its key columns in order; `None` for an expression.
    pub columns: Vec<Option<String>>,
}

/// A CHECK constraint the history added.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KnownCheck {
    /// Its name; empty when unnamed (PostgreSQL chose one).
    pub name: String,
    /// The columns its expression uses.
    pub columns: BTreeSet<String>,
    /// Added without NOT VALID, or validated since.
    pub validated: bool,
}

/// Facts about the schema gathered from statements (see the module docs).
#[derive(Debug, Clone, Default)]
pub struct Known {
    /// Shared between copies until one changes it: partitioned tables are
    /// few and change rarely, and lint hands every file a copy.
    partitioned: Arc<Vec<Partitioned>>,
    /// (last part of the table name, column).
    not_null: BTreeSet<(String, String)>,
    /// Last part of the index name → the index.
    indexes: BTreeMap<String, KnownIndex>,
    /// Last part of the table name → its CHECK constraints.
    checks: BTreeMap<String, Vec<KnownCheck>>,
}

/// Whether two names written in statements can be the same relation.
pub(crate) fn same_relation(a: &str, b: &str) -> bool {
    if a == b {
        return true;
    }
    match (a.rsplit_once('.'), b.rsplit_once('.')) {
        (Some((_, x)), None) => x == b,
        (None, Some((_, y))) => a == y,
        _ => false,
    }
}

fn last_part(name: &str) -> &str {
    name.rsplit('.').next().unwrap_or(name)
}

impl Known {
    /// Nothing known.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether no partitioned table is known.
    pub fn knows_no_partitions(&self) -> bool {
        self.partitioned.is_empty()
    }

    /// Records a partitioned table and its partitions, e.g. from the
    /// catalog (`relkind = 'p'` and `pg_inherits`).
    pub fn add_partitioned(&mut self, name: &str, partitions: impl IntoIterator<Item = String>) {
        let entry = self.entry(name);
        for p in partitions {
            if !entry.partitions.iter().any(|x| same_relation(x, &p)) {
                entry.partitions.push(p);
            }
        }
    }

    /// The partitioned table `name`, when it is known to be one.
    pub fn partitioned(&self, name: &str) -> Option<&Partitioned> {
        self.partitioned
            .iter()
            .find(|p| same_relation(&p.name, name))
    }

    /// Whether `table` is known to be partitioned.
    pub fn is_partitioned(&self, table: &str) -> bool {
        self.partitioned(table).is_some()
    }

    /// The partitioned table `partition` is a partition of, when known.
    pub fn parent_of(&self, partition: &str) -> Option<&Partitioned> {
        self.partitioned
            .iter()
            .find(|p| p.partitions.iter().any(|x| same_relation(x, partition)))
    }

    /// Whether `column` of `table` is known to be NOT NULL (declared so,
    /// part of a primary key, or SET NOT NULL since).
    pub fn is_not_null(&self, table: &str, column: &str) -> bool {
        self.not_null
            .contains(&(last_part(table).to_string(), column.to_string()))
    }

    /// The index `name`, when the history created it.
    pub fn index(&self, name: &str) -> Option<&KnownIndex> {
        self.indexes.get(last_part(name))
    }

    /// The CHECK constraints known on `table`.
    pub fn checks(&self, table: &str) -> &[KnownCheck] {
        self.checks.get(last_part(table)).map_or(&[], Vec::as_slice)
    }

    fn entry(&mut self, name: &str) -> &mut Partitioned {
        let at = match self
            .partitioned
            .iter()
            .position(|p| same_relation(&p.name, name))
        {
            Some(at) => at,
            None => {
                Arc::make_mut(&mut self.partitioned).push(Partitioned {
                    name: name.to_string(),
                    ..Partitioned::default()
                });
                self.partitioned.len() - 1
            }
        };
        &mut Arc::make_mut(&mut self.partitioned)[at]
    }

    /// A copy that knows only the partitioned tables (cheap: shared until
    /// changed), for a file none of whose statements asks more.
    pub(crate) fn partitions_only(&self) -> Known {
        Known {
            partitioned: self.partitioned.clone(),
            ..Known::default()
        }
    }

    fn forget_table(&mut self, name: &str) {
        let involved = self.partitioned.iter().any(|p| {
            same_relation(&p.name, name) || p.partitions.iter().any(|x| same_relation(x, name))
        });
        if involved {
            let partitioned = Arc::make_mut(&mut self.partitioned);
            partitioned.retain(|p| !same_relation(&p.name, name));
            for p in partitioned.iter_mut() {
                p.partitions.retain(|x| !same_relation(x, name));
            }
        }
        let last = last_part(name).to_string();
        self.not_null.retain(|(t, _)| *t != last);
        self.checks.remove(&last);
        self.indexes.retain(|_, i| !same_relation(&i.table, name));
    }

    /// Absorbs every statement, in order.
    pub fn absorb_all(&mut self, stmts: &[Statement]) {
        for s in stmts {
            self.absorb(s);
        }
    }

    /// Absorbs what one statement says.
    pub fn absorb(&mut self, stmt: &Statement) {
        match stmt.ast() {
            NodeEnum::CreateStmt(s) => self.create_table(s),
            NodeEnum::AlterTableStmt(s) if s.objtype == ObjectType::ObjectTable as i32 => {
                self.alter_table(s)
            }
            NodeEnum::IndexStmt(s) => {
                let Some((table, columns)) = index_columns(stmt) else {
                    return;
                };
                if s.idxname.is_empty() {
                    return;
                }
                self.indexes
                    .insert(s.idxname.clone(), KnownIndex { table, columns });
            }
            NodeEnum::DropStmt(s) => {
                let tables = s.remove_type == ObjectType::ObjectTable as i32;
                let indexes = s.remove_type == ObjectType::ObjectIndex as i32;
                for parts in s.objects.iter().filter_map(ast::name_parts) {
                    let name = parts.join(".");
                    if tables {
                        self.forget_table(&name);
                    } else if indexes {
                        self.indexes.remove(last_part(&name));
                    }
                }
            }
            _ => {}
        }
    }

    fn create_table(&mut self, s: &protobuf::CreateStmt) {
        let Some(rel) = &s.relation else { return };
        let table = ast::rel_name(rel);
        let last = rel.relname.clone();
        if let Some(spec) = &s.partspec {
            let key = spec
                .part_params
                .iter()
                .filter_map(|p| match &p.node {
                    Some(NodeEnum::PartitionElem(e)) if !e.name.is_empty() => Some(e.name.clone()),
                    _ => None,
                })
                .collect();
            self.entry(&table).key = key;
        }
        if s.partbound.is_some() {
            if let Some(parent) = s.inh_relations.first().and_then(ast::as_range_var) {
                self.add_partitioned(&ast::rel_name(parent), [table.clone()]);
            }
        }
        for elt in &s.table_elts {
            if let Some(col) = ast::as_column_def(elt) {
                self.column(&last, col);
            } else if let Some(c) = ast::as_constraint(elt) {
                self.constraint(&last, c, true);
            }
        }
    }

    fn column(&mut self, table: &str, col: &protobuf::ColumnDef) {
        let mut not_null = col.is_not_null;
        for c in col.constraints.iter().filter_map(ast::as_constraint) {
            match ConstrType::try_from(c.contype) {
                Ok(ConstrType::ConstrNotnull | ConstrType::ConstrPrimary) => not_null = true,
                Ok(ConstrType::ConstrCheck) => {
                    let mut check = check_of(c);
                    check.columns.insert(col.colname.clone());
                    self.checks
                        .entry(table.to_string())
                        .or_default()
                        .push(check);
                }
                _ => {}
            }
        }
        if not_null {
            self.not_null
                .insert((table.to_string(), col.colname.clone()));
        }
    }

    /// A table-level constraint; `new_table`: written in CREATE TABLE,
    /// where a CHECK is always validated (the table is empty).
    fn constraint(&mut self, table: &str, c: &protobuf::Constraint, new_table: bool) {
        match ConstrType::try_from(c.contype) {
            Ok(ConstrType::ConstrPrimary) => {
                let columns: Vec<String> = if c.indexname.is_empty() {
                    c.keys
                        .iter()
                        .filter_map(ast::string_value)
                        .map(str::to_string)
                        .collect()
                } else {
                    self.index(&c.indexname)
                        .map(|i| i.columns.iter().flatten().cloned().collect())
                        .unwrap_or_default()
                };
                for col in columns {
                    self.not_null.insert((table.to_string(), col));
                }
            }
            Ok(ConstrType::ConstrCheck) => {
                let mut check = check_of(c);
                if new_table {
                    check.validated = true;
                }
                self.checks
                    .entry(table.to_string())
                    .or_default()
                    .push(check);
            }
            _ => {}
        }
    }

    fn alter_table(&mut self, s: &protobuf::AlterTableStmt) {
        let Some(rel) = &s.relation else { return };
        let table = ast::rel_name(rel);
        let last = rel.relname.clone();
        for cmd in s.cmds.iter().filter_map(|n| match &n.node {
            Some(NodeEnum::AlterTableCmd(c)) => Some(c.as_ref()),
            _ => None,
        }) {
            match AlterTableType::try_from(cmd.subtype).unwrap_or(AlterTableType::Undefined) {
                AlterTableType::AtAddColumn => {
                    if let Some(col) = cmd.def.as_deref().and_then(ast::as_column_def) {
                        self.column(&last, col);
                    }
                }
                AlterTableType::AtSetNotNull => {
                    self.not_null.insert((last.clone(), cmd.name.clone()));
                }
                AlterTableType::AtDropNotNull | AlterTableType::AtDropColumn => {
                    self.not_null.remove(&(last.clone(), cmd.name.clone()));
                }
                AlterTableType::AtAddConstraint => {
                    if let Some(c) = cmd.def.as_deref().and_then(ast::as_constraint) {
                        self.constraint(&last, c, false);
                    }
                }
                AlterTableType::AtValidateConstraint => {
                    if let Some(checks) = self.checks.get_mut(&last) {
                        for c in checks.iter_mut().filter(|c| c.name == cmd.name) {
                            c.validated = true;
                        }
                    }
                }
                AlterTableType::AtDropConstraint => {
                    if let Some(checks) = self.checks.get_mut(&last) {
                        checks.retain(|c| c.name != cmd.name);
                    }
                }
                AlterTableType::AtAttachPartition => {
                    if let Some(part) = ast::partition_cmd(cmd).and_then(|p| p.name.as_ref()) {
                        self.add_partitioned(&table, [ast::rel_name(part)]);
                    }
                }
                AlterTableType::AtDetachPartition => {
                    if let Some(part) = ast::partition_cmd(cmd).and_then(|p| p.name.as_ref()) {
                        let name = ast::rel_name(part);
                        if let Some(p) = Arc::make_mut(&mut self.partitioned)
                            .iter_mut()
                            .find(|p| same_relation(&p.name, &table))
                        {
                            p.partitions.retain(|x| !same_relation(x, &name));
                        }
                    }
                }
                _ => {}
            }
        }
    }
}

/// The table (as written) and key columns (`None` for an expression) of a
/// CREATE INDEX.
pub fn index_columns(stmt: &Statement) -> Option<(String, Vec<Option<String>>)> {
    let NodeEnum::IndexStmt(s) = stmt.ast() else {
        return None;
    };
    let rel = s.relation.as_ref()?;
    let columns = s
        .index_params
        .iter()
        .map(|p| match &p.node {
            Some(NodeEnum::IndexElem(e)) if !e.name.is_empty() => Some(e.name.clone()),
            _ => None,
        })
        .collect();
    Some((ast::rel_name(rel), columns))
}

/// Whether a rule reading statement `stmt` needs more than the partitioned
/// tables: NOT NULL columns, index columns and CHECKs are asked only for
/// ADD PRIMARY KEY USING INDEX and ATTACH PARTITION.
pub(crate) fn asks_more_than_partitions(stmt: &Statement) -> bool {
    let NodeEnum::AlterTableStmt(s) = stmt.ast() else {
        return false;
    };
    s.cmds.iter().any(|n| match &n.node {
        Some(NodeEnum::AlterTableCmd(c)) => {
            c.subtype == AlterTableType::AtAttachPartition as i32
                || (c.subtype == AlterTableType::AtAddConstraint as i32
                    && c.def
                        .as_deref()
                        .and_then(ast::as_constraint)
                        .is_some_and(|k| {
                            k.contype == ConstrType::ConstrPrimary as i32 && !k.indexname.is_empty()
                        }))
        }
        _ => false,
    })
}

/// Whether a statement creates a partitioned table or a partition, or
/// attaches or detaches one.
pub(crate) fn partitions_something(stmt: &Statement) -> bool {
    match stmt.ast() {
        NodeEnum::CreateStmt(s) => s.partspec.is_some() || s.partbound.is_some(),
        NodeEnum::AlterTableStmt(s) => s.cmds.iter().any(|n| {
            matches!(&n.node, Some(NodeEnum::AlterTableCmd(c))
                if c.subtype == AlterTableType::AtAttachPartition as i32
                    || c.subtype == AlterTableType::AtDetachPartition as i32)
        }),
        _ => false,
    }
}

fn check_of(c: &protobuf::Constraint) -> KnownCheck {
    let mut columns = BTreeSet::new();
    if let Some(expr) = c.raw_expr.as_deref().and_then(|e| e.node.as_ref()) {
        for (n, ..) in expr.nodes() {
            if let NodeRef::ColumnRef(col) = n {
                if let Some(name) = col.fields.iter().rev().find_map(ast::string_value) {
                    columns.insert(name.to_string());
                }
            }
        }
    }
    KnownCheck {
        name: c.conname.clone(),
        columns,
        validated: !c.skip_validation,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse;

    fn known(sql: &str) -> Known {
        let mut k = Known::new();
        k.absorb_all(&parse(sql).unwrap());
        k
    }

    #[test]
    fn partitions_follow_create_attach_detach_and_drop() {
        let k = known(
            "CREATE TABLE app.ev (id int, at date) PARTITION BY RANGE (at); \
             CREATE TABLE ev_1 PARTITION OF app.ev FOR VALUES FROM ('2020-01-01') TO ('2021-01-01'); \
             CREATE TABLE ev_2 (id int, at date); \
             ALTER TABLE ev ATTACH PARTITION ev_2 FOR VALUES FROM ('2021-01-01') TO ('2022-01-01'); \
             CREATE TABLE ev_3 (id int, at date); \
             ALTER TABLE ev ATTACH PARTITION ev_3 DEFAULT; \
             ALTER TABLE ev DETACH PARTITION ev_3; DROP TABLE ev_1",
        );
        let p = k.partitioned("ev").unwrap();
        assert_eq!(p.name, "app.ev");
        assert_eq!(p.key, ["at"]);
        assert_eq!(p.partitions, ["ev_2"]);
        assert_eq!(k.parent_of("ev_2").map(|p| p.name.as_str()), Some("app.ev"));
        assert!(!k.is_partitioned("ev_2"));
        assert!(!known("CREATE TABLE t (a int)").is_partitioned("t"));
        assert!(
            !known("CREATE TABLE p (a int) PARTITION BY LIST (a); DROP TABLE p")
                .is_partitioned("p")
        );
    }

    #[test]
    fn not_null_columns_indexes_and_checks() {
        let k = known(
            "CREATE TABLE t (id int PRIMARY KEY, a int NOT NULL, b int, c int, d int CHECK (d > 0)); \
             ALTER TABLE t ALTER COLUMN b SET NOT NULL; \
             ALTER TABLE t ALTER COLUMN a DROP NOT NULL; \
             CREATE UNIQUE INDEX t_c ON t (c, lower(b::text)); \
             ALTER TABLE t ADD CONSTRAINT ck CHECK (c IS NOT NULL) NOT VALID",
        );
        assert!(k.is_not_null("t", "id") && k.is_not_null("app.t", "b"));
        assert!(!k.is_not_null("t", "a") && !k.is_not_null("t", "c"));
        assert_eq!(
            k.index("t_c").unwrap().columns,
            [Some("c".to_string()), None]
        );
        let checks = k.checks("t");
        assert_eq!(checks.len(), 2);
        assert!(checks[0].validated && checks[0].columns.contains("d"));
        assert!(!checks[1].validated);
        let mut k = k;
        k.absorb_all(&parse("ALTER TABLE t VALIDATE CONSTRAINT ck").unwrap());
        assert!(k.checks("t")[1].validated);
        k.absorb_all(&parse("ALTER TABLE t DROP CONSTRAINT ck").unwrap());
        assert_eq!(k.checks("t").len(), 1);
    }
}
