//! Tests of the migrations area.
