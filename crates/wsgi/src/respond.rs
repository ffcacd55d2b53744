//! Calling the app and turning what it returns into a response: a list or
//! tuple becomes one complete body; any other iterable is streamed piece by
//! piece (headers go out with the first non-empty piece); a `file_wrapper`
//! around a real file is sent with sendfile. `close()` is called exactly once
//! on every path, and an exception becomes a 500 or a cut connection.
//!
//! In place (on the connection's thread), an iterable that is not a list is
//! taken up to its first non-empty piece here; the rest is pulled by the
//! connection itself, one `next()` per piece it asks for (`pull.rs`).

use std::io::Write;

use bytes::{Bytes, BytesMut};
use portico_server::{ReplySender, Response, StreamItem};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyIterator, PyList, PyTuple};

use crate::file_wrapper::FileWrapper;
use crate::responder::Responder;
use crate::start_response::{StartResponse, body_bytes};

/// Where calling the app left a response.
// Returned once per request and matched at once: boxing the large
// variant would cost an allocation per pulled response for nothing.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Ran {
    /// Delivered (or failed: true).
    Done(bool),
    /// The app wrote pieces that wait for the connection: finish it with
    /// [`finish_app`] on a thread that may block (the app was called on the
    /// connection's).
    Unfinished(Py<PyAny>),
    /// Called in place, the app returned an iterable (or a file) whose
    /// first piece is there: deliver `response` with a body that yields
    /// it, then pulls the rest from the iterator (`pull.rs`).
    Pulling(PullStart),
}

/// A response begun in place whose body is to be pulled by the connection.
pub(crate) struct PullStart {
    /// What the app returned (its `close()` is still to be called).
    pub(crate) result: Py<PyAny>,
    /// Its iterator (`None`: a file sent whole, nothing more to pull).
    pub(crate) iter: Option<Py<PyIterator>>,
    /// The body's first pieces (`write()` data, the first piece).
    pub(crate) ready: Vec<StreamItem>,
    /// Where the response goes.
    pub(crate) reply: ReplySender,
    /// Status and headers; the body is set by the puller.
    pub(crate) response: Response,
}

/// Run the app for one request and deliver its response; true if it raised.
pub(crate) fn run_app(
    py: Python<'_>,
    app: &Py<PyAny>,
    environ: Bound<'_, PyDict>,
    responder: &Responder,
) -> bool {
    match call_app(py, app, environ, responder, false) {
        Ran::Done(failed) => failed,
        Ran::Unfinished(result) => finish_app(py, result.bind(py), responder.object(py)),
        // Only a call in place (`in_place` true) leaves a body to pull.
        Ran::Pulling(_) => false,
    }
}

/// Call the app. `in_place`: the caller is the connection's own thread,
/// which must not block on the connection: only a response complete when
/// the app returns (a list or tuple, a file) is delivered here; anything
/// else comes back [`Ran::Unfinished`].
pub(crate) fn call_app(
    py: Python<'_>,
    app: &Py<PyAny>,
    environ: Bound<'_, PyDict>,
    responder: &Responder,
    in_place: bool,
) -> Ran {
    let start_response = responder.object(py);
    let result = match app.bind(py).call1((environ, responder.call(py))) {
        Ok(result) => result,
        Err(err) => {
            report(py, &err, "the application raised");
            start_response.borrow_mut().state.fail();
            return Ran::Done(true);
        }
    };
    if in_place && !complete_on_return(&result, start_response) {
        if start_response.borrow().state.started() {
            return Ran::Unfinished(result.unbind());
        }
        return first_piece(py, result, start_response);
    }
    Ran::Done(finish_app(py, &result, start_response))
}

/// In place, for a result that is not a list: take pieces up to the first
/// non-empty one (the response starts with it, so an exception before it
/// is still a 500). An iterable that ends before is finished here. From
/// now on `write()` data waits for the puller, in order.
fn first_piece(
    py: Python<'_>,
    result: Bound<'_, PyAny>,
    start_response: &Bound<'_, StartResponse>,
) -> Ran {
    start_response.borrow_mut().state.pulled = true;
    let taken = take_first(py, &result);
    let mut this = start_response.borrow_mut();
    let mut ready = this.state.take_held();
    let (iter, outcome) = match taken {
        Ok(Some((first, iter))) => {
            ready.push(first);
            (iter, Ok(()))
        }
        Ok(None) if !ready.is_empty() => (None, Ok(())),
        Ok(None) => (None, Err(None)),
        Err(err) => (None, Err(Some(err))),
    };
    let taken = match outcome {
        Ok(()) => this.state.take_start(),
        Err(None) => {
            drop(this);
            return Ran::Done(conclude(py, &result, start_response, Ok(())));
        }
        Err(Some(err)) => Err(err),
    };
    drop(this);
    match taken {
        Ok((reply, response)) => Ran::Pulling(PullStart {
            result: result.unbind(),
            iter,
            ready,
            reply,
            response,
        }),
        Err(err) => Ran::Done(conclude(py, &result, start_response, Err(err))),
    }
}

