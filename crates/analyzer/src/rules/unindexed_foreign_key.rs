//! `unindexed-foreign-key`

use pg_query::protobuf::{self, ConstrType};
use pg_query::NodeEnum;

use super::{added_column, added_constraint, alter_table, contype, Category, Rule};
use crate::ast;
use crate::lint::{FileCtx, Hit, Severity};
use crate::parse::Statement;

pub(crate) static RULE: Rule = Rule {
    id: "unindexed-foreign-key",
    summary: "a FOREIGN KEY whose columns no known index leads with",
    doc: DOC,
    default_severity: Severity::Warning,
    opt_in: false,
    size_sensitive: false,
    category: Category::Process,
    check,
};

const DOC: &str = "\
unindexed-foreign-key: a FOREIGN KEY whose columns no known index leads with

What it flags
  A FOREIGN KEY (in CREATE TABLE, ADD CONSTRAINT or ADD COLUMN ...
  REFERENCES) when no index starts with the referencing columns. Indexes
  count from every migration of the directory (earlier or later files:
  a CREATE INDEX, or a PRIMARY KEY / UNIQUE) and, with a database URL,
  from the catalog. When lull sees neither a whole directory nor the
  catalog (a single file, stdin), the index may exist where lull cannot
  see it, so the finding is only information.

Why it hurts
  Every DELETE or key UPDATE on the referenced table must find the
  referencing rows; without an index that is a full scan of the
  referencing table per row, holding locks on both tables - and ON DELETE
  CASCADE turns one delete into minutes.

Safe alternative
  Index the referencing columns:

    CREATE INDEX CONCURRENTLY IF NOT EXISTS orders_user_id_idx ON orders (user_id);
";

fn check(ctx: &FileCtx) -> Vec<Hit> {
    let here = created_indexes(ctx.stmts);
    let mut hits = Vec::new();
    for (i, stmt) in ctx.stmts.iter().enumerate() {
        for (table, cols) in foreign_keys(stmt) {
            let relname = table.rsplit('.').next().unwrap_or(&table);
            let earlier = ctx.run.indexes.get(relname).into_iter().flatten();
            // `run.indexes` holds every file's indexes and the catalog's.
            let covered = earlier.chain(here.iter()).any(|(t, idx)| {
                same_table(t, &table) && idx.len() >= cols.len() && idx[..cols.len()] == cols[..]
            });
            if covered {
                continue;
            }
            let quoted: Vec<String> = cols.iter().map(|c| crate::sql::quote_ident(c)).collect();
            let name = crate::make_object_name(
                table.rsplit('.').next().unwrap_or(&table),
                Some(&cols.join("_")),
                "idx",
            );
            let help = format!(
                "CREATE INDEX CONCURRENTLY IF NOT EXISTS {} ON {} ({});",
                crate::sql::quote_ident(&name),
                quote_dotted(&table),
                quoted.join(", ")
            );
            let mut hit = Hit::new(
                i,
                format!(
                    "no index on `{table}` leads with ({}), so deletes on the referenced table scan it",
                    cols.join(", ")
                ),
            )
            .table(&table)
            .help(Some(help));
            if !ctx.run.indexes_complete {
                hit = hit.at_most(Severity::Info);
            }
            hits.push(hit);
        }
    }
    hits
}

fn quote_dotted(name: &str) -> String {
    name.split('.')
        .map(crate::sql::quote_ident)
        .collect::<Vec<_>>()
        .join(".")
}

fn same_table(a: &str, b: &str) -> bool {
    a == b || a.rsplit('.').next() == b.rsplit('.').next() && (a.contains('.') != b.contains('.'))
}

