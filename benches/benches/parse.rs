//! Parse + validate throughput of the sessions parser on input shaped like the shared 1M-row benchmark file.
//!
//! `cargo bench -p kintell-ingest-benches --bench parse` reports MB/s of CSV input (criterion `Throughput::Bytes`).

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use kintell_ingest::formats::{ParseOptions, Parser};
use kintell_ingest::synthetic::{SessionsSpec, latest_session_time};
use std::hint::black_box;

const ROWS: u64 = 100_000;

fn parse(c: &mut Criterion) {
    let clean = SessionsSpec::new(ROWS).to_bytes();
    let with_bad = SessionsSpec::new(ROWS).bad_every(50).to_bytes();
    let options = ParseOptions::new(latest_session_time());
    let mut group = c.benchmark_group("parse_sessions");
    group.sample_size(20);

    group.throughput(Throughput::Bytes(clean.len() as u64));
    group.bench_function("validate_100k", |b| {
        b.iter(|| {
            let mut parser = Parser::open(black_box(&clean[..]), &options).expect("header");
            let mut ok = 0u64;
            while let Some(entry) = parser.next_record().expect("read") {
                ok += u64::from(entry.is_ok());
            }
            ok
        })
    });

    // What the pipeline pays when it keeps every raw record of a chunk, in case the database rejects a row.
    group.bench_function("validate_and_keep_raw_100k", |b| {
        b.iter(|| {
            let mut parser = Parser::open(black_box(&clean[..]), &options).expect("header");
            let mut kept = 0usize;
            while let Some(entry) = parser.next_record().expect("read") {
                let raw = parser.raw_record().to_owned_record();
                kept += raw.len() + usize::from(entry.is_ok());
            }
            kept
        })
    });

    group.throughput(Throughput::Bytes(with_bad.len() as u64));
    group.bench_function("validate_100k_2pct_bad", |b| {
        b.iter(|| {
            let mut parser = Parser::open(black_box(&with_bad[..]), &options).expect("header");
            let mut errors = 0u64;
            while let Some(entry) = parser.next_record().expect("read") {
                errors += u64::from(entry.is_err());
            }
            errors
        })
    });

    group.throughput(Throughput::Bytes(clean.len() as u64));
    group.bench_function("skip_100k", |b| {
        b.iter(|| {
            let mut parser = Parser::open(black_box(&clean[..]), &options).expect("header");
            parser.skip_records(u64::MAX).expect("read")
        })
    });
    group.finish();
}

criterion_group!(benches, parse);
criterion_main!(benches);
