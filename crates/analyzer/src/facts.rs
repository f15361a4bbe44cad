//! What one statement does to the database: its class, the lock it takes
//! on each relation it names, whether it rewrites or fully scans a table,
//! and whether it may run inside a transaction block.
//!
//! The lock modes follow PostgreSQL 14 to 18 (`AlterTableGetLockLevel`
//! and friends) and every claim is checked against a real server of each
//! of those majors by `tests/locks.rs`. Facts are derived for one target
//! major; where a mode changed between majors the change is written down
//! per major in [`crate::versions`], and so is SQL a major rejects. Claims cover the relations a statement *names* (plus
//! the relations it creates and the tables its foreign keys reference).
//! Locks PostgreSQL takes on relations found only through the catalog — a
//! table's own indexes and TOAST table, the table of an index named in
//! `DROP INDEX`, the partitions of a partitioned table, objects reached by
//! `CASCADE` — cannot be known from the text and are not listed.

use std::cmp::Ordering;

use pg_query::protobuf::{
    self, AlterTableType, ConstrType, GrantTargetType, ObjectType, ReindexObjectType,
    TransactionStmtKind,
};
use pg_query::NodeEnum;
use serde::Serialize;

use crate::ast;
use crate::versions::{self, Requirement, GRANT_ON_RELATION};

/// Which default policy runs a statement (DESIGN.md, "Statement classes").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Class {
    /// Schema changes: CREATE/ALTER/DROP of tables and friends, plain
    /// CREATE INDEX, TRUNCATE, LOCK. Run in a transaction with a short,
    /// retried lock timeout.
    Ddl,
    /// Data changes and queries: INSERT, UPDATE, DELETE, MERGE, COPY, SELECT.
    Dml,
    /// Index work that must run outside a transaction: CREATE / DROP /
    /// REINDEX ... CONCURRENTLY.
    Index,
    /// BEGIN, COMMIT, ROLLBACK, SAVEPOINT and the like.
    Transaction,
    /// Everything else: SET, VACUUM, ANALYZE, DO, GRANT, ...
    Other,
}

/// A PostgreSQL table-level lock mode, ordered by strength.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub enum LockMode {
    /// Taken by SELECT; conflicts only with ACCESS EXCLUSIVE.
    AccessShare,
    /// SELECT ... FOR UPDATE/SHARE; referenced table of a FK validation.
    RowShare,
    /// INSERT, UPDATE, DELETE, MERGE.
    RowExclusive,
    /// VACUUM, ANALYZE, CREATE INDEX CONCURRENTLY, VALIDATE CONSTRAINT.
    ShareUpdateExclusive,
    /// CREATE INDEX: blocks all writes, allows reads.
    Share,
    /// CREATE TRIGGER, ADD FOREIGN KEY: blocks writes.
    ShareRowExclusive,
    /// REFRESH MATERIALIZED VIEW CONCURRENTLY: allows only plain reads.
    Exclusive,
    /// Most ALTER TABLE forms, DROP, TRUNCATE: blocks everything, even SELECT.
    AccessExclusive,
}

impl LockMode {
    /// All modes, weakest first.
    pub const ALL: [LockMode; 8] = [
        LockMode::AccessShare,
        LockMode::RowShare,
        LockMode::RowExclusive,
        LockMode::ShareUpdateExclusive,
        LockMode::Share,
        LockMode::ShareRowExclusive,
        LockMode::Exclusive,
        LockMode::AccessExclusive,
    ];

    /// The mode as `pg_locks.mode` spells it, e.g. `AccessExclusiveLock`.
    pub fn pg_name(&self) -> &'static str {
        match self {
            LockMode::AccessShare => "AccessShareLock",
            LockMode::RowShare => "RowShareLock",
            LockMode::RowExclusive => "RowExclusiveLock",
            LockMode::ShareUpdateExclusive => "ShareUpdateExclusiveLock",
            LockMode::Share => "ShareLock",
            LockMode::ShareRowExclusive => "ShareRowExclusiveLock",
            LockMode::Exclusive => "ExclusiveLock",
            LockMode::AccessExclusive => "AccessExclusiveLock",
        }
    }

    /// The mode as `LOCK TABLE ... IN <mode> MODE` spells it.
    pub fn sql_name(&self) -> &'static str {
        match self {
            LockMode::AccessShare => "ACCESS SHARE",
            LockMode::RowShare => "ROW SHARE",
            LockMode::RowExclusive => "ROW EXCLUSIVE",
            LockMode::ShareUpdateExclusive => "SHARE UPDATE EXCLUSIVE",
            LockMode::Share => "SHARE",
            LockMode::ShareRowExclusive => "SHARE ROW EXCLUSIVE",
            LockMode::Exclusive => "EXCLUSIVE",
            LockMode::AccessExclusive => "ACCESS EXCLUSIVE",
        }
    }

    /// Parses a `pg_locks.mode` value.
    pub fn from_pg_name(name: &str) -> Option<LockMode> {
        LockMode::ALL.into_iter().find(|m| m.pg_name() == name)
    }

    /// Whether two sessions holding these modes on one table would block
    /// each other (the conflict table of the PostgreSQL manual, 13.3.1).
    pub fn conflicts_with(&self, other: &LockMode) -> bool {
        use LockMode::*;
        let conflicts: &[LockMode] = match self {
            AccessShare => &[AccessExclusive],
            RowShare => &[Exclusive, AccessExclusive],
            RowExclusive => &[Share, ShareRowExclusive, Exclusive, AccessExclusive],
            ShareUpdateExclusive => &[
                ShareUpdateExclusive,
                Share,
                ShareRowExclusive,
                Exclusive,
                AccessExclusive,
            ],
            Share => &[
                RowExclusive,
                ShareUpdateExclusive,
                ShareRowExclusive,
                Exclusive,
                AccessExclusive,
            ],
            ShareRowExclusive => &[
                RowExclusive,
                ShareUpdateExclusive,
                Share,
                ShareRowExclusive,
                Exclusive,
                AccessExclusive,
            ],
            Exclusive => &[
                RowShare,
                RowExclusive,
                ShareUpdateExclusive,
                Share,
                ShareRowExclusive,
                Exclusive,
                AccessExclusive,
            ],
            AccessExclusive => &LockMode::ALL,
        };
        conflicts.contains(other)
    }

    /// Whether this mode blocks the application's INSERT/UPDATE/DELETE.
    pub fn blocks_writes(&self) -> bool {
        self.conflicts_with(&LockMode::RowExclusive)
    }

    /// Whether this mode blocks the application's plain SELECT.
    pub fn blocks_reads(&self) -> bool {
        self.conflicts_with(&LockMode::AccessShare)
    }

    fn from_pg_query(mode: i32) -> Option<LockMode> {
        LockMode::ALL
            .get(usize::try_from(mode).ok()?.checked_sub(1)?)
            .copied()
    }
}

