//! libpq's connection conventions, so that a connection string, the `PG*`
//! environment and `~/.pgpass` mean to lull what they mean to `psql`.
//!
//! What is covered, each as the libpq documentation ("Connection Strings",
//! "Parameter Key Words", "Environment Variables", "The Password File",
//! "SSL Support") describes it:
//!
//! - both forms of connection string: `postgresql://user:pw@h1:5432,h2/db?k=v`
//!   (percent-encoded parts, several hosts, a socket directory as a
//!   percent-encoded host or as `?host=/path`) and `host=h port=5432 k='v'`;
//! - environment variables for every keyword the string leaves out
//!   (`PGHOST`, `PGHOSTADDR`, `PGPORT`, `PGDATABASE`, `PGUSER`,
//!   `PGPASSWORD`, `PGPASSFILE`, `PGOPTIONS`, `PGAPPNAME`,
//!   `PGCONNECT_TIMEOUT`, `PGSSLMODE`, `PGSSLROOTCERT`, `PGSSLCERT`,
//!   `PGSSLKEY`, `PGSSLSNI`, `PGSSLNEGOTIATION`, `PGTARGETSESSIONATTRS`,
//!   `PGCHANNELBINDING`, `PGLOADBALANCEHOSTS`, `PGGSSENCMODE`);
//! - the defaults: a Unix socket in the default socket directory, port
//!   5432, the operating-system user, a database named like the user;
//! - the password file (`passfile`, `PGPASSFILE`, `~/.pgpass`): first
//!   matching line, `*` wildcards, `\` escapes, `localhost` for the default
//!   socket directory, ignored when group or world can read it;
//! - `sslmode` exactly as libpq reads it: ignored on Unix sockets; `prefer`
//!   tries TLS and falls back to plaintext, `require` encrypts or fails;
//!   any mode that uses TLS checks the chain when a root certificate file
//!   is there (`sslrootcert`, else `~/.postgresql/root.crt`), so
//!   `require` with a root file is `verify-ca`; `verify-ca` and
//!   `verify-full` fail without one; `sslrootcert=system` means the
//!   system's roots and makes `verify-full` the default and the only mode
//!   allowed; client certificates from `sslcert`/`sslkey` (else
//!   `~/.postgresql/postgresql.crt`/`.key`), the key refused when others
//!   can read it.
//!
//! No crate implements these rules for tokio-postgres: its `Config` parses
//! most keywords but knows no environment, password file, socket default,
//! `sslrootcert`/`sslcert`/`sslkey` or verifying modes; the small crates
//! that read `.pgpass` or the environment cover parts of it (and differ
//! from libpq on the socket-directory rule). So the rules live here, as
//! plain data and functions with the tests beside them; `db.rs` turns the
//! result into connections.
//!
//! Not covered (a clear error names them): service files (`service`,
//! `PGSERVICE`), GSSAPI, `sslpassword` (encrypted keys), CRLs,
//! `requirepeer`, `replication`.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

/// A connection string that lull cannot use, with what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ConninfoError(pub String);

fn err<T>(msg: impl Into<String>) -> Result<T, ConninfoError> {
    Err(ConninfoError(msg.into()))
}

/// Keywords lull understands and hands on (to tokio-postgres or to its TLS
/// set-up).
const SUPPORTED: &[&str] = &[
    "host",
    "hostaddr",
    "port",
    "dbname",
    "user",
    "password",
    "passfile",
    "options",
    "application_name",
    "fallback_application_name",
    "connect_timeout",
    "client_encoding",
    "keepalives",
    "keepalives_idle",
    "keepalives_interval",
    "keepalives_count",
    "tcp_user_timeout",
    "target_session_attrs",
    "channel_binding",
    "load_balance_hosts",
    "sslmode",
    "requiressl",
    "sslnegotiation",
    "sslrootcert",
    "sslcert",
    "sslkey",
    "sslsni",
    "sslcompression",
    "gssencmode",
];

/// libpq keywords lull knows but does not support.
const UNSUPPORTED: &[&str] = &[
    "service",
    "sslpassword",
    "sslcertmode",
    "sslcrl",
    "sslcrldir",
    "ssl_min_protocol_version",
    "ssl_max_protocol_version",
    "requirepeer",
    "krbsrvname",
    "gsslib",
    "gssdelegation",
    "replication",
    "require_auth",
    "min_protocol_version",
    "max_protocol_version",
];

/// Environment variables and the keyword each one defaults (libpq,
/// "Environment Variables").
const ENV: &[(&str, &str)] = &[
    ("PGHOST", "host"),
    ("PGHOSTADDR", "hostaddr"),
    ("PGPORT", "port"),
    ("PGDATABASE", "dbname"),
    ("PGUSER", "user"),
    ("PGPASSWORD", "password"),
    ("PGPASSFILE", "passfile"),
    ("PGOPTIONS", "options"),
    ("PGAPPNAME", "application_name"),
    ("PGCONNECT_TIMEOUT", "connect_timeout"),
    ("PGCLIENTENCODING", "client_encoding"),
    ("PGSSLMODE", "sslmode"),
    ("PGREQUIRESSL", "requiressl"),
    ("PGSSLNEGOTIATION", "sslnegotiation"),
    ("PGSSLROOTCERT", "sslrootcert"),
    ("PGSSLCERT", "sslcert"),
    ("PGSSLKEY", "sslkey"),
    ("PGSSLSNI", "sslsni"),
    ("PGSSLCOMPRESSION", "sslcompression"),
    ("PGGSSENCMODE", "gssencmode"),
    ("PGTARGETSESSIONATTRS", "target_session_attrs"),
    ("PGCHANNELBINDING", "channel_binding"),
    ("PGLOADBALANCEHOSTS", "load_balance_hosts"),
    ("PGSERVICE", "service"),
];

