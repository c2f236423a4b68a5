//! `kintell-ingest-http`: the composition root of the HTTP server. It reads its options, checks the
//! authentication set-up, opens and migrates the store, and serves [`kintell_ingest_http::router`] until Ctrl-C or
//! SIGTERM.

use anyhow::Context;
use clap::Parser;
use kintell_ingest::store::Store;
use kintell_ingest_http::{AppState, check_auth_config, router};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

/// Serve the kintell-ingest HTTP API.
///
/// Example: `KINTELL_API_TOKEN=secret kintell-ingest-http --bind 127.0.0.1:8080 --database-url postgres://…`
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    bind: SocketAddr,
    /// Database to serve (`sqlite://…` or `postgres://…`); migrated at start.
    #[arg(
        long,
        env = "KINTELL_DATABASE_URL",
        default_value = "sqlite://kintell.db?mode=rwc"
    )]
    database_url: String,
    /// Directory for spooled uploads.
    #[arg(long, default_value = "data")]
    data_dir: PathBuf,
    /// Serve without authentication (only on a loopback address).
    #[arg(long)]
    insecure_no_auth: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            for cause in e.chain().skip(1) {
                eprintln!("cause: {cause}");
            }
            ExitCode::from(2)
        }
    }
}

fn run(args: Args) -> anyhow::Result<()> {
    let token = std::env::var("KINTELL_API_TOKEN").ok();
    check_auth_config(token.as_deref(), args.insecure_no_auth, args.bind)?;
    std::fs::create_dir_all(args.data_dir.join("uploads")).with_context(|| {
        format!(
            "cannot create the data directory {}",
            args.data_dir.display()
        )
    })?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async {
        let store = Store::connect(&args.database_url)
            .await
            .context("cannot open the database")?;
        store
            .migrate()
            .await
            .context("cannot migrate the database")?;
        let listener = tokio::net::TcpListener::bind(args.bind)
            .await
            .with_context(|| format!("cannot listen on {}", args.bind))?;
        eprintln!("listening on {}", listener.local_addr()?);
        axum::serve(listener, router(AppState::new(store)))
            .with_graceful_shutdown(shutdown())
            .await
            .context("the server stopped with an error")
    })
}

/// Resolves on Ctrl-C or SIGTERM.
async fn shutdown() {
    let ctrl_c = async {
        // If the handler cannot be installed the server still stops on SIGTERM.
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}
