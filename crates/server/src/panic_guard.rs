//! Panic containment (issue 16 item 9; the decision is in
//! docs/design-notes.md, "Panics"): the release build unwinds, and a
//! panic is caught where one request's work is isolated, so it loses that
//! request only:
//!
//! - a connection task: its polls run inside [`contained`], and tokio's task
//!   harness catches the unwind and drops the task (its socket, its gate
//!   slot); the worker's other connections go on. A connection's first
//!   poll, made in place by the accept loop before it is a task
//!   (`serve.rs`), is caught there with [`contain`], so that it loses the
//!   connection and not the accept loop;
//! - a Python thread's job: [`contain`] catches it, the job's reply is
//!   dropped (the client gets a 500) and the thread takes the next job.
//!
//! A panic anywhere else on Portico's own threads (the accept loops, the
//! master, start-up) is not contained: the hook [`install`] sets prints the
//! message and aborts, as `panic = "abort"` did, so a broken worker dies
//! and is respawned instead of limping on without, say, its accept loop.
//! A thread the app started (Python's `threading`: a thread Rust did not
//! start has no name, and every thread Portico starts is named) is left
//! to unwind to PyO3's boundary, where the panic becomes a Python
//! exception in that thread, as PyO3 means it to.

use std::cell::Cell;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::task::{Context, Poll};

thread_local! {
    /// Depth of contained scopes on this thread (0: a panic aborts).
    static CONTAINED: Cell<u32> = const { Cell::new(0) };
}

/// Marks a contained scope for as long as it lives (unwinding included).
struct Scope;

impl Scope {
    fn enter() -> Scope {
        CONTAINED.with(|c| c.set(c.get() + 1));
        Scope
    }
}

impl Drop for Scope {
    fn drop(&mut self) {
        CONTAINED.with(|c| c.set(c.get().saturating_sub(1)));
    }
}

/// Install the process's panic hook: the standard message, then a line
/// saying the panic was contained, or an abort when it was not. Call once,
/// first thing in `main`.
pub fn install() {
    let standard = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        standard(info);
        let thread = std::thread::current();
        if must_abort(CONTAINED.with(Cell::get), thread.name()) {
            std::process::abort();
        }
        if thread.name().is_some() {
            crate::logln!("portico: the panic above ended one request only; this worker goes on");
        }
    }));
}

/// Does a panic at contained-scope depth `depth` on a thread named `name`
/// abort? Yes outside a contained scope on one of Portico's (named)
/// threads; a nameless thread is one the app started.
fn must_abort(depth: u32, name: Option<&str>) -> bool {
    depth == 0 && name.is_some()
}

/// Run `f` as a contained scope: `Err` (with the panic's payload) if it panicked.
pub fn contain<R>(f: impl FnOnce() -> R) -> std::thread::Result<R> {
    let _scope = Scope::enter();
    catch_unwind(AssertUnwindSafe(f))
}

/// `future`, each poll of it a contained scope: a panic unwinds out of the
/// task that awaits this, for tokio's harness to catch, instead of aborting.
/// A plain struct future, not an `async fn`: an `async fn` would keep its
/// argument and its pinned copy side by side, twice the wrapped future's
/// size in every connection's task.
pub fn contained<F: Future>(future: F) -> Contained<F> {
    Contained { future }
}

pin_project_lite::pin_project! {
    /// The future of [`contained`].
    pub struct Contained<F> {
        #[pin]
        future: F,
    }
}

impl<F: Future> Future for Contained<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let _scope = Scope::enter();
        self.project().future.poll(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_an_uncontained_panic_on_portico_s_own_threads_aborts() {
        assert!(must_abort(0, Some("main")));
        assert!(must_abort(0, Some("acceptor")));
        assert!(!must_abort(1, Some("main")));
        assert!(!must_abort(2, Some("python-0")));
        assert!(!must_abort(0, None), "a thread the app started");
    }

    #[test]
    fn a_contained_panic_is_caught_and_the_scope_ends() {
        let caught = contain(|| -> u32 { panic!("test panic") });
        assert!(caught.is_err());
        assert_eq!(CONTAINED.with(Cell::get), 0);
        assert!(matches!(contain(|| 7), Ok(7)));
    }

    #[test]
    fn a_panicking_task_ends_alone_and_the_runtime_goes_on() {
        let Ok(rt) = tokio::runtime::Builder::new_current_thread().build() else {
            panic!("no runtime");
        };
        rt.block_on(async {
            let bad = tokio::spawn(contained(async {
                tokio::task::yield_now().await;
                panic!("test panic in a task");
            }));
            let good = tokio::spawn(contained(async {
                tokio::task::yield_now().await;
                5
            }));
            assert!(bad.await.is_err_and(|e| e.is_panic()));
            assert!(matches!(good.await, Ok(5)));
        });
        assert_eq!(CONTAINED.with(Cell::get), 0);
    }
}
