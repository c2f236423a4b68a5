//! Tests of the stores area.
