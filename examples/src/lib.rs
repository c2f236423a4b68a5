//! Example programs for kintell-ingest; see `examples/`.