/// One relation a statement locks, and the strongest mode it takes there.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct RelLock {
    /// The name as PostgreSQL resolves what was written: lowercased unless
    /// quoted, `schema.name` when a schema was written.
    pub relation: String,
    /// The strongest mode taken on it.
    pub mode: LockMode,
}

/// Facts about a CREATE / DROP / REINDEX of an index.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct IndexFacts {
    /// The index name when written (`schema.name` if the table is
    /// schema-qualified in CREATE INDEX); `None` for an unnamed CREATE INDEX
    /// or a REINDEX TABLE.
    pub name: Option<String>,
    /// The table, when the statement names it (not for DROP INDEX).
    pub table: Option<String>,
    /// CONCURRENTLY was written.
    pub concurrently: bool,
    /// CREATE UNIQUE INDEX.
    pub unique: bool,
    /// IF NOT EXISTS (CREATE) or IF EXISTS (DROP) was written.
    pub if_not_exists: bool,
}

/// Everything the rest of lull needs to know about one statement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Facts {
    /// Which default policy runs it.
    pub class: Class,
    /// Every relation the statement names or creates, with the strongest
    /// lock it takes there (see the module docs for what is not listed).
    pub locks: Vec<RelLock>,
    /// Tables whose rows are copied into a new file (a rewrite: the lock
    /// is held for as long as copying the whole table takes).
    pub rewrites: Vec<String>,
    /// Tables read in full while the lock is held (validating a constraint,
    /// SET NOT NULL, building an index).
    pub scans: Vec<String>,
    /// May run inside a transaction block. `false` for CONCURRENTLY index
    /// work, DETACH PARTITION CONCURRENTLY, VACUUM, CREATE/DROP DATABASE,
    /// ALTER SYSTEM and the like. (`ALTER TYPE ... ADD VALUE` runs in a
    /// transaction since PostgreSQL 12, so it is `true`.)
    pub transactional: bool,
    /// Relations created (tables, views, materialized views, sequences,
    /// indexes with a known name).
    pub creates: Vec<String>,
    /// For CREATE / DROP / REINDEX INDEX.
    pub index: Option<IndexFacts>,
    /// What in the statement needs a newer PostgreSQL than some supported
    /// major (e.g. `MERGE` needs 15), oldest first; empty when every major
    /// accepts it.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub requires: Vec<Requirement>,
}

impl Facts {
    fn new(class: Class) -> Self {
        Facts {
            class,
            locks: Vec::new(),
            rewrites: Vec::new(),
            scans: Vec::new(),
            transactional: true,
            creates: Vec::new(),
            index: None,
            requires: Vec::new(),
        }
    }

    /// Why PostgreSQL `major` rejects this statement, if it does: the
    /// requirement with the newest major above it.
    pub fn rejected_on(&self, major: u32) -> Option<&Requirement> {
        self.requires.iter().rev().find(|r| r.major > major)
    }

    /// The strongest lock this statement takes on any relation.
    pub fn strongest_lock(&self) -> Option<LockMode> {
        self.locks.iter().map(|l| l.mode).max()
    }

    /// The mode taken on `relation`, if any.
    pub fn lock_on(&self, relation: &str) -> Option<LockMode> {
        self.locks
            .iter()
            .find(|l| l.relation == relation)
            .map(|l| l.mode)
    }

    /// Records a lock, keeping only the strongest mode per relation.
    fn lock(&mut self, relation: impl Into<String>, mode: LockMode) {
        let relation = relation.into();
        if relation.is_empty() {
            return;
        }
        match self.locks.iter_mut().find(|l| l.relation == relation) {
            Some(existing) => {
                if mode.cmp(&existing.mode) == Ordering::Greater {
                    existing.mode = mode;
                }
            }
            None => self.locks.push(RelLock { relation, mode }),
        }
    }

