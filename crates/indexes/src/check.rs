//! `indexes check`: the declared indexes against the catalog, by name and
//! by normalized definition.

use serde::Serialize;
use tokio_postgres::Client;

use crate::catalog::{self, CatalogIndex};
use crate::definition::IndexDef;
use crate::error::Result;
use crate::expected::ExpectedSet;

/// What is wrong with one index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FindingKind {
    /// Declared, not in the database.
    Missing,
    /// In the database but INVALID (a failed or cancelled concurrent build).
    Invalid,
    /// Same name, different definition.
    Different,
    /// Declared under one name, present under another with the same definition.
    Renamed,
    /// In the database, not declared.
    Unexpected,
}

impl std::fmt::Display for FindingKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            FindingKind::Missing => "missing",
            FindingKind::Invalid => "INVALID",
            FindingKind::Different => "different",
            FindingKind::Renamed => "renamed",
            FindingKind::Unexpected => "unexpected",
        })
    }
}

/// One finding of `check`.
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    /// What is wrong.
    pub kind: FindingKind,
    /// Schema of the index.
    pub schema: String,
    /// Index name (the declared one, or the catalog's for `unexpected`).
    pub name: String,
    /// Table name.
    pub table: String,
    /// The declared definition, if declared.
    pub expected: Option<String>,
    /// Where it was declared (`file:line`).
    pub source: Option<String>,
    /// The catalog's definition, if present.
    pub actual: Option<String>,
    /// What differs, or other details, in words.
    pub details: Vec<String>,
}

/// The result of `check`.
#[derive(Debug, Clone, Serialize)]
pub struct CheckReport {
    /// Declared indexes compared.
    pub declared: usize,
    /// Catalog indexes compared (constraint-backed ones left out).
    pub present: usize,
    /// Schemas compared.
    pub schemas: Vec<String>,
    /// Everything that is wrong, ordered by schema, table, name.
    pub findings: Vec<Finding>,
    /// Statements in the files that could not be read.
    pub warnings: Vec<String>,
}

impl CheckReport {
    /// True when declared and actual indexes agree.
    pub fn ok(&self) -> bool {
        self.findings.is_empty()
    }
}

/// Compares `expected` with the catalog. Only schemas that declare
/// indexes are compared, plus `extra_schemas` (so a database with
/// extensions in other schemas does not report their indexes).
pub async fn check(
    client: &Client,
    expected: &ExpectedSet,
    extra_schemas: &[String],
    lull_schema: &str,
) -> Result<CheckReport> {
    let mut schemas = expected.schemas();
    schemas.extend(extra_schemas.iter().cloned());
    if schemas.is_empty() {
        schemas.push("public".to_string());
    }
    schemas.sort();
    schemas.dedup();
    let present: Vec<CatalogIndex> = catalog::indexes(client, &schemas, lull_schema)
        .await?
        .into_iter()
        // Constraint indexes are declared by ALTER TABLE … ADD CONSTRAINT.
        .filter(|i| i.constraint.is_none())
        .collect();
    Ok(compare(expected, &present, schemas))
}

