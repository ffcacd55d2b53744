//! A boxed future whose allocation is reused from request to request.
//!
//! The proxy's future (`ProxyUpstream::forward`, about 2 KiB) is made once
//! a proxied request; boxed with `Box::pin` it went through mimalloc's
//! generic path every time (blocks over 1 KiB: about 190 instructions for
//! the allocation and 80 for the free, `bench/proxy_instructions.py`).
//! [`ReusedBox`] keeps the block of the last one that finished on its
//! thread (three spares a thread, the smallest that fits taken) and writes the next future into it: the
//! worker's requests follow one another on one thread, so the usual
//! request takes the spare and gives it back, with no call to the
//! allocator. A future that does not fit the spare gets a block of its own.
//! [`Reused`] is the same for a future of a known type that borrows (the
//! connection's per-request future).

use std::alloc::{Layout, alloc, dealloc, handle_alloc_error};
use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::ptr::NonNull;
use std::task::{Context, Poll};

/// A free block: its address and layout.
type Block = Option<(NonNull<u8>, Layout)>;

/// How many free blocks a thread keeps: a proxied request holds three
/// futures at once (the connection's request, the engine's, the proxy's).
const SPARES: usize = 3;

/// The thread's spare blocks, freed at thread exit.
struct Spare([Cell<Block>; SPARES]);

impl Drop for Spare {
    fn drop(&mut self) {
        for slot in &self.0 {
            if let Some((block, layout)) = slot.take() {
                // SAFETY: the block was allocated with `layout` and is unused.
                unsafe { dealloc(block.as_ptr(), layout) };
            }
        }
    }
}

thread_local! {
    static SPARE: Spare = const { Spare([const { Cell::new(None) }; SPARES]) };
}

/// A pinned, type-erased future in a block reused per thread (see the
/// module's header); otherwise as `Pin<Box<dyn Future<Output = T> + Send>>`.
pub struct ReusedBox<T> {
    fut: NonNull<dyn Future<Output = T> + Send>,
    /// The block's layout (it may be larger than the future's).
    layout: Layout,
}

// SAFETY: the future it owns is `Send`, and nothing else is shared.
unsafe impl<T> Send for ReusedBox<T> {}

impl<T> Unpin for ReusedBox<T> {}

impl<T> ReusedBox<T> {
    /// The future `make` returns, written straight into its block (the
    /// thread's spare when it fits, else a new one).
    #[inline(always)]
    pub fn new<F>(make: impl FnOnce() -> F) -> ReusedBox<T>
    where
        F: Future<Output = T> + Send + 'static,
    {
        let need = Layout::new::<F>();
        let (block, layout) = if need.size() == 0 {
            (NonNull::<F>::dangling().cast::<u8>(), need)
        } else {
            match take_spare(need) {
                Some(spare) => spare,
                None => {
                    // SAFETY: `need` has a non-zero size.
                    let block = unsafe { alloc(need) };
                    match NonNull::new(block) {
                        Some(block) => (block, need),
                        None => handle_alloc_error(need),
                    }
                }
            }
        };
        let typed = block.cast::<F>();
        // SAFETY: the block is unused, at least `need` large and aligned
        // (a spare is taken only if it is); a panic in `make` leaks it.
        unsafe { typed.as_ptr().write(make()) };
        ReusedBox { fut: typed, layout }
    }
}

impl<T> ReusedBox<T> {
    /// [`ReusedBox::new`] for a future made of one large value, `arg`
    /// (a handler's request): `make` gets it once the block is found, so
    /// it is copied once, into the block. (A closure that captured it was
    /// made before the block was found: a copy into the closure, another
    /// out of it.)
    #[inline(always)]
    pub fn new_with<A, F>(arg: A, make: impl FnOnce(A) -> F) -> ReusedBox<T>
    where
        F: Future<Output = T> + Send + 'static,
    {
        let need = Layout::new::<F>();
        let (block, layout) = match need.size() {
            0 => (NonNull::<F>::dangling().cast::<u8>(), need),
            _ => block_for(need),
        };
        let typed = block.cast::<F>();
        // SAFETY: the block is unused, at least `need` large and aligned
        // (`block_for`); a panic in `make` leaks it.
        unsafe { typed.as_ptr().write(make(arg)) };
        ReusedBox { fut: typed, layout }
    }
}

