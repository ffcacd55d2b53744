//! A future made in its box rather than moved into it.
//!
//! `Box::pin(fut())` builds the future on the stack, allocates, then copies
//! the whole future into the box: for the request path's futures (the
//! proxy's tries, 2 KiB; the engine's; the connection's `serve_request`)
//! that `memcpy` was the largest one of a proxied request (about 250
//! instructions each, `bench/proxy_instructions.py`). Allocating first and
//! writing the future into the allocation lets the compiler build it in
//! place (checked on the release build's machine code: no `memcpy` left).

use std::future::Future;
use std::pin::Pin;

/// `Box::pin(make())`, with the future written straight into its box.
#[inline(always)]
pub fn pin_in_box<F: Future>(make: impl FnOnce() -> F) -> Pin<Box<F>> {
    Box::into_pin(Box::write(Box::new_uninit(), make()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_future_made_in_its_box_runs_as_the_future_would() {
        let text = String::from("made in place");
        let fut = pin_in_box(|| async move {
            tokio::task::yield_now().await;
            text.len()
        });
        assert_eq!(fut.await, 13);
    }
}
