//! `--format sarif`: a SARIF 2.1.0 log (the OASIS Static Analysis Results
//! Interchange Format), which GitHub code scanning, GitLab and most CI
//! dashboards read.
//!
//! One run, with every lull rule in `tool.driver.rules` (its summary, its
//! full `lull explain` text and its default level) and one result per
//! finding. Positions are 1-based lines and columns counted in Unicode
//! code points (`columnKind: unicodeCodePoints`), exactly as lull reports
//! them elsewhere; the end of a statement is given too, so a dashboard can
//! highlight the whole statement.

use lull_analyzer::{rules, Category, LintReport, Severity, SourceFile};
use serde_json::{json, Map, Value};

/// The schema URI written into the log.
pub const SCHEMA_URI: &str = "https://json.schemastore.org/sarif-2.1.0.json";

/// Renders the report as a pretty-printed SARIF 2.1.0 log.
pub fn render(report: &LintReport, files: &[SourceFile]) -> String {
    let value = log(report, files);
    serde_json::to_string_pretty(&value).expect("a SARIF log serializes") + "\n"
}

/// The SARIF log as a JSON value.
pub fn log(report: &LintReport, files: &[SourceFile]) -> Value {
    let all = rules::all();
    let driver_rules: Vec<Value> = all
        .iter()
        .map(|r| {
            json!({
                "id": r.id,
                "name": pascal_case(r.id),
                "shortDescription": { "text": r.summary },
                "fullDescription": { "text": r.doc },
                "help": { "text": r.doc },
                "defaultConfiguration": {
                    "level": level(r.default_severity),
                    "enabled": !r.opt_in,
                },
                "properties": {
                    "category": category(r.category),
                    "tags": ["postgresql", "migrations", category(r.category)],
                },
            })
        })
        .collect();
    let mut artifacts: Vec<String> = Vec::new();
    let results: Vec<Value> = report
        .findings
        .iter()
        .map(|f| {
            let uri = uri_reference(&f.file);
            let artifact_index = match artifacts.iter().position(|a| *a == uri) {
                Some(i) => i,
                None => {
                    artifacts.push(uri.clone());
                    artifacts.len() - 1
                }
            };
            let mut region = Map::new();
            region.insert("startLine".into(), json!(f.span.line.max(1)));
            region.insert("startColumn".into(), json!(f.span.column.max(1)));
            if let Some((line, column)) = super::end_position(f, files) {
                region.insert("endLine".into(), json!(line));
                region.insert("endColumn".into(), json!(column));
            }
            let mut text = f.message.clone();
            if let Some(help) = &f.help {
                text.push_str("\n\nSafe alternative:\n");
                text.push_str(help);
            }
            let mut result = json!({
                "ruleId": f.rule,
                "level": level(f.severity),
                "message": { "text": text },
                "locations": [{
                    "physicalLocation": {
                        "artifactLocation": { "uri": uri, "index": artifact_index },
                        "region": Value::Object(region),
                    }
                }],
            });
            if let Some(index) = all.iter().position(|r| r.id == f.rule) {
                result["ruleIndex"] = json!(index);
            }
            if let Some(table) = &f.table {
                result["properties"] = json!({ "table": table });
            }
            result
        })
        .collect();
    let artifacts: Vec<Value> = artifacts
        .into_iter()
        .map(|uri| json!({ "location": { "uri": uri } }))
        .collect();
    json!({
        "$schema": SCHEMA_URI,
        "version": "2.1.0",
        "runs": [{
            "tool": {
                "driver": {
                    "name": "lull",
                    "version": env!("CARGO_PKG_VERSION"),
                    "semanticVersion": env!("CARGO_PKG_VERSION"),
                    "rules": driver_rules,
                }
            },
            "invocations": [{ "executionSuccessful": true }],
            "columnKind": "unicodeCodePoints",
            "artifacts": artifacts,
            "results": results,
        }],
    })
}

/// SARIF's level for a severity (`info` is SARIF's `note`).
fn level(severity: Severity) -> &'static str {
    match severity {
        Severity::Error => "error",
        Severity::Warning => "warning",
        Severity::Info => "note",
    }
}

fn category(c: Category) -> &'static str {
    match c {
        Category::Locking => "locking",
        Category::Compatibility => "compatibility",
        Category::Process => "process",
        Category::Hygiene => "hygiene",
        Category::Meta => "meta",
    }
}

/// `create-index-not-concurrently` → `CreateIndexNotConcurrently`, the
/// form SARIF suggests for a rule's `name`.
fn pascal_case(id: &str) -> String {
    id.split('-')
        .map(|part| {
            let mut chars = part.chars();
            match chars.next() {
                Some(first) => first.to_ascii_uppercase().to_string() + chars.as_str(),
                None => String::new(),
            }
        })
        .collect()
}

/// A path as a URI reference (RFC 3986): `/` separators, absolute paths
/// as `file://` URIs, and every byte outside the unreserved and path
/// characters percent-encoded (so `<stdin>` or a space stays valid).
pub fn uri_reference(path: &str) -> String {
    let path = path.replace('\\', "/");
    let (prefix, rest) = match path.strip_prefix('/') {
        Some(rest) => ("file:///", rest),
        None => ("", path.as_str()),
    };
    let mut out = String::from(prefix);
    for b in rest.bytes() {
        // `:` is left out on purpose: in the first segment of a relative
        // reference it would read as a scheme.
        let keep = b.is_ascii_alphanumeric() || b"-._~/!$&'()*+,;=@".contains(&b);
        if keep {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rule_names_and_uris() {
        assert_eq!(
            pascal_case("create-index-not-concurrently"),
            "CreateIndexNotConcurrently"
        );
        assert_eq!(uri_reference("db/0001 add.sql"), "db/0001%20add.sql");
        assert_eq!(uri_reference("<stdin>"), "%3Cstdin%3E");
        assert_eq!(uri_reference("/srv/app/m.sql"), "file:///srv/app/m.sql");
        assert_eq!(uri_reference("db\\m.sql"), "db/m.sql");
        assert_eq!(uri_reference("c:x.sql"), "c%3Ax.sql");
        assert_eq!(uri_reference("é.sql"), "%C3%A9.sql");
    }
}
