//! What the language server computes for one document: diagnostics, code
//! actions and hovers. Plain functions over the document's text and its
//! project, so they read like `lull lint` and `lull fix` do.
//!
//! A document inside the project's migrations directory is linted with the
//! whole directory (in run order, the open buffer in place of the file on
//! disk), so "this table was created earlier" means what it means for
//! `lull lint`. Any other .sql file is linted on its own.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use lsp_types::{
    CodeAction, CodeActionKind, CodeActionOrCommand, Diagnostic, DiagnosticSeverity, Hover,
    HoverContents, MarkupContent, MarkupKind, NumberOrString, Position, Range, TextEdit, Uri,
    WorkspaceEdit,
};
use lull_analyzer::{
    fix, lint, parse_for, rules, Finding, FixOptions, LintOptions, LintReport, LockMode, Severity,
    SourceFile, FIXABLE_RULES,
};
use lull_config::{find_config, Config};

use crate::cmd::lint::{config_options, inputs};

/// The project a document belongs to: its lull.toml (or why it could not
/// be read) and the directory its migrations live in.
pub struct Project {
    config: Result<(Config, LintOptions), String>,
    migrations_dir: Option<PathBuf>,
}

/// The files one lint run sees, and which of them is the document.
struct Run {
    files: Vec<SourceFile>,
    doc: usize,
}

impl Project {
    /// The project of the document at `uri`: `config_path` (lull lsp
    /// --config) or the nearest lull.toml above the document; the
    /// migrations directory relative to that file, else to `root` (the
    /// editor's workspace).
    pub fn for_document(
        uri: &Uri,
        root: Option<&Path>,
        config_path: Option<&Path>,
        env: Option<&str>,
    ) -> Project {
        let doc = file_path(uri);
        let found = config_path.map(Path::to_path_buf).or_else(|| {
            doc.as_deref()
                .and_then(Path::parent)
                .and_then(find_config)
                .or_else(|| root.and_then(find_config))
        });
        let config = match found {
            Some(path) => Config::load(&path, env).map_err(|e| e.to_string()),
            None => Ok(Config::default()),
        };
        let config = config.and_then(|c| {
            let opts = config_options(&c, None, &[]).map_err(|e| e.message)?;
            Ok((c, opts))
        });
        let migrations_dir = config.as_ref().ok().map(|(c, _)| {
            let dir = c.migrations_dir();
            match (c.path.is_none() && dir.is_relative(), root) {
                (true, Some(root)) => root.join(dir),
                _ => dir,
            }
        });
        Project {
            config,
            migrations_dir,
        }
    }

    /// The document's findings as diagnostics; a broken lull.toml is one
    /// diagnostic on the first line, so the user sees why nothing else is.
    pub fn diagnostics(&self, uri: &Uri, text: &str) -> Vec<Diagnostic> {
        let (opts, run) = match self.run(uri, text) {
            Ok(pair) => pair,
            Err(message) => {
                return vec![Diagnostic {
                    range: Range::default(),
                    severity: Some(DiagnosticSeverity::ERROR),
                    source: Some("lull".into()),
                    message,
                    ..Diagnostic::default()
                }]
            }
        };
        let report = lint(&run.files, &opts);
        document_findings(&report, &run)
            .map(|f| diagnostic(f, &run.files[run.doc]))
            .collect()
    }

