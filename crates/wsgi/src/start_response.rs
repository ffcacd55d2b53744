//! `start_response` and the `write()` callable it returns, and the state of
//! one response as it passes from Python to the connection: status and
//! headers (validated: no CR/LF, no hop-by-hop headers, latin-1 only), then
//! either one complete body or a bounded stream of pieces.

use bytes::Bytes;
use portico_server::{ReplySender, Response, ResponseBody, ResponseMeta, StreamItem};
use pyo3::exceptions::{PyAssertionError, PyOSError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyList, PyString, PyTuple};
use tokio::sync::mpsc;

/// Pieces of a streamed response that may wait for a slow client before
/// the app is paused (bounded streaming).
const STREAM_CAPACITY: usize = 8;

/// Headers an application must not set (PEP 3333: hop-by-hop headers).
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "trailer",
    "trailers",
    "transfer-encoding",
    "upgrade",
];

/// Where a response stands.
pub(crate) struct ResponseState {
    status: Option<Status>,
    headers: Headers,
    reply: Option<ReplySender>,
    stream: Option<mpsc::Sender<StreamItem>>,
    pub(crate) meta: ResponseMeta,
    /// The client went away: stop producing.
    pub(crate) client_gone: bool,
    /// The app runs on the connection's own thread, which cannot wait for
    /// the connection to take pieces: those that do not fit are held here
    /// until the response is finished on a Python thread (`flush_held`).
    pub(crate) in_place: bool,
    /// This thread is the connection's own (the app runs in place, and
    /// the response is not handed to a Python thread): the reply is left
    /// in its slot for the connection, with no queue and no wake-up.
    pub(crate) here: bool,
    /// The rest of the body is pulled by the connection (`pull.rs`):
    /// pieces passed to `write()` meanwhile wait in `held` for it.
    pub(crate) pulled: bool,
    held: Vec<StreamItem>,
}

impl ResponseState {
    /// True once status and headers were handed to the connection.
    pub(crate) fn started(&self) -> bool {
        self.reply.is_none()
    }

    /// Deliver the response start through `reply`.
    fn deliver(&mut self, reply: ReplySender, response: Response) {
        if self.here {
            reply.send_here(response);
        } else {
            reply.send(response);
        }
    }

    fn response(&mut self, body: ResponseBody) -> PyResult<Response> {
        let (status, reason) = self.status.take().ok_or_else(|| {
            PyAssertionError::new_err(
                "the application produced body data before calling start_response()",
            )
        })?;
        Ok(Response {
            status,
            reason,
            headers: std::mem::take(&mut self.headers),
            body,
            meta: self.meta,
        })
    }

    /// Hand over status, headers and the complete body.
    pub(crate) fn finish_full(&mut self, body: Bytes) -> PyResult<()> {
        let response = self.response(ResponseBody::Full(body))?;
        if let Some(reply) = self.reply.take() {
            self.client_gone |= reply.is_closed();
            self.deliver(reply, response);
        }
        Ok(())
    }

    /// Take status and headers as a response without a body yet, and the
    /// reply to deliver it through: the rest is pulled by the connection
    /// (`pull.rs`), and `write()` calls from now on wait in `held`.
    pub(crate) fn take_start(&mut self) -> PyResult<(ReplySender, Response)> {
        let response = self.response(ResponseBody::Empty)?;
        let reply = self
            .reply
            .take()
            .ok_or_else(|| PyAssertionError::new_err("the response was started a second time"))?;
        self.pulled = true;
        Ok((reply, response))
    }

    /// From now on the rest of the body goes through a channel that the
    /// connection reads (`pull.rs` hands a slow iterator to the Python
    /// thread), and `write()` data with it.
    pub(crate) fn stream_to_channel(&mut self) -> mpsc::Receiver<StreamItem> {
        let (tx, rx) = mpsc::channel(STREAM_CAPACITY);
        self.stream = Some(tx);
        self.pulled = false;
        self.in_place = false;
        self.here = false;
        rx
    }

    /// The pieces `write()` held while the body is pulled, in order.
    pub(crate) fn take_held(&mut self) -> Vec<StreamItem> {
        std::mem::take(&mut self.held)
    }

