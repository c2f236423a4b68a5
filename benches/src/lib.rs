//! Criterion benchmarks for kintell-ingest; see `benches/`.
//!
//! The data generators here mirror `../shared/bench/*.py` in shape (not byte for byte: they use their own
//! deterministic PRNG), so benchmarks need neither Python nor files.
#![deny(missing_docs)]

pub mod catalog;
pub mod rng;
