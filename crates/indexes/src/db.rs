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