    /// Send one streamed piece, starting the response with it if needed.
    /// Returns false when the client is gone.
    pub(crate) fn send(&mut self, py: Python<'_>, item: StreamItem) -> PyResult<bool> {
        if self.client_gone {
            return Ok(false);
        }
        if self.pulled {
            self.held.push(item);
            return Ok(true);
        }
        if !self.started() {
            let (tx, rx) = mpsc::channel(STREAM_CAPACITY);
            let _ = tx.try_send(item);
            let response = self.response(ResponseBody::Stream(
                portico_server::BodyStream::channel(rx),
            ))?;
            self.stream = Some(tx);
            if let Some(reply) = self.reply.take() {
                self.client_gone |= reply.is_closed();
                self.deliver(reply, response);
            }
            return Ok(!self.client_gone);
        }
        let Some(tx) = self.stream.as_ref() else {
            return Ok(false);
        };
        if self.in_place || !self.held.is_empty() {
            if !self.held.is_empty() {
                self.held.push(item);
                return Ok(true);
            }
            return Ok(match tx.try_send(item) {
                Ok(()) => true,
                Err(mpsc::error::TrySendError::Full(item)) => {
                    self.held.push(item);
                    true
                }
                Err(mpsc::error::TrySendError::Closed(_)) => {
                    self.client_gone = true;
                    false
                }
            });
        }
        let sent = match tx.try_send(item) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(item)) => {
                py.detach(|| tx.blocking_send(item).is_ok())
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        };
        self.client_gone |= !sent;
        Ok(sent)
    }

    /// Off the connection's thread now: send the pieces held while the app
    /// ran on it, waiting for the connection as needed.
    pub(crate) fn flush_held(&mut self, py: Python<'_>) -> PyResult<()> {
        self.in_place = false;
        for item in std::mem::take(&mut self.held) {
            let Some(tx) = self.stream.as_ref() else {
                break;
            };
            if !py.detach(|| tx.blocking_send(item).is_ok()) {
                self.client_gone = true;
                break;
            }
        }
        Ok(())
    }

    /// The body is complete: end the stream, or send an empty body.
    pub(crate) fn end(&mut self, py: Python<'_>) -> PyResult<()> {
        if self.started() {
            self.send(py, StreamItem::End)?;
            self.stream = None;
            Ok(())
        } else {
            self.finish_full(Bytes::new())
        }
    }

    /// The app failed: a 500 if nothing was sent yet, else cut the stream.
    pub(crate) fn fail(&mut self) {
        if let Some(reply) = self.reply.take() {
            let mut response = Response::internal_error();
            response.meta = ResponseMeta {
                app_id: self.meta.app_id,
                ..self.meta
            };
            self.deliver(reply, response);
        } else if let Some(tx) = self.stream.take() {
            let _ = tx.try_send(StreamItem::Abort);
        }
    }
}

/// The state behind the `start_response` callable given to the app (its
/// bound `start_response` method: a call without an argument tuple).
#[pyclass(module = "portico")]
pub(crate) struct StartResponse {
    pub(crate) state: ResponseState,
    /// Its own bound `write`, made once for all the requests the object
    /// serves (responder.rs: it ends this cycle when it lets the object go).
    pub(crate) write: Option<Py<PyAny>>,
}

impl StartResponse {
    pub(crate) fn new(reply: ReplySender, meta: ResponseMeta) -> StartResponse {
        StartResponse {
            state: ResponseState {
                status: None,
                headers: Vec::new(),
                reply: Some(reply),
                stream: None,
                meta,
                client_gone: false,
                in_place: false,
                here: false,
                pulled: false,
                held: Vec::new(),
            },
            write: None,
        }
    }

    /// Ready for a new request, as [`StartResponse::new`] leaves it.
    pub(crate) fn reset(&mut self, reply: ReplySender, meta: ResponseMeta) {
        let state = &mut self.state;
        state.status = None;
        state.headers.clear();
        state.reply = Some(reply);
        state.stream = None;
        state.meta = meta;
        state.client_gone = false;
        state.in_place = false;
        state.here = false;
        state.pulled = false;
        state.held.clear();
    }

