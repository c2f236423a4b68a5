//! Stores: the in-memory store, and the SQLite and PostgreSQL stores behind their features.
