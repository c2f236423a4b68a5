//! Criterion benchmarks for kintell-ingest; see `benches/`.
