//! Connecting to PostgreSQL the way libpq does, through rustls, with
//! errors that name the server without its password.
//!
//! The connection string, the `PG*` environment, the password file and
//! the TLS rules are read by [`crate::libpq`]; this module tries each
//! server it names in turn: Unix sockets never use TLS (libpq ignores
//! `sslmode` there), `prefer` falls back to plaintext when TLS fails,
//! `allow` tries plaintext first, `require` and the verifying modes
//! encrypt or fail. The chain is checked against the root file (or the
//! system's roots for `sslrootcert=system`) whenever one is there, the host
//! name only for `verify-full`.

use std::sync::Arc;

use lull_config::redact_url;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, SignatureScheme};
use tokio_postgres::config::{SslMode as PgSslMode, SslNegotiation};
use tokio_postgres::Client;
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::error::{pg_message, EngineError};
use crate::libpq::{self, Machine, Resolved, Roots, SslMode, Target, TlsSettings};

/// The `application_name` lull's sessions show in `pg_stat_activity`
/// unless the connection string sets one.
pub const APPLICATION_NAME: &str = "lull";

const CONNECT_HINT: &str = "check that the server is running and reachable, and the connection \
     in --database-url / DATABASE_URL or the PG* environment (user, password, host, port, \
     database, sslmode)";

