//! Renderers of lint reports for CI systems: SARIF 2.1.0 for code
//! scanning dashboards and GitHub workflow annotations. Each takes the
//! analyzer's report and returns text; printing is the caller's job, so
//! the output is easy to test.
//!
//! The human and JSON formats live next to `lull lint` itself
//! (`cmd/lint/`); these two are shared by any command that reports
//! findings. `latency_plot` draws `lull demo --plot`'s SVG chart.

pub mod github;
pub mod latency_plot;
pub mod sarif;

use std::io::Write;

use lull_analyzer::{Finding, SourceFile};

/// Writes rendered output to stdout. A closed pipe (`| head`) is not an
/// error worth a panic: the reader has what it wanted.
pub fn emit(text: &str) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes());
    let _ = out.flush();
}

/// Where a finding ends: 1-based line and column (in characters, exclusive)
/// in the file on disk, computed from the finding's byte span in the linted
/// SQL. `None` when the file is not among `files` or the span is empty.
pub(crate) fn end_position(finding: &Finding, files: &[SourceFile]) -> Option<(usize, usize)> {
    let file = files.iter().find(|f| f.path == finding.file)?;
    let (start, end) = (finding.span.start, finding.span.end);
    if end <= start || end > file.sql.len() || !file.sql.is_char_boundary(end) {
        return None;
    }
    let before = &file.sql[..end];
    let line = before.matches('\n').count() + 1 + file.line_offset;
    let line_start = before.rfind('\n').map_or(0, |p| p + 1);
    let column = before[line_start..].chars().count() + 1;
    Some((line, column))
}
