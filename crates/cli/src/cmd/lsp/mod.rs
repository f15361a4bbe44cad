//! `lull lsp`: a language server over stdio, so editors show lull's
//! findings while a migration is written.
//!
//! The server is a thin loop over `lsp-server` (the scaffold rust-analyzer
//! uses): it keeps the text of every open document, and on open, change
//! and save re-lints the document *as part of its project* — the same
//! config, runner and history awareness `lull lint` applies to the
//! migrations directory — and publishes the findings as diagnostics.
//! Code actions come from `lull fix`, hovers from the analyzer's statement
//! facts and `lull explain`. The work itself is in [`analysis`]; nothing
//! here decides what a finding is.
//!
//! It is not a general SQL language server: no completion, no formatting,
//! no go-to-definition.

mod analysis;

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args as ClapArgs;
use lsp_server::{Connection, ErrorCode, Message, Notification, Request, Response};
use lsp_types::notification::{
    DidChangeTextDocument, DidCloseTextDocument, DidOpenTextDocument, DidSaveTextDocument,
    Notification as _, PublishDiagnostics,
};
use lsp_types::request::{CodeActionRequest, HoverRequest, Request as _};
use lsp_types::{
    CodeActionParams, CodeActionProviderCapability, DidChangeTextDocumentParams,
    DidCloseTextDocumentParams, DidOpenTextDocumentParams, DidSaveTextDocumentParams, HoverParams,
    HoverProviderCapability, InitializeParams, PublishDiagnosticsParams, SaveOptions,
    ServerCapabilities, TextDocumentSyncCapability, TextDocumentSyncKind, TextDocumentSyncOptions,
    TextDocumentSyncSaveOptions, Uri,
};

use crate::context::GlobalArgs;
use crate::error::{CliError, CliResult};

pub use analysis::Project;

/// Run lull's language server on stdin/stdout (for editors).
///
/// Editors start it themselves; you only point them at the command. For
/// each open .sql file it publishes lull's lint findings as diagnostics
/// (with the project's lull.toml, runner and migration history, like
/// `lull lint`), offers `lull fix`'s safe form as a quick fix, and on hover
/// shows the lock each statement takes per table, the file's risk, and the
/// `lull explain` text of a finding.
///
/// Neovim (0.11+):
///   vim.lsp.config('lull', { cmd = { 'lull', 'lsp' }, filetypes = { 'sql' },
///                            root_markers = { 'lull.toml', '.git' } })
///   vim.lsp.enable('lull')
///
/// VS Code: any generic LSP client extension, with the command `lull lsp`
/// for the `sql` language.
#[derive(ClapArgs, Debug)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// Accepted for clients that pass it; stdio is the only transport.
    #[arg(long)]
    pub stdio: bool,
}

/// Runs `lull lsp` until the client sends `shutdown` and `exit`.
pub fn run(global: &GlobalArgs, _args: Args) -> CliResult {
    let (connection, io_threads) = Connection::stdio();
    let failed = |e: &dyn std::fmt::Display| {
        CliError::new(format!("language server protocol error: {e}"))
            .hint("lull lsp is started by an editor; it speaks LSP on stdin/stdout")
    };
    let capabilities = ServerCapabilities {
        text_document_sync: Some(TextDocumentSyncCapability::Options(
            TextDocumentSyncOptions {
                open_close: Some(true),
                change: Some(TextDocumentSyncKind::FULL),
                save: Some(TextDocumentSyncSaveOptions::SaveOptions(SaveOptions {
                    include_text: Some(true),
                })),
                ..TextDocumentSyncOptions::default()
            },
        )),
        code_action_provider: Some(CodeActionProviderCapability::Simple(true)),
        hover_provider: Some(HoverProviderCapability::Simple(true)),
        ..ServerCapabilities::default()
    };
    let caps = serde_json::to_value(capabilities).map_err(|e| failed(&e))?;
    let init = connection.initialize(caps).map_err(|e| failed(&e))?;
    let init: InitializeParams = serde_json::from_value(init).map_err(|e| failed(&e))?;
    let mut server = Server {
        connection,
        root: root_dir(&init),
        env: global.env_name.clone(),
        config_path: global.config.clone(),
        documents: HashMap::new(),
    };
    server.main_loop().map_err(|e| failed(&e))?;
    drop(server);
    io_threads.join().map_err(|e| failed(&e))?;
    Ok(ExitCode::SUCCESS)
}

