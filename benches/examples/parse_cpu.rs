//! Parse + validate throughput per core measured in CPU time (not wall time), so that a loaded machine still gives
//! a meaningful figure: `cargo run --release -p kintell-ingest-benches --example parse_cpu [ROWS|FILE] [ROUNDS]`.
//! With a number, parses that many synthetic session rows; with a path, the file (read into memory first, e.g. the
//! output of `../shared/bench/gen_sessions.py`). Linux only (reads `/proc/thread-self/schedstat`).

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
    let input = args.next().unwrap_or_else(|| "100000".to_owned());
    let rounds: u32 = args.next().and_then(|a| a.parse().ok()).unwrap_or(10);
    let bytes = match input.parse::<u64>() {
        Ok(rows) => SessionsSpec::new(rows).to_bytes(),
        Err(_) => match std::fs::read(&input) {
            Ok(bytes) => bytes,
            Err(e) => {
                eprintln!("error: cannot read {input}: {e}");
                std::process::exit(2);
            }
        },
    };
    let options = ParseOptions::new(latest_session_time());
    let mut times = Vec::new();
    let (mut ok, mut rows) = (0, 0);
    for _ in 0..rounds {
        let start = cpu_ns();
        let mut parser = match Parser::open(&bytes[..], &options) {
            Ok(parser) => parser,
            Err(e) => {
                eprintln!("error: {input}: {e}");
                std::process::exit(1);
            }
        };
        ok = 0;
        // Reading from memory cannot fail.
        while let Some(entry) = parser.next_record().ok().flatten() {
            ok += u64::from(entry.is_ok());
        }
        rows = parser.row_number();
        times.push((cpu_ns() - start) as f64 / 1e9);
    }
    // The median as well as the best: on a shared machine the same round can take half as long again.
    times.sort_by(f64::total_cmp);
    let best = times.first().copied().unwrap_or(f64::NAN);
    let median = times.get(times.len() / 2).copied().unwrap_or(f64::NAN);
    let mb_s = |secs: f64| bytes.len() as f64 / secs / 1e6;
    println!(
        "{rows} rows ({} bytes, {ok} valid): best {:.1} ms CPU, {:.0} MB/s per core ({:.0} ns per row); \
         median {:.1} ms, {:.0} MB/s",
        bytes.len(),
        best * 1e3,
        mb_s(best),
        best * 1e9 / rows as f64,
        median * 1e3,
        mb_s(median)
    );
}