/// Names of the environment variables that say where to connect; when one
/// is set, an empty connection string is a complete one.
pub const LOCATION_ENV: &[&str] = &["PGHOST", "PGHOSTADDR", "PGPORT", "PGDATABASE", "PGUSER"];

/// The keyword/value pairs of a connection string (the last of a repeated
/// keyword wins, as in libpq).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Params(BTreeMap<String, String>);

impl Params {
    /// The value of a keyword.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    fn set(&mut self, key: &str, value: String) -> Result<(), ConninfoError> {
        if UNSUPPORTED.contains(&key) {
            return err(format!(
                "the connection option \"{key}\" is not supported by lull; leave it out"
            ));
        }
        if !SUPPORTED.contains(&key) {
            return err(format!("invalid connection option \"{key}\""));
        }
        self.0.insert(key.to_string(), value);
        Ok(())
    }

    /// Fills every keyword the string left out from its environment
    /// variable (an empty variable counts as unset, as in libpq).
    pub fn with_env(
        mut self,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Params, ConninfoError> {
        for (var, key) in ENV {
            if self.0.contains_key(*key) {
                continue;
            }
            if let Some(v) = env(var).filter(|v| !v.is_empty()) {
                if *key == "service" {
                    return err(format!(
                        "{var} is set, but lull does not read service files; \
                         unset it and give the connection in DATABASE_URL or PG* variables"
                    ));
                }
                self.set(key, v)?;
            }
        }
        Ok(self)
    }
}

/// Parses a connection string, URI or keyword/value form. An empty string
/// gives no parameters (everything comes from the environment and the
/// defaults).
pub fn parse(conninfo: &str) -> Result<Params, ConninfoError> {
    let s = conninfo.trim();
    for scheme in ["postgresql://", "postgres://"] {
        if let Some(rest) = s.strip_prefix(scheme) {
            return parse_uri(rest);
        }
    }
    if s.contains("://") {
        return err("a connection URI starts with postgresql:// or postgres://");
    }
    parse_key_values(s)
}

fn parse_key_values(s: &str) -> Result<Params, ConninfoError> {
    let mut params = Params::default();
    let mut chars = s.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.peek().is_none() {
            return Ok(params);
        }
        let mut key = String::new();
        while let Some(c) = chars.next_if(|c| *c != '=' && !c.is_whitespace()) {
            key.push(c);
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.next() != Some('=') {
            return err(format!(
                "missing \"=\" after \"{key}\" in the connection string"
            ));
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let mut value = String::new();
        if chars.next_if_eq(&'\'').is_some() {
            loop {
                match chars.next() {
                    None => return err("unterminated quoted string in the connection string"),
                    Some('\\') => value.extend(chars.next()),
                    Some('\'') => break,
                    Some(c) => value.push(c),
                }
            }
        } else {
            while let Some(c) = chars.next_if(|c| !c.is_whitespace()) {
                if c == '\\' {
                    value.extend(chars.next());
                } else {
                    value.push(c);
                }
            }
        }
        params.set(&key, value)?;
    }
}

fn parse_uri(rest: &str) -> Result<Params, ConninfoError> {
    let mut params = Params::default();
    let (before_query, query) = match rest.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (rest, None),
    };
    let (authority, path) = match before_query.split_once('/') {
        Some((a, p)) => (a, Some(p)),
        None => (before_query, None),
    };
    let hostspec = match authority.rsplit_once('@') {
        Some((userinfo, hosts)) => {
            let (user, password) = match userinfo.split_once(':') {
                Some((u, p)) => (u, Some(p)),
                None => (userinfo, None),
            };
            if !user.is_empty() {
                params.set("user", decode(user)?)?;
            }
            if let Some(p) = password {
                params.set("password", decode(p)?)?;
            }
            hosts
        }
        None => authority,
    };
    let mut hosts = Vec::new();
    let mut ports = Vec::new();
    if !hostspec.is_empty() {
        for spec in hostspec.split(',') {
            let (host, port) = if let Some(v6) = spec.strip_prefix('[') {
                let Some((addr, after)) = v6.split_once(']') else {
                    return err(format!("unterminated [ in the host \"{spec}\""));
                };
                match after.strip_prefix(':') {
                    Some(p) => (addr.to_string(), p),
                    None if after.is_empty() => (addr.to_string(), ""),
                    None => {
                        return err(format!(
                            "unexpected \"{after}\" after the host \"[{addr}]\""
                        ))
                    }
                }
            } else {
                match spec.split_once(':') {
                    Some((h, p)) => (decode(h)?, p),
                    None => (decode(spec)?, ""),
                }
            };
            if !port.is_empty() && port.parse::<u16>().is_err() {
                return err(format!("invalid port \"{port}\" in the connection URI"));
            }
            hosts.push(host);
            ports.push(port.to_string());
        }
        if hosts.iter().any(|h| !h.is_empty()) {
            params.set("host", hosts.join(","))?;
        }
        if ports.iter().any(|p| !p.is_empty()) {
            params.set("port", ports.join(","))?;
        }
    }
    if let Some(db) = path.filter(|p| !p.is_empty()) {
        params.set("dbname", decode(db)?)?;
    }
    for pair in query
        .into_iter()
        .flat_map(|q| q.split('&'))
        .filter(|p| !p.is_empty())
    {
        let Some((k, v)) = pair.split_once('=') else {
            return err(format!("missing \"=\" in the URI parameter \"{pair}\""));
        };
        let (k, v) = (decode(k)?, decode(v)?);
        // libpq accepts JDBC's ssl=true as sslmode=require.
        if k == "ssl" && v == "true" {
            params.set("sslmode", "require".into())?;
        } else {
            params.set(&k, v)?;
        }
    }
    Ok(params)
}