    fn rewrite(&mut self, table: &str) {
        push_unique(&mut self.rewrites, table);
    }

    fn scan(&mut self, table: &str) {
        push_unique(&mut self.scans, table);
    }

    fn create(&mut self, relation: &str) {
        push_unique(&mut self.creates, relation);
        self.lock(relation, LockMode::AccessExclusive);
    }
}

fn push_unique(list: &mut Vec<String>, item: &str) {
    if !item.is_empty() && !list.iter().any(|x| x == item) {
        list.push(item.to_string());
    }
}

/// Derives the facts of one parsed statement on PostgreSQL `major`.
pub(crate) fn facts_of(node: &NodeEnum, major: u32) -> Facts {
    let mut f = facts_on(node, major);
    f.requires = versions::requirements(node);
    f
}

fn facts_on(node: &NodeEnum, major: u32) -> Facts {
    use LockMode::*;
    match node {
        NodeEnum::TransactionStmt(_) => Facts::new(Class::Transaction),
        NodeEnum::SelectStmt(_) => {
            let mut f = Facts::new(Class::Dml);
            read_tables(&mut f, node, &[]);
            f
        }
        NodeEnum::InsertStmt(s) => dml_facts(node, s.relation.as_ref()),
        NodeEnum::UpdateStmt(s) => dml_facts(node, s.relation.as_ref()),
        NodeEnum::DeleteStmt(s) => dml_facts(node, s.relation.as_ref()),
        NodeEnum::MergeStmt(s) => dml_facts(node, s.relation.as_ref()),
        NodeEnum::CopyStmt(s) => {
            let mut f = Facts::new(Class::Dml);
            if let Some(rel) = &s.relation {
                f.lock(
                    ast::rel_name(rel),
                    if s.is_from { RowExclusive } else { AccessShare },
                );
            }
            if let Some(query) = s.query.as_deref().and_then(|n| n.node.as_ref()) {
                read_tables(&mut f, query, &[]);
            }
            f
        }
        NodeEnum::CreateStmt(s) => create_table_facts(s),
        NodeEnum::CreateTableAsStmt(s) => {
            let mut f = Facts::new(Class::Ddl);
            if let Some(query) = s.query.as_deref().and_then(|n| n.node.as_ref()) {
                read_tables(&mut f, query, &[]);
            }
            if let Some(rel) = s.into.as_ref().and_then(|i| i.rel.as_ref()) {
                f.create(&ast::rel_name(rel));
            }
            f
        }
        NodeEnum::ViewStmt(s) => {
            let mut f = Facts::new(Class::Ddl);
            if let Some(query) = s.query.as_deref().and_then(|n| n.node.as_ref()) {
                read_tables(&mut f, query, &[]);
            }
            if let Some(rel) = &s.view {
                f.create(&ast::rel_name(rel));
            }
            f
        }
        NodeEnum::CreateSeqStmt(s) => {
            let mut f = Facts::new(Class::Ddl);
            if let Some(rel) = &s.sequence {
                f.create(&ast::rel_name(rel));
            }
            f
        }
        NodeEnum::IndexStmt(s) => create_index_facts(s),
        NodeEnum::DropStmt(s) => drop_facts(s),
        NodeEnum::ReindexStmt(s) => reindex_facts(s),
        NodeEnum::AlterTableStmt(s) => alter_table_facts(s),
        NodeEnum::RenameStmt(s) => {
            let mut f = Facts::new(Class::Ddl);
            if let Some(rel) = &s.relation {
                let mode = if s.rename_type == ObjectType::ObjectIndex as i32 {
                    ShareUpdateExclusive
                } else {
                    AccessExclusive
                };
                f.lock(ast::rel_name(rel), mode);
            }
            f
        }
        NodeEnum::AlterObjectSchemaStmt(s) => {
            let mut f = Facts::new(Class::Ddl);
            if let Some(rel) = &s.relation {
                f.lock(ast::rel_name(rel), AccessExclusive);
            }
            f
        }
        NodeEnum::TruncateStmt(s) => {
            let mut f = Facts::new(Class::Ddl);
            for rel in s.relations.iter().filter_map(ast::as_range_var) {
                f.lock(ast::rel_name(rel), AccessExclusive);
            }
            f
        }
        NodeEnum::LockStmt(s) => {
            let mut f = Facts::new(Class::Ddl);
            let mode = LockMode::from_pg_query(s.mode).unwrap_or(AccessExclusive);
            for rel in s.relations.iter().filter_map(ast::as_range_var) {
                f.lock(ast::rel_name(rel), mode);
            }
            f
        }
        NodeEnum::VacuumStmt(s) => {
            let mut f = Facts::new(Class::Other);
            let full = s.is_vacuumcmd && ast::has_option(&s.options, "full");
            f.transactional = !s.is_vacuumcmd;
            for rel in s.rels.iter().filter_map(|n| match &n.node {
                Some(NodeEnum::VacuumRelation(v)) => v.relation.as_ref(),
                _ => None,
            }) {
                let name = ast::rel_name(rel);
                f.lock(
                    &name,
                    if full {
                        AccessExclusive
                    } else {
                        ShareUpdateExclusive
                    },
                );
                if full {
                    f.rewrite(&name);
                }
            }
            f
        }
        NodeEnum::ClusterStmt(s) => {
            let mut f = Facts::new(Class::Ddl);
            match &s.relation {
                Some(rel) => {
                    let name = ast::rel_name(rel);
                    f.lock(&name, AccessExclusive);
                    f.rewrite(&name);
                }
                // CLUSTER without a table re-clusters every table and
                // refuses to run in a transaction block.
                None => f.transactional = false,
            }
            f
        }
        NodeEnum::RefreshMatViewStmt(s) => {
            let mut f = Facts::new(Class::Ddl);
            if let Some(rel) = &s.relation {
                let name = ast::rel_name(rel);
                if s.concurrent {
                    f.lock(&name, Exclusive);
                } else {
                    f.lock(&name, AccessExclusive);
                    f.rewrite(&name);
                }
            }
            f
        }
        NodeEnum::CreateTrigStmt(s) => {
            let mut f = Facts::new(Class::Ddl);
            if let Some(rel) = &s.relation {
                f.lock(ast::rel_name(rel), ShareRowExclusive);
            }
            f
        }
        NodeEnum::CreatePolicyStmt(s) => {
            let mut f = Facts::new(Class::Ddl);
            if let Some(rel) = &s.table {
                f.lock(ast::rel_name(rel), AccessExclusive);
            }
            f
        }
        NodeEnum::RuleStmt(s) => {
            let mut f = Facts::new(Class::Ddl);
            if let Some(rel) = &s.relation {
                f.lock(ast::rel_name(rel), AccessExclusive);
            }
            f
        }
        NodeEnum::CommentStmt(s) => {
            let mut f = Facts::new(Class::Ddl);
            let relation_kinds = [
                ObjectType::ObjectTable,
                ObjectType::ObjectView,
                ObjectType::ObjectMatview,
                ObjectType::ObjectIndex,
                ObjectType::ObjectSequence,
            ];
            if relation_kinds.iter().any(|k| *k as i32 == s.objtype) {
                if let Some(name) = s.object.as_deref().and_then(ast::dotted_name) {
                    f.lock(name, ShareUpdateExclusive);
                }
            } else if s.objtype == ObjectType::ObjectColumn as i32 {
                if let Some(mut parts) = s.object.as_deref().and_then(ast::name_parts) {
                    parts.pop();
                    f.lock(parts.join("."), ShareUpdateExclusive);
                }
            }
            f
        }
        NodeEnum::GrantStmt(s) => {
            let mut f = Facts::new(Class::Other);
            let on_relations = s.targtype == GrantTargetType::AclTargetObject as i32
                && (s.objtype == ObjectType::ObjectTable as i32
                    || s.objtype == ObjectType::ObjectSequence as i32);
            if let (true, Some(mode)) = (on_relations, GRANT_ON_RELATION.mode_on(major)) {
                for rel in s.objects.iter().filter_map(ast::as_range_var) {
                    f.lock(ast::rel_name(rel), mode);
                }
            }
            f
        }
        NodeEnum::CreatedbStmt(_)
        | NodeEnum::DropdbStmt(_)
        | NodeEnum::AlterSystemStmt(_)
        | NodeEnum::CreateTableSpaceStmt(_)
        | NodeEnum::DropTableSpaceStmt(_) => {
            let mut f = Facts::new(Class::Other);
            f.transactional = false;
            f
        }
        NodeEnum::CreateSchemaStmt(_)
        | NodeEnum::CreateExtensionStmt(_)
        | NodeEnum::AlterExtensionStmt(_)
        | NodeEnum::CreateFunctionStmt(_)
        | NodeEnum::AlterFunctionStmt(_)
        | NodeEnum::CreateEnumStmt(_)
        | NodeEnum::AlterEnumStmt(_)
        | NodeEnum::CompositeTypeStmt(_)
        | NodeEnum::CreateRangeStmt(_)
        | NodeEnum::CreateDomainStmt(_)
        | NodeEnum::AlterDomainStmt(_)
        | NodeEnum::DefineStmt(_)
        | NodeEnum::AlterSeqStmt(_)
        | NodeEnum::CreateStatsStmt(_)
        | NodeEnum::AlterOwnerStmt(_)
        | NodeEnum::AlterDefaultPrivilegesStmt(_) => Facts::new(Class::Ddl),
        _ => Facts::new(Class::Other),
    }
}

