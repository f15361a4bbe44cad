//! Small, plain helpers over the `pg_query` parse tree: names of relations,
//! options, constraints and column definitions. Kept in one place so rules
//! and facts read the tree the same way.

use pg_query::protobuf::{self, ConstrType};
use pg_query::{Node, NodeEnum, NodeRef};

/// The relation name as PostgreSQL resolves it: `schema.name` when a
/// schema was written (the parser has already lowercased unquoted parts).
pub(crate) fn rel_name(rel: &protobuf::RangeVar) -> String {
    if rel.schemaname.is_empty() {
        rel.relname.clone()
    } else {
        format!("{}.{}", rel.schemaname, rel.relname)
    }
}

/// The schema of a relation when one was written.
pub(crate) fn rel_schema(rel: &protobuf::RangeVar) -> Option<&str> {
    (!rel.schemaname.is_empty()).then_some(rel.schemaname.as_str())
}

pub(crate) fn as_range_var(node: &Node) -> Option<&protobuf::RangeVar> {
    match &node.node {
        Some(NodeEnum::RangeVar(r)) => Some(r),
        _ => None,
    }
}

pub(crate) fn as_constraint(node: &Node) -> Option<&protobuf::Constraint> {
    match &node.node {
        Some(NodeEnum::Constraint(c)) => Some(c),
        _ => None,
    }
}

pub(crate) fn as_constraint_node(node: &Node) -> Option<&protobuf::Constraint> {
    as_constraint(node)
}

pub(crate) fn as_column_def(node: &Node) -> Option<&protobuf::ColumnDef> {
    match &node.node {
        Some(NodeEnum::ColumnDef(c)) => Some(c),
        _ => None,
    }
}

/// The string value of a `String` node.
pub(crate) fn string_value(node: &Node) -> Option<&str> {
    match &node.node {
        Some(NodeEnum::String(s)) => Some(&s.sval),
        _ => None,
    }
}

/// The parts of a dotted name written as a `List` of `String` nodes
/// (`DROP TABLE app.users`, `COMMENT ON COLUMN t.c`).
pub(crate) fn name_parts(node: &Node) -> Option<Vec<String>> {
    match &node.node {
        Some(NodeEnum::List(list)) => list
            .items
            .iter()
            .map(|n| string_value(n).map(str::to_string))
            .collect(),
        Some(NodeEnum::String(s)) => Some(vec![s.sval.clone()]),
        _ => None,
    }
}

/// A dotted name joined with `.`.
pub(crate) fn dotted_name(node: &Node) -> Option<String> {
    name_parts(node).map(|parts| parts.join("."))
}

/// Whether a generic option list (`VACUUM (FULL)`, `REINDEX
/// (CONCURRENTLY)`) turns on `name`.
pub(crate) fn has_option(options: &[Node], name: &str) -> bool {
    options.iter().any(|n| match &n.node {
        Some(NodeEnum::DefElem(d)) if d.defname == name => {
            match d.arg.as_deref().and_then(|a| a.node.as_ref()) {
                None => true,
                Some(NodeEnum::Boolean(b)) => b.boolval,
                Some(NodeEnum::Integer(i)) => i.ival != 0,
                Some(NodeEnum::String(s)) => !matches!(s.sval.as_str(), "false" | "off" | "0"),
                Some(_) => true,
            }
        }
        _ => false,
    })
}

/// Every `RangeVar` (table reference) anywhere under `node`.
pub(crate) fn range_vars(node: &NodeEnum) -> Vec<&protobuf::RangeVar> {
    node.nodes()
        .into_iter()
        .filter_map(|(n, ..)| match n {
            NodeRef::RangeVar(r) => Some(r),
            _ => None,
        })
        .collect()
}

/// Names of the CTEs defined under `node`, which look like tables in
/// `FROM` but are not relations.
pub(crate) fn cte_names(node: &NodeEnum) -> Vec<String> {
    node.nodes()
        .into_iter()
        .filter_map(|(n, ..)| match n {
            NodeRef::CommonTableExpr(c) => Some(c.ctename.clone()),
            _ => None,
        })
        .collect()
}

/// Whether a query has `FOR UPDATE` / `FOR SHARE`.
pub(crate) fn has_locking_clause(node: &NodeEnum) -> bool {
    let top = matches!(node, NodeEnum::SelectStmt(s) if !s.locking_clause.is_empty());
    top || node.nodes().into_iter().any(|(n, ..)| match n {
        NodeRef::SelectStmt(s) => !s.locking_clause.is_empty(),
        NodeRef::LockingClause(_) => true,
        _ => false,
    })
}