fn decode(s: &str) -> Result<String, ConninfoError> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok());
            let Some(b) = hex else {
                return err(format!("invalid percent-encoding in \"{s}\""));
            };
            out.push(b);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| ConninfoError(format!("\"{s}\" is not UTF-8 once decoded")))
}

/// `sslmode`, as libpq defines its values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    /// Never TLS.
    Disable,
    /// Plaintext first; TLS only when the server refuses plaintext.
    Allow,
    /// TLS when the server offers it, else plaintext (libpq's default).
    Prefer,
    /// TLS or fail.
    Require,
    /// TLS, and the certificate chain must lead to a trusted root.
    VerifyCa,
    /// As `VerifyCa`, and the certificate must name the host.
    VerifyFull,
}

impl SslMode {
    fn parse(s: &str) -> Result<SslMode, ConninfoError> {
        Ok(match s {
            "disable" => SslMode::Disable,
            "allow" => SslMode::Allow,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            other => {
                return err(format!(
                    "invalid sslmode \"{other}\" (disable, allow, prefer, require, verify-ca \
                     or verify-full)"
                ))
            }
        })
    }

    /// The keyword value.
    pub fn as_str(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Allow => "allow",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }
}

/// Where the trusted roots come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Roots {
    /// No root file: the chain is not checked (only in non-verifying modes).
    None,
    /// A PEM file of CA certificates.
    File(PathBuf),
    /// `sslrootcert=system`: the system's trusted roots.
    System,
}

/// What TLS means for one connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSettings {
    /// The mode.
    pub mode: SslMode,
    /// The roots the chain is checked against; with [`Roots::None`] any
    /// certificate is accepted (the session is still encrypted).
    pub roots: Roots,
    /// Check that the certificate names the host (verify-full).
    pub check_host: bool,
    /// Client certificate and key files, when there is a certificate.
    pub client_cert: Option<(PathBuf, PathBuf)>,
    /// Send the host name in SNI (`sslsni`, default on).
    pub sni: bool,
    /// `sslnegotiation=direct` (PostgreSQL 17+).
    pub direct: bool,
}

/// One server to try: a socket directory or a host name / address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The `host` value: a name, an address or a socket directory; empty
    /// when only `hostaddr` was given.
    pub host: String,
    /// `hostaddr`, when given (the address connected to; `host` is then
    /// only for the certificate and the password file).
    pub hostaddr: Option<IpAddr>,
    /// The port.
    pub port: u16,
    /// The password for this server: the string's or `PGPASSWORD`, else
    /// the password file's line for it.
    pub password: Option<String>,
    /// Where the password comes from, for people (never the password).
    pub password_from: Option<String>,
}

impl Target {
    /// Whether this is a Unix-domain socket (libpq: a host that starts
    /// with `/`, and no `hostaddr`).
    pub fn is_unix(&self) -> bool {
        self.hostaddr.is_none() && self.host.starts_with('/')
    }

    /// `host:port` or `socket dir (port N)`, for messages.
    pub fn describe(&self) -> String {
        if self.is_unix() {
            format!("socket {}/.s.PGSQL.{}", self.host, self.port)
        } else if self.host.is_empty() {
            match self.hostaddr {
                Some(IpAddr::V6(a)) => format!("[{a}]:{}", self.port),
                Some(a) => format!("{a}:{}", self.port),
                None => format!(":{}", self.port),
            }
        } else if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// Everything needed to connect, with libpq's rules applied.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// The servers, in the order to try them.
    pub targets: Vec<Target>,
    /// The user.
    pub user: String,
    /// The database.
    pub dbname: String,
    /// TLS for TCP connections (Unix sockets never use TLS).
    pub tls: TlsSettings,
    /// Keyword/value pairs handed to tokio-postgres as they are.
    pub passthrough: Vec<(String, String)>,
    /// The application name, when the string or `PGAPPNAME` sets one.
    pub application_name: Option<String>,
    /// Things worth telling when the connection fails (an ignored
    /// password file, ...). Never a password.
    pub notes: Vec<String>,
}

impl Resolved {
    /// One line per server saying where and how lull connects: host, port,
    /// user, database, sslmode, where the password comes from. Never the
    /// password itself.
    pub fn summary(&self) -> Vec<String> {
        self.targets
            .iter()
            .map(|t| {
                let tls = if t.is_unix() {
                    "no TLS (Unix socket)".to_string()
                } else {
                    let roots = match &self.tls.roots {
                        Roots::None => String::new(),
                        Roots::File(f) => format!(", sslrootcert {}", f.display()),
                        Roots::System => ", sslrootcert system".to_string(),
                    };
                    let cert = match &self.tls.client_cert {
                        Some((c, _)) => format!(", sslcert {}", c.display()),
                        None => String::new(),
                    };
                    format!("sslmode {}{roots}{cert}", self.tls.mode.as_str())
                };
                format!(
                    "{} user {} database {}, {tls}, password {}",
                    t.describe(),
                    self.user,
                    self.dbname,
                    t.password_from
                        .as_deref()
                        .map_or_else(|| "none".to_string(), |f| format!("from {f}"))
                )
            })
            .collect()
    }
}

/// What `resolve` reads from the machine; tests give their own.
pub struct Machine<'a> {
    /// An environment variable.
    pub env: &'a dyn Fn(&str) -> Option<String>,
    /// The home directory (`~/.pgpass`, `~/.postgresql/`).
    pub home: Option<PathBuf>,
    /// The operating-system user name (the default user).
    pub os_user: Option<String>,
    /// The default socket directory (libpq's compile-time
    /// `DEFAULT_PGSOCKET_DIR`).
    pub socket_dir: PathBuf,
}