    /// Quick fixes for the fixable findings that touch `range`: one per
    /// rule (the rule's fix over the whole file, as `lull fix --rule`
    /// writes it), and one for every fixable finding at once.
    pub fn code_actions(&self, uri: &Uri, text: &str, range: Range) -> Vec<CodeActionOrCommand> {
        let Ok((opts, run)) = self.run(uri, text) else {
            return Vec::new();
        };
        let report = lint(&run.files, &opts);
        let file = &run.files[run.doc];
        let fixable: Vec<&Finding> = document_findings(&report, &run)
            .filter(|f| FIXABLE_RULES.contains(&f.rule))
            .collect();
        let touching: Vec<&Finding> = fixable
            .iter()
            .copied()
            .filter(|f| overlaps(span_range(f, file), range))
            .collect();
        let mut actions = Vec::new();
        let rules_here: BTreeSet<&'static str> = touching.iter().map(|f| f.rule).collect();
        for rule in &rules_here {
            let diagnostics = touching
                .iter()
                .filter(|f| f.rule == *rule)
                .map(|f| diagnostic(f, file))
                .collect();
            if let Some(action) = fix_action(&run, &opts, &[rule.to_string()], uri, diagnostics) {
                actions.push(CodeActionOrCommand::CodeAction(action));
            }
        }
        let all_rules: BTreeSet<&'static str> = fixable.iter().map(|f| f.rule).collect();
        if all_rules.len() > 1 || fixable.len() > touching.len() {
            if let Some(mut action) = fix_action(&run, &opts, &[], uri, Vec::new()) {
                action.title = "lull fix: every fixable finding in this file".into();
                action.kind = Some(CodeActionKind::SOURCE_FIX_ALL);
                actions.push(CodeActionOrCommand::CodeAction(action));
            }
        }
        actions
    }

    /// What `plan` knows about the statement under the cursor (its class,
    /// the lock per table and what that lock blocks, rewrites and scans),
    /// the file's risk, and `lull explain` for a finding under the cursor.
    pub fn hover(&self, uri: &Uri, text: &str, position: Position) -> Option<Hover> {
        let (opts, run) = self.run(uri, text).ok()?;
        let file = &run.files[run.doc];
        let offset = byte_offset(file, position)?;
        let report = lint(&run.files, &opts);
        let mut parts = Vec::new();
        if let Ok(statements) = parse_for(&file.sql, opts.pg_version) {
            // The statement runs until the next one starts (its `;` and
            // trailing comment belong to it).
            let index = statements.iter().rposition(|s| s.span.start <= offset);
            if let Some(stmt) = index.map(|i| &statements[i]) {
                parts.push(statement_facts(stmt));
            }
        }
        if let Some(risk) = report.files.get(run.doc).map(|f| &f.risk) {
            let mut line = format!("**Migration risk: {}**", risk.level.as_str());
            for reason in &risk.reasons {
                line.push_str(&format!("\n- {reason}"));
            }
            parts.push(line);
        }
        for finding in document_findings(&report, &run) {
            let end = finding.span.end.max(finding.span.start + 1);
            if (finding.span.start..=end).contains(&offset) {
                if let Some(rule) = rules::get(finding.rule) {
                    parts.push(format!(
                        "**{}** ({}): {}\n\n{}",
                        rule.id,
                        severity_word(finding.severity),
                        finding.message,
                        rule.doc
                    ));
                }
            }
        }
        (!parts.is_empty()).then(|| Hover {
            contents: HoverContents::Markup(MarkupContent {
                kind: MarkupKind::Markdown,
                value: parts.join("\n\n---\n\n"),
            }),
            range: None,
        })
    }

    /// The lint options and the files of one run with `text` as the
    /// document's content.
    fn run(&self, uri: &Uri, text: &str) -> Result<(LintOptions, Run), String> {
        let (config, opts) = self
            .config
            .as_ref()
            .map_err(|e| format!("lull.toml: {e}"))?;
        let doc_path = file_path(uri);
        let alone = || Run {
            files: vec![SourceFile {
                path: doc_path
                    .as_deref()
                    .map_or_else(|| uri.as_str().to_string(), |p| p.display().to_string()),
                sql: text.to_string(),
                ..SourceFile::default()
            }],
            doc: 0,
        };
        let run = match (&doc_path, &self.migrations_dir) {
            (Some(doc), Some(dir)) if inside(doc, dir) => {
                in_directory(config, dir, doc, text).unwrap_or_else(alone)
            }
            _ => alone(),
        };
        Ok((opts.clone(), run))
    }
}