/// INSERT / UPDATE / DELETE / MERGE: ROW EXCLUSIVE on the target, ACCESS
/// SHARE on everything else it reads.
fn dml_facts(node: &NodeEnum, target: Option<&protobuf::RangeVar>) -> Facts {
    let mut f = Facts::new(Class::Dml);
    let target_name = target.map(ast::rel_name);
    if let Some(name) = &target_name {
        f.lock(name, LockMode::RowExclusive);
    }
    read_tables(&mut f, node, target_name.as_slice());
    f
}

/// ACCESS SHARE (ROW SHARE under FOR UPDATE/SHARE) on every table a query
/// reads, skipping CTE names and `skip`.
fn read_tables(f: &mut Facts, node: &NodeEnum, skip: &[String]) {
    let ctes = ast::cte_names(node);
    let locking = ast::has_locking_clause(node);
    for rel in ast::range_vars(node) {
        let name = ast::rel_name(rel);
        if skip.contains(&name) || (rel.schemaname.is_empty() && ctes.contains(&rel.relname)) {
            continue;
        }
        f.lock(
            name,
            if locking {
                LockMode::RowShare
            } else {
                LockMode::AccessShare
            },
        );
    }
}

fn create_table_facts(s: &protobuf::CreateStmt) -> Facts {
    let mut f = Facts::new(Class::Ddl);
    let Some(rel) = &s.relation else { return f };
    let name = ast::rel_name(rel);
    f.create(&name);
    if s.partbound.is_some() {
        // CREATE TABLE ... PARTITION OF takes ACCESS EXCLUSIVE on the parent.
        for parent in s.inh_relations.iter().filter_map(ast::as_range_var) {
            f.lock(ast::rel_name(parent), LockMode::AccessExclusive);
        }
    } else {
        for parent in s.inh_relations.iter().filter_map(ast::as_range_var) {
            f.lock(ast::rel_name(parent), LockMode::ShareUpdateExclusive);
        }
    }
    let column_constraints = s.table_elts.iter().filter_map(|n| match &n.node {
        Some(NodeEnum::ColumnDef(c)) => Some(c.constraints.iter()),
        _ => None,
    });
    let constraints = column_constraints
        .flatten()
        .chain(s.table_elts.iter())
        .chain(s.constraints.iter());
    for c in constraints.filter_map(ast::as_constraint) {
        if c.contype == ConstrType::ConstrForeign as i32 {
            if let Some(pk) = &c.pktable {
                f.lock(ast::rel_name(pk), LockMode::ShareRowExclusive);
            }
        }
    }
    // The new table's own lock wins over the weaker modes above.
    f.lock(&name, LockMode::AccessExclusive);
    f
}