impl Machine<'static> {
    /// This process's environment, home and user.
    pub fn current() -> Machine<'static> {
        Machine {
            env: &|k| std::env::var(k).ok(),
            home: std::env::var_os("HOME")
                .filter(|h| !h.is_empty())
                .map(PathBuf::from),
            os_user: os_user(),
            socket_dir: default_socket_dir(),
        }
    }
}

/// Debian and Ubuntu build libpq with `/var/run/postgresql`; upstream's
/// default is `/tmp`. The first that exists is taken.
pub fn default_socket_dir() -> PathBuf {
    let debian = Path::new("/var/run/postgresql");
    if debian.is_dir() {
        debian.to_path_buf()
    } else {
        PathBuf::from("/tmp")
    }
}

fn os_user() -> Option<String> {
    // SAFETY: getpwuid returns null or a pointer to a record valid until the
    // next call; the name is copied out at once.
    unsafe {
        let pw = libc::getpwuid(libc::geteuid());
        if pw.is_null() {
            return None;
        }
        std::ffi::CStr::from_ptr((*pw).pw_name)
            .to_str()
            .ok()
            .map(str::to_string)
    }
}

/// Applies the environment, defaults and password file to a connection
/// string.
pub fn resolve(conninfo: &str, m: &Machine<'_>) -> Result<Resolved, ConninfoError> {
    let given = parse(conninfo)?;
    let password_in_string = given.get("password").is_some();
    let p = given.with_env(m.env)?;
    let mut notes = Vec::new();

    let user = match p.get("user").filter(|u| !u.is_empty()) {
        Some(u) => u.to_string(),
        None => m.os_user.clone().ok_or_else(|| {
            ConninfoError(
                "no user given and the operating-system user is unknown; set user or PGUSER".into(),
            )
        })?,
    };
    let dbname = p
        .get("dbname")
        .filter(|d| !d.is_empty())
        .map_or_else(|| user.clone(), str::to_string);

    let hosts: Vec<String> = p
        .get("host")
        .map(|h| h.split(',').map(str::to_string).collect())
        .unwrap_or_default();
    let addrs: Vec<Option<IpAddr>> = match p.get("hostaddr") {
        Some(a) => a
            .split(',')
            .map(|a| {
                if a.is_empty() {
                    Ok(None)
                } else {
                    a.parse().map(Some).map_err(|_| {
                        ConninfoError(format!("invalid hostaddr \"{a}\": give an IP address"))
                    })
                }
            })
            .collect::<Result<_, _>>()?,
        None => Vec::new(),
    };
    if !hosts.is_empty() && !addrs.is_empty() && hosts.len() != addrs.len() {
        return err(format!(
            "{} hosts but {} hostaddrs: give one hostaddr per host",
            hosts.len(),
            addrs.len()
        ));
    }
    let count = hosts.len().max(addrs.len()).max(1);
    let ports: Vec<u16> = match p.get("port") {
        Some(list) => list
            .split(',')
            .map(|s| {
                if s.is_empty() {
                    Ok(5432)
                } else {
                    s.trim()
                        .parse()
                        .map_err(|_| ConninfoError(format!("invalid port \"{s}\"")))
                }
            })
            .collect::<Result<_, _>>()?,
        None => vec![5432],
    };
    if ports.len() != 1 && ports.len() != count {
        return err(format!(
            "{count} hosts but {} ports: give one port, or one per host",
            ports.len()
        ));
    }
    let explicit_password = p.get("password").map(str::to_string);
    let passfile = match p.get("passfile") {
        Some(f) => Some(PathBuf::from(f)),
        None => m.home.as_ref().map(|h| h.join(".pgpass")),
    };
    let pgpass = match (&explicit_password, &passfile) {
        (None, Some(path)) => match PassFile::read(path) {
            Ok(f) => f,
            Err(note) => {
                notes.push(note);
                None
            }
        },
        _ => None,
    };
    let mut targets = Vec::with_capacity(count);
    for i in 0..count {
        let host = hosts.get(i).cloned().unwrap_or_default();
        let hostaddr = addrs.get(i).copied().flatten();
        let host = if host.is_empty() && hostaddr.is_none() {
            m.socket_dir.to_string_lossy().into_owned()
        } else {
            host
        };
        let port = ports[if ports.len() == 1 { 0 } else { i }];
        let mut target = Target {
            host,
            hostaddr,
            port,
            password: explicit_password.clone(),
            password_from: explicit_password.as_ref().map(|_| {
                if password_in_string {
                    "the connection string".to_string()
                } else {
                    "PGPASSWORD".to_string()
                }
            }),
        };
        if let Some(file) = &pgpass {
            let name = if target.host.is_empty() {
                hostaddr.map(|a| a.to_string()).unwrap_or_default()
            } else if target.is_unix() && Path::new(&target.host) == m.socket_dir {
                "localhost".to_string()
            } else {
                target.host.clone()
            };
            target.password = file.lookup(&name, port, &dbname, &user);
            if target.password.is_some() {
                target.password_from = passfile
                    .as_ref()
                    .map(|f| format!("the password file {}", f.display()));
            }
        }
        targets.push(target);
    }

    let tls = tls_settings(&p, m)?;
    match p.get("gssencmode") {
        None | Some("disable" | "prefer") => {}
        Some(other) => {
            return err(format!(
                "gssencmode={other}: lull does not support GSSAPI encryption; use TLS (sslmode)"
            ))
        }
    }
    if let Some(enc) = p.get("client_encoding") {
        if !enc.eq_ignore_ascii_case("utf8") && !enc.eq_ignore_ascii_case("utf-8") {
            return err(format!(
                "client_encoding={enc}: lull always talks UTF8; leave client_encoding out"
            ));
        }
    }
    let mut passthrough = Vec::new();
    for key in [
        "options",
        "connect_timeout",
        "keepalives",
        "keepalives_idle",
        "keepalives_interval",
        "tcp_user_timeout",
        "target_session_attrs",
        "channel_binding",
        "load_balance_hosts",
    ] {
        if let Some(v) = p.get(key) {
            passthrough.push((key.to_string(), v.to_string()));
        }
    }
    if let Some(v) = p.get("keepalives_count") {
        passthrough.push(("keepalives_retries".into(), v.to_string()));
    }
    let application_name = p
        .get("application_name")
        .or(p.get("fallback_application_name"))
        .map(str::to_string);
    Ok(Resolved {
        targets,
        user,
        dbname,
        tls,
        passthrough,
        application_name,
        notes,
    })
}

