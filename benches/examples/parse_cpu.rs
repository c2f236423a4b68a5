//! Parse + validate throughput per core measured in CPU time (not wall time), so that a loaded machine still gives
//! a meaningful figure: `cargo run --release -p kintell-ingest-benches --example parse_cpu [ROWS] [ROUNDS]`.
//! Linux only (reads `/proc/thread-self/schedstat`).

use kintell_ingest::formats::{ParseOptions, Parser};
use kintell_ingest::synthetic::{SessionsSpec, latest_session_time};

/// Nanoseconds this thread has spent on a CPU.
fn cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|n| n.parse().ok()))
        .unwrap_or(0)
}

fn main() {
    let mut args = std::env::args().skip(1);
    let rows: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(100_000);
    let rounds: u32 = args.next().and_then(|a| a.parse().ok()).unwrap_or(10);
    let bytes = SessionsSpec::new(rows).to_bytes();
    let options = ParseOptions::new(latest_session_time());
    let mut best = f64::MAX;
    let mut ok = 0;
    for _ in 0..rounds {
        let start = cpu_ns();
        let mut parser = Parser::open(&bytes[..], &options).expect("header");
        ok = 0;
        while let Some(entry) = parser.next_record().expect("read") {
            ok += u64::from(entry.is_ok());
        }
        let secs = (cpu_ns() - start) as f64 / 1e9;
        best = best.min(secs);
    }
    println!(
        "{rows} rows ({} bytes, {ok} valid): best {:.1} ms CPU, {:.0} MB/s per core ({:.0} ns per row)",
        bytes.len(),
        best * 1e3,
        bytes.len() as f64 / best / 1e6,
        best * 1e9 / rows as f64
    );
}