fn create_index_facts(s: &protobuf::IndexStmt) -> Facts {
    let mut f = Facts::new(if s.concurrent {
        Class::Index
    } else {
        Class::Ddl
    });
    let table = s.relation.as_ref().map(ast::rel_name);
    let name = (!s.idxname.is_empty()).then(|| match &s.relation {
        Some(rel) if !rel.schemaname.is_empty() => format!("{}.{}", rel.schemaname, s.idxname),
        _ => s.idxname.clone(),
    });
    if let Some(table) = &table {
        if s.concurrent {
            f.lock(table, LockMode::ShareUpdateExclusive);
            f.transactional = false;
        } else {
            f.lock(table, LockMode::Share);
        }
        // `ON ONLY` is written for a partitioned table, whose own index
        // holds no data (it is built per partition and attached).
        if s.relation.as_ref().is_none_or(|r| r.inh) {
            f.scan(table);
        }
    }
    if let Some(name) = &name {
        if s.concurrent {
            push_unique(&mut f.creates, name);
        } else {
            f.create(name);
        }
    }
    f.index = Some(IndexFacts {
        name,
        table,
        concurrently: s.concurrent,
        unique: s.unique,
        if_not_exists: s.if_not_exists,
    });
    f
}

fn drop_facts(s: &protobuf::DropStmt) -> Facts {
    let relation_kinds = [
        ObjectType::ObjectTable,
        ObjectType::ObjectView,
        ObjectType::ObjectMatview,
        ObjectType::ObjectSequence,
        ObjectType::ObjectForeignTable,
        ObjectType::ObjectIndex,
    ];
    let is_index = s.remove_type == ObjectType::ObjectIndex as i32;
    let mut f = Facts::new(if is_index && s.concurrent {
        Class::Index
    } else {
        Class::Ddl
    });
    if !relation_kinds.iter().any(|k| *k as i32 == s.remove_type) {
        return f;
    }
    let names: Vec<String> = s.objects.iter().filter_map(ast::dotted_name).collect();
    // DROP INDEX CONCURRENTLY takes SHARE UPDATE EXCLUSIVE on the index and
    // its table and waits for the transactions using them instead of
    // blocking them.
    let mode = if s.concurrent {
        LockMode::ShareUpdateExclusive
    } else {
        LockMode::AccessExclusive
    };
    for name in &names {
        f.lock(name, mode);
    }
    if is_index {
        f.transactional = !s.concurrent;
        f.index = Some(IndexFacts {
            name: names.first().cloned(),
            table: None,
            concurrently: s.concurrent,
            unique: false,
            if_not_exists: s.missing_ok,
        });
    }
    f
}

fn reindex_facts(s: &protobuf::ReindexStmt) -> Facts {
    let concurrently = ast::has_option(&s.params, "concurrently");
    let mut f = Facts::new(if concurrently {
        Class::Index
    } else {
        Class::Ddl
    });
    f.transactional = !concurrently;
    let kind = s.kind;
    let rel = s.relation.as_ref().map(ast::rel_name);
    if kind == ReindexObjectType::ReindexObjectIndex as i32 {
        if let Some(index) = &rel {
            f.lock(
                index,
                if concurrently {
                    LockMode::ShareUpdateExclusive
                } else {
                    LockMode::AccessExclusive
                },
            );
        }
        f.index = Some(IndexFacts {
            name: rel,
            table: None,
            concurrently,
            ..IndexFacts::default()
        });
    } else if kind == ReindexObjectType::ReindexObjectTable as i32 {
        if let Some(table) = &rel {
            f.lock(
                table,
                if concurrently {
                    LockMode::ShareUpdateExclusive
                } else {
                    LockMode::Share
                },
            );
            f.scan(table);
        }
        f.index = Some(IndexFacts {
            name: None,
            table: rel,
            concurrently,
            ..IndexFacts::default()
        });
    } else {
        // REINDEX SCHEMA / DATABASE / SYSTEM commit per table.
        f.transactional = false;
    }
    f
}