/// Opens a connection and drives it on the tokio runtime. `role` says what
/// the connection is for (`lull`, `lull index build`, ...) and becomes its
/// `application_name` unless the connection string (or `PGAPPNAME`) names
/// one. An empty `url` connects by the `PG*` environment and libpq's
/// defaults alone.
pub async fn connect(url: &str, role: &str) -> Result<Client, EngineError> {
    let resolved = libpq::resolve(url, &Machine::current()).map_err(|e| EngineError::Connect {
        url: shown(url),
        message: format!("invalid connection string: {e}"),
        hint: "write it as postgres://USER:PASSWORD@HOST:PORT/DATABASE?sslmode=... or as \
               host=... port=... keywords (see the libpq documentation)"
            .into(),
    })?;
    let started = std::time::Instant::now();
    let mut failures = Vec::new();
    loop {
        for target in &resolved.targets {
            match connect_target(&resolved, target, role).await {
                Ok(client) => {
                    session_guards(&client).await?;
                    return Ok(client);
                }
                Err(failure) => failures.push(failure),
            }
        }
        // A server that is starting up or recovering after a crash says so
        // (57P03) and takes connections moments later: wait for it, bounded.
        let starting = failures.iter().all(|f| f.starting);
        if !starting || started.elapsed() >= STARTING_WAIT {
            break;
        }
        failures.clear();
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    if failures.iter().all(|f| f.starting) {
        let message = failures.pop().map(|f| f.message).unwrap_or_default();
        return Err(EngineError::Connect {
            url: shown(url),
            message: format!(
                "{message} (still after {}s of retrying)",
                STARTING_WAIT.as_secs()
            ),
            hint: "the server is starting up, recovering or shutting down; run the command again \
                   once it takes connections (`pg_isready` says when)"
                .into(),
        });
    }
    let mut hint = failures
        .iter()
        .rev()
        .find_map(|f| f.hint.clone())
        .unwrap_or_else(|| CONNECT_HINT.to_string());
    for note in &resolved.notes {
        hint.push_str("; note: ");
        hint.push_str(note);
    }
    let message = if failures.len() == 1 {
        failures.remove(0).message
    } else {
        failures
            .iter()
            .map(|f| f.message.as_str())
            .collect::<Vec<_>>()
            .join("; ")
    };
    Err(EngineError::Connect {
        url: shown(url),
        message,
        hint,
    })
}

/// What a message may show of a connection string.
fn shown(url: &str) -> String {
    if url.trim().is_empty() {
        "the server named by the PG* environment".to_string()
    } else {
        redact_url(url)
    }
}

struct Failure {
    message: String,
    hint: Option<String>,
    /// The server answered 57P03 (starting up, in recovery, shutting down).
    starting: bool,
}

/// How long [`connect`] keeps trying a server that answers "starting up"
/// or "in recovery" (57P03), as after a crash restart.
pub const STARTING_WAIT: std::time::Duration = std::time::Duration::from_secs(60);

async fn connect_target(r: &Resolved, t: &Target, role: &str) -> Result<Client, Failure> {
    let fail = |message: String, hint: Option<String>| Failure {
        message: format!("{}: {message}", t.describe()),
        hint,
        starting: false,
    };
    let mut config = base_config(r, t, role).map_err(|m| fail(m, None))?;
    if t.is_unix() {
        // libpq: "sslmode is ignored for Unix domain socket communication".
        config.ssl_mode(PgSslMode::Disable);
        return open(&config, &r.tls)
            .await
            .map_err(|e| classify(&e, &r.tls, t, fail));
    }
    if r.tls.mode == SslMode::VerifyFull && t.host.is_empty() {
        return Err(fail(
            "sslmode=verify-full needs a host name to check the certificate against, and \
             only hostaddr is given"
                .into(),
            Some("add host=NAME (the name on the server's certificate) beside hostaddr".into()),
        ));
    }
    if r.tls.direct {
        config.ssl_negotiation(SslNegotiation::Direct);
    }
    let attempts: &[PgSslMode] = match r.tls.mode {
        SslMode::Disable => &[PgSslMode::Disable],
        SslMode::Allow => &[PgSslMode::Disable, PgSslMode::Require],
        SslMode::Prefer => &[PgSslMode::Prefer, PgSslMode::Disable],
        SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => &[PgSslMode::Require],
    };
    let mut last = None;
    for (i, mode) in attempts.iter().enumerate() {
        config.ssl_mode(*mode);
        match open(&config, &r.tls).await {
            Ok(client) => return Ok(client),
            Err(e) => {
                // libpq retries the other way only when the server was
                // reached: a refused TLS handshake or a rejected login.
                let reached = e.reached_server();
                last = Some(e);
                if !reached || i + 1 == attempts.len() {
                    break;
                }
            }
        }
    }
    let e = last.expect("at least one attempt");
    Err(classify(&e, &r.tls, t, fail))
}

fn base_config(r: &Resolved, t: &Target, role: &str) -> Result<tokio_postgres::Config, String> {
    let text = r
        .passthrough
        .iter()
        .map(|(k, v)| format!("{k}={}", libpq::quote(v)))
        .collect::<Vec<_>>()
        .join(" ");
    let mut config: tokio_postgres::Config = text
        .parse()
        .map_err(|e| format!("invalid connection string: {}", pg_message(&e)))?;
    config.user(&r.user).dbname(&r.dbname);
    config.application_name(r.application_name.as_deref().unwrap_or(role));
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(std::time::Duration::from_secs(10));
    }
    if t.is_unix() {
        config.host_path(&t.host);
    } else {
        match (&t.host, t.hostaddr) {
            (h, Some(addr)) if h.is_empty() => {
                config.host(addr.to_string()).hostaddr(addr);
            }
            (h, Some(addr)) => {
                config.host(h).hostaddr(addr);
            }
            (h, None) => {
                config.host(h);
            }
        }
    }
    config.port(t.port);
    if let Some(pw) = &t.password {
        config.password(pw);
    }
    Ok(config)
}

/// Why one attempt failed: the driver's error, or TLS files lull could
/// not use (nothing was sent to the server then).
enum OpenError {
    Driver(tokio_postgres::Error),
    TlsFiles(String),
}

impl OpenError {
    /// Whether the server was reached: a refused TLS handshake or a
    /// rejected login (libpq then retries the other way for allow/prefer).
    fn reached_server(&self) -> bool {
        match self {
            OpenError::Driver(e) => {
                let text = pg_message(e);
                e.as_db_error().is_some() || text.contains("TLS") || text.contains("certificate")
            }
            OpenError::TlsFiles(_) => false,
        }
    }