/// The `PartitionCmd` of ATTACH / DETACH PARTITION.
pub(crate) fn partition_cmd(cmd: &protobuf::AlterTableCmd) -> Option<&protobuf::PartitionCmd> {
    match cmd.def.as_deref().and_then(|d| d.node.as_ref()) {
        Some(NodeEnum::PartitionCmd(p)) => Some(p),
        _ => None,
    }
}

/// The last part of a type name, e.g. `int4` for `pg_catalog.int4`.
pub(crate) fn type_name(t: &protobuf::TypeName) -> String {
    t.names
        .iter()
        .rev()
        .find_map(string_value)
        .unwrap_or("")
        .to_string()
}

/// Built-in functions that are not volatile: a column default calling only
/// these is evaluated once, so `ADD COLUMN ... DEFAULT` stays a catalog-only
/// change. Anything else (including every user function, which is
/// VOLATILE unless declared otherwise) is treated as volatile.
const NON_VOLATILE_FUNCTIONS: &[&str] = &[
    "now",
    "transaction_timestamp",
    "statement_timestamp",
    "current_setting",
    "to_timestamp",
    "to_date",
    "to_char",
    "to_number",
    "make_date",
    "make_time",
    "make_timestamp",
    "make_timestamptz",
    "make_interval",
    "date_trunc",
    "lower",
    "upper",
    "concat",
    "length",
    "abs",
    "round",
    "jsonb_build_object",
    "json_build_object",
    "jsonb_build_array",
    "json_build_array",
    "array_fill",
];

/// Whether an expression calls something that may return a different value
/// per row.
pub(crate) fn is_volatile(expr: &Node) -> bool {
    let Some(node) = &expr.node else { return false };
    let nodes = node.nodes();
    nodes.into_iter().any(|(n, ..)| match n {
        NodeRef::FuncCall(f) => {
            let name = f.funcname.iter().rev().find_map(string_value).unwrap_or("");
            !NON_VOLATILE_FUNCTIONS.contains(&name)
        }
        NodeRef::SubLink(_) => true,
        _ => false,
    })
}

/// What an `ADD COLUMN` definition asks for.
#[derive(Debug, Default)]
pub(crate) struct ColumnInfo<'a> {
    pub serial: bool,
    pub identity: bool,
    pub generated_stored: bool,
    pub not_null: bool,
    pub default: Option<&'a Node>,
    pub primary_key: bool,
}

impl<'a> ColumnInfo<'a> {
    pub(crate) fn of(col: &'a protobuf::ColumnDef) -> Self {
        let type_name = col.type_name.as_ref().map(type_name).unwrap_or_default();
        let mut info = ColumnInfo {
            serial: matches!(
                type_name.as_str(),
                "serial" | "serial4" | "bigserial" | "serial8" | "smallserial" | "serial2"
            ),
            identity: !col.identity.is_empty(),
            generated_stored: !col.generated.is_empty(),
            not_null: col.is_not_null,
            default: col.raw_default.as_deref(),
            primary_key: false,
        };
        for c in col.constraints.iter().filter_map(as_constraint) {
            match ConstrType::try_from(c.contype).unwrap_or(ConstrType::Undefined) {
                ConstrType::ConstrNotnull => info.not_null = true,
                ConstrType::ConstrDefault => info.default = c.raw_expr.as_deref(),
                ConstrType::ConstrIdentity => info.identity = true,
                ConstrType::ConstrGenerated => info.generated_stored = true,
                ConstrType::ConstrPrimary => {
                    info.primary_key = true;
                    info.not_null = true;
                }
                _ => {}
            }
        }
        info
    }

    /// A volatile default: every existing row gets its own value, so the
    /// table is rewritten.
    pub(crate) fn volatile_default(&self) -> bool {
        self.default.is_some_and(is_volatile)
    }

    /// Whether adding this column to an existing table rewrites it.
    pub(crate) fn rewrites(&self) -> bool {
        self.serial || self.identity || self.generated_stored || self.volatile_default()
    }
}

/// Whether `ALTER COLUMN ... TYPE` rewrites the table. The old type is not
/// in the statement, so a change to `text`, `varchar` (any length) or an
/// unconstrained `numeric`/`citext` without `USING` is assumed to be the
/// binary-coercible widening it usually is; anything else rewrites.
pub(crate) fn column_type_change_rewrites(cmd: &protobuf::AlterTableCmd) -> bool {
    let Some(col) = cmd.def.as_deref().and_then(as_column_def) else {
        return true;
    };
    if col.raw_default.is_some() {
        return true;
    }
    !col.type_name.as_ref().is_some_and(is_coercible_target)
}

/// A target type that a narrower string/numeric type converts to without a
/// rewrite.
pub(crate) fn is_coercible_target(t: &protobuf::TypeName) -> bool {
    match type_name(t).as_str() {
        "text" | "varchar" | "citext" => true,
        "numeric" => t.typmods.is_empty(),
        _ => false,
    }
}