fn alter_table_facts(s: &protobuf::AlterTableStmt) -> Facts {
    use LockMode::*;
    let mut f = Facts::new(Class::Ddl);
    let Some(rel) = &s.relation else { return f };
    let table = ast::rel_name(rel);
    for cmd in s.cmds.iter().filter_map(|n| match &n.node {
        Some(NodeEnum::AlterTableCmd(c)) => Some(c.as_ref()),
        _ => None,
    }) {
        let subtype = AlterTableType::try_from(cmd.subtype).unwrap_or(AlterTableType::Undefined);
        let mode = match subtype {
            AlterTableType::AtAddColumn => {
                if let Some(col) = cmd.def.as_deref().and_then(ast::as_column_def) {
                    add_column_facts(&mut f, &table, col);
                }
                AccessExclusive
            }
            AlterTableType::AtAddConstraint => {
                match cmd.def.as_deref().and_then(ast::as_constraint_node) {
                    Some(c) => add_constraint_facts(&mut f, &table, rel, c),
                    None => AccessExclusive,
                }
            }
            AlterTableType::AtValidateConstraint => {
                f.scan(&table);
                ShareUpdateExclusive
            }
            AlterTableType::AtSetNotNull => {
                f.scan(&table);
                AccessExclusive
            }
            AlterTableType::AtAlterColumnType => {
                if ast::column_type_change_rewrites(cmd) {
                    f.rewrite(&table);
                }
                AccessExclusive
            }
            // The generated column is computed again for every row.
            AlterTableType::AtSetExpression => {
                f.rewrite(&table);
                AccessExclusive
            }
            AlterTableType::AtSetLogged
            | AlterTableType::AtSetUnLogged
            | AlterTableType::AtSetTableSpace
            | AlterTableType::AtSetAccessMethod => {
                f.rewrite(&table);
                AccessExclusive
            }
            AlterTableType::AtSetStatistics
            | AlterTableType::AtSetOptions
            | AlterTableType::AtResetOptions
            | AlterTableType::AtClusterOn
            | AlterTableType::AtDropCluster
            | AlterTableType::AtSetRelOptions
            | AlterTableType::AtResetRelOptions
            | AlterTableType::AtDetachPartitionFinalize => ShareUpdateExclusive,
            AlterTableType::AtEnableTrig
            | AlterTableType::AtEnableAlwaysTrig
            | AlterTableType::AtEnableReplicaTrig
            | AlterTableType::AtDisableTrig
            | AlterTableType::AtEnableTrigAll
            | AlterTableType::AtDisableTrigAll
            | AlterTableType::AtEnableTrigUser
            | AlterTableType::AtDisableTrigUser => ShareRowExclusive,
            // ALTER INDEX ... ATTACH PARTITION only links two indexes.
            AlterTableType::AtAttachPartition if s.objtype == ObjectType::ObjectIndex as i32 => {
                if let Some(part) = ast::partition_cmd(cmd).and_then(|p| p.name.as_ref()) {
                    f.lock(ast::rel_name(part), AccessExclusive);
                }
                ShareUpdateExclusive
            }
            // The partition is scanned to prove its rows fit the bound
            // (unless a validated CHECK implies it); a DEFAULT partition of
            // the parent is scanned too, found only through the catalog.
            AlterTableType::AtAttachPartition => {
                if let Some(part) = ast::partition_cmd(cmd).and_then(|p| p.name.as_ref()) {
                    let name = ast::rel_name(part);
                    f.lock(&name, AccessExclusive);
                    f.scan(&name);
                }
                ShareUpdateExclusive
            }
            AlterTableType::AtDetachPartition => {
                let concurrent = ast::partition_cmd(cmd).is_some_and(|p| p.concurrent);
                let mode = if concurrent {
                    ShareUpdateExclusive
                } else {
                    AccessExclusive
                };
                // The partition itself is always locked ACCESS EXCLUSIVE;
                // CONCURRENTLY only spares the parent.
                if let Some(part) = ast::partition_cmd(cmd).and_then(|p| p.name.as_ref()) {
                    f.lock(ast::rel_name(part), AccessExclusive);
                }
                if concurrent {
                    f.transactional = false;
                }
                mode
            }
            AlterTableType::AtAddInherit | AlterTableType::AtDropInherit => {
                if let Some(parent) = cmd.def.as_deref().and_then(ast::as_range_var) {
                    f.lock(ast::rel_name(parent), ShareUpdateExclusive);
                }
                AccessExclusive
            }
            _ => AccessExclusive,
        };
        f.lock(&table, mode);
    }
    f
}

fn add_column_facts(f: &mut Facts, table: &str, col: &protobuf::ColumnDef) {
    let info = ast::ColumnInfo::of(col);
    if info.rewrites() {
        f.rewrite(table);
    }
    for c in col.constraints.iter().filter_map(ast::as_constraint) {
        let contype = ConstrType::try_from(c.contype).unwrap_or(ConstrType::Undefined);
        match contype {
            ConstrType::ConstrForeign => {
                if let Some(pk) = &c.pktable {
                    f.lock(ast::rel_name(pk), LockMode::ShareRowExclusive);
                }
                // No validation scan: the new column holds only NULLs
                // (tests/locks.rs sees no read of the table).
            }
            ConstrType::ConstrCheck | ConstrType::ConstrUnique | ConstrType::ConstrPrimary => {
                f.scan(table)
            }
            _ => {}
        }
    }
}

