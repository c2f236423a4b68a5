//! Tests of the scoring area.
