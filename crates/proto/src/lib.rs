//! Portico's pure byte codecs: HTTP/1.x request heads, chunked request bodies, uwsgi
//! packets and percent-decoding of paths.
//!
//! Nothing here does I/O, owns a socket or knows about async: every parser takes bytes
//! and answers "here is a message", "need more bytes" or "this is an error (and which
//! status to answer with)". That keeps the codecs table-testable and fuzzable, and lets
//! the connection code in `portico-server` own all state about sockets and timeouts.

#![warn(missing_docs)]
// Parsers take user bytes: no indexing that can panic (tests may index what they built).
#![warn(clippy::indexing_slicing)]
#![cfg_attr(test, allow(clippy::indexing_slicing))]

pub mod http1;
pub mod percent;
pub mod uwsgi;
