//! The commands: each opens what it needs, calls the library and renders.

mod associate;
mod batches;
mod catalog;
mod demo;
mod import;
mod lineage;
mod migrate;
mod report;
mod review;

use crate::cli::{Cli, Command, DEFAULT_DATABASE_URL, Global};
use crate::exit::Exit;
use anyhow::Context;
use kintell_ingest::store::Store;

/// Runs one command.
pub async fn run(cli: Cli) -> anyhow::Result<Exit> {
    match cli.command {
        Command::Migrate(cmd) => migrate::run(&cli.global, cmd).await,
        Command::Catalog(cmd) => catalog::run(&cli.global, cmd).await,
        Command::Associate(cmd) => associate::run(&cli.global, cmd).await,
        Command::Demo => demo::run(&cli.global).await,
        Command::Import(args) => import::run(&cli.global, args).await,
        Command::Batches(cmd) => batches::run(&cli.global, cmd).await,
        Command::Lineage(cmd) => lineage::run(&cli.global, cmd).await,
        Command::Review(cmd) => review::run(&cli.global, cmd).await,
        Command::Report(cmd) => report::run(&cli.global, cmd).await,
    }
}

/// Connects to the database of `--database-url` (or the default).
pub async fn connect(global: &Global) -> anyhow::Result<Store> {
    connect_to(global.database_url_or(DEFAULT_DATABASE_URL)).await
}

/// Connects to `url`.
pub async fn connect_to(url: &str) -> anyhow::Result<Store> {
    Store::connect(url)
        .await
        .with_context(|| format!("cannot open the database {}", redact(url)))
}

/// Connects and applies pending migrations (the database is "migrated automatically on first use").
pub async fn open(global: &Global) -> anyhow::Result<Store> {
    open_at(global, global.database_url_or(DEFAULT_DATABASE_URL)).await
}

/// Connects to `url` and applies pending migrations.
pub async fn open_at(global: &Global, url: &str) -> anyhow::Result<Store> {
    let store = connect_to(url).await?;
    let applied = store
        .migrate()
        .await
        .context("cannot bring the database schema up to date")?;
    if !applied.is_empty() && !global.quiet && !global.json {
        let names: Vec<String> = applied.iter().map(ToString::to_string).collect();
        eprintln!("applied migrations: {}", names.join(", "));
    }
    Ok(store)
}

/// A URL with its password replaced by `***`, for messages.
pub fn redact(url: &str) -> String {
    let Some(scheme_end) = url.find("://").map(|i| i + 3) else {
        return url.to_owned();
    };
    let rest = &url[scheme_end..];
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    match (authority.rfind('@'), authority.find(':')) {
        (Some(at), Some(colon)) if colon < at => format!(
            "{}{}:***{}",
            &url[..scheme_end],
            &authority[..colon],
            &url[scheme_end + at..]
        ),
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            redact("postgres://me:secret@db:5432/x"),
            "postgres://me:***@db:5432/x"
        );
        assert_eq!(redact("postgres://me@db/x"), "postgres://me@db/x");
        assert_eq!(
            redact("sqlite://kintell.db?mode=rwc"),
            "sqlite://kintell.db?mode=rwc"
        );
    }
}
