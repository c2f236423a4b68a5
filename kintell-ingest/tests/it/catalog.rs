//! Tests of the catalog area.