fn tls_settings(p: &Params, m: &Machine<'_>) -> Result<TlsSettings, ConninfoError> {
    let dot = m.home.as_ref().map(|h| h.join(".postgresql"));
    let system = p.get("sslrootcert") == Some("system");
    let mode = match (p.get("sslmode"), p.get("requiressl")) {
        (Some(s), _) => SslMode::parse(s)?,
        (None, Some("1")) => SslMode::Require,
        (None, _) if system => SslMode::VerifyFull,
        (None, _) => SslMode::Prefer,
    };
    if system && mode != SslMode::VerifyFull {
        return err(format!(
            "sslrootcert=system needs sslmode=verify-full (it is the default then), not {}: \
             anyone can get a certificate from a public CA for a name they own",
            mode.as_str()
        ));
    }
    let roots = if system {
        Roots::System
    } else {
        let file = p
            .get("sslrootcert")
            .filter(|f| !f.is_empty())
            .map(PathBuf::from)
            .or_else(|| dot.as_ref().map(|d| d.join("root.crt")));
        match file {
            Some(f) if f.exists() => Roots::File(f),
            other if matches!(mode, SslMode::VerifyCa | SslMode::VerifyFull) => {
                let shown = other.map_or_else(
                    || "~/.postgresql/root.crt".to_string(),
                    |f| f.display().to_string(),
                );
                return err(format!(
                    "sslmode={} needs a root certificate, and the file \"{shown}\" does not exist; \
                     give it with sslrootcert=FILE (or PGSSLROOTCERT), use the system's roots with \
                     sslrootcert=system, or choose an sslmode that does not verify the server",
                    mode.as_str()
                ));
            }
            _ => Roots::None,
        }
    };
    let cert = p
        .get("sslcert")
        .filter(|f| !f.is_empty())
        .map(PathBuf::from)
        .or_else(|| dot.as_ref().map(|d| d.join("postgresql.crt")));
    let key = p
        .get("sslkey")
        .filter(|f| !f.is_empty())
        .map(PathBuf::from)
        .or_else(|| dot.as_ref().map(|d| d.join("postgresql.key")));
    // libpq: no certificate file means no client certificate; a
    // certificate without its key is an error.
    let client_cert = match (cert.filter(|c| c.exists()), key) {
        (None, _) => None,
        (Some(c), Some(k)) if k.exists() => {
            check_key_permissions(&k)?;
            Some((c, k))
        }
        (Some(c), k) => {
            return err(format!(
                "the client certificate \"{}\" is there, but not its private key \"{}\"; \
                 give it with sslkey=FILE (or PGSSLKEY)",
                c.display(),
                k.map_or_else(|| "(none)".into(), |k| k.display().to_string())
            ))
        }
    };
    let sni = p.get("sslsni") != Some("0");
    let direct = match p.get("sslnegotiation") {
        None | Some("postgres") => false,
        Some("direct") => true,
        Some(other) => {
            return err(format!(
                "invalid sslnegotiation \"{other}\" (postgres or direct)"
            ))
        }
    };
    if direct && matches!(mode, SslMode::Disable | SslMode::Allow | SslMode::Prefer) {
        return err("sslnegotiation=direct needs sslmode=require, verify-ca or verify-full");
    }
    Ok(TlsSettings {
        check_host: mode == SslMode::VerifyFull,
        mode,
        roots,
        client_cert,
        sni,
        direct,
    })
}

