//! The ingestion batch state machine: pure, time passed in, effects returned as data.