    /// PEP 3333's `start_response(status, response_headers, exc_info=None)`.
    fn start<'py>(
        slf: &Bound<'py, Self>,
        status: &Bound<'py, PyAny>,
        headers: &Bound<'py, PyAny>,
        exc_info: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let mut this = slf.borrow_mut();
        let exc_info = exc_info.filter(|e| !e.is_none());
        match exc_info {
            Some(info) if this.state.started() => {
                // Too late to change the response: re-raise the app's exception.
                let value = info.get_item(1)?;
                return Err(PyErr::from_value(value));
            }
            Some(_) => {}
            None if this.state.status.is_some() || this.state.started() => {
                return Err(PyAssertionError::new_err(
                    "start_response() called a second time without exc_info",
                ));
            }
            None => {}
        }
        let (parsed_status, parsed_headers) = parse_head(status, headers)?;
        this.state.status = Some(parsed_status);
        this.state.headers = parsed_headers;
        match &this.write {
            Some(write) => Ok(write.bind(slf.py()).clone()),
            None => {
                drop(this);
                slf.getattr(pyo3::intern!(slf.py(), "write"))
            }
        }
    }
}

/// Append the latin-1 bytes of `text` (a status, a header name or value)
/// to `out`, refusing control characters (CR and LF above all) and
/// characters beyond latin-1. An ASCII `str` (nearly every one) is read
/// through its UTF-8 view, which CPython keeps as the string's own bytes.
fn latin1_into(text: &Bound<'_, PyString>, what: &str, out: &mut Vec<u8>) -> PyResult<()> {
    if let Ok(s) = text.to_str() {
        let bytes = s.as_bytes();
        // One pass: ASCII printable or tab (0x7f and up take the slow path).
        if printable_ascii(bytes) {
            out.extend_from_slice(bytes);
            return Ok(());
        }
    }
    let s = text.to_cow()?;
    for c in s.chars() {
        let code = c as u32;
        if code > 0xff {
            return Err(PyValueError::new_err(format!(
                "{what} {s:?} has a character outside latin-1 ({c:?})"
            )));
        }
        if (code < 0x20 && c != '\t') || code == 0x7f {
            return Err(control_error(what, &s));
        }
        out.push(code as u8);
    }
    Ok(())
}

/// Whether every byte is printable ASCII (0x20 to 0x7e) or a tab: eight
/// bytes at a time (a byte at a time cost ~8 instructions a byte, a third
/// of `start_response`'s own work for a hello app).
fn printable_ascii(bytes: &[u8]) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = ONES * 0x80;
    // Exact for each test: a byte of 0x80 or more; else (every byte below
    // 0x80) a byte below 0x20, a byte equal to 0x7f.
    let printable = |x: u64| {
        let below_space = x.wrapping_sub(ONES * 0x20) & !x;
        let del = x ^ (ONES * 0x7f);
        let is_del = del.wrapping_sub(ONES) & !del;
        (x | below_space | is_del) & HIGH == 0
    };
    let mut chunks = bytes.chunks_exact(8);
    let words_ok = chunks.by_ref().all(|c| {
        let mut word = [0u8; 8];
        word.copy_from_slice(c);
        printable(u64::from_le_bytes(word))
    });
    let mut tail = [b' '; 8];
    let rest = chunks.remainder();
    tail[..rest.len()].copy_from_slice(rest);
    (words_ok && printable(u64::from_le_bytes(tail)))
        // A tab (or anything refused) lands here: byte by byte.
        || bytes
            .iter()
            .all(|&b| (0x20..0x7f).contains(&b) || b == b'\t')
}

fn control_error(what: &str, s: &str) -> PyErr {
    PyValueError::new_err(format!(
        "{what} {s:?} contains a control character (CR, LF or other): refused"
    ))
}

/// RFC 9110 `tchar`, by byte.
static TCHAR: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        table[b] = c.is_ascii_alphanumeric();
        b += 1;
    }
    let extra = b"!#$%&'*+-.^_`|~";
    let mut i = 0;
    while i < extra.len() {
        table[extra[i] as usize] = true;
        i += 1;
    }
    table
};

