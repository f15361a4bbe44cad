//! `attach-partition-scan`

use pg_query::protobuf::{self, AlterTableType};
use pg_query::{Node, NodeEnum};

use super::{alter_table, subtype, Category, Rule};
use crate::ast;
use crate::lint::{FileCtx, Hit, Severity};
use crate::safe::choose_constraint_name;
use crate::sql::{quote_ident, quote_qualified};

pub(crate) static RULE: Rule = Rule {
    id: "attach-partition-scan",
    summary: "ATTACH PARTITION without a validated CHECK matching the bound",
    doc: DOC,
    default_severity: Severity::Warning,
    opt_in: false,
    size_sensitive: true,
    category: Category::Locking,
    check,
};

const DOC: &str = "\
attach-partition-scan: ATTACH PARTITION without a validated CHECK matching the bound

What it flags
  ALTER TABLE parent ATTACH PARTITION child FOR VALUES ... (or DEFAULT)
  where the child existed before this migration and no validated CHECK
  constraint on the child's partition key columns is known from the
  history or this file.

Why it hurts
  PostgreSQL proves that every row of the child fits the bound by
  scanning the whole child under ACCESS EXCLUSIVE (SHARE UPDATE EXCLUSIVE
  on the parent): no reads and no writes on the child for the length of
  the scan. If the parent has a DEFAULT partition, that one is scanned
  too, also under ACCESS EXCLUSIVE. A validated CHECK that implies the
  bound lets PostgreSQL skip the child's scan.

Safe alternative
  Add a CHECK matching the bound NOT VALID, validate it (SHARE UPDATE
  EXCLUSIVE: reads and writes continue), attach, then drop the CHECK,
  which the partition bound now enforces:

    ALTER TABLE events_2024 ADD CONSTRAINT events_2024_at_lull_bound
      CHECK (at IS NOT NULL AND at >= '2024-01-01' AND at < '2025-01-01') NOT VALID;
    ALTER TABLE events_2024 VALIDATE CONSTRAINT events_2024_at_lull_bound;
    ALTER TABLE events ATTACH PARTITION events_2024
      FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
    ALTER TABLE events_2024 DROP CONSTRAINT events_2024_at_lull_bound;
";

fn check(ctx: &FileCtx) -> Vec<Hit> {
    let mut hits = Vec::new();
    for (i, stmt) in ctx.stmts.iter().enumerate() {
        let Some((rel, cmds)) = alter_table(stmt) else {
            continue;
        };
        let parent = ast::rel_name(rel);
        for cmd in cmds
            .iter()
            .filter(|c| subtype(c) == AlterTableType::AtAttachPartition)
        {
            let Some(part) = ast::partition_cmd(cmd) else {
                continue;
            };
            let Some(child_rel) = part.name.as_ref() else {
                continue;
            };
            let child = ast::rel_name(child_rel);
            if !ctx.existing(i, &child) {
                continue;
            }
            let known = ctx.known_at(i);
            let key: Vec<String> = known
                .partitioned(&parent)
                .map(|p| p.key.clone())
                .unwrap_or_default();
            let proven = known.checks(&child).iter().any(|c| {
                c.validated && (key.is_empty() || key.iter().any(|k| c.columns.contains(k)))
            });
            if proven {
                continue;
            }
            let help = help_sql(child_rel, &key, part.bound.as_ref(), &stmt.text);
            hits.push(
                Hit::new(
                    i,
                    format!(
                        "ATTACH PARTITION {child} scans all of `{child}` under ACCESS EXCLUSIVE to \
                         prove its rows fit the bound (no validated CHECK on it matches the bound)"
                    ),
                )
                .table(&child)
                .help(Some(help)),
            );
        }
    }
    hits
}

/// The CHECK-first statements, the ATTACH, and the DROP of the CHECK.
fn help_sql(
    child: &protobuf::RangeVar,
    key: &[String],
    bound: Option<&protobuf::PartitionBoundSpec>,
    original: &str,
) -> String {
    let table = quote_qualified(ast::rel_schema(child), &child.relname);
    let column = key.first().map(String::as_str);
    let name = choose_constraint_name(&child.relname, column, "lull_bound", &|_| false);
    let k = quote_ident(&name);
    let expr = match (key, bound) {
        ([col], Some(b)) => bound_check(col, b),
        _ => None,
    }
    .unwrap_or_else(|| "<an expression the partition bound implies>".into());
    [
        format!("ALTER TABLE {table} ADD CONSTRAINT {k} CHECK ({expr}) NOT VALID;"),
        format!("ALTER TABLE {table} VALIDATE CONSTRAINT {k};"),
        format!("{};", original.trim_end_matches(';')),
        format!("ALTER TABLE {table} DROP CONSTRAINT {k};"),
    ]
    .join("\n")
}

