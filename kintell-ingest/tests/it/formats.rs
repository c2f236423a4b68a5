//! Tests of the formats area.