/// The migrations of `dir` as `lull lint` reads them, with the buffer's
/// text in place of the document's file. `None` when the document is not
/// one of them (a down file, an excluded file) or the directory cannot be
/// read; the document is then linted on its own.
fn in_directory(config: &Config, dir: &Path, doc: &Path, text: &str) -> Option<Run> {
    let excludes = inputs::excludes(config).ok()?;
    let mut files = inputs::collect(&[dir.to_path_buf()], config, &excludes)
        .ok()?
        .files;
    let canonical = doc.canonicalize().ok()?;
    let index = files
        .iter()
        .position(|f| Path::new(&f.path).canonicalize().ok().as_ref() == Some(&canonical))?;
    let on_disk = std::fs::read_to_string(doc).ok()?;
    let file = &mut files[index];
    if file.sql == on_disk {
        file.sql = text.to_string();
    } else if let Some(at) = on_disk.find(&file.sql) {
        // A layout that keeps the up part in a section of the file
        // (dbmate): take the same section of the buffer while the text
        // around it is unchanged; otherwise keep the saved version until
        // the next save.
        let (before, after) = (&on_disk[..at], &on_disk[at + file.sql.len()..]);
        if text.starts_with(before)
            && text.ends_with(after)
            && text.len() >= before.len() + after.len()
        {
            file.sql = text[before.len()..text.len() - after.len()].to_string();
        }
    }
    Some(Run { files, doc: index })
}

fn inside(doc: &Path, dir: &Path) -> bool {
    match (doc.canonicalize(), dir.canonicalize()) {
        (Ok(doc), Ok(dir)) => doc.starts_with(dir),
        _ => false,
    }
}

/// The local path of a `file://` URI.
pub fn file_path(uri: &Uri) -> Option<PathBuf> {
    url::Url::parse(uri.as_str()).ok()?.to_file_path().ok()
}

fn document_findings<'a>(
    report: &'a LintReport,
    run: &'a Run,
) -> impl Iterator<Item = &'a Finding> {
    let path = &run.files[run.doc].path;
    report.findings.iter().filter(move |f| &f.file == path)
}

fn diagnostic(finding: &Finding, file: &SourceFile) -> Diagnostic {
    let mut message = finding.message.clone();
    if let Some(help) = &finding.help {
        message.push_str("\n\n");
        message.push_str(help);
    }
    Diagnostic {
        range: span_range(finding, file),
        severity: Some(match finding.severity {
            Severity::Error => DiagnosticSeverity::ERROR,
            Severity::Warning => DiagnosticSeverity::WARNING,
            Severity::Info => DiagnosticSeverity::INFORMATION,
        }),
        code: Some(NumberOrString::String(finding.rule.to_string())),
        source: Some("lull".into()),
        message,
        ..Diagnostic::default()
    }
}

/// One fix of the document as a code action replacing the linted part of
/// the file (all of it, or dbmate's up section).
fn fix_action(
    run: &Run,
    opts: &LintOptions,
    only: &[String],
    uri: &Uri,
    diagnostics: Vec<Diagnostic>,
) -> Option<CodeAction> {
    let fix_opts = FixOptions {
        lint: opts.clone(),
        only: only.to_vec(),
        ..FixOptions::default()
    };
    let fixed = fix(&run.files, &fix_opts).into_iter().nth(run.doc)?;
    if !fixed.changed() {
        return None;
    }
    let file = &run.files[run.doc];
    let edit = TextEdit {
        range: Range::new(position(file, 0), position(file, file.sql.len())),
        new_text: fixed.fixed.clone(),
    };
    let notes: Vec<&str> = fixed.applied.iter().map(|a| a.note.as_str()).collect();
    Some(CodeAction {
        title: format!("lull fix: {}", notes.join("; ")),
        kind: Some(CodeActionKind::QUICKFIX),
        diagnostics: (!diagnostics.is_empty()).then_some(diagnostics),
        edit: Some(WorkspaceEdit {
            changes: Some(HashMap::from([(uri.clone(), vec![edit])])),
            ..WorkspaceEdit::default()
        }),
        is_preferred: Some(!only.is_empty()),
        ..CodeAction::default()
    })
}