/// The workspace root the client named, used when there is no lull.toml.
#[allow(deprecated)] // root_uri: older clients send nothing else.
fn root_dir(init: &InitializeParams) -> Option<PathBuf> {
    let uri = init
        .workspace_folders
        .as_ref()
        .and_then(|f| f.first())
        .map(|f| f.uri.clone())
        .or_else(|| init.root_uri.clone())?;
    analysis::file_path(&uri)
}

struct Server {
    connection: Connection,
    root: Option<PathBuf>,
    env: Option<String>,
    config_path: Option<PathBuf>,
    documents: HashMap<Uri, String>,
}

type LoopResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;

impl Server {
    fn main_loop(&mut self) -> LoopResult {
        while let Ok(message) = self.connection.receiver.recv() {
            match message {
                Message::Request(req) => {
                    if self.connection.handle_shutdown(&req)? {
                        return Ok(());
                    }
                    let response = self.request(req);
                    self.connection.sender.send(Message::Response(response))?;
                }
                Message::Notification(note) => self.notification(note)?,
                Message::Response(_) => {}
            }
        }
        Ok(())
    }

    fn project(&self, uri: &Uri) -> Project {
        Project::for_document(
            uri,
            self.root.as_deref(),
            self.config_path.as_deref(),
            self.env.as_deref(),
        )
    }

    fn request(&self, req: Request) -> Response {
        let id = req.id.clone();
        let result = match req.method.as_str() {
            CodeActionRequest::METHOD => serde_json::from_value::<CodeActionParams>(req.params)
                .map(|p| {
                    let uri = p.text_document.uri.clone();
                    match self.documents.get(&uri) {
                        Some(text) => {
                            let actions = self.project(&uri).code_actions(&uri, text, p.range);
                            serde_json::to_value(actions).unwrap_or_default()
                        }
                        None => serde_json::Value::Null,
                    }
                }),
            HoverRequest::METHOD => serde_json::from_value::<HoverParams>(req.params).map(|p| {
                let doc = p.text_document_position_params;
                match self.documents.get(&doc.text_document.uri) {
                    Some(text) => {
                        let hover = self.project(&doc.text_document.uri).hover(
                            &doc.text_document.uri,
                            text,
                            doc.position,
                        );
                        serde_json::to_value(hover).unwrap_or_default()
                    }
                    None => serde_json::Value::Null,
                }
            }),
            _ => {
                return Response::new_err(
                    id,
                    ErrorCode::MethodNotFound as i32,
                    format!("lull lsp does not handle {}", req.method),
                )
            }
        };
        match result {
            Ok(value) => Response::new_ok(id, value),
            Err(e) => Response::new_err(id, ErrorCode::InvalidParams as i32, e.to_string()),
        }
    }

    fn notification(&mut self, note: Notification) -> LoopResult {
        let uri = match note.method.as_str() {
            DidOpenTextDocument::METHOD => {
                let p: DidOpenTextDocumentParams = serde_json::from_value(note.params)?;
                self.documents
                    .insert(p.text_document.uri.clone(), p.text_document.text);
                p.text_document.uri
            }
            DidChangeTextDocument::METHOD => {
                let p: DidChangeTextDocumentParams = serde_json::from_value(note.params)?;
                // Full sync: the last change holds the whole text.
                if let Some(change) = p.content_changes.into_iter().last() {
                    self.documents
                        .insert(p.text_document.uri.clone(), change.text);
                }
                p.text_document.uri
            }
            DidSaveTextDocument::METHOD => {
                let p: DidSaveTextDocumentParams = serde_json::from_value(note.params)?;
                if let Some(text) = p.text {
                    self.documents.insert(p.text_document.uri.clone(), text);
                }
                p.text_document.uri
            }
            DidCloseTextDocument::METHOD => {
                let p: DidCloseTextDocumentParams = serde_json::from_value(note.params)?;
                self.documents.remove(&p.text_document.uri);
                // A closed file keeps no diagnostics in the editor.
                return self.publish(p.text_document.uri, Vec::new());
            }
            _ => return Ok(()),
        };
        let Some(text) = self.documents.get(&uri) else {
            return Ok(());
        };
        let diagnostics = self.project(&uri).diagnostics(&uri, text);
        self.publish(uri, diagnostics)
    }

    fn publish(&self, uri: Uri, diagnostics: Vec<lsp_types::Diagnostic>) -> LoopResult {
        let params = PublishDiagnosticsParams {
            uri,
            diagnostics,
            version: None,
        };
        let note = Notification::new(PublishDiagnostics::METHOD.to_string(), params);
        self.connection.sender.send(Message::Notification(note))?;
        Ok(())
    }
}