    fn message(&self) -> String {
        match self {
            OpenError::Driver(e) => pg_message(e),
            OpenError::TlsFiles(m) => m.clone(),
        }
    }
}

async fn open(config: &tokio_postgres::Config, tls: &TlsSettings) -> Result<Client, OpenError> {
    if config.get_ssl_mode() == PgSslMode::Disable {
        // No TLS connector at all: tokio-postgres asks it for a server
        // name even when it will not use it, which a socket path is not.
        let (client, connection) = config
            .connect(tokio_postgres::NoTls)
            .await
            .map_err(OpenError::Driver)?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        return Ok(client);
    }
    let rustls = client_config(tls).map_err(OpenError::TlsFiles)?;
    let (client, connection) = config
        .connect(MakeRustlsConnect::new(rustls))
        .await
        .map_err(OpenError::Driver)?;
    tokio::spawn(async move {
        // The error surfaces on the next query as "connection closed".
        let _ = connection.await;
    });
    Ok(client)
}

/// Settings every lull session gets, whatever the server's defaults:
///
/// - `idle_session_timeout = 0`: the runner's work connection holds the
///   runner lock and sits idle while an index builds on another
///   connection; a server-wide idle timeout must not end it (see
///   [`crate::lock`]).
/// - `client_connection_check_interval = 1s`: when lull is killed, the
///   server notices the closed socket within a second and cancels the
///   statement lull left running instead of finishing and committing it
///   unseen.
///
/// Set through `set_config` over `pg_settings`, so a server that lacks one
/// of them is not an error.
pub async fn session_guards(client: &Client) -> Result<(), EngineError> {
    client
        .batch_execute(
            "SELECT pg_catalog.set_config(name, \
                    CASE name WHEN 'idle_session_timeout' THEN '0' ELSE '1s' END, false) \
             FROM pg_catalog.pg_settings \
             WHERE name IN ('idle_session_timeout', 'client_connection_check_interval')",
        )
        .await
        .map_err(|e| EngineError::db("setting lull's session guards", e))
}

fn classify(
    e: &OpenError,
    tls: &TlsSettings,
    t: &Target,
    fail: impl Fn(String, Option<String>) -> Failure,
) -> Failure {
    let message = e.message();
    let hint = if message.contains("not valid for name") || message.contains("NotValidForName") {
        Some(format!(
            "the server's certificate does not name \"{}\" (sslmode=verify-full checks the host \
             name): connect with the name on the certificate, or use sslmode=verify-ca",
            t.host
        ))
    } else if message.contains("UnknownIssuer") || message.contains("invalid peer certificate") {
        Some(format!(
            "the server's certificate does not lead to a trusted root{}: give the CA that signed it \
             with sslrootcert=FILE (or PGSSLROOTCERT)",
            match &tls.roots {
                Roots::File(f) => format!(" in {}", f.display()),
                Roots::System => " of the system".to_string(),
                Roots::None => String::new(),
            }
        ))
    } else if message.contains("does not support TLS") {
        Some(format!(
            "sslmode={} needs a server with ssl = on; turn TLS on at the server, or choose \
             sslmode=prefer or disable",
            tls.mode.as_str()
        ))
    } else if message.contains("password authentication failed")
        || message.contains("password missing")
        || message.contains("no password")
    {
        Some(
            "check the password: in the connection string, PGPASSWORD, or a line of the \
             password file (PGPASSFILE, else ~/.pgpass, mode 0600) for this host, port, \
             database and user"
                .into(),
        )
    } else {
        None
    };
    let mut failure = fail(message, hint);
    failure.starting = matches!(e, OpenError::Driver(d)
        if d.code() == Some(&tokio_postgres::error::SqlState::CANNOT_CONNECT_NOW));
    failure
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The rustls configuration for one connection's TLS settings.
fn client_config(tls: &TlsSettings) -> Result<rustls::ClientConfig, String> {
    let provider = provider();
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .expect("ring supports the default protocol versions");
    let builder = match &tls.roots {
        Roots::None => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(EncryptOnly(provider))),
        roots => {
            let store = root_store(roots)?;
            let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(store), provider)
                .build()
                .map_err(|e| format!("cannot use the root certificates: {e}"))?;
            if tls.check_host {
                builder.with_webpki_verifier(webpki)
            } else {
                builder
                    .dangerous()
                    .with_custom_certificate_verifier(Arc::new(ChainOnly(webpki)))
            }
        }
    };
    let mut config = match &tls.client_cert {
        None => builder.with_no_client_auth(),
        Some((cert, key)) => {
            let certs = CertificateDer::pem_file_iter(cert)
                .and_then(|it| it.collect::<Result<Vec<_>, _>>())
                .map_err(|e| {
                    format!("cannot read the client certificate {}: {e}", cert.display())
                })?;
            let key = PrivateKeyDer::from_pem_file(key)
                .map_err(|e| format!("cannot read the private key {}: {e}", key.display()))?;
            builder
                .with_client_auth_cert(certs, key)
                .map_err(|e| format!("cannot use the client certificate {}: {e}", cert.display()))?
        }
    };
    config.enable_sni = tls.sni;
    if tls.direct {
        config.alpn_protocols = vec![b"postgresql".to_vec()];
    }
    Ok(config)
}