fn is_token(name: &[u8]) -> bool {
    !name.is_empty() && name.iter().all(|&b| TCHAR[usize::from(b)])
}

/// The status line's code, and where its reason phrase lies in `buf`
/// (from `start`, where the status was appended).
fn parse_status(
    status: &Bound<'_, PyAny>,
    buf: &mut Vec<u8>,
) -> PyResult<(u16, std::ops::Range<usize>)> {
    let text = status.cast::<PyString>().map_err(|_| {
        PyTypeError::new_err(format!("status must be a str, not {}", type_name(status)))
    })?;
    let start = buf.len();
    latin1_into(text, "status", buf)?;
    let bytes = &buf[start..];
    let code = bytes
        .get(..3)
        .filter(|d| d.iter().all(u8::is_ascii_digit))
        .map(|d| d.iter().fold(0u16, |n, &b| n * 10 + u16::from(b - b'0')))
        .filter(|c| (200..=599).contains(c));
    match (code, bytes.get(3)) {
        (Some(code), Some(b' ')) if bytes.len() > 4 => Ok((code, start + 4..buf.len())),
        _ => Err(PyValueError::new_err(format!(
            "status {:?} is not of the form \"200 OK\" with a final status code (200 to 599)",
            String::from_utf8_lossy(bytes)
        ))),
    }
}

fn type_name(obj: &Bound<'_, PyAny>) -> String {
    obj.get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "?".into())
}

/// Check the app's headers and append each name and value to `buf`;
/// returns where each pair lies in it.
fn parse_headers(
    headers: &Bound<'_, PyAny>,
    buf: &mut Vec<u8>,
) -> PyResult<Vec<(std::ops::Range<usize>, std::ops::Range<usize>)>> {
    let Ok(list) = headers.cast_exact::<PyList>() else {
        return Err(PyTypeError::new_err(format!(
            "response headers must be a list of (name, value) tuples, not {}",
            type_name(headers)
        )));
    };
    let mut out = Vec::with_capacity(list.len());
    let mut content_length_seen = false;
    for item in list.iter() {
        let pair = item
            .cast::<PyTuple>()
            .ok()
            .filter(|t| t.len() == 2)
            .ok_or_else(|| {
                PyTypeError::new_err(format!("header {item} is not a (name, value) tuple"))
            })?;
        let name = pair.get_borrowed_item(0)?;
        let value = pair.get_borrowed_item(1)?;
        let (Ok(name), Ok(value)) = (name.cast::<PyString>(), value.cast::<PyString>()) else {
            return Err(PyTypeError::new_err(format!(
                "header {item}: name and value must both be str"
            )));
        };
        let name_start = buf.len();
        latin1_into(&name, "header name", buf)?;
        let name_at = name_start..buf.len();
        let name = &buf[name_at.clone()];
        if !is_token(name) {
            return Err(PyValueError::new_err(format!(
                "header name {:?} is not a valid HTTP token",
                String::from_utf8_lossy(name)
            )));
        }
        if HOP_BY_HOP
            .iter()
            .any(|h| h.as_bytes().eq_ignore_ascii_case(name))
        {
            return Err(PyValueError::new_err(format!(
                "hop-by-hop header {:?} may not be set by a WSGI application",
                String::from_utf8_lossy(name)
            )));
        }
        if name.eq_ignore_ascii_case(b"status") {
            return Err(PyValueError::new_err(
                "a \"Status\" header is not allowed; pass the status to start_response",
            ));
        }
        let is_content_length = name.eq_ignore_ascii_case(b"content-length");
        latin1_into(&value, "header value", buf)?;
        let value_at = name_at.end..buf.len();
        if is_content_length {
            if content_length_seen {
                return Err(PyValueError::new_err("more than one Content-Length header"));
            }
            content_length_seen = true;
            let value = &buf[value_at.clone()];
            if value.is_empty() || !value.iter().all(u8::is_ascii_digit) {
                return Err(PyValueError::new_err(format!(
                    "Content-Length {:?} is not a number",
                    String::from_utf8_lossy(value)
                )));
            }
        }
        out.push((name_at, value_at));
    }
    Ok(out)
}