/// Adds the facts of `ADD CONSTRAINT` and returns the mode on the table.
fn add_constraint_facts(
    f: &mut Facts,
    table: &str,
    rel: &protobuf::RangeVar,
    c: &protobuf::Constraint,
) -> LockMode {
    let contype = ConstrType::try_from(c.contype).unwrap_or(ConstrType::Undefined);
    match contype {
        ConstrType::ConstrForeign => {
            if let Some(pk) = &c.pktable {
                f.lock(ast::rel_name(pk), LockMode::ShareRowExclusive);
            }
            if !c.skip_validation {
                f.scan(table);
            }
            LockMode::ShareRowExclusive
        }
        ConstrType::ConstrCheck => {
            if !c.skip_validation {
                f.scan(table);
            }
            LockMode::AccessExclusive
        }
        ConstrType::ConstrUnique | ConstrType::ConstrPrimary | ConstrType::ConstrExclusion => {
            if c.indexname.is_empty() {
                f.scan(table);
                if !c.conname.is_empty() {
                    let index = match rel.schemaname.as_str() {
                        "" => c.conname.clone(),
                        schema => format!("{schema}.{}", c.conname),
                    };
                    f.create(&index);
                }
            }
            LockMode::AccessExclusive
        }
        _ => LockMode::AccessExclusive,
    }
}

/// Whether a statement is `BEGIN`/`START TRANSACTION`.
pub(crate) fn is_begin(node: &NodeEnum) -> bool {
    transaction_kind(node).is_some_and(|k| {
        matches!(
            k,
            TransactionStmtKind::TransStmtBegin | TransactionStmtKind::TransStmtStart
        )
    })
}

/// Whether a statement ends a transaction block (`COMMIT`, `ROLLBACK`,
/// `END`, `PREPARE TRANSACTION`).
pub(crate) fn is_end(node: &NodeEnum) -> bool {
    transaction_kind(node).is_some_and(|k| {
        matches!(
            k,
            TransactionStmtKind::TransStmtCommit
                | TransactionStmtKind::TransStmtRollback
                | TransactionStmtKind::TransStmtPrepare
        )
    })
}

