//! One spare client read buffer per worker thread, handed from a connection
//! that goes idle to the next one whose request arrives.
//!
//! An idle connection keeps no read buffer (docs/design-notes.md "Idle
//! connection memory"), so each keep-alive request used to allocate its
//! 8 KiB buffer anew (mimalloc's generic path for blocks over 1 KiB: about
//! 300 instructions a request, `reserve_inner` + `finish_grow`). Instead,
//! the buffer a connection gives up when it goes idle is kept here if
//! nothing else holds it any more (the last request's head, a `Bytes` split
//! off it, was dropped: `BytesMut::try_reclaim`), and taken by the next
//! connection that has bytes to store. At most one buffer a thread waits
//! here, whatever the number of idle connections: their memory is unchanged.

use std::cell::RefCell;

use bytes::BytesMut;

thread_local! {
    static SPARE: RefCell<Option<BytesMut>> = const { RefCell::new(None) };
}

/// Give up `buf` (an idle connection's, empty): kept as the spare if it can
/// hold `capacity` bytes again without allocating and no spare waits.
pub(crate) fn give(mut buf: BytesMut, capacity: usize) {
    if buf.capacity() == 0 || !buf.is_empty() || !buf.try_reclaim(capacity) {
        return;
    }
    SPARE.with(|spare| {
        if let Ok(mut spare) = spare.try_borrow_mut()
            && spare.is_none()
        {
            *spare = Some(buf);
        }
    });
}

/// The spare buffer (empty, room for the `capacity` it was given with), if any.
pub(crate) fn take() -> Option<BytesMut> {
    SPARE.with(|spare| spare.try_borrow_mut().ok().and_then(|mut s| s.take()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_buffer_whose_head_was_dropped_is_reused() {
        let _ = take();
        let mut buf = BytesMut::with_capacity(8192);
        buf.extend_from_slice(b"GET / HTTP/1.1\r\n\r\n");
        let ptr = buf.as_ptr();
        let head = buf.split_to(buf.len()).freeze();
        drop(head);
        give(buf, 8192);
        let Some(again) = take() else {
            panic!("the buffer is kept");
        };
        assert!(again.capacity() >= 8192);
        assert!(again.is_empty());
        assert_eq!(again.as_ptr(), ptr, "the same allocation");
        assert!(take().is_none(), "one spare at most");
    }

    #[test]
    fn a_buffer_still_shared_with_its_head_is_not_kept() {
        let _ = take();
        let mut buf = BytesMut::with_capacity(8192);
        buf.extend_from_slice(b"GET / HTTP/1.1\r\n\r\n");
        let head = buf.split_to(buf.len()).freeze();
        give(buf, 8192);
        assert!(take().is_none());
        drop(head);
    }
}
