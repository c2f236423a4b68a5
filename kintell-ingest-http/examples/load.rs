//! A bounded load check on loopback: a server on `127.0.0.1:0` over a SQLite database in a temporary directory,
//! an upload of a generated sessions file, and, while it is imported, 200 concurrent `GET /v1/batches/{id}`
//! (each answer must be 200). Prints the p99 latency of those requests and the process's peak RSS (`VmHWM`;
//! the server runs in this process).
//!
//! ```text
//! cargo run --release -p kintell-ingest-http --example load -- 1000000
//! ```
//!
//! The argument is the number of rows (default 1,000,000, about 145 MB).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, StreamBody, combinators::BoxBody};
use hyper::body::Frame;
use hyper_util::rt::TokioIo;
use kintell_ingest::store::Store;
use kintell_ingest::synthetic::SessionsSpec;
use kintell_ingest_http::{AppState, router};

const TOKEN: &str = "load-check";
const CONCURRENT: usize = 200;

type Body = BoxBody<Bytes, Infallible>;

async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Body,
) -> Result<(u16, Bytes), String> {
    let stream = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| e.to_string())?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(conn);
    let r = hyper::Request::builder()
        .method(method)
        .uri(path)
        .header("host", addr.to_string())
        .header("authorization", format!("Bearer {TOKEN}"))
        .header("content-type", "text/csv")
        .body(body)
        .map_err(|e| e.to_string())?;
    let response = sender.send_request(r).await.map_err(|e| e.to_string())?;
    let status = response.status().as_u16();
    let bytes = response
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    Ok((status, bytes))
}

fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let rows: u64 = match std::env::args().nth(1) {
        Some(a) => a.parse().map_err(|e| format!("rows {a:?}: {e}"))?,
        None => 1_000_000,
    };
    let dir = tempfile::tempdir()?;
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("load.db").display());
    let store = Store::connect(&url).await?;
    store.migrate().await?;
    let state = AppState::new(store)
        .with_token(Some(TOKEN.to_owned()))
        .with_data_dir(dir.path().join("data"));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let app = router(state.clone());
    let server = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = stopped.await;
            })
            .await
    });

    // The file is generated while it is sent, so the client holds only a few chunks of it.
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, Infallible>>(4);
    let generator = tokio::task::spawn_blocking(move || {
        let mut reader = SessionsSpec::new(rows).reader();
        let mut size = 0usize;
        loop {
            let mut chunk = vec![0u8; 256 * 1024];
            let n = std::io::Read::read(&mut reader, &mut chunk).unwrap_or(0);
            if n == 0
                || tx
                    .blocking_send(Ok(Frame::data(Bytes::from({
                        chunk.truncate(n);
                        chunk
                    }))))
                    .is_err()
            {
                return size;
            }
            size += n;
        }
    });
    let started = Instant::now();
    let (status, body) = request(
        addr,
        "POST",
        "/v1/imports/sessions?create_missing_users=true",
        StreamBody::new(tokio_stream::wrappers::ReceiverStream::new(rx)).boxed(),
    )
    .await?;
    let size = generator.await?;
    if status != 202 {
        return Err(format!(
            "upload answered {status}: {}",
            String::from_utf8_lossy(&body)
        )
        .into());
    }
    let batch: serde_json::Value = serde_json::from_slice(&body)?;
    let id = batch["id"].as_str().ok_or("no batch id")?.to_owned();
    println!(
        "uploaded {size} bytes ({rows} rows): 202 after {:.2?}",
        started.elapsed()
    );

    let path = format!("/v1/batches/{id}");
    let mut tasks = Vec::with_capacity(CONCURRENT);
    for _ in 0..CONCURRENT {
        let path = path.clone();
        tasks.push(tokio::spawn(async move {
            let t = Instant::now();
            let answer = request(addr, "GET", &path, Full::new(Bytes::new()).boxed()).await;
            (answer.map(|(s, _)| s), t.elapsed())
        }));
    }
    let mut latencies = Vec::with_capacity(CONCURRENT);
    let mut failures = 0;
    for task in tasks {
        let (answer, elapsed) = task.await?;
        match answer {
            Ok(200) => latencies.push(elapsed),
            Ok(s) => {
                failures += 1;
                eprintln!("GET {path} answered {s}");
            }
            Err(e) => {
                failures += 1;
                eprintln!("GET {path} failed: {e}");
            }
        }
    }
    let (_, body) = request(addr, "GET", &path, Full::new(Bytes::new()).boxed()).await?;
    let during: serde_json::Value = serde_json::from_slice(&body)?;
    latencies.sort_unstable();
    let p99 = latencies
        .get((latencies.len() * 99).div_ceil(100).saturating_sub(1))
        .copied()
        .unwrap_or(Duration::ZERO);
    println!(
        "{} concurrent GET {path}: {} ok, {failures} failed, p99 {:.2?} (the batch was {} at row {})",
        CONCURRENT,
        latencies.len(),
        p99,
        during["status"],
        during["last_processed_row"]
    );

    let deadline = Instant::now() + Duration::from_secs(3600);
    let done = loop {
        let (_, body) = request(addr, "GET", &path, Full::new(Bytes::new()).boxed()).await?;
        let b: serde_json::Value = serde_json::from_slice(&body)?;
        if b["status"] != "running" || Instant::now() > deadline {
            break b;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    println!(
        "import {} after {:.2?}: {} rows inserted, {} rejected",
        done["status"],
        started.elapsed(),
        done["inserted_rows"],
        done["error_rows"]
    );
    let _ = stop.send(());
    server.await??;
    state.shutdown().await;
    match peak_rss_kib() {
        Some(kib) => println!(
            "peak RSS of the process (server and client): {:.1} MiB",
            kib as f64 / 1024.0
        ),
        None => println!("peak RSS: /proc/self/status is not available here"),
    }
    if failures > 0 {
        return Err(format!("{failures} of {CONCURRENT} requests failed").into());
    }
    if done["status"] != "completed" {
        return Err(format!("the import ended {}", done["status"]).into());
    }
    Ok(())
}
