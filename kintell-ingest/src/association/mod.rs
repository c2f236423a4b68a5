//! The campaign index: the catalogue loaded once per batch or run, so associating a row needs no query.