fn root_store(roots: &Roots) -> Result<rustls::RootCertStore, String> {
    let mut store = rustls::RootCertStore::empty();
    match roots {
        Roots::None => {}
        Roots::File(path) => {
            let certs = CertificateDer::pem_file_iter(path)
                .and_then(|it| it.collect::<Result<Vec<_>, _>>())
                .map_err(|e| {
                    format!("cannot read the root certificates {}: {e}", path.display())
                })?;
            let (added, _) = store.add_parsable_certificates(certs);
            if added == 0 {
                return Err(format!(
                    "no usable certificate in the root file {} (sslrootcert)",
                    path.display()
                ));
            }
        }
        Roots::System => {
            let found = rustls_native_certs::load_native_certs();
            let (added, _) = store.add_parsable_certificates(found.certs);
            if added == 0 {
                return Err(
                    "sslrootcert=system, but no trusted roots were found on this system \
                     (install ca-certificates, or set SSL_CERT_FILE)"
                        .into(),
                );
            }
        }
    }
    Ok(store)
}

/// `verify-ca`, and `require`/`prefer` with a root file: the chain must
/// lead to a trusted root, the name on the certificate is not checked.
#[derive(Debug)]
struct ChainOnly(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        // webpki checks the chain before the name, so a name error means
        // the chain is good.
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// libpq's `sslmode=require` without a root file: encrypt, but accept any
/// certificate (the handshake signatures are still checked, so the session
/// is encrypted to whoever holds the certificate's key).
#[derive(Debug)]
struct EncryptOnly(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for EncryptOnly {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// Refuses a server in recovery, or a session that is read-only
/// (`default_transaction_read_only`): a hot standby (or a server replaying an
/// archive) takes no writes, and a change applied on the primary reaches
/// it by replication anyway. Every command that changes the database
/// calls this first, so the user gets one clear message instead of the
/// first `read-only transaction` error halfway through.
pub async fn ensure_primary(client: &Client, url: &str) -> Result<(), EngineError> {
    let in_recovery: bool = client
        .query_one("SELECT pg_is_in_recovery()", &[])
        .await
        .map_err(|e| EngineError::db("asking whether the server is a standby", e))?
        .get(0);
    if in_recovery {
        return Err(EngineError::Other {
            message: format!(
                "{} is a standby (the server is in recovery, pg_is_in_recovery() is true); \
                 lull does not change a standby, nothing was done",
                redact_url(url)
            ),
            hint: Some(
                "point --database-url / DATABASE_URL at the primary; the change reaches the \
                 standby by replication. Read-only commands (status, plan, indexes check, \
                 indexes report) work on a standby"
                    .into(),
            ),
            kind: crate::error::ErrorKind::Refused,
        });
    }
    // A primary can be read-only too: `default_transaction_read_only` set
    // for the database, the role or the server (a freeze, a maintenance
    // mode). lull does not override that decision.
    let read_only: bool = client
        .query_one("SELECT current_setting('transaction_read_only')::bool", &[])
        .await
        .map_err(|e| EngineError::db("asking whether the session is read-only", e))?
        .get(0);
    if read_only {
        return Err(EngineError::Other {
            message: format!(
                "{} is read-only for this session (default_transaction_read_only is on for the \
                 database, the role or the server); lull does not override it, nothing was done",
                redact_url(url)
            ),
            hint: Some(
                "when the database should take changes again, an owner runs `ALTER DATABASE <db> \
                 RESET default_transaction_read_only` (or `ALTER ROLE ... RESET`, or the server's \
                 setting); then run the command again"
                    .into(),
            ),
            kind: crate::error::ErrorKind::Refused,
        });
    }
    Ok(())
}

/// The version of the server a connection talks to.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ServerVersion {
    /// `server_version` as the server reports it, e.g. `18.4` or
    /// `15.18 (Debian 15.18-0+deb12u1)`.
    pub text: String,
    /// `server_version_num`, e.g. `180004`.
    pub num: u32,
}

impl ServerVersion {
    /// The major version, e.g. 18.
    pub fn major(&self) -> u32 {
        self.num / 10000
    }
}

impl std::fmt::Display for ServerVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Distributions append their package version; the number is enough.
        let short = self.text.split_whitespace().next().unwrap_or(&self.text);
        write!(f, "PostgreSQL {short}")
    }
}