fn compare(expected: &ExpectedSet, present: &[CatalogIndex], schemas: Vec<String>) -> CheckReport {
    let parsed: Vec<(&CatalogIndex, Option<IndexDef>)> = present
        .iter()
        .map(|i| (i, IndexDef::parse(&i.definition).ok()))
        .collect();
    let mut findings = Vec::new();
    let mut matched = vec![false; present.len()];
    let mut missing = Vec::new();
    for ((schema, name), e) in &expected.indexes {
        let Some(pos) = present
            .iter()
            .position(|i| &i.schema == schema && &i.name == name)
        else {
            missing.push((schema, name, e));
            continue;
        };
        matched[pos] = true;
        let (actual, actual_def) = &parsed[pos];
        let details = match actual_def {
            Some(d) => e.def.differences(d),
            None => vec![format!(
                "cannot parse the catalog definition `{}`",
                actual.definition
            )],
        };
        let kind = if !actual.valid {
            FindingKind::Invalid
        } else if !details.is_empty() {
            FindingKind::Different
        } else {
            continue;
        };
        findings.push(Finding {
            kind,
            schema: schema.clone(),
            name: name.clone(),
            table: actual.table.clone(),
            expected: Some(e.def.sql.clone()),
            source: Some(e.source.clone()),
            actual: Some(actual.definition.clone()),
            details,
        });
    }
    for (schema, name, e) in missing {
        // The same definition under another, undeclared name is most
        // likely a rename, not a missing plus an unexpected index.
        let twin = parsed.iter().enumerate().find(|(pos, (i, d))| {
            !matched[*pos]
                && i.valid
                && &i.schema == schema
                && !expected
                    .indexes
                    .contains_key(&(i.schema.clone(), i.name.clone()))
                && d.as_ref().is_some_and(|d| e.def.differences(d).is_empty())
        });
        let (kind, actual, details) = match twin {
            Some((pos, (i, _))) => {
                matched[pos] = true;
                (
                    FindingKind::Renamed,
                    Some(i.definition.clone()),
                    vec![format!("present as `{}` with the same definition", i.name)],
                )
            }
            None => (FindingKind::Missing, None, Vec::new()),
        };
        findings.push(Finding {
            kind,
            schema: schema.clone(),
            name: name.clone(),
            table: e.def.table.clone(),
            expected: Some(e.def.sql.clone()),
            source: Some(e.source.clone()),
            actual,
            details,
        });
    }
    for (pos, i) in present.iter().enumerate() {
        if !matched[pos] {
            let mut details = Vec::new();
            if !i.valid {
                details.push("INVALID: a failed concurrent build left it".to_string());
            }
            findings.push(Finding {
                kind: FindingKind::Unexpected,
                schema: i.schema.clone(),
                name: i.name.clone(),
                table: i.table.clone(),
                expected: None,
                source: None,
                actual: Some(i.definition.clone()),
                details,
            });
        }
    }
    findings.sort_by(|a, b| (&a.schema, &a.table, &a.name).cmp(&(&b.schema, &b.table, &b.name)));
    CheckReport {
        declared: expected.indexes.len(),
        present: present.len(),
        schemas,
        findings,
        warnings: expected.warnings.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn catalog(name: &str, def: &str, valid: bool) -> CatalogIndex {
        let d = IndexDef::parse(def).unwrap();
        CatalogIndex {
            schema: "public".into(),
            name: name.into(),
            table: d.table.clone(),
            definition: def.into(),
            valid,
            ready: valid,
            unique: d.unique,
            primary: false,
            constraint: None,
            size_bytes: 8192,
        }
    }

    #[test]
    fn finds_each_kind() {
        let mut expected = ExpectedSet::default();
        expected.add_sql(
            "CREATE INDEX ok ON t (a);\nCREATE INDEX gone ON t (b);\nCREATE INDEX broken ON t (c);\n\
             CREATE INDEX changed ON t (d);\nCREATE INDEX old_name ON t (e);",
            "schema.sql",
        )
        .unwrap();
        let present = vec![
            catalog("ok", "CREATE INDEX ok ON public.t USING btree (a)", true),
            catalog(
                "broken",
                "CREATE INDEX broken ON public.t USING btree (c)",
                false,
            ),
            catalog(
                "changed",
                "CREATE INDEX changed ON public.t USING btree (d, a)",
                true,
            ),
            catalog(
                "new_name",
                "CREATE INDEX new_name ON public.t USING btree (e)",
                true,
            ),
            catalog(
                "extra",
                "CREATE INDEX extra ON public.t USING btree (f)",
                true,
            ),
        ];
        let report = compare(&expected, &present, vec!["public".into()]);
        let kinds: Vec<(FindingKind, &str)> = report
            .findings
            .iter()
            .map(|f| (f.kind, f.name.as_str()))
            .collect();
        assert_eq!(
            kinds,
            vec![
                (FindingKind::Invalid, "broken"),
                (FindingKind::Different, "changed"),
                (FindingKind::Unexpected, "extra"),
                (FindingKind::Missing, "gone"),
                (FindingKind::Renamed, "old_name"),
            ]
        );
        assert!(!report.ok());
        assert_eq!(report.findings[3].source.as_deref(), Some("schema.sql:2"));
    }
}