/// The CHECK expression equal to a one-column RANGE or LIST bound.
fn bound_check(column: &str, b: &protobuf::PartitionBoundSpec) -> Option<String> {
    let col = quote_ident(column);
    match b.strategy.as_str() {
        "r" => {
            let mut parts = vec![format!("{col} IS NOT NULL")];
            if let Some(lower) = b.lowerdatums.first().and_then(value) {
                parts.push(format!("{col} >= {lower}"));
            }
            if let Some(upper) = b.upperdatums.first().and_then(value) {
                parts.push(format!("{col} < {upper}"));
            }
            Some(parts.join(" AND "))
        }
        "l" => {
            let values: Vec<String> = b.listdatums.iter().map(value).collect::<Option<_>>()?;
            let nulls = values.iter().any(|v| v == "NULL");
            let values: Vec<String> = values.into_iter().filter(|v| v != "NULL").collect();
            let list = format!("{col} IN ({})", values.join(", "));
            Some(if values.is_empty() {
                format!("{col} IS NULL")
            } else if nulls {
                format!("{col} IS NULL OR {list}")
            } else {
                format!("{col} IS NOT NULL AND {list}")
            })
        }
        _ => None,
    }
}

/// A bound value as SQL text; `None` for MINVALUE / MAXVALUE.
fn value(node: &Node) -> Option<String> {
    if let Some(NodeEnum::ColumnRef(c)) = &node.node {
        let name = c.fields.iter().find_map(ast::string_value)?;
        if name == "minvalue" || name == "maxvalue" {
            return None;
        }
    }
    // A parsed `SELECT 1` with the value in place of `1`: every field of
    // the statement is one the deparser accepts.
    let parsed = pg_query::parse("SELECT 1").ok()?;
    let mut select = match parsed
        .protobuf
        .stmts
        .first()?
        .stmt
        .as_ref()?
        .node
        .as_ref()?
    {
        NodeEnum::SelectStmt(s) => s.clone(),
        _ => return None,
    };
    match select.target_list.first_mut()?.node.as_mut()? {
        NodeEnum::ResTarget(t) => t.val = Some(Box::new(node.clone())),
        _ => return None,
    }
    let text = NodeEnum::SelectStmt(select).deparse().ok()?;
    text.strip_prefix("SELECT ").map(str::to_string)
}

#[cfg(test)]
mod tests {
    use crate::rules::testing::*;

    const ID: &str = "attach-partition-scan";
    const PARENT: &str = "CREATE TABLE ev (id int, at date) PARTITION BY RANGE (at);";
    const ATTACH: &str =
        "ALTER TABLE ev ATTACH PARTITION ev_1 FOR VALUES FROM ('2020-01-01') TO ('2021-01-01')";

    #[test]
    fn flags_an_attach_without_a_check() {
        let found = hits(ID, ATTACH);
        assert_eq!(found.len(), 1);
        let unvalidated = format!(
            "ALTER TABLE ev_1 ADD CONSTRAINT b CHECK (at >= '2020-01-01' AND at < '2021-01-01') NOT VALID; {ATTACH}"
        );
        assert_eq!(hits(ID, &unvalidated).len(), 1);
        let other_column =
            format!("{PARENT} ALTER TABLE ev_1 ADD CONSTRAINT b CHECK (id > 0); {ATTACH}");
        assert_eq!(hits(ID, &other_column).len(), 1);
    }

    #[test]
    fn silent_with_a_validated_check_or_a_new_child() {
        let validated = format!(
            "{PARENT} ALTER TABLE ev_1 ADD CONSTRAINT b CHECK (at >= '2020-01-01' AND at < '2021-01-01') NOT VALID; \
             ALTER TABLE ev_1 VALIDATE CONSTRAINT b; {ATTACH}"
        );
        assert!(hits(ID, &validated).is_empty());
        let new_child = format!("CREATE TABLE ev_1 (id int, at date); {ATTACH}");
        assert!(hits(ID, &new_child).is_empty());
        assert!(hits(ID, "ALTER TABLE ev DETACH PARTITION ev_1").is_empty());
    }

    #[test]
    fn help_writes_the_check_from_the_bound() {
        let rule = crate::rules::get(ID).unwrap();
        let sql = format!(
            "{PARENT} {ATTACH}; ALTER TABLE l ATTACH PARTITION l_1 FOR VALUES IN (1, NULL)"
        );
        let stmts = crate::parse(&sql).unwrap();
        let file = crate::lint::SourceFile::default();
        let opts = crate::lint::LintOptions::default();
        let run = crate::lint::RunState::default();
        let ctx = crate::lint::FileCtx::new(&file, &stmts, &opts, &run);
        let helps: Vec<String> = (rule.check)(&ctx)
            .into_iter()
            .filter_map(|h| h.help)
            .collect();
        assert_eq!(
            helps[0],
            "ALTER TABLE ev_1 ADD CONSTRAINT ev_1_at_lull_bound CHECK (at IS NOT NULL AND at >= '2020-01-01' AND at < '2021-01-01') NOT VALID;\n\
             ALTER TABLE ev_1 VALIDATE CONSTRAINT ev_1_at_lull_bound;\n\
             ALTER TABLE ev ATTACH PARTITION ev_1 FOR VALUES FROM ('2020-01-01') TO ('2021-01-01');\n\
             ALTER TABLE ev_1 DROP CONSTRAINT ev_1_at_lull_bound;"
        );
        assert!(helps[1].contains("<an expression"), "{}", helps[1]);
        for help in &helps {
            assert!(
                crate::parse(&help.replace("<an expression the partition bound implies>", "true"))
                    .is_ok(),
                "{help}"
            );
        }
    }

    #[test]
    fn documented() {
        assert_documented(ID);
    }
}