/// libpq refuses a private key that group or others can reach (0600 or
/// less when owned by the user, 0640 or less when owned by root).
fn check_key_permissions(key: &Path) -> Result<(), ConninfoError> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(key).map_err(|e| {
        ConninfoError(format!(
            "cannot read the private key \"{}\": {e}",
            key.display()
        ))
    })?;
    if !meta.is_file() {
        return err(format!(
            "the private key \"{}\" is not a regular file",
            key.display()
        ));
    }
    let mode = meta.mode();
    // SAFETY: geteuid has no preconditions.
    let me = unsafe { libc::geteuid() };
    let too_open =
        (meta.uid() == me && mode & 0o077 != 0) || (meta.uid() == 0 && mode & 0o037 != 0);
    if too_open {
        return err(format!(
            "the private key \"{}\" has group or world access; it must be u=rw (0600) or less \
             (chmod 0600 it), or u=rw,g=r (0640) or less if owned by root",
            key.display()
        ));
    }
    Ok(())
}

/// A parsed password file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PassFile {
    lines: Vec<[String; 5]>,
}

impl PassFile {
    /// Reads the file: `Ok(None)` when there is none, `Err(note)` when it
    /// is ignored (readable by group or others, not a regular file) with
    /// the reason for the user.
    pub fn read(path: &Path) -> Result<Option<PassFile>, String> {
        use std::os::unix::fs::PermissionsExt;
        let meta = match std::fs::metadata(path) {
            Ok(m) => m,
            Err(_) => return Ok(None),
        };
        if !meta.is_file() {
            return Err(format!(
                "the password file \"{}\" is not a plain file and was ignored",
                path.display()
            ));
        }
        if meta.permissions().mode() & 0o077 != 0 {
            return Err(format!(
                "the password file \"{}\" has group or world access and was ignored; \
                 permissions should be u=rw (0600) or less (chmod 0600 it)",
                path.display()
            ));
        }
        let text = std::fs::read_to_string(path).map_err(|e| {
            format!(
                "the password file \"{}\" could not be read: {e}",
                path.display()
            )
        })?;
        Ok(Some(PassFile::parse(&text)))
    }

    /// Parses the text: `host:port:database:user:password` per line, `#`
    /// comments, `\` escaping `:` and `\`.
    pub fn parse(text: &str) -> PassFile {
        let lines = text
            .lines()
            .map(|l| l.trim_end_matches('\r'))
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .filter_map(|l| {
                let fields = split_fields(l);
                if fields.len() < 5 {
                    return None;
                }
                let mut it = fields.into_iter();
                Some(std::array::from_fn(|_| it.next().expect("five fields")))
            })
            .collect();
        PassFile { lines }
    }

    /// The password of the first line that matches (each of the first four
    /// fields equal, or `*`).
    pub fn lookup(&self, host: &str, port: u16, dbname: &str, user: &str) -> Option<String> {
        let port = port.to_string();
        let wanted = [host, port.as_str(), dbname, user];
        self.lines
            .iter()
            .find(|l| {
                l.iter()
                    .zip(wanted)
                    .all(|(field, want)| field.as_str() == "*" || field.as_str() == want)
            })
            .map(|l| l[4].clone())
    }
}

/// Splits at unescaped colons; the fifth field (the password) ends at the
/// next unescaped colon too, as in libpq.
fn split_fields(line: &str) -> Vec<String> {
    let mut fields = vec![String::new()];
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let Some(n) = chars.next() {
                    fields.last_mut().expect("one field").push(n);
                }
            }
            ':' => {
                if fields.len() == 5 {
                    break;
                }
                fields.push(String::new());
            }
            c => fields.last_mut().expect("one field").push(c),
        }
    }
    fields
}

