//! `--format json`: one document with every finding and each file's risk,
//! for machines. The shape is versioned; fields are only ever added.

use lull_analyzer::LintReport;

use super::totals;

/// Prints the report as JSON on stdout.
pub fn print(report: &LintReport) {
    let (errors, warnings, infos) = totals(report);
    let value = serde_json::json!({
        "version": 1,
        "findings": report.findings,
        "files": report.files,
        "summary": {
            "files": report.files.len(),
            "statements": report.statements(),
            "errors": errors,
            "warnings": warnings,
            "infos": infos,
        },
    });
    println!(
        "{}",
        serde_json::to_string_pretty(&value).expect("a lint report serializes")
    );
}
