//! `--format json`: one document with every finding and each file's risk,
//! for machines. The shape is versioned; fields are only ever added.

use std::io::Write;

use lull_analyzer::{FileReport, Finding, LintReport};
use serde::Serialize;

use super::totals;

/// The document, borrowing the report (serialized straight to stdout).
#[derive(Serialize)]
struct Document<'a> {
    version: u32,
    findings: &'a [Finding],
    files: &'a [FileReport],
    summary: Summary,
}

#[derive(Serialize)]
struct Summary {
    files: usize,
    statements: usize,
    errors: usize,
    warnings: usize,
    infos: usize,
}

/// Prints the report as JSON on stdout.
pub fn print(report: &LintReport) {
    let (errors, warnings, infos) = totals(report);
    let document = Document {
        version: 1,
        findings: &report.findings,
        files: &report.files,
        summary: Summary {
            files: report.files.len(),
            statements: report.statements(),
            errors,
            warnings,
            infos,
        },
    };
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    // A closed pipe (`| head`) is not an error worth reporting.
    if serde_json::to_writer_pretty(&mut out, &document).is_ok() {
        let _ = writeln!(out);
    }
    let _ = out.flush();
}