/// The first piece of `result`'s body and the iterator for the rest:
/// a `file_wrapper` around a real file is one piece; `None` when the
/// iterable ends without a non-empty piece.
#[allow(clippy::type_complexity)]
fn take_first(
    py: Python<'_>,
    result: &Bound<'_, PyAny>,
) -> PyResult<Option<(StreamItem, Option<Py<PyIterator>>)>> {
    if let Ok(wrapper) = result.cast::<FileWrapper>()
        && let Some((file, offset, len)) = wrapper.get().as_file_region(py)
    {
        return Ok(Some((StreamItem::File { file, offset, len }, None)));
    }
    let iter = result.try_iter()?;
    for item in &iter {
        let piece = body_bytes(py, &item?)?;
        if !piece.is_empty() {
            return Ok(Some((StreamItem::Data(piece), Some(iter.unbind()))));
        }
    }
    Ok(None)
}

/// True if the app's response is whole once it has returned: nothing was
/// written through `write()`, and the result is a list or a tuple.
fn complete_on_return(
    result: &Bound<'_, PyAny>,
    start_response: &Bound<'_, StartResponse>,
) -> bool {
    !start_response.borrow().state.started()
        && (result.is_instance_of::<PyList>() || result.is_instance_of::<PyTuple>())
}

/// Consume the app's result, close it and end the response; true if it failed.
pub(crate) fn finish_app(
    py: Python<'_>,
    result: &Bound<'_, PyAny>,
    start_response: &Bound<'_, StartResponse>,
) -> bool {
    if let Err(err) = start_response.borrow_mut().state.flush_held(py) {
        report(py, &err, "the application's response failed");
    }
    let outcome = consume(py, result, start_response);
    conclude(py, result, start_response, outcome)
}

/// The body was consumed (`outcome`): close the result and end the
/// response, or fail it; true if it failed.
pub(crate) fn conclude(
    py: Python<'_>,
    result: &Bound<'_, PyAny>,
    start_response: &Bound<'_, StartResponse>,
    outcome: PyResult<()>,
) -> bool {
    let closed = close(py, result);
    let mut this = start_response.borrow_mut();
    match outcome.and(closed) {
        Ok(()) => match this.state.end(py) {
            Ok(()) => false,
            Err(err) => {
                report(py, &err, "the application's response is incomplete");
                this.state.fail();
                true
            }
        },
        Err(err) => {
            let client_gone = this.state.client_gone;
            if !client_gone {
                report(py, &err, "the application's response failed");
            }
            this.state.fail();
            !client_gone
        }
    }
}

/// Call the result's `close()`, if it has one. A plain list or tuple has
/// none (only a subclass could add it): asking would raise and discard an
/// AttributeError, most of the cost of a small response's finishing.
pub(crate) fn close(py: Python<'_>, result: &Bound<'_, PyAny>) -> PyResult<()> {
    if result.is_exact_instance_of::<PyList>() || result.is_exact_instance_of::<PyTuple>() {
        return Ok(());
    }
    if let Some(close) = result.getattr_opt(pyo3::intern!(py, "close"))? {
        close.call0()?;
    }
    Ok(())
}

pub(crate) fn consume(
    py: Python<'_>,
    result: &Bound<'_, PyAny>,
    start_response: &Bound<'_, StartResponse>,
) -> PyResult<()> {
    // The usual result: a list of exactly one piece (not a subclass, whose
    // `__iter__` may differ), taken without an iterator object.
    if let Ok(list) = result.cast_exact::<PyList>()
        && list.len() == 1
        && !start_response.borrow().state.started()
    {
        let body = body_bytes(py, &list.get_item(0)?)?;
        return start_response.borrow_mut().state.finish_full(body);
    }
    if let Ok(wrapper) = result.cast::<FileWrapper>()
        && let Some((file, offset, len)) = wrapper.get().as_file_region(py)
    {
        start_response
            .borrow_mut()
            .state
            .send(py, StreamItem::File { file, offset, len })?;
        return Ok(());
    }
    let all_at_once = result.is_instance_of::<PyList>() || result.is_instance_of::<PyTuple>();
    if all_at_once && !start_response.borrow().state.started() {
        // One piece (the usual case) is the body as it is; more are joined.
        let mut first: Option<Bytes> = None;
        let mut joined = BytesMut::new();
        for item in result.try_iter()? {
            let piece = body_bytes(py, &item?)?;
            match &first {
                None => first = Some(piece),
                Some(f) => {
                    if joined.is_empty() {
                        joined.extend_from_slice(f);
                    }
                    joined.extend_from_slice(&piece);
                }
            }
        }
        let body = if joined.is_empty() {
            first.unwrap_or_default()
        } else {
            joined.freeze()
        };
        return start_response.borrow_mut().state.finish_full(body);
    }
    for item in result.try_iter()? {
        let data: Bytes = body_bytes(py, &item?)?;
        if data.is_empty() {
            continue;
        }
        if !start_response
            .borrow_mut()
            .state
            .send(py, StreamItem::Data(data))?
        {
            break; // the client went away: stop iterating, close() follows
        }
    }
    Ok(())
}

/// Log an app error with its traceback, as one block.
pub(crate) fn report(py: Python<'_>, err: &PyErr, what: &str) {
    let traceback = format_traceback(py, err).unwrap_or_else(|| format!("{err}\n"));
    let _ = write!(std::io::stderr().lock(), "portico: {what}:\n{traceback}");
}

/// The Python traceback of `err`, formatted as the interpreter prints it.
pub(crate) fn format_traceback(py: Python<'_>, err: &PyErr) -> Option<String> {
    let traceback = py.import("traceback").ok()?;
    let lines = traceback
        .call_method1(
            "format_exception",
            (err.get_type(py), err.value(py), err.traceback(py)),
        )
        .ok()?;
    let parts: Vec<String> = lines.extract().ok()?;
    Some(parts.concat())
}
