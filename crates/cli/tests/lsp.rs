//! `lull lsp` driven over stdio as an editor drives it: initialize,
//! didOpen / didChange, codeAction, hover, shutdown, exit.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::Duration;

use serde_json::{json, Value};

/// A minimal LSP client over the child's stdin/stdout.
struct Client {
    child: Child,
    stdin: ChildStdin,
    messages: Receiver<Value>,
    next_id: i64,
}

impl Client {
    fn start(dir: &Path) -> Client {
        let mut child = Command::new(env!("CARGO_BIN_EXE_lull"))
            .arg("lsp")
            .current_dir(dir)
            .env_remove("DATABASE_URL")
            .env_remove("LULL_ENV")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start lull lsp");
        let stdin = child.stdin.take().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, messages) = mpsc::channel();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            loop {
                let mut length = None;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    let line = line.trim_end();
                    if line.is_empty() {
                        break;
                    }
                    if let Some(n) = line.strip_prefix("Content-Length: ") {
                        length = n.parse::<usize>().ok();
                    }
                }
                let mut body = vec![0; length.expect("a Content-Length header")];
                reader.read_exact(&mut body).unwrap();
                if tx.send(serde_json::from_slice(&body).unwrap()).is_err() {
                    return;
                }
            }
        });
        Client {
            child,
            stdin,
            messages,
            next_id: 1,
        }
    }

    fn send(&mut self, message: Value) {
        let body = message.to_string();
        write!(self.stdin, "Content-Length: {}\r\n\r\n{body}", body.len()).unwrap();
        self.stdin.flush().unwrap();
    }

    fn notify(&mut self, method: &str, params: Value) {
        self.send(json!({"jsonrpc": "2.0", "method": method, "params": params}));
    }

    fn request(&mut self, method: &str, params: Value) -> Value {
        let id = self.next_id;
        self.next_id += 1;
        self.send(json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}));
        loop {
            let message = self.recv();
            if message["id"] == json!(id) {
                assert!(message.get("error").is_none(), "{method} failed: {message}");
                return message["result"].clone();
            }
        }
    }

    /// The next `publishDiagnostics` for `uri`.
    fn diagnostics(&mut self, uri: &str) -> Vec<Value> {
        loop {
            let message = self.recv();
            if message["method"] == "textDocument/publishDiagnostics"
                && message["params"]["uri"] == uri
            {
                return message["params"]["diagnostics"].as_array().unwrap().clone();
            }
        }
    }

    fn recv(&self) -> Value {
        self.messages
            .recv_timeout(Duration::from_secs(60))
            .expect("lull lsp answered within a minute")
    }
}

fn codes(diagnostics: &[Value]) -> Vec<(String, u64)> {
    diagnostics
        .iter()
        .map(|d| {
            (
                d["code"].as_str().unwrap_or_default().to_string(),
                d["range"]["start"]["line"].as_u64().unwrap(),
            )
        })
        .collect()
}

fn file_uri(path: &Path) -> String {
    format!("file://{}", path.canonicalize().unwrap().display())
}

