//! Real servers on `127.0.0.1:0`: a large upload polled to completion, a restart in the middle of a batch, and
//! an upload spooled while its body is still arriving.

use crate::on_both;
use crate::support::{Env, TOKEN, batch_id, eventually};
use bytes::Bytes;
use http_body_util::{BodyExt, Full, StreamBody, combinators::BoxBody};
use hyper::body::Frame;
use hyper_util::rt::TokioIo;
use kintell_ingest::domain::{ActivityKind, BatchStatus};
use kintell_ingest::ingest::stopped_by_signal;
use kintell_ingest::synthetic::SessionsSpec;
use kintell_ingest_http::{AppState, resume_spooled, router};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};

type Body = BoxBody<Bytes, Infallible>;

/// A server running `router(state)` until [`Server::stop`].
struct Server {
    addr: SocketAddr,
    state: AppState,
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

impl Server {
    async fn start(state: AppState) -> Server {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (stop, stopped) = oneshot::channel::<()>();
        let app = router(state.clone());
        let task = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await
                .expect("serve");
        });
        Server {
            addr,
            state,
            stop,
            task,
        }
    }

    /// Graceful shutdown, as the binary does it: stop accepting, then stop the imports between chunks.
    async fn stop(self) {
        let _ = self.stop.send(());
        self.task.await.expect("the server task");
        self.state.shutdown().await;
    }

    async fn request(
        &self,
        method: &str,
        path: &str,
        content_type: Option<&str>,
        body: Body,
    ) -> (u16, Bytes) {
        let stream = tokio::net::TcpStream::connect(self.addr)
            .await
            .expect("connect");
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .expect("handshake");
        tokio::spawn(conn);
        let mut r = hyper::Request::builder()
            .method(method)
            .uri(path)
            .header("host", self.addr.to_string())
            .header("authorization", format!("Bearer {TOKEN}"));
        if let Some(t) = content_type {
            r = r.header("content-type", t);
        }
        let response = sender
            .send_request(r.body(body).expect("request"))
            .await
            .expect("response");
        let status = response.status().as_u16();
        let bytes = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        (status, bytes)
    }

    async fn get_json(&self, path: &str) -> serde_json::Value {
        let (status, body) = self.request("GET", path, None, empty()).await;
        assert_eq!(status, 200, "{path}: {}", String::from_utf8_lossy(&body));
        serde_json::from_slice(&body).expect("JSON")
    }

    /// Polls the batch over HTTP until `done`, or panics after `within`.
    async fn poll(
        &self,
        id: &str,
        within: Duration,
        done: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let deadline = Instant::now() + within;
        loop {
            let b = self.get_json(&format!("/v1/batches/{id}")).await;
            if done(&b) {
                return b;
            }
            assert!(Instant::now() < deadline, "not within {within:?}: {b}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

fn empty() -> Body {
    Full::new(Bytes::new()).boxed()
}

fn full(bytes: Vec<u8>) -> Body {
    Full::new(Bytes::from(bytes)).boxed()
}

const WAIT: Duration = Duration::from_secs(180);

async fn a_large_upload_is_imported_to_completion(env: Env) {
    let rows = 25_000;
    let csv = SessionsSpec::new(rows).bad_every(100).to_bytes();
    let server = Server::start(env.state.clone()).await;
    let (status, body) = server
        .request(
            "POST",
            "/v1/imports/sessions?create_missing_users=true&file_name=sessions.csv",
            Some("text/csv"),
            full(csv),
        )
        .await;
    assert_eq!(status, 202, "{}", String::from_utf8_lossy(&body));
    let batch: serde_json::Value = serde_json::from_slice(&body).expect("JSON");
    let id = batch["id"].as_str().expect("id").to_owned();
    let done = server.poll(&id, WAIT, |b| b["status"] != "running").await;
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(done["total_rows"], 25_000);
    assert_eq!(done["error_rows"], 250);
    assert_eq!(done["inserted_rows"], 24_750);
    assert_eq!(done["last_processed_row"], 25_000);
    assert_eq!(
        env.store
            .count_activities(ActivityKind::KintellSession)
            .await
            .expect("count"),
        24_750
    );
    let (status, csv) = server
        .request("GET", &format!("/v1/batches/{id}/errors"), None, empty())
        .await;
    assert_eq!(status, 200);
    assert_eq!(String::from_utf8_lossy(&csv).lines().count(), 251);
    server.stop().await;
    assert!(env.spooled().is_empty(), "{:?}", env.spooled());
}
on_both!(a_large_upload_is_imported_to_completion);

async fn a_restart_in_the_middle_of_a_batch_resumes_it_without_duplicates(env: Env) {
    let env = env.chunks(25);
    let rows = 5_000;
    let csv = SessionsSpec::new(rows).to_bytes();
    let server = Server::start(env.state.clone()).await;
    let (status, body) = server
        .request(
            "POST",
            "/v1/imports/sessions?create_missing_users=true",
            Some("text/csv"),
            full(csv),
        )
        .await;
    assert_eq!(status, 202, "{}", String::from_utf8_lossy(&body));
    let id = batch_id(&serde_json::from_slice(&body).expect("JSON"));
    server
        .poll(&id.to_string(), WAIT, |b| {
            b["last_processed_row"].as_i64() > Some(0)
        })
        .await;
    server.stop().await;

    // Stopped between chunks: paused for the restart, lease released, really mid-way.
    let stopped = env
        .store
        .get_batch(id)
        .await
        .expect("read")
        .expect("stored");
    assert!(stopped_by_signal(&stopped), "{stopped:?}");
    assert_eq!(stopped.lease_owner, None);
    assert!(
        0 < stopped.last_processed_row && stopped.last_processed_row < stopped.total_rows,
        "{stopped:?}"
    );
    assert_eq!(
        env.store
            .count_activities(ActivityKind::KintellSession)
            .await
            .expect("count"),
        u64::try_from(stopped.inserted_rows).expect("count")
    );

    // A new server on the same database and data directory resumes it at start-up.
    let Env { db, data, .. } = env;
    let env = Env::on(db, data).await.chunks(25);
    let resumed = resume_spooled(&env.state).await.expect("resume");
    assert_eq!(resumed, vec![id]);
    let server = Server::start(env.state.clone()).await;
    let done = server
        .poll(&id.to_string(), WAIT, |b| b["status"] != "running")
        .await;
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(done["inserted_rows"], 5_000);
    assert_eq!(
        (
            done["updated_rows"].as_i64(),
            done["skipped_rows"].as_i64(),
            done["error_rows"].as_i64()
        ),
        (Some(0), Some(0), Some(0))
    );
    assert_eq!(
        env.store
            .count_activities(ActivityKind::KintellSession)
            .await
            .expect("count"),
        5_000
    );
    server.stop().await;
    assert!(env.spooled().is_empty(), "{:?}", env.spooled());
    assert_eq!(
        env.store
            .get_batch(id)
            .await
            .expect("read")
            .map(|b| b.status),
        Some(BatchStatus::Completed)
    );
}
on_both!(a_restart_in_the_middle_of_a_batch_resumes_it_without_duplicates);

async fn the_spool_file_grows_before_the_body_ends(env: Env) {
    let csv = SessionsSpec::new(8_000).to_bytes();
    let split = 600 * 1024;
    assert!(csv.len() > split + 1);
    let (tx, rx) = mpsc::channel::<Result<Frame<Bytes>, Infallible>>(4);
    let body = StreamBody::new(tokio_stream::wrappers::ReceiverStream::new(rx)).boxed();
    let server = Server::start(env.state.clone()).await;
    let uploads = env.state.uploads_dir();
    let request = {
        let addr = server.addr;
        tokio::spawn(async move {
            let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
            let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
                .await
                .expect("handshake");
            tokio::spawn(conn);
            let r = hyper::Request::post("/v1/imports/sessions?create_missing_users=true")
                .header("host", addr.to_string())
                .header("authorization", format!("Bearer {TOKEN}"))
                .header("content-type", "text/csv")
                .body(body)
                .expect("request");
            let response = sender.send_request(r).await.expect("response");
            let status = response.status().as_u16();
            let bytes = response
                .into_body()
                .collect()
                .await
                .expect("body")
                .to_bytes();
            (status, bytes)
        })
    };
    tx.send(Ok(Frame::data(Bytes::copy_from_slice(&csv[..split]))))
        .await
        .expect("send");
    let partial = || -> u64 {
        std::fs::read_dir(&uploads)
            .into_iter()
            .flatten()
            .filter_map(Result::ok)
            .filter(|e| e.file_name().to_string_lossy().starts_with(".upload-"))
            .filter_map(|e| e.metadata().ok())
            .map(|m| m.len())
            .sum()
    };
    eventually(WAIT, "the partial spool file has bytes", || partial() > 0).await;
    assert!(
        !request.is_finished(),
        "the request is still sending its body"
    );
    tx.send(Ok(Frame::data(Bytes::copy_from_slice(&csv[split..]))))
        .await
        .expect("send");
    drop(tx);
    let (status, body) = request.await.expect("request task");
    assert_eq!(status, 202, "{}", String::from_utf8_lossy(&body));
    let id = batch_id(&serde_json::from_slice(&body).expect("JSON"));
    let done = server
        .poll(&id.to_string(), WAIT, |b| b["status"] != "running")
        .await;
    assert_eq!(done["inserted_rows"], 8_000, "{done}");
    server.stop().await;
}
on_both!(the_spool_file_grows_before_the_body_ends);
