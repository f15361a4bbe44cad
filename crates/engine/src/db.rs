//! Connecting to PostgreSQL: TLS through rustls, `sslmode` as libpq reads
//! it, and errors that name the server without its password.
//!
//! `sslmode=disable` never uses TLS; `prefer` (the default) and `require`
//! encrypt without checking the certificate, as libpq does;
//! `verify-ca` and `verify-full` check it against the Mozilla roots
//! (webpki-roots).

use std::sync::Arc;

use lull_config::redact_url;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use tokio_postgres::Client;
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::error::{pg_message, EngineError};

/// The `application_name` lull's sessions show in `pg_stat_activity`
/// unless the connection string sets one.
pub const APPLICATION_NAME: &str = "lull";

/// Opens a connection and drives it on the tokio runtime. `role` says what
/// the connection is for (`lull`, `lull index build`, ...) and becomes its
/// `application_name` unless the URL already names one.
pub async fn connect(url: &str, role: &str) -> Result<Client, EngineError> {
    let (text, verify) = normalize_sslmode(url);
    let mut config: tokio_postgres::Config = text.parse().map_err(|e| EngineError::Connect {
        url: redact_url(url),
        message: format!("invalid connection string: {}", pg_message(&e)),
        hint: "write it as postgres://USER:PASSWORD@HOST:PORT/DATABASE".into(),
    })?;
    if config.get_application_name().is_none() {
        config.application_name(role);
    }
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(std::time::Duration::from_secs(10));
    }
    let tls = MakeRustlsConnect::new(tls_config(verify));
    let (client, connection) = config
        .connect(tls)
        .await
        .map_err(|e| EngineError::Connect {
            url: redact_url(url),
            message: pg_message(&e),
            hint: "check that the server is running and reachable, and the URL in \
               --database-url / DATABASE_URL (user, password, host, port, database)"
                .into(),
        })?;
    tokio::spawn(async move {
        // The error surfaces on the next query as "connection closed".
        let _ = connection.await;
    });
    session_guards(&client).await?;
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

/// tokio-postgres knows `disable`, `prefer` and `require`; the verifying
/// modes become `require` plus certificate checks on our side.
fn normalize_sslmode(url: &str) -> (String, bool) {
    for mode in ["verify-full", "verify-ca"] {
        let key = format!("sslmode={mode}");
        if url.contains(&key) {
            return (url.replace(&key, "sslmode=require"), true);
        }
    }
    (url.to_string(), false)
}

fn tls_config(verify: bool) -> rustls::ClientConfig {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .expect("ring supports the default protocol versions");
    if verify {
        let roots =
            rustls::RootCertStore::from_iter(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        builder.with_root_certificates(roots).with_no_client_auth()
    } else {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(EncryptOnly(provider)))
            .with_no_client_auth()
    }
}

/// libpq's `sslmode=require`: encrypt, but accept any certificate (the
/// handshake signatures are still checked, so the session is encrypted to
/// whoever holds the certificate's key).
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

/// Refuses a server in recovery: a hot standby (or a server replaying an
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
    fn verifying_modes_become_require() {
        let (u, v) = normalize_sslmode("postgres://h/db?sslmode=verify-full");
        assert_eq!(u, "postgres://h/db?sslmode=require");
        assert!(v);
        let (u, v) = normalize_sslmode("postgres://h/db?sslmode=require");
        assert_eq!(u, "postgres://h/db?sslmode=require");
        assert!(!v);
    }

    #[test]
    fn tls_configs_build() {
        tls_config(true);
        tls_config(false);
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
}
