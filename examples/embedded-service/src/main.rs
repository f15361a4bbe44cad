//! The example service's entry point: migrate, then serve.
//!
//! ```sh
//! DATABASE_URL=postgres://app@localhost/app cargo run -p lull-example-service
//! ```

use std::path::Path;
use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt().with_target(true).init();
    let Ok(url) = std::env::var("DATABASE_URL") else {
        eprintln!("set DATABASE_URL to the service's database");
        return ExitCode::from(2);
    };
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    let config = here.join("lull.toml");
    let config = config.is_file().then_some(config.as_path());
    match lull_example_service::migrate_on_startup(&url, &here.join("migrations"), config).await {
        Ok(summary) => {
            tracing::info!(applied = ?summary.versions, "schema is current; serving");
            // A real service would start serving requests here.
            ExitCode::SUCCESS
        }
        Err(e) => {
            tracing::error!("{e}");
            ExitCode::FAILURE
        }
    }
}
