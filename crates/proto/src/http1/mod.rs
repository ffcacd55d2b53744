//! HTTP/1.0 and HTTP/1.1 message codecs: the request and response head parsers and the
//! chunked body decoder. This module only re-exports; the parsing lives in the submodules.
//!
//! The parsers are deliberately strict (in the spirit of gunicorn, not uWSGI): anything
//! ambiguous that could let two HTTP implementations disagree about where a message ends
//! (request smuggling) is an error, never a guess.

mod chars;
mod chunked;
mod error;
mod field;
mod framing;
mod head;
mod headers;
mod range;
mod response;
mod target;

pub use chunked::{
    ChunkedDecoder, ChunkedStep, FORBIDDEN_TRAILERS, MAX_CHUNK_SIZE_HEX_DIGITS,
    MAX_CHUNK_SIZE_LINE, MAX_TRAILER_SECTION,
};
pub use error::{ChunkedError, HeadError};
pub use head::{
    BodyFraming, DEFAULT_MAX_FIELD, DEFAULT_MAX_FIELDS, DEFAULT_MAX_HEAD, DEFAULT_MAX_REQUEST_LINE,
    HeadLimits, MAX_LEADING_EMPTY_LINES, RequestHead, Version, parse_request_head,
};
pub use headers::{Header, Headers, Iter as HeaderIter};
pub use range::{Ranges, parse_ranges};
pub use response::{
    DEFAULT_MAX_RESPONSE_FIELD, DEFAULT_MAX_RESPONSE_FIELDS, DEFAULT_MAX_RESPONSE_HEAD,
    DEFAULT_MAX_STATUS_LINE, ResponseError, ResponseFraming, ResponseHead, ResponseLimits,
    parse_response_head,
};

#[cfg(test)]
mod tests;
