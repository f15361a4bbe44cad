//! `invalid-index-kept`

use pg_query::NodeEnum;

use super::{Category, Rule};
use crate::ast;
use crate::data::{self, Outcome};
use crate::lint::{FileCtx, Hit, Runner, Severity};
use crate::sql::quote_ident;

pub(crate) static RULE: Rule = Rule {
    id: "invalid-index-kept",
    summary: "CREATE INDEX IF NOT EXISTS whose name is an INVALID index today (with a database)",
    doc: DOC,
    default_severity: Severity::Error,
    opt_in: false,
    size_sensitive: false,
    category: Category::Process,
    check,
};

const DOC: &str = "\
invalid-index-kept: CREATE INDEX IF NOT EXISTS whose name is an INVALID index today

What it flags
  With a database URL only: CREATE INDEX ... IF NOT EXISTS name when an
  index of that name exists in the table's schema and is INVALID - what
  a failed or cancelled CREATE INDEX CONCURRENTLY leaves behind.

Why it hurts
  IF NOT EXISTS sees the name and does nothing: the migration reports
  success, the broken index stays, no query can use it, and every write
  still pays to maintain it. The next deploy believes the index exists.

  `lull migrate` drops an INVALID index of the name it builds (when no
  backend is still building it) before each try, so under lull's runner
  this is information.

Safe alternative
  Drop the leftover first, then build:

    DROP INDEX CONCURRENTLY IF EXISTS orders_created_at_idx;
    CREATE INDEX CONCURRENTLY IF NOT EXISTS orders_created_at_idx ON orders (created_at);
";

fn check(ctx: &FileCtx) -> Vec<Hit> {
    let mut hits = Vec::new();
    for (i, stmt) in ctx.stmts.iter().enumerate() {
        let NodeEnum::IndexStmt(s) = stmt.ast() else {
            continue;
        };
        let Some(rel) = s
            .relation
            .as_ref()
            .filter(|_| s.if_not_exists && !s.idxname.is_empty())
        else {
            continue;
        };
        let table = ast::rel_name(rel);
        let probe = data::invalid_index(rel, &s.idxname);
        let hit = match ctx.ask(i, &table, &probe) {
            None | Some(Outcome::NoTable) | Some(Outcome::Count(0)) => continue,
            Some(Outcome::Count(_)) if ctx.runner == Runner::Lull => Hit::new(
                i,
                format!(
                    "index `{}` exists and is INVALID; lull migrate drops it and builds it again",
                    s.idxname
                ),
            )
            .at_most(Severity::Info),
            Some(Outcome::Count(_)) => Hit::new(
                i,
                format!(
                    "index `{}` exists and is INVALID: IF NOT EXISTS keeps the broken index and reports success",
                    s.idxname
                ),
            )
            .help(Some(format!(
                "drop the leftover first:\nDROP INDEX CONCURRENTLY IF EXISTS {};",
                match ast::rel_schema(rel) {
                    Some(schema) => format!("{}.{}", quote_ident(schema), quote_ident(&s.idxname)),
                    None => quote_ident(&s.idxname),
                }
            ))),
            Some(Outcome::Unknown(why)) => Hit::new(
                i,
                format!("could not check whether index `{}` is INVALID: {why}", s.idxname),
            )
            .at_most(Severity::Info),
        };
        hits.push(hit.table(&table));
    }
    hits
}

#[cfg(test)]
mod tests {
    use crate::rules::testing::{assert_documented, hits};

    #[test]
    fn documented_and_silent_without_a_database() {
        assert_documented("invalid-index-kept");
        assert!(hits(
            "invalid-index-kept",
            "CREATE INDEX CONCURRENTLY IF NOT EXISTS i ON t (a);"
        )
        .is_empty());
    }
}