/// Reads the server's version.
pub async fn server_version(client: &Client) -> Result<ServerVersion, EngineError> {
    let row = client
        .query_one(
            "SELECT current_setting('server_version'), \
                    current_setting('server_version_num')::int",
            &[],
        )
        .await
        .map_err(|e| EngineError::db("reading the server version", e))?;
    let num: i32 = row.get(1);
    Ok(ServerVersion {
        text: row.get(0),
        num: u32::try_from(num).unwrap_or(0),
    })
}

/// The backend pid of a connection.
pub async fn backend_pid(client: &Client) -> Result<i32, EngineError> {
    let row = client
        .query_one("SELECT pg_backend_pid()", &[])
        .await
        .map_err(|e| EngineError::db("reading the backend pid", e))?;
    Ok(row.get(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_versions_show_the_number_without_the_package() {
        let v = ServerVersion {
            text: "15.18 (Debian 15.18-0+deb12u1)".into(),
            num: 150018,
        };
        assert_eq!(v.to_string(), "PostgreSQL 15.18");
        assert_eq!(v.major(), 15);
        let v = ServerVersion {
            text: "18.4".into(),
            num: 180004,
        };
        assert_eq!((v.to_string().as_str(), v.major()), ("PostgreSQL 18.4", 18));
    }

    #[test]
    fn tls_configs_build() {
        let tls = TlsSettings {
            mode: SslMode::Require,
            roots: Roots::None,
            check_host: false,
            client_cert: None,
            sni: true,
            direct: false,
        };
        client_config(&tls).unwrap();
    }

    #[test]
    fn a_root_file_without_certificates_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("root.crt");
        std::fs::write(&f, "not a certificate\n").unwrap();
        let e = root_store(&Roots::File(f)).unwrap_err();
        assert!(e.contains("no usable certificate"), "{e}");
    }

    #[tokio::test]
    async fn unreachable_server_names_redacted_url() {
        let url = "postgres://app:s3cret@127.0.0.1:1/db?connect_timeout=2";
        let err = connect(url, "lull").await.unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("127.0.0.1:1"), "{msg}");
        assert!(!msg.contains("s3cret"), "{msg}");
        assert!(err.hint().unwrap().contains("DATABASE_URL"));
    }

    #[tokio::test]
    async fn a_bad_connection_string_is_refused_before_connecting() {
        let err = connect("postgres://h/db?sslmode=bogus&password=s3cret", "lull")
            .await
            .unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("invalid sslmode"), "{msg}");
        assert!(!msg.contains("s3cret"), "{msg}");
    }
}