/// A pinned future of a known type `F` in a block reused per thread, as
/// [`ReusedBox`] (the same spares): for a future that borrows (the
/// connection's per-request future borrows its socket and buffers), which
/// a `dyn Future + 'static` cannot hold. Otherwise as `Pin<Box<F>>`.
pub(crate) struct Reused<F> {
    fut: NonNull<F>,
    /// The block's layout (it may be larger than the future's).
    layout: Layout,
}

// SAFETY: it owns its `F` alone; sending it sends the `F`.
unsafe impl<F: Send> Send for Reused<F> {}

impl<F> Unpin for Reused<F> {}

impl<F: Future> Reused<F> {
    /// The future `make` returns, written straight into its block (the
    /// thread's spare when it fits, else a new one).
    #[inline(always)]
    pub(crate) fn new(make: impl FnOnce() -> F) -> Reused<F> {
        let need = Layout::new::<F>();
        let (typed, layout) = match need.size() {
            0 => (NonNull::<F>::dangling(), need),
            _ => {
                let (block, layout) = block_for(need);
                (block.cast::<F>(), layout)
            }
        };
        // SAFETY: the block is unused, at least `F`'s size and aligned for
        // it (`block_for`); a panic in `make` leaks it.
        unsafe { typed.as_ptr().write(make()) };
        Reused { fut: typed, layout }
    }
}

impl<F: Future> Future for Reused<F> {
    type Output = F::Output;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        // SAFETY: the future stays in its block until dropped, never moved.
        let fut = unsafe { Pin::new_unchecked(&mut *self.get_mut().fut.as_ptr()) };
        fut.poll(cx)
    }
}

impl<F> Drop for Reused<F> {
    fn drop(&mut self) {
        // SAFETY: the future was written in `new` and is dropped once, here.
        unsafe { std::ptr::drop_in_place(self.fut.as_ptr()) };
        release(self.fut.cast::<u8>(), self.layout);
    }
}

/// A block for a value of `need` (not zero-sized): the thread's
/// smallest spare that fits, else a new one.
#[inline(always)]
fn block_for(need: Layout) -> (NonNull<u8>, Layout) {
    if let Some(spare) = take_spare(need) {
        return spare;
    }
    // SAFETY: `need` has a non-zero size.
    let block = unsafe { alloc(need) };
    match NonNull::new(block) {
        Some(block) => (block, need),
        None => handle_alloc_error(need),
    }
}

/// A block whose value was dropped: kept as a spare, else freed.
#[inline(always)]
fn release(block: NonNull<u8>, layout: Layout) {
    if layout.size() == 0 {
        return;
    }
    if let Some((block, layout)) = keep_spare(block, layout) {
        // SAFETY: allocated with `layout`; no value lives in it now.
        unsafe { dealloc(block.as_ptr(), layout) };
    }
}

/// The smallest spare block of the thread that holds a value of `need`,
/// taken. The smallest, not the first: the engine's future and the
/// proxy's differ in size, and the larger block taken by the smaller
/// future left the larger one a malloc each request (and a free when the
/// extra block found both slots full).
#[inline(always)]
fn take_spare(need: Layout) -> Block {
    SPARE
        .try_with(|spare| {
            // A plain loop: an iterator chain here cost some 50 instructions
            // a call more (measured).
            let mut best: Option<(&Cell<Block>, usize)> = None;
            for slot in &spare.0 {
                if let Some((_, layout)) = slot.get()
                    && layout.size() >= need.size()
                    && layout.align() >= need.align()
                    && best.is_none_or(|(_, size)| layout.size() < size)
                {
                    best = Some((slot, layout.size()));
                }
            }
            best?.0.take()
        })
        .ok()
        .flatten()
}