#[test]
fn diagnostics_code_actions_and_hover_over_stdio() {
    let dir = tempfile::tempdir().unwrap();
    let migrations = dir.path().join("migrations");
    std::fs::create_dir(&migrations).unwrap();
    std::fs::write(
        migrations.join("20240101000000_items.sql"),
        "CREATE TABLE items (id bigint PRIMARY KEY);\n",
    )
    .unwrap();
    let path = migrations.join("20240102000000_orders_fk.sql");
    // `orders` and `customers` exist before this history: a live table.
    let text = "ALTER TABLE orders ADD CONSTRAINT orders_customer_fk FOREIGN KEY (customer_id) REFERENCES customers (id);\n\
                CREATE TABLE audit (id bigint PRIMARY KEY, at timestamptz);\n\
                CREATE INDEX audit_at_idx ON audit (at);\n";
    std::fs::write(&path, text).unwrap();
    let uri = file_uri(&path);

    let mut client = Client::start(dir.path());
    let init = client.request(
        "initialize",
        json!({"processId": null, "rootUri": file_uri(dir.path()), "capabilities": {}}),
    );
    assert_eq!(init["capabilities"]["hoverProvider"], json!(true), "{init}");
    assert_eq!(init["capabilities"]["codeActionProvider"], json!(true));
    client.notify("initialized", json!({}));

    client.notify(
        "textDocument/didOpen",
        json!({"textDocument": {"uri": uri, "languageId": "sql", "version": 1, "text": text}}),
    );
    let found = codes(&client.diagnostics(&uri));
    assert!(
        found.contains(&("constraint-not-valid".into(), 0)),
        "the FK on a live table is reported on line 1: {found:?}"
    );
    assert!(
        !found
            .iter()
            .any(|(code, _)| code == "create-index-not-concurrently"),
        "an index on a table created earlier in the same file is exempt: {found:?}"
    );

    // The unsaved buffer is what is linted.
    let edited = format!("{text}CREATE INDEX orders_customer_idx ON orders (customer_id);\n");
    client.notify(
        "textDocument/didChange",
        json!({"textDocument": {"uri": uri, "version": 2}, "contentChanges": [{"text": edited}]}),
    );
    let found = codes(&client.diagnostics(&uri));
    assert!(
        found.contains(&("create-index-not-concurrently".into(), 3)),
        "a plain index on a live table, line 4 of the buffer: {found:?}"
    );

    let actions = client.request(
        "textDocument/codeAction",
        json!({
            "textDocument": {"uri": uri},
            "range": {"start": {"line": 0, "character": 0}, "end": {"line": 0, "character": 10}},
            "context": {"diagnostics": []}
        }),
    );
    let actions = actions.as_array().expect("a list of code actions");
    let quick_fix = actions
        .iter()
        .find(|a| a["kind"] == "quickfix")
        .unwrap_or_else(|| panic!("a quick fix for the FK: {actions:?}"));
    assert_eq!(quick_fix["diagnostics"][0]["code"], "constraint-not-valid");
    let edit = &quick_fix["edit"]["changes"][&uri][0];
    let new_text = edit["newText"].as_str().unwrap();
    assert!(new_text.contains("NOT VALID"), "{new_text}");
    assert!(
        new_text.contains("VALIDATE CONSTRAINT orders_customer_fk"),
        "{new_text}"
    );
    assert!(
        actions.iter().any(|a| a["kind"] == "source.fixAll"),
        "a fix-all action beside it: {actions:?}"
    );

    let hover = client.request(
        "textDocument/hover",
        json!({"textDocument": {"uri": uri}, "position": {"line": 0, "character": 5}}),
    );
    let shown = hover["contents"]["value"].as_str().unwrap_or_default();
    assert!(
        shown.contains("| orders | SHARE ROW EXCLUSIVE | writes (reads go on) |"),
        "{shown}"
    );
    assert!(shown.contains("Migration risk"), "{shown}");
    assert!(
        shown.contains("constraint-not-valid") && shown.contains("NOT VALID"),
        "the rule's explain text on the diagnostic: {shown}"
    );

    client.request("shutdown", Value::Null);
    client.notify("exit", Value::Null);
    let status = client.child.wait().unwrap();
    assert!(
        status.success(),
        "lull lsp exits 0 after shutdown: {status}"
    );
}

#[test]
fn a_broken_config_is_one_diagnostic_saying_why() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("lull.toml"), "no_such_key = 1\n").unwrap();
    let path = dir.path().join("m.sql");
    std::fs::write(&path, "CREATE INDEX i ON t (c);\n").unwrap();
    let uri = file_uri(&path);
    let mut client = Client::start(dir.path());
    client.request(
        "initialize",
        json!({"processId": null, "rootUri": file_uri(dir.path()), "capabilities": {}}),
    );
    client.notify("initialized", json!({}));
    client.notify(
        "textDocument/didOpen",
        json!({"textDocument": {"uri": uri, "languageId": "sql", "version": 1,
                "text": "CREATE INDEX i ON t (c);\n"}}),
    );
    let diagnostics = client.diagnostics(&uri);
    assert_eq!(diagnostics.len(), 1, "{diagnostics:?}");
    let message = diagnostics[0]["message"].as_str().unwrap();
    assert!(
        message.contains("lull.toml") && message.contains("no_such_key"),
        "{message}"
    );
    client.request("shutdown", Value::Null);
    client.notify("exit", Value::Null);
    assert!(client.child.wait().unwrap().success());
}
