//! The library embedded in a service, on PostgreSQL.
//!
//! ```text
//! cargo run -p kintell-ingest-examples --example postgres -- postgres://postgres@127.0.0.1:5432/kintell
//! KINTELL_DATABASE_URL=postgres://postgres@127.0.0.1:5432/kintell cargo run -p kintell-ingest-examples --example postgres
//! ```
//!
//! The same walk-through as `sqlite_service` (see `kintell_ingest_examples::service`); only the URL differs. The
//! database must exist; the program migrates it. Run it twice against the same database and the second import is
//! refused as already imported: nothing is doubled.

use std::io::Write;
use std::path::Path;

use kintell_ingest::store::Store;
use kintell_ingest_examples::service::{Error, Walkthrough, walkthrough};

/// The environment variable read when no URL is given as the first argument.
const URL_ENV: &str = "KINTELL_DATABASE_URL";

#[tokio::main]
async fn main() -> std::process::ExitCode {
    kintell_ingest_examples::exit_code(main_inner().await)
}

async fn main_inner() -> Result<(), Error> {
    let url = database_url(std::env::args().nth(1), std::env::var(URL_ENV).ok())?;
    let dir = tempfile::tempdir()?;
    run(&url, dir.path(), &mut std::io::stdout().lock()).await?;
    Ok(())
}

/// The URL: the first argument, else the environment variable; a clear error when neither is given.
pub fn database_url(arg: Option<String>, env: Option<String>) -> Result<String, Error> {
    match arg.or(env).filter(|u| !u.trim().is_empty()) {
        Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => Ok(url),
        Some(url) => Err(format!(
            "{url:?} is not a PostgreSQL URL (postgres://user@host:port/database); for SQLite run the \
             sqlite_service example"
        )
        .into()),
        None => Err(format!(
            "no database: give a PostgreSQL URL as the first argument or in {URL_ENV}, e.g. \
             postgres://postgres@127.0.0.1:5432/kintell"
        )
        .into()),
    }
}

/// Runs the example against the database at `url`, writing the sample files into `dir` and printing to `out`.
pub async fn run(url: &str, dir: &Path, out: &mut dyn Write) -> Result<Walkthrough, Error> {
    writeln!(out, "connecting to {}", without_user(url))?;
    let store = Store::connect(url).await?;
    walkthrough(&store, dir, out).await
}

/// The URL without the user information of its authority, so that no password is printed.
pub fn without_user(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{scheme}://…{}", &rest[at..]),
        None => url.to_owned(),
    }
}
