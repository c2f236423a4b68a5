//! The HTTP server: in-process through its router (`oneshot`), and as real servers on `127.0.0.1:0`.

mod basics;
mod routes;
mod server;
mod support;
mod webhooks;