/// A status code and reason phrase.
type Status = (u16, Bytes);

/// Response header names and values, in order.
type Headers = Vec<(Bytes, Bytes)>;

/// The status and headers of `start_response`, checked, as the response
/// head's pieces: all in one buffer, sliced (one allocation, not one per
/// name and value).
fn parse_head(
    status: &Bound<'_, PyAny>,
    headers: &Bound<'_, PyAny>,
) -> PyResult<(Status, Headers)> {
    let mut buf = Vec::with_capacity(256);
    let (code, reason) = parse_status(status, &mut buf)?;
    let at = parse_headers(headers, &mut buf)?;
    let all = Bytes::from(buf);
    let headers = at
        .into_iter()
        .map(|(name, value)| (all.slice(name), all.slice(value)))
        .collect();
    Ok(((code, all.slice(reason)), headers))
}

/// Body data from the app: bytes-like, or `str` encoded as UTF-8 (uWSGI does
/// this; PEP 3333 says bytes), with a warning the first time.
pub(crate) fn body_bytes(py: Python<'_>, data: &Bound<'_, PyAny>) -> PyResult<Bytes> {
    if let Ok(b) = data.cast::<pyo3::types::PyBytes>() {
        return Ok(Bytes::copy_from_slice(b.as_bytes()));
    }
    if let Ok(s) = data.cast::<PyString>() {
        warn_str_body_once(py);
        return Ok(Bytes::copy_from_slice(s.to_cow()?.as_bytes()));
    }
    if let Ok(b) = data.cast::<pyo3::types::PyByteArray>() {
        return Ok(Bytes::from(b.to_vec()));
    }
    Err(PyTypeError::new_err(format!(
        "response body items must be bytes, not {}",
        type_name(data)
    )))
}

fn warn_str_body_once(_py: Python<'_>) {
    static WARNED: std::sync::Once = std::sync::Once::new();
    WARNED.call_once(|| {
        portico_server::logln!(
            "portico: WARNING: the application returned a str body chunk; PEP 3333 requires bytes. \
             Encoding it as UTF-8 as uWSGI does (logged once)."
        );
    });
}

#[pymethods]
impl StartResponse {
    /// What the app is given as `start_response`: this bound method (the
    /// object itself is not callable; responder.rs says why).
    #[pyo3(signature = (status, headers, exc_info = None))]
    fn start_response<'py>(
        slf: Bound<'py, Self>,
        status: &Bound<'py, PyAny>,
        headers: &Bound<'py, PyAny>,
        exc_info: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        StartResponse::start(&slf, status, headers, exc_info)
    }

    /// The legacy `write()` callable: its data goes out before the iterable's.
    fn write(&mut self, py: Python<'_>, data: &Bound<'_, PyAny>) -> PyResult<()> {
        let data = body_bytes(py, data)?;
        if data.is_empty() {
            return Ok(());
        }
        if !self.state.send(py, StreamItem::Data(data))? {
            return Err(PyOSError::new_err("client disconnected"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::printable_ascii;

    #[test]
    fn printable_ascii_takes_printable_bytes_and_tabs_at_any_position() {
        let bytewise = |b: &[u8]| b.iter().all(|&c| (0x20..0x7f).contains(&c) || c == b'\t');
        for len in 0..20 {
            for at in 0..len {
                for byte in 0..=255u8 {
                    let mut text = vec![b'a'; len];
                    text[at] = byte;
                    assert_eq!(
                        printable_ascii(&text),
                        bytewise(&text),
                        "{byte:#x} at {at}/{len}"
                    );
                }
            }
        }
        assert!(printable_ascii(
            b"Content-Type: text/html; charset=\"utf-8\"\t~ "
        ));
        assert!(!printable_ascii(b"Set-Cookie: a=1\r\nX: injected"));
        assert!(!printable_ascii("caf\u{e9}".as_bytes()));
    }
}
