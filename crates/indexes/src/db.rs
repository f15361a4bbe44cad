//! Connections. One small function so the TLS-capable connector of
//! `lull_engine` can replace it in one place.

use tokio_postgres::{Client, NoTls};

use crate::error::{Error, Result};

/// Opens a connection whose driver task runs on the current runtime.
pub async fn connect(url: &str) -> Result<Client> {
    let (client, connection) = tokio_postgres::connect(url, NoTls)
        .await
        .map_err(|source| Error::Connect {
            url: lull_config::redact_url(url),
            source,
        })?;
    tokio::spawn(async move {
        // The error, if any, surfaces on the next query of the client.
        let _ = connection.await;
    });
    Ok(client)
}
