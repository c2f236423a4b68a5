//! `kintell-ingest-http`: the composition root of the HTTP server. It reads its options, checks the
//! authentication set-up, opens and migrates the store, resumes the batches it holds spooled input for, and serves
//! [`kintell_ingest_http::router`] until Ctrl-C or SIGTERM; then it stops running imports between chunks (their
//! batches resumable, their leases released) and exits.

use anyhow::Context;
use clap::Parser;
use kintell_ingest::store::Store;
use kintell_ingest_http::{
    AppState, DEFAULT_MAX_UPLOAD_BYTES, check_auth_config, resume_spooled, router,
};
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
    /// Refuse uploads larger than this many bytes (413).
    #[arg(long, default_value_t = DEFAULT_MAX_UPLOAD_BYTES)]
    max_upload_bytes: u64,
}

fn main() -> ExitCode {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("KINTELL_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
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
        let state = AppState::new(store)
            .with_token(token)
            .with_data_dir(&args.data_dir)
            .with_max_upload_bytes(args.max_upload_bytes)
            .with_webhook_secret(
                std::env::var(kintell_ingest_http::webhooks::SECRET_ENV)
                    .ok()
                    .as_deref()
                    .map(str::as_bytes),
            );
        let listener = tokio::net::TcpListener::bind(args.bind)
            .await
            .with_context(|| format!("cannot listen on {}", args.bind))?;
        let resumed = resume_spooled(&state)
            .await
            .context("cannot read the batch ledger")?;
        if !resumed.is_empty() {
            eprintln!("resumed {} spooled batch(es)", resumed.len());
        }
        eprintln!("listening on {}", listener.local_addr()?);
        let served = axum::serve(listener, router(state.clone()))
            .with_graceful_shutdown(shutdown())
            .await
            .context("the server stopped with an error");
        eprintln!("stopping: running imports stop after their current chunk");
        state.shutdown().await;
        served
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
