//! `--format github`: GitHub Actions workflow commands, one per finding,
//! which GitHub shows as annotations on the pull request's diff:
//!
//! ```text
//! ::error file=migrations/0001.sql,line=3,col=1,endLine=3,endColumn=40,title=lull create-index-not-concurrently::CREATE INDEX on `orders` ...
//! ```
//!
//! Values are escaped the way the runner expects (`%`, CR and LF in the
//! message; also `:` and `,` in properties), so a message never breaks out
//! of its command.

use std::fmt::Write;

use lull_analyzer::{LintReport, Severity, SourceFile};

/// Renders every finding as a workflow command, then a plain summary line.
pub fn render(report: &LintReport, files: &[SourceFile]) -> String {
    let mut out = String::new();
    for f in &report.findings {
        let command = match f.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Info => "notice",
        };
        let mut props = format!(
            "file={},line={},col={}",
            escape_property(&f.file),
            f.span.line,
            f.span.column
        );
        if let Some((line, column)) = super::end_position(f, files) {
            let _ = write!(props, ",endLine={line},endColumn={column}");
        }
        let _ = write!(
            props,
            ",title={}",
            escape_property(&format!("lull {}", f.rule))
        );
        let mut message = f.message.clone();
        if let Some(help) = &f.help {
            message.push_str("\n\nSafe alternative:\n");
            message.push_str(help);
        }
        let _ = writeln!(out, "::{command} {props}::{}", escape_data(&message));
    }
    let count = |s: Severity| report.findings.iter().filter(|f| f.severity == s).count();
    let _ = writeln!(
        out,
        "lull lint: {} file(s), {} error(s), {} warning(s), {} info",
        report.files.len(),
        count(Severity::Error),
        count(Severity::Warning),
        count(Severity::Info)
    );
    out
}

/// Escapes a message (the part after `::`).
fn escape_data(s: &str) -> String {
    s.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

/// Escapes a property value (`file=...`, `title=...`).
fn escape_property(s: &str) -> String {
    escape_data(s).replace(':', "%3A").replace(',', "%2C")
}

#[cfg(test)]
mod tests {
    use super::*;
    use lull_analyzer::{lint, LintOptions};

    fn report(path: &str, sql: &str) -> (LintReport, Vec<SourceFile>) {
        let files = vec![SourceFile {
            path: path.into(),
            sql: sql.into(),
            ..SourceFile::default()
        }];
        (lint(&files, &LintOptions::default()), files)
    }

    #[test]
    fn findings_become_annotations_with_positions() {
        let (report, files) = report(
            "db/0001_idx.sql",
            "-- an index\nCREATE INDEX IF NOT EXISTS i ON orders (a);\n",
        );
        let out = render(&report, &files);
        let line = out
            .lines()
            .find(|l| l.contains("create-index-not-concurrently"))
            .expect("annotation for the finding");
        assert!(
            line.starts_with(
                "::error file=db/0001_idx.sql,line=2,col=1,endLine=2,endColumn=43,\
                 title=lull create-index-not-concurrently::"
            ),
            "{line}"
        );
        // The safe alternative is part of the message, on escaped lines.
        assert!(line.contains("%0A%0ASafe alternative:%0A"), "{line}");
        assert!(line.contains("CONCURRENTLY"), "{line}");
        assert!(out
            .lines()
            .last()
            .unwrap()
            .starts_with("lull lint: 1 file(s), "));
    }

    #[test]
    fn severities_map_to_commands() {
        let (mut report, files) = report("a.sql", "CREATE INDEX IF NOT EXISTS i ON t (a);");
        report.findings[0].severity = Severity::Info;
        assert!(render(&report, &files).starts_with("::notice "));
        report.findings[0].severity = Severity::Warning;
        assert!(render(&report, &files).starts_with("::warning "));
    }

    #[test]
    fn values_cannot_break_out_of_the_command() {
        assert_eq!(escape_data("50%\r\nnext"), "50%25%0D%0Anext");
        assert_eq!(escape_property("a:b,c"), "a%3Ab%2Cc");
        let (mut report, files) =
            report("we,ird:name.sql", "CREATE INDEX IF NOT EXISTS i ON t (a);");
        report.findings[0].message = "line one\n::error::injected".into();
        let out = render(&report, &files);
        let first = out.lines().next().unwrap();
        assert!(first.contains("file=we%2Cird%3Aname.sql,"), "{first}");
        assert!(first.contains("line one%0A::error::injected"), "{first}");
        assert_eq!(
            out.lines().filter(|l| l.starts_with("::")).count(),
            report.findings.len()
        );
    }

    #[test]
    fn parse_errors_are_annotated_at_the_offending_token() {
        let (report, files) = report("bad.sql", "SELECT 1;\nCREATE TABEL x ();\n");
        let out = render(&report, &files);
        assert!(
            out.starts_with(
                "::error file=bad.sql,line=2,col=8,title=lull parse-error::syntax error"
            ),
            "{out}"
        );
    }
}