/// (table, columns) of the foreign keys a statement adds.
fn foreign_keys(stmt: &Statement) -> Vec<(String, Vec<String>)> {
    let mut out = Vec::new();
    let fk_cols = |c: &protobuf::Constraint| -> Vec<String> {
        c.fk_attrs
            .iter()
            .filter_map(ast::string_value)
            .map(str::to_string)
            .collect()
    };
    match stmt.ast() {
        NodeEnum::CreateStmt(s) => {
            let table = s.relation.as_ref().map(ast::rel_name).unwrap_or_default();
            for elt in &s.table_elts {
                if let Some(c) =
                    ast::as_constraint(elt).filter(|c| contype(c) == ConstrType::ConstrForeign)
                {
                    out.push((table.clone(), fk_cols(c)));
                }
                if let Some(col) = ast::as_column_def(elt) {
                    if col
                        .constraints
                        .iter()
                        .filter_map(ast::as_constraint)
                        .any(|c| contype(c) == ConstrType::ConstrForeign)
                    {
                        out.push((table.clone(), vec![col.colname.clone()]));
                    }
                }
            }
        }
        _ => {
            if let Some((rel, cmds)) = alter_table(stmt) {
                let table = ast::rel_name(rel);
                for cmd in cmds {
                    if let Some(c) =
                        added_constraint(cmd).filter(|c| contype(c) == ConstrType::ConstrForeign)
                    {
                        out.push((table.clone(), fk_cols(c)));
                    }
                    if let Some(col) = added_column(cmd) {
                        if col
                            .constraints
                            .iter()
                            .filter_map(ast::as_constraint)
                            .any(|c| contype(c) == ConstrType::ConstrForeign)
                        {
                            out.push((table.clone(), vec![col.colname.clone()]));
                        }
                    }
                }
            }
        }
    }
    out.retain(|(_, cols)| !cols.is_empty());
    out
}

/// (table, columns) of every index the statements create: CREATE INDEX
/// on plain columns, and PRIMARY KEY / UNIQUE constraints.
pub(crate) fn created_indexes(stmts: &[Statement]) -> Vec<(String, Vec<String>)> {
    let mut out = Vec::new();
    let key_cols = |c: &protobuf::Constraint| -> Vec<String> {
        c.keys
            .iter()
            .filter_map(ast::string_value)
            .map(str::to_string)
            .collect()
    };
    let is_key = |c: &protobuf::Constraint| {
        matches!(
            contype(c),
            ConstrType::ConstrPrimary | ConstrType::ConstrUnique
        )
    };
    for stmt in stmts {
        match stmt.ast() {
            NodeEnum::IndexStmt(s) => {
                let table = s.relation.as_ref().map(ast::rel_name).unwrap_or_default();
                let cols: Vec<String> = s
                    .index_params
                    .iter()
                    .map_while(|p| match &p.node {
                        Some(NodeEnum::IndexElem(e)) if !e.name.is_empty() => Some(e.name.clone()),
                        _ => None,
                    })
                    .collect();
                out.push((table, cols));
            }
            NodeEnum::CreateStmt(s) => {
                let table = s.relation.as_ref().map(ast::rel_name).unwrap_or_default();
                for elt in &s.table_elts {
                    if let Some(c) = ast::as_constraint(elt).filter(|c| is_key(c)) {
                        out.push((table.clone(), key_cols(c)));
                    }
                    if let Some(col) = ast::as_column_def(elt) {
                        if col
                            .constraints
                            .iter()
                            .filter_map(ast::as_constraint)
                            .any(is_key)
                        {
                            out.push((table.clone(), vec![col.colname.clone()]));
                        }
                    }
                }
            }
            _ => {
                if let Some((rel, cmds)) = alter_table(stmt) {
                    let table = ast::rel_name(rel);
                    for c in cmds
                        .iter()
                        .filter_map(|c| added_constraint(c))
                        .filter(|c| is_key(c))
                    {
                        out.push((table.clone(), key_cols(c)));
                    }
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use crate::rules::testing::*;

    const ID: &str = "unindexed-foreign-key";

    #[test]
    fn flags_foreign_keys_without_index() {
        assert_eq!(
            hits(
                ID,
                "CREATE TABLE o (id int PRIMARY KEY, user_id int REFERENCES u (id))"
            )
            .len(),
            1
        );
        assert_eq!(
            hits(
                ID,
                "ALTER TABLE o ADD CONSTRAINT f FOREIGN KEY (a, b) REFERENCES p (a, b) NOT VALID"
            )
            .len(),
            1
        );
        // An index that does not lead with the key does not help.
        let sql = "ALTER TABLE o ADD FOREIGN KEY (u) REFERENCES u (id) NOT VALID; CREATE INDEX CONCURRENTLY i ON o (x, u)";
        assert_eq!(hits(ID, sql).len(), 1);
    }

    #[test]
    fn allows_indexed_foreign_keys() {
        let sql = "CREATE TABLE o (id int PRIMARY KEY, user_id int REFERENCES u (id)); CREATE INDEX o_u ON o (user_id, id)";
        assert!(hits(ID, sql).is_empty());
        assert!(hits(
            ID,
            "CREATE TABLE o (user_id int PRIMARY KEY REFERENCES u (id))"
        )
        .is_empty());
    }

    #[test]
    fn documented() {
        assert_documented(ID);
    }
}