fn statement_facts(stmt: &lull_analyzer::Statement) -> String {
    let facts = &stmt.facts;
    let first_line = stmt.text.lines().next().unwrap_or_default();
    let mut out = format!(
        "**`{}`** — {} statement, {}",
        first_line.trim(),
        format!("{:?}", facts.class).to_lowercase(),
        if facts.transactional {
            "may run in a transaction"
        } else {
            "must run outside a transaction"
        }
    );
    if facts.locks.is_empty() {
        out.push_str("\n\nTakes no table lock lull knows of.");
    } else {
        out.push_str("\n\n| table | lock | blocks |\n|---|---|---|");
        for lock in &facts.locks {
            out.push_str(&format!(
                "\n| {} | {} | {} |",
                lock.relation,
                lock.mode.sql_name(),
                blocks(lock.mode)
            ));
        }
    }
    if !facts.rewrites.is_empty() {
        out.push_str(&format!(
            "\n\nRewrites {} (the lock is held while every row is copied).",
            facts.rewrites.join(", ")
        ));
    }
    if !facts.scans.is_empty() {
        out.push_str(&format!(
            "\n\nScans {} in full while the lock is held.",
            facts.scans.join(", ")
        ));
    }
    out
}

/// What the application cannot do on a table while `mode` is held.
fn blocks(mode: LockMode) -> &'static str {
    if mode.conflicts_with(&LockMode::AccessShare) {
        "reads and writes"
    } else if mode.conflicts_with(&LockMode::RowExclusive) {
        "writes (reads go on)"
    } else if mode.conflicts_with(&LockMode::ShareUpdateExclusive) {
        "other schema changes, VACUUM (reads and writes go on)"
    } else {
        "nothing the application does"
    }
}

fn severity_word(severity: Severity) -> &'static str {
    match severity {
        Severity::Error => "error",
        Severity::Warning => "warning",
        Severity::Info => "info",
    }
}

fn span_range(finding: &Finding, file: &SourceFile) -> Range {
    let end = finding.span.end.max(finding.span.start);
    Range::new(position(file, finding.span.start), position(file, end))
}

fn overlaps(a: Range, b: Range) -> bool {
    let key = |p: Position| (p.line, p.character);
    key(a.start) <= key(b.end) && key(b.start) <= key(a.end)
}

/// The editor position (0-based line in the file, UTF-16 column) of a byte
/// offset into the linted SQL.
fn position(file: &SourceFile, offset: usize) -> Position {
    let mut offset = offset.min(file.sql.len());
    while !file.sql.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &file.sql[..offset];
    let line = before.matches('\n').count() + file.line_offset;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let character: usize = before[line_start..].chars().map(char::len_utf16).sum();
    Position::new(line as u32, character as u32)
}

/// The byte offset into the linted SQL of an editor position, `None` when
/// the position is outside it (dbmate's down section).
fn byte_offset(file: &SourceFile, pos: Position) -> Option<usize> {
    let line = (pos.line as usize).checked_sub(file.line_offset)?;
    let mut start = 0;
    for _ in 0..line {
        start += file.sql[start..].find('\n')? + 1;
    }
    let rest = &file.sql[start..];
    let mut units = 0;
    for (i, c) in rest.char_indices() {
        if units >= pos.character as usize || c == '\n' {
            return Some(start + i);
        }
        units += c.len_utf16();
    }
    Some(file.sql.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(sql: &str, line_offset: usize) -> SourceFile {
        SourceFile {
            path: "m.sql".into(),
            sql: sql.into(),
            line_offset,
            ..SourceFile::default()
        }
    }

    #[test]
    fn positions_count_utf16_and_the_line_offset() {
        let f = file("select 'é😀';\nalter table t add c int;", 3);
        let after_emoji = "select 'é😀".len();
        assert_eq!(position(&f, after_emoji), Position::new(3, 11));
        let second = f.sql.find("alter").unwrap();
        assert_eq!(position(&f, second), Position::new(4, 0));
        assert_eq!(byte_offset(&f, Position::new(4, 6)), Some(second + 6));
        assert_eq!(byte_offset(&f, Position::new(3, 11)), Some(after_emoji));
        assert_eq!(byte_offset(&f, Position::new(1, 0)), None);
    }

    #[test]
    fn lock_descriptions_follow_the_conflict_table() {
        assert_eq!(blocks(LockMode::AccessExclusive), "reads and writes");
        assert_eq!(blocks(LockMode::Share), "writes (reads go on)");
        assert!(blocks(LockMode::ShareUpdateExclusive).starts_with("other schema"));
        assert_eq!(
            blocks(LockMode::AccessShare),
            "nothing the application does"
        );
    }
}
