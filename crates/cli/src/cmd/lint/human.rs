//! `--format human`: a code frame per finding with `file:line:col`, the
//! rule id, the message and the safe alternative, then each file's risk
//! level and the totals. Colour only when stdout is a terminal (anstream).

use std::io::Write;

use lull_analyzer::{Finding, LintOptions, LintReport, RiskLevel, Severity, SourceFile};
use owo_colors::OwoColorize;

use super::totals;

/// Most statement lines shown in one code frame.
const MAX_FRAME_LINES: usize = 4;

/// Prints the report for people on stdout.
pub fn print(report: &LintReport, files: &[SourceFile], opts: &LintOptions) {
    let mut out = anstream::stdout();
    let _ = write_report(&mut out, report, files, opts);
}

fn write_report(
    out: &mut impl Write,
    report: &LintReport,
    files: &[SourceFile],
    opts: &LintOptions,
) -> std::io::Result<()> {
    for finding in &report.findings {
        let file = files.iter().find(|f| f.path == finding.file);
        write_finding(out, finding, file)?;
    }
    for file in &report.files {
        if file.parse_error.is_some() || file.risk.level == RiskLevel::Low {
            continue;
        }
        let level = match file.risk.level {
            RiskLevel::High => "high".red().bold().to_string(),
            _ => "medium".yellow().bold().to_string(),
        };
        writeln!(out, "{}: risk {level}", file.path.bold())?;
        for reason in file.risk.reasons.iter().take(3) {
            writeln!(out, "  {} {reason}", "-".dimmed())?;
        }
    }
    let (errors, warnings, infos) = totals(report);
    let sizes = if opts.stats.is_empty() {
        "table sizes unknown: pass --database-url or --stats for size-aware results"
    } else {
        "table sizes known"
    };
    let summary = format!(
        "{} error{}, {} warning{}, {} info in {} file{} ({} statement{}); {sizes}",
        errors,
        plural(errors),
        warnings,
        plural(warnings),
        infos,
        report.files.len(),
        plural(report.files.len()),
        report.statements(),
        plural(report.statements())
    );
    if errors > 0 {
        writeln!(out, "{}", summary.red().bold())
    } else if warnings > 0 {
        writeln!(out, "{}", summary.yellow().bold())
    } else {
        writeln!(out, "{}", summary.green().bold())
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

fn write_finding(
    out: &mut impl Write,
    f: &Finding,
    file: Option<&SourceFile>,
) -> std::io::Result<()> {
    let label = match f.severity {
        Severity::Error => "error".red().bold().to_string(),
        Severity::Warning => "warning".yellow().bold().to_string(),
        Severity::Info => "info".blue().bold().to_string(),
    };
    // The gutter is as wide as the largest line number shown.
    let width = (f.span.line + MAX_FRAME_LINES).to_string().len();
    let pad = " ".repeat(width);
    writeln!(out, "{label}[{}]: {}", f.rule.bold(), f.message.bold())?;
    writeln!(
        out,
        "{pad}{} {}:{}:{}",
        "-->".blue(),
        f.file,
        f.span.line,
        f.span.column
    )?;
    if let Some(file) = file {
        write_frame(out, f, file, width)?;
    }
    if let Some(help) = &f.help {
        let mut lines = help.lines();
        if let Some(first) = lines.next() {
            let looks_like_sql = help.trim_end().ends_with(';');
            if looks_like_sql {
                writeln!(
                    out,
                    "{pad} {} {}",
                    "=".blue(),
                    "safe alternative:".cyan().bold()
                )?;
                writeln!(out, "{pad}     {}", first.cyan())?;
            } else {
                writeln!(
                    out,
                    "{pad} {} {} {first}",
                    "=".blue(),
                    "help:".cyan().bold()
                )?;
            }
            for line in lines {
                writeln!(out, "{pad}     {}", line.cyan())?;
            }
        }
    }
    writeln!(out, "{pad} {} see `lull explain {}`", "=".blue(), f.rule)?;
    writeln!(out)
}

/// The statement's lines with a gutter, the first one underlined from the
/// finding's column.
fn write_frame(
    out: &mut impl Write,
    f: &Finding,
    file: &SourceFile,
    width: usize,
) -> std::io::Result<()> {
    let start = f.span.start.min(file.sql.len());
    let end = f.span.end.clamp(start, file.sql.len());
    let line_start = file.sql[..start].rfind('\n').map_or(0, |i| i + 1);
    let line_end = file.sql[end..]
        .find('\n')
        .map_or(file.sql.len(), |i| end + i);
    let text = &file.sql[line_start..line_end];
    let lines: Vec<&str> = text.lines().collect();
    writeln!(out, "{:width$} {}", "", "|".blue())?;
    for (i, line) in lines.iter().take(MAX_FRAME_LINES).enumerate() {
        let number = f.span.line + i;
        writeln!(
            out,
            "{} {} {line}",
            format!("{number:>width$}").blue(),
            "|".blue()
        )?;
        if i == 0 {
            let indent: String = line
                .chars()
                .take(f.span.column - 1)
                .map(|c| if c == '\t' { '\t' } else { ' ' })
                .collect();
            let rest = line
                .chars()
                .count()
                .saturating_sub(f.span.column - 1)
                .max(1);
            let marks = if f.span.start == f.span.end { 1 } else { rest };
            let caret = "^".repeat(marks);
            let caret = match f.severity {
                Severity::Error => caret.red().bold().to_string(),
                Severity::Warning => caret.yellow().bold().to_string(),
                Severity::Info => caret.blue().bold().to_string(),
            };
            writeln!(out, "{:width$} {} {indent}{caret}", "", "|".blue())?;
        }
    }
    if lines.len() > MAX_FRAME_LINES {
        writeln!(out, "{:width$} {} ...", "", "|".blue())?;
    }
    Ok(())
}
