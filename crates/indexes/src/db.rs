//! Connections, through the engine's connector (rustls TLS, `sslmode`
//! as libpq reads it, redacted errors).

use tokio_postgres::Client;

use crate::error::Result;

/// The `application_name` of lull-indexes' own sessions.
pub const APPLICATION_NAME: &str = "lull indexes";

/// Opens a connection whose driver task runs on the current runtime.
pub async fn connect(url: &str) -> Result<Client> {
    Ok(lull_engine::db::connect(url, APPLICATION_NAME).await?)
}

/// Opens a connection for work that changes the database (queueing,
/// building): refuses a standby with a clear message first.
pub async fn connect_primary(url: &str) -> Result<Client> {
    let client = connect(url).await?;
    lull_engine::db::ensure_primary(&client, url).await?;
    Ok(client)
}