/// Quotes a value for a keyword/value connection string.
pub fn quote(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('\'');
    for c in value.chars() {
        if c == '\'' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('\'');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn machine<'a>(env: &'a dyn Fn(&str) -> Option<String>, home: Option<&Path>) -> Machine<'a> {
        Machine {
            env,
            home: home.map(Path::to_path_buf),
            os_user: Some("osuser".into()),
            socket_dir: PathBuf::from("/var/run/postgresql"),
        }
    }

    fn no_env(_: &str) -> Option<String> {
        None
    }

    fn get(p: &Params, k: &str) -> Option<String> {
        p.get(k).map(str::to_string)
    }

    #[test]
    fn uri_parts_are_percent_decoded() {
        // libpq: "Connection URIs", the percent-encoded socket directory.
        let p = parse("postgresql://%2Fvar%2Flib%2Fpostgresql/dbname").unwrap();
        assert_eq!(get(&p, "host").as_deref(), Some("/var/lib/postgresql"));
        assert_eq!(get(&p, "dbname").as_deref(), Some("dbname"));
        let p = parse("postgres://app:p%40ss%3Aw@db.example:6543/shop?sslmode=require").unwrap();
        assert_eq!(get(&p, "user").as_deref(), Some("app"));
        assert_eq!(get(&p, "password").as_deref(), Some("p@ss:w"));
        assert_eq!(get(&p, "host").as_deref(), Some("db.example"));
        assert_eq!(get(&p, "port").as_deref(), Some("6543"));
        assert_eq!(get(&p, "sslmode").as_deref(), Some("require"));
    }

    #[test]
    fn uri_with_query_host_and_several_hosts() {
        let p = parse("postgres:///db?host=/tmp").unwrap();
        assert_eq!(get(&p, "host").as_deref(), Some("/tmp"));
        assert_eq!(get(&p, "dbname").as_deref(), Some("db"));
        let p = parse("postgresql://h1:5433,[::1]:5434,h3/db").unwrap();
        assert_eq!(get(&p, "host").as_deref(), Some("h1,::1,h3"));
        assert_eq!(get(&p, "port").as_deref(), Some("5433,5434,"));
        let p = parse("postgresql://").unwrap();
        assert_eq!(p, Params::default());
        let p = parse("postgresql://h/db?ssl=true").unwrap();
        assert_eq!(get(&p, "sslmode").as_deref(), Some("require"));
    }

    #[test]
    fn key_value_form_with_quotes_and_escapes() {
        let p =
            parse(r"host=/var/run/postgresql dbname = 'my db' password='it\'s' user=a\ b").unwrap();
        assert_eq!(get(&p, "host").as_deref(), Some("/var/run/postgresql"));
        assert_eq!(get(&p, "dbname").as_deref(), Some("my db"));
        assert_eq!(get(&p, "password").as_deref(), Some("it's"));
        assert_eq!(get(&p, "user").as_deref(), Some("a b"));
        assert!(parse("host").is_err());
        assert!(parse("host='x").is_err());
    }

    #[test]
    fn unknown_and_unsupported_keywords_are_refused_by_name() {
        let e = parse("host=h sslmodee=require").unwrap_err();
        assert!(
            e.0.contains("invalid connection option \"sslmodee\""),
            "{e}"
        );
        let e = parse("postgres://h/db?service=x").unwrap_err();
        assert!(e.0.contains("\"service\" is not supported"), "{e}");
        assert!(parse("mysql://h/db").is_err());
    }

    #[test]
    fn environment_fills_only_what_the_string_leaves_out() {
        let env = |k: &str| match k {
            "PGHOST" => Some("envhost".to_string()),
            "PGPORT" => Some("6000".to_string()),
            "PGUSER" => Some("envuser".to_string()),
            "PGPASSWORD" => Some("envpw".to_string()),
            "PGSSLMODE" => Some("disable".to_string()),
            "PGAPPNAME" => Some("envapp".to_string()),
            "PGCONNECT_TIMEOUT" => Some("7".to_string()),
            "PGDATABASE" => Some(String::new()),
            _ => None,
        };
        let r = resolve("postgres://urluser@urlhost/db", &machine(&env, None)).unwrap();
        assert_eq!(r.user, "urluser");
        assert_eq!(r.dbname, "db");
        assert_eq!(r.targets[0].host, "urlhost");
        assert_eq!(r.targets[0].port, 6000);
        assert_eq!(r.targets[0].password.as_deref(), Some("envpw"));
        assert_eq!(r.tls.mode, SslMode::Disable);
        assert_eq!(r.application_name.as_deref(), Some("envapp"));
        assert!(r
            .passthrough
            .contains(&("connect_timeout".into(), "7".into())));
        // An empty string takes everything from the environment; an empty
        // PGDATABASE counts as unset, so the database is the user's name.
        let r = resolve("", &machine(&env, None)).unwrap();
        assert_eq!(r.targets[0].host, "envhost");
        assert_eq!(r.user, "envuser");
        assert_eq!(r.dbname, "envuser");
    }

    #[test]
    fn defaults_are_the_socket_directory_port_5432_and_the_os_user() {
        let r = resolve("", &machine(&no_env, None)).unwrap();
        assert_eq!(r.targets.len(), 1);
        assert_eq!(r.targets[0].host, "/var/run/postgresql");
        assert!(r.targets[0].is_unix());
        assert_eq!(r.targets[0].port, 5432);
        assert_eq!(r.user, "osuser");
        assert_eq!(r.dbname, "osuser");
        assert_eq!(r.tls.mode, SslMode::Prefer);
    }

    #[test]
    fn ports_pair_with_hosts() {
        let r = resolve("host=a,b,/tmp port=1,,3", &machine(&no_env, None)).unwrap();
        let got: Vec<(String, u16)> = r.targets.iter().map(|t| (t.host.clone(), t.port)).collect();
        assert_eq!(
            got,
            [("a".into(), 1), ("b".into(), 5432), ("/tmp".into(), 3)]
        );
        assert!(r.targets[2].is_unix() && !r.targets[0].is_unix());
        let r = resolve("host=a,b port=7", &machine(&no_env, None)).unwrap();
        assert!(r.targets.iter().all(|t| t.port == 7));
        assert!(resolve("host=a,b port=1,2,3", &machine(&no_env, None)).is_err());
        let r = resolve("hostaddr=127.0.0.1", &machine(&no_env, None)).unwrap();
        assert_eq!(r.targets[0].hostaddr, Some("127.0.0.1".parse().unwrap()));
        assert!(!r.targets[0].is_unix());
    }

    #[test]
    fn pgpass_first_match_wildcards_and_escapes() {
        // libpq: "The Password File".
        let f = PassFile::parse(
            "# comment\n\
             db.example:5432:shop:app:first\n\
             db.example:*:*:app:second\n\
             *:*:*:*:any\\:thing\\\\\n\
             short:line\n",
        );
        assert_eq!(
            f.lookup("db.example", 5432, "shop", "app").as_deref(),
            Some("first")
        );
        assert_eq!(
            f.lookup("db.example", 6000, "other", "app").as_deref(),
            Some("second")
        );
        assert_eq!(
            f.lookup("elsewhere", 1, "x", "y").as_deref(),
            Some("any:thing\\")
        );
        let f = PassFile::parse("h\\:x:5432:d:u:pw:ignored\n");
        assert_eq!(f.lookup("h:x", 5432, "d", "u").as_deref(), Some("pw"));
        assert_eq!(f.lookup("h", 5432, "d", "u"), None);
    }

    #[test]
    fn pgpass_is_used_only_without_a_password_and_matches_localhost_for_the_socket() {
        let dir = tempfile::tempdir().unwrap();
        let pass = dir.path().join("pgpass");
        std::fs::write(
            &pass,
            "localhost:5432:*:app:sockpw\n127.0.0.1:5432:*:app:tcppw\n",
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&pass, std::fs::Permissions::from_mode(0o600)).unwrap();
        let file = pass.display().to_string();
        let env = move |k: &str| (k == "PGPASSFILE").then(|| file.clone());
        let m = machine(&env, None);
        let r = resolve("user=app", &m).unwrap();
        assert_eq!(r.targets[0].password.as_deref(), Some("sockpw"));
        let r = resolve("user=app host=127.0.0.1", &m).unwrap();
        assert_eq!(r.targets[0].password.as_deref(), Some("tcppw"));
        let summary = r.summary().join("\n");
        assert!(
            summary.contains("password from the password file"),
            "{summary}"
        );
        assert!(!summary.contains("tcppw"), "{summary}");
        let r = resolve("user=app host=127.0.0.1 password=given", &m).unwrap();
        assert_eq!(r.targets[0].password.as_deref(), Some("given"));
        // A socket directory that is not the default is matched as itself.
        let r = resolve("user=app host=/tmp", &m).unwrap();
        assert_eq!(r.targets[0].password, None);

        std::fs::set_permissions(&pass, std::fs::Permissions::from_mode(0o644)).unwrap();
        let r = resolve("user=app", &m).unwrap();
        assert_eq!(r.targets[0].password, None);
        assert!(
            r.notes[0].contains("group or world access"),
            "{:?}",
            r.notes
        );
    }

    #[test]
    fn sslmode_rules() {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path();
        let m = machine(&no_env, Some(home));
        // Verifying modes need a root file.
        let e = resolve("host=h sslmode=verify-full", &m).unwrap_err();
        assert!(e.0.contains("needs a root certificate"), "{e}");
        let e = resolve(
            "host=h sslmode=verify-ca sslrootcert=/nonexistent/ca.pem",
            &m,
        )
        .unwrap_err();
        assert!(e.0.contains("/nonexistent/ca.pem"), "{e}");
        // require without a root file: encrypted, chain not checked.
        let r = resolve("host=h sslmode=require", &m).unwrap();
        assert_eq!(
            (r.tls.mode, &r.tls.roots, r.tls.check_host),
            (SslMode::Require, &Roots::None, false)
        );
        // With ~/.postgresql/root.crt, require checks the chain (verify-ca).
        std::fs::create_dir(home.join(".postgresql")).unwrap();
        std::fs::write(home.join(".postgresql/root.crt"), "x").unwrap();
        let r = resolve("host=h sslmode=require", &m).unwrap();
        assert_eq!(r.tls.roots, Roots::File(home.join(".postgresql/root.crt")));
        assert!(!r.tls.check_host);
        let r = resolve("host=h sslmode=verify-full", &m).unwrap();
        assert!(r.tls.check_host);
        // system: verify-full by default, nothing weaker.
        let r = resolve("host=h sslrootcert=system", &m).unwrap();
        assert_eq!(
            (r.tls.mode, r.tls.roots),
            (SslMode::VerifyFull, Roots::System)
        );
        let e = resolve("host=h sslrootcert=system sslmode=verify-ca", &m).unwrap_err();
        assert!(e.0.contains("needs sslmode=verify-full"), "{e}");
        assert!(resolve("host=h sslmode=bogus", &m).is_err());
        assert_eq!(
            resolve("host=h requiressl=1", &m).unwrap().tls.mode,
            SslMode::Require
        );
    }

    #[test]
    fn client_certificate_needs_its_key_and_safe_permissions() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let cert = dir.path().join("c.crt");
        let key = dir.path().join("c.key");
        std::fs::write(&cert, "x").unwrap();
        let m = machine(&no_env, Some(dir.path()));
        let s = format!("host=h sslcert={} sslkey={}", cert.display(), key.display());
        let e = resolve(&s, &m).unwrap_err();
        assert!(e.0.contains("not its private key"), "{e}");
        std::fs::write(&key, "x").unwrap();
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = resolve(&s, &m).unwrap_err();
        assert!(e.0.contains("group or world access"), "{e}");
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
        let r = resolve(&s, &m).unwrap();
        assert_eq!(r.tls.client_cert, Some((cert, key)));
        // No certificate file: no client certificate, no error.
        let r = resolve("host=h sslcert=/nonexistent.crt", &m).unwrap();
        assert_eq!(r.tls.client_cert, None);
    }

    #[test]
    fn quoting_round_trips() {
        let v = r"it's a \ path";
        let p = parse(&format!("options={}", quote(v))).unwrap();
        assert_eq!(p.get("options"), Some(v));
    }
}