/// Keep `block` as a spare of the thread; `None` if it was kept, else the
/// block to free (every slot full, or the thread exiting).
#[inline(always)]
fn keep_spare(block: NonNull<u8>, layout: Layout) -> Block {
    SPARE
        .try_with(
            |spare| match spare.0.iter().find(|slot| slot.get().is_none()) {
                Some(slot) => {
                    slot.set(Some((block, layout)));
                    None
                }
                None => Some((block, layout)),
            },
        )
        .unwrap_or(Some((block, layout)))
}

impl<T> Future for ReusedBox<T> {
    type Output = T;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        // SAFETY: the future stays in its block until dropped, never moved.
        let fut = unsafe { Pin::new_unchecked(&mut *self.get_mut().fut.as_ptr()) };
        fut.poll(cx)
    }
}

impl<T> Drop for ReusedBox<T> {
    fn drop(&mut self) {
        // SAFETY: the future was written in `new` and is dropped once, here.
        unsafe { std::ptr::drop_in_place(self.fut.as_ptr()) };
        if self.layout.size() == 0 {
            return;
        }
        let free = keep_spare(self.fut.cast::<u8>(), self.layout);
        if let Some((block, layout)) = free {
            // SAFETY: allocated with `layout`; no value lives in it now.
            unsafe { dealloc(block.as_ptr(), layout) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test]
    async fn a_reused_box_runs_its_future_and_drops_what_it_holds() {
        let held = Arc::new(AtomicUsize::new(0));
        for round in 0..3usize {
            let mine = held.clone();
            let fut = ReusedBox::new(|| async move {
                tokio::task::yield_now().await;
                mine.fetch_add(1, Ordering::SeqCst);
                round * 2
            });
            assert_eq!(fut.await, round * 2);
        }
        assert_eq!(held.load(Ordering::SeqCst), 3);
        assert_eq!(Arc::strong_count(&held), 1);
    }

    #[tokio::test]
    async fn a_larger_future_after_a_smaller_one_gets_a_block_that_fits() {
        let small = ReusedBox::new(|| async { 1u8 });
        assert_eq!(small.await, 1);
        let big = [7u8; 4096];
        let large = ReusedBox::new(move || async move {
            tokio::task::yield_now().await;
            big.iter().map(|&b| usize::from(b)).sum::<usize>()
        });
        assert_eq!(large.await, 7 * 4096);
        let again = ReusedBox::new(|| async { 2u8 });
        assert_eq!(again.await, 2);
    }

    #[test]
    fn two_futures_of_different_sizes_each_get_their_own_block_back() {
        fn at<T>(b: &ReusedBox<T>) -> usize {
            b.fut.as_ptr() as *const u8 as usize
        }
        let small = [1u8; 512];
        let large = [2u8; 2048];
        let outer = ReusedBox::new(move || async move { small.len() });
        let inner = ReusedBox::new(move || async move { large.len() });
        let (outer_at, inner_at) = (at(&outer), at(&inner));
        drop(inner); // the proxy's future ends first, then the engine's
        drop(outer);
        let outer = ReusedBox::new(move || async move { small.len() });
        let inner = ReusedBox::new(move || async move { large.len() });
        assert_eq!(
            at(&outer),
            outer_at,
            "the small future took the large block"
        );
        assert_eq!(at(&inner), inner_at, "the large future got a new block");
    }

    #[tokio::test]
    async fn a_borrowing_future_reuses_the_block_of_the_last_one() {
        let mut seen = Vec::new();
        let mut at = Vec::new();
        for round in 0..3u8 {
            let seen = &mut seen;
            let fut = Reused::new(|| async move {
                tokio::task::yield_now().await;
                seen.push(round);
            });
            at.push(fut.fut.as_ptr() as usize);
            fut.await;
        }
        assert_eq!(seen, [0, 1, 2]);
        assert!(at.windows(2).all(|w| w[0] == w[1]), "{at:?}");
    }

    #[test]
    fn an_unpolled_reused_box_drops_its_future() {
        let held = Arc::new(());
        let mine = held.clone();
        let fut = ReusedBox::new(move || async move { drop(mine) });
        assert_eq!(Arc::strong_count(&held), 2);
        drop(fut);
        assert_eq!(Arc::strong_count(&held), 1);
    }
}
