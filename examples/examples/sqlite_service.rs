//! The library embedded in a service, on SQLite.
//!
//! ```text
//! cargo run -p kintell-ingest-examples --example sqlite_service
//! ```
//!
//! A service holds one `Store` (a cheap, cloneable handle on a connection pool) and hands clones of it to the
//! library's services. This program connects to a new SQLite file in a temporary directory, then runs the
//! walk-through of `kintell_ingest_examples::service`: migrate, load a small catalogue, import a sessions CSV, print
//! the import report and its rejected rows, list the batches, show the review queue and the campaign report.

use std::io::Write;
use std::path::Path;

use kintell_ingest::store::Store;
use kintell_ingest_examples::service::{Error, Walkthrough, walkthrough};

#[tokio::main]
async fn main() -> std::process::ExitCode {
    kintell_ingest_examples::exit_code(main_inner().await)
}

async fn main_inner() -> Result<(), Error> {
    // Everything lives in a temporary directory, removed when the program ends.
    let dir = tempfile::tempdir()?;
    run(dir.path(), &mut std::io::stdout().lock()).await?;
    Ok(())
}

/// Runs the example with its database and files in `dir`, printing to `out`.
pub async fn run(dir: &Path, out: &mut dyn Write) -> Result<Walkthrough, Error> {
    // `mode=rwc` creates the file when it does not exist. The store opens a pool in WAL mode; the same URL
    // scheme works from the CLI (`--database-url`).
    let url = format!("sqlite://{}?mode=rwc", dir.join("kintell.db").display());
    writeln!(out, "connecting to {url}")?;
    let store = Store::connect(&url).await?;
    walkthrough(&store, dir, out).await
}
