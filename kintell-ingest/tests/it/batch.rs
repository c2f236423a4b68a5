//! Tests of the batch area.