fn transaction_kind(node: &NodeEnum) -> Option<TransactionStmtKind> {
    match node {
        NodeEnum::TransactionStmt(t) => TransactionStmtKind::try_from(t.kind).ok(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse;

    fn facts(sql: &str) -> Facts {
        let mut stmts = parse(sql).unwrap();
        assert_eq!(stmts.len(), 1, "{sql}");
        stmts.remove(0).facts
    }

    fn locks(sql: &str) -> Vec<(String, LockMode)> {
        let mut l: Vec<_> = facts(sql)
            .locks
            .into_iter()
            .map(|l| (l.relation, l.mode))
            .collect();
        l.sort();
        l
    }

    #[test]
    fn lock_modes_order_and_conflict_like_the_manual() {
        use LockMode::*;
        assert!(AccessShare < AccessExclusive);
        assert!(Share.blocks_writes());
        assert!(!Share.blocks_reads());
        assert!(!ShareUpdateExclusive.blocks_writes());
        assert!(AccessExclusive.blocks_reads());
        for a in LockMode::ALL {
            for b in LockMode::ALL {
                assert_eq!(a.conflicts_with(&b), b.conflicts_with(&a), "{a:?} {b:?}");
            }
            assert_eq!(LockMode::from_pg_name(a.pg_name()), Some(a));
        }
        assert!(!RowExclusive.conflicts_with(&RowExclusive));
        assert!(Share.conflicts_with(&ShareUpdateExclusive));
        assert!(!Share.conflicts_with(&Share));
    }

    #[test]
    fn create_index_facts() {
        let f = facts("CREATE UNIQUE INDEX IF NOT EXISTS i ON app.\"T\" (a)");
        assert_eq!(f.class, Class::Ddl);
        assert!(f.transactional);
        assert_eq!(f.lock_on("app.T"), Some(LockMode::Share));
        assert_eq!(f.creates, vec!["app.i"]);
        let idx = f.index.unwrap();
        assert_eq!(idx.name.as_deref(), Some("app.i"));
        assert!(idx.unique && idx.if_not_exists && !idx.concurrently);

        let f = facts("create index concurrently on t (a)");
        assert_eq!(f.class, Class::Index);
        assert!(!f.transactional);
        assert_eq!(f.lock_on("t"), Some(LockMode::ShareUpdateExclusive));
        assert!(f.creates.is_empty());
    }

    #[test]
    fn drop_and_reindex_facts() {
        let f = facts("DROP INDEX CONCURRENTLY IF EXISTS i");
        assert_eq!(f.class, Class::Index);
        assert!(!f.transactional);
        assert!(f.index.unwrap().if_not_exists);
        assert_eq!(
            locks("drop table a, b"),
            vec![
                ("a".into(), LockMode::AccessExclusive),
                ("b".into(), LockMode::AccessExclusive)
            ]
        );
        let f = facts("REINDEX INDEX CONCURRENTLY i");
        assert!(!f.transactional);
        assert_eq!(f.class, Class::Index);
        assert_eq!(
            locks("reindex table t"),
            vec![("t".into(), LockMode::Share)]
        );
    }

    #[test]
    fn alter_table_facts() {
        let f = facts("ALTER TABLE t ADD CONSTRAINT fk FOREIGN KEY (u_id) REFERENCES u (id)");
        assert_eq!(f.lock_on("t"), Some(LockMode::ShareRowExclusive));
        assert_eq!(f.lock_on("u"), Some(LockMode::ShareRowExclusive));
        assert_eq!(f.scans, vec!["t"]);
        let f =
            facts("ALTER TABLE t ADD CONSTRAINT fk FOREIGN KEY (u_id) REFERENCES u (id) NOT VALID");
        assert!(f.scans.is_empty());
        let f = facts("ALTER TABLE t VALIDATE CONSTRAINT fk");
        assert_eq!(f.lock_on("t"), Some(LockMode::ShareUpdateExclusive));
        assert_eq!(
            facts("ALTER TABLE t ALTER COLUMN a SET NOT NULL").scans,
            vec!["t"]
        );
        assert_eq!(
            facts("ALTER TABLE t ADD COLUMN s bigserial").rewrites,
            vec!["t"]
        );
        assert_eq!(
            facts("ALTER TABLE t ADD COLUMN d int DEFAULT random()::int").rewrites,
            vec!["t"]
        );
        assert!(
            facts("ALTER TABLE t ADD COLUMN d timestamptz DEFAULT now()")
                .rewrites
                .is_empty()
        );
        assert!(facts("ALTER TABLE t ALTER COLUMN c TYPE text")
            .rewrites
            .is_empty());
        assert_eq!(
            facts("ALTER TABLE t ALTER COLUMN c TYPE bigint").rewrites,
            vec!["t"]
        );
        assert_eq!(
            facts("ALTER TABLE t SET (fillfactor = 70)").lock_on("t"),
            Some(LockMode::ShareUpdateExclusive)
        );
        let f = facts("ALTER TABLE p DETACH PARTITION p1 CONCURRENTLY");
        assert!(!f.transactional);
        assert_eq!(f.lock_on("p"), Some(LockMode::ShareUpdateExclusive));
        assert_eq!(f.lock_on("p1"), Some(LockMode::AccessExclusive));
    }

    #[test]
    fn dml_and_other_facts() {
        assert_eq!(
            locks("WITH x AS (SELECT 1) UPDATE t SET a = 1 FROM u, x WHERE u.id = t.id"),
            vec![
                ("t".into(), LockMode::RowExclusive),
                ("u".into(), LockMode::AccessShare)
            ]
        );
        assert_eq!(
            locks("SELECT * FROM t FOR UPDATE"),
            vec![("t".into(), LockMode::RowShare)]
        );
        assert_eq!(facts("BEGIN").class, Class::Transaction);
        assert_eq!(facts("SET lock_timeout = '1s'").class, Class::Other);
        assert!(!facts("VACUUM t").transactional);
        assert!(facts("ANALYZE t").transactional);
        assert_eq!(facts("VACUUM FULL t").rewrites, vec!["t"]);
        assert_eq!(
            locks("LOCK TABLE t IN SHARE MODE"),
            vec![("t".into(), LockMode::Share)]
        );
        assert_eq!(
            locks("LOCK t"),
            vec![("t".into(), LockMode::AccessExclusive)]
        );
        assert!(!facts("CREATE DATABASE x").transactional);
        assert_eq!(
            facts("CREATE TABLE n (id int REFERENCES t (id))").lock_on("t"),
            Some(LockMode::ShareRowExclusive)
        );
    }

    #[test]
    fn grant_locks_follow_the_target_major() {
        let on = |major, sql| {
            let stmts = crate::parse_for(sql, Some(major)).unwrap();
            stmts[0].facts.locks.clone()
        };
        assert!(on(17, "GRANT SELECT ON t, u TO app").is_empty());
        assert_eq!(
            on(18, "GRANT SELECT ON t, app.u TO app"),
            vec![
                RelLock {
                    relation: "t".into(),
                    mode: LockMode::AccessShare
                },
                RelLock {
                    relation: "app.u".into(),
                    mode: LockMode::AccessShare
                }
            ]
        );
        assert_eq!(
            on(18, "REVOKE USAGE ON SEQUENCE s FROM app")[0].mode,
            LockMode::AccessShare
        );
        // Tables found through the catalog are not named, so not claimed.
        assert!(on(18, "GRANT SELECT ON ALL TABLES IN SCHEMA app TO app").is_empty());
        assert!(on(18, "GRANT USAGE ON SCHEMA app TO app").is_empty());
        // No version: the newest lull knows.
        assert_eq!(facts("GRANT SELECT ON t TO app").locks.len(), 1);
    }

    #[test]
    fn statements_a_major_rejects_say_so() {
        let f = facts("MERGE INTO u USING t ON u.id = t.id WHEN MATCHED THEN DO NOTHING");
        assert_eq!(f.rejected_on(14).map(|r| r.major), Some(15));
        assert!(f.rejected_on(15).is_none());
        assert!(facts("SELECT 1").rejected_on(14).is_none());
    }

    #[test]
    fn class_serializes_lowercase() {
        assert_eq!(
            serde_json::to_string(&Class::Transaction).unwrap(),
            "\"transaction\""
        );
    }
}
