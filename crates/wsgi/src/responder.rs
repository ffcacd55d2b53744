//! One `start_response` for many requests. Making the object, its bound
//! `start_response` and its bound `write` costs three allocations and an
//! attribute lookup per request, and calling the object itself (its
//! `__call__`) builds an argument tuple each time; a bound method is
//! called with the arguments in place. So a worker keeps one [`Responder`]
//! and reuses it for the next request whenever nothing but itself still
//! holds the object or its methods (reference counts, read under the GIL):
//! an app that keeps `start_response` or `write` past its request gets a
//! fresh one next time, and the kept one goes on answering only for the
//! request it was given to.
//!
//! The object holds its bound `write` (so `start_response` returns it
//! without a lookup) and that method holds the object: a cycle, which
//! [`Responder`] ends whenever it lets an object go.

use std::sync::Mutex;

use portico_server::{ReplySender, ResponseMeta};
use pyo3::prelude::*;

use crate::start_response::StartResponse;

/// A `StartResponse` and the bound methods the app is handed.
pub(crate) struct Responder {
    object: Py<StartResponse>,
    /// Its bound `start_response` method: what the app is called with.
    call: Py<PyAny>,
}

impl Responder {
    fn new(
        py: Python<'_>,
        reply: ReplySender,
        meta: ResponseMeta,
        in_place: bool,
    ) -> PyResult<Responder> {
        let mut state = StartResponse::new(reply, meta);
        state.state.in_place = in_place;
        state.state.here = in_place;
        let object = Bound::new(py, state)?;
        let call = object.getattr(pyo3::intern!(py, "start_response"))?;
        let write = object.getattr(pyo3::intern!(py, "write"))?;
        object.borrow_mut().write = Some(write.unbind());
        Ok(Responder {
            object: object.unbind(),
            call: call.unbind(),
        })
    }

    pub(crate) fn object<'py>(&self, py: Python<'py>) -> &Bound<'py, StartResponse> {
        self.object.bind(py)
    }

    pub(crate) fn call<'py>(&self, py: Python<'py>) -> &Bound<'py, PyAny> {
        self.call.bind(py)
    }

    /// Nothing outside holds the object or its methods: the object is
    /// held by us and its two bound methods, each method by one owner.
    fn is_free(&self, py: Python<'_>) -> bool {
        let object = self.object.bind(py);
        refs(object.as_any()) == 3
            && refs(self.call.bind(py)) == 1
            && object
                .try_borrow()
                .is_ok_and(|o| o.write.as_ref().is_some_and(|w| refs(w.bind(py)) == 1))
    }
}

/// How many references `object` has.
fn refs(object: &Bound<'_, PyAny>) -> isize {
    // SAFETY: `object` is alive (we hold it) and the GIL is held: reading
    // its reference count is a plain load.
    unsafe { pyo3::ffi::Py_REFCNT(object.as_ptr()) }
}

impl Drop for Responder {
    fn drop(&mut self) {
        // End the object's cycle with its `write`: whoever still holds
        // either (the app) frees both when done with them.
        Python::attach(|py| {
            if let Ok(mut object) = self.object.bind(py).try_borrow_mut() {
                object.write = None;
            }
        });
    }
}

/// The worker's spare [`Responder`], if one is free.
#[derive(Default)]
pub(crate) struct Responders {
    spare: Mutex<Option<Responder>>,
}

impl Responders {
    fn spare(&self) -> std::sync::MutexGuard<'_, Option<Responder>> {
        self.spare.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A responder for a request: the spare one, reset, if it is free;
    /// else a new one.
    pub(crate) fn take(
        &self,
        py: Python<'_>,
        reply: ReplySender,
        meta: ResponseMeta,
        in_place: bool,
    ) -> PyResult<Responder> {
        let spare = self.spare().take();
        if let Some(responder) = spare.filter(|r| r.is_free(py))
            && let Ok(mut object) = responder.object.bind(py).try_borrow_mut()
        {
            object.reset(reply, meta);
            object.state.in_place = in_place;
            object.state.here = in_place;
            drop(object);
            return Ok(responder);
        }
        Responder::new(py, reply, meta, in_place)
    }

    /// A request is done with `responder`: keep it for the next one if it
    /// is free and there is no spare yet (else it is let go).
    pub(crate) fn give_back(&self, py: Python<'_>, responder: Responder) {
        if responder.is_free(py) {
            let mut spare = self.spare();
            if spare.is_none() {
                *spare = Some(responder);
            }
        }
    }
}
