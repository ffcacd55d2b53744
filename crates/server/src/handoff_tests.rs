//! A model of the reply hand-off (handoff.rs) run with real threads: a
//! hand-made single-thread "runtime" that polls its tasks only when their
//! waker fired and parks (`on_thread_park`, then `thread::park`) when it
//! has nothing to do, raced by producer threads that fill reply slots.
//! A lost wake-up shows as a park that nothing ends: the runtime parks
//! with a deadline and the test fails when it passes.
//! Why this and not `loom`: docs/design-notes.md, the hand-off section.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, mpsc};
use std::task::{Context, Poll, Wake, Waker};
use std::thread::Thread;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::{Handoff, ReplyFuture, ReplySender};
use crate::handler::Response;

/// A task's waker: marks the task runnable and unparks the runtime thread
/// (as tokio's waker does from another thread).
struct Flag {
    set: AtomicBool,
    runtime: Thread,
}

impl Flag {
    fn new() -> Arc<Flag> {
        Arc::new(Flag {
            set: AtomicBool::new(false),
            runtime: std::thread::current(),
        })
    }

    fn take(&self) -> bool {
        self.set.swap(false, Ordering::SeqCst)
    }

    fn is_set(&self) -> bool {
        self.set.load(Ordering::SeqCst)
    }
}

impl Wake for Flag {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.set.store(true, Ordering::SeqCst);
        self.runtime.unpark();
    }
}

/// A small deterministic generator for the producers' delays.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// What a producer does with a slot.
enum Job {
    Send(ReplySender, u64),
    Drop(ReplySender),
}

fn producer(jobs: mpsc::Receiver<Job>, seed: u64) {
    let mut rng = XorShift(seed);
    for job in jobs {
        // 0 to 63 spins, sometimes a yield: the send lands before, during
        // or after the runtime's park hook.
        for _ in 0..rng.next() % 64 {
            std::hint::spin_loop();
        }
        if rng.next().is_multiple_of(8) {
            std::thread::yield_now();
        }
        match job {
            Job::Send(tx, n) => {
                let mut response = Response::plain(200, "OK", "");
                response
                    .headers
                    .push((Bytes::from_static(b"X-N"), Bytes::from(n.to_string())));
                tx.send(response);
            }
            Job::Drop(tx) => drop(tx),
        }
    }
}

/// How long a park may last before the model calls the wake-up lost.
const LOST: Duration = Duration::from_secs(10);

/// One waiting connection of the model.
struct Waiting {
    future: ReplyFuture,
    flag: Arc<Flag>,
    /// The `X-N` expected, or `None` when the producer drops its sender.
    expect: Option<u64>,
}

fn poll_reply(waiting: &mut Waiting) -> Poll<Option<Response>> {
    let waker = Waker::from(waiting.flag.clone());
    Pin::new(&mut waiting.future).poll(&mut Context::from_waker(&waker))
}

fn check(n: u64, waiting: &Waiting, reply: Option<Response>) {
    match (waiting.expect, reply) {
        (None, None) => {}
        (Some(want), Some(response)) => {
            let got = response
                .headers
                .iter()
                .find(|(k, _)| &k[..] == b"X-N")
                .map(|(_, v)| v.clone());
            assert_eq!(got, Some(Bytes::from(want.to_string())), "round {n}");
        }
        (want, got) => panic!(
            "round {n}: expected {want:?}, got a reply: {}",
            got.is_some()
        ),
    }
}

/// Runs `rounds` rounds of 1 to 3 slots each, answered by two producer
/// threads, and checks every reply arrives where it belongs.
fn run_model(rounds: u64) {
    let handoff = Handoff::new();
    let pump_flag = Flag::new();
    let pump_waker = Waker::from(pump_flag.clone());
    let mut pump: Pin<Box<dyn Future<Output = ()>>> = Box::pin(handoff.clone().deliver());
    assert!(
        pump.as_mut()
            .poll(&mut Context::from_waker(&pump_waker))
            .is_pending()
    );
    let (to_a, jobs_a) = mpsc::channel();
    let (to_b, jobs_b) = mpsc::channel();
    let a = std::thread::spawn(move || producer(jobs_a, 0x9E37_79B9_7F4A_7C15));
    let b = std::thread::spawn(move || producer(jobs_b, 0xD1B5_4A32_D192_ED03));
    let mut rng = XorShift(0x2545_F491_4F6C_DD1D);
    let mut parks = 0u64;
    for n in 0..rounds {
        let mut waiting = Vec::new();
        for k in 0..1 + rng.next() % 3 {
            let (tx, future) = handoff.slot();
            let dropped = rng.next().is_multiple_of(5);
            let job = if dropped {
                Job::Drop(tx)
            } else {
                Job::Send(tx, n * 4 + k)
            };
            let to = if k.is_multiple_of(2) { &to_a } else { &to_b };
            assert!(to.send(job).is_ok(), "a producer is gone");
            waiting.push(Waiting {
                future,
                flag: Flag::new(),
                expect: (!dropped).then_some(n * 4 + k),
            });
        }
        // Spawned connections are polled once, then only when woken.
        for w in &mut waiting {
            w.flag.set.store(true, Ordering::SeqCst);
        }
        while !waiting.is_empty() {
            let mut ran = false;
            if pump_flag.take() {
                ran = true;
                assert!(
                    pump.as_mut()
                        .poll(&mut Context::from_waker(&pump_waker))
                        .is_pending()
                );
            }
            let mut i = 0;
            while i < waiting.len() {
                if waiting[i].flag.take() {
                    ran = true;
                    if let Poll::Ready(reply) = poll_reply(&mut waiting[i]) {
                        let done = waiting.swap_remove(i);
                        check(n, &done, reply);
                        continue;
                    }
                }
                i += 1;
            }
            if ran {
                continue;
            }
            // Nothing runnable: park as the runtime does.
            handoff.before_park();
            let deadline = Instant::now() + LOST;
            while !pump_flag.is_set() && !waiting.iter().any(|w| w.flag.is_set()) {
                let left = deadline.saturating_duration_since(Instant::now());
                assert!(
                    !left.is_zero(),
                    "round {n}: lost wake-up, {} replies never delivered",
                    waiting.len()
                );
                std::thread::park_timeout(left);
            }
            handoff.after_unpark();
            parks += 1;
        }
        assert_eq!(handoff.in_flight(), 0, "round {n}");
    }
    drop((to_a, to_b));
    assert!(a.join().is_ok() && b.join().is_ok(), "a producer panicked");
    println!("{rounds} rounds, {parks} parks");
    // The model is only worth something if the runtime did park.
    assert!(parks > 0, "the runtime never parked in {rounds} rounds");
}

#[test]
fn handoff_model_delivers_every_reply_when_producers_race_the_park() {
    run_model(10_000);
}

/// A connection's side of a slot outside the model: no reply expected by
/// number, its own waker flag.
fn waiting_on(future: ReplyFuture) -> Waiting {
    Waiting {
        future,
        flag: Flag::new(),
        expect: None,
    }
}

/// No delivery task runs: the first poll of `future` must take the 204
/// already in its slot, and the slot no longer counts as work.
fn assert_taken_at_first_poll(handoff: &Handoff, future: ReplyFuture) {
    match poll_reply(&mut waiting_on(future)) {
        Poll::Ready(Some(response)) => assert_eq!(response.status, 204),
        other => panic!("not ready with the reply: {:?}", other.map(|r| r.is_some())),
    }
    assert_eq!(handoff.in_flight(), 0);
}

#[test]
fn handoff_model_a_reply_made_on_the_runtime_thread_is_taken_without_delivery() {
    let handoff = Handoff::new();
    let (tx, future) = handoff.slot();
    assert_eq!(handoff.in_flight(), 1);
    tx.send(Response::plain(204, "No Content", ""));
    assert_taken_at_first_poll(&handoff, future);
}

#[test]
fn handoff_model_a_sender_sees_the_connection_gone() {
    let handoff = Handoff::new();
    let (tx, future) = handoff.slot();
    assert!(!tx.is_closed());
    drop(future);
    assert!(tx.is_closed());
    assert_eq!(handoff.in_flight(), 0);
}

#[test]
fn a_reply_sent_here_skips_the_delivery_queue_and_is_taken_at_once() {
    let handoff = Handoff::new();
    let (tx, future) = handoff.slot();
    tx.send_here(Response::plain(204, "No Content", ""));
    // Nothing for the delivery task: the runtime may park at once.
    assert!(!handoff.has_work());
    assert_taken_at_first_poll(&handoff, future);
}

#[test]
fn a_reply_sent_here_to_a_waiting_connection_wakes_it() {
    let handoff = Handoff::new();
    let (tx, future) = handoff.slot();
    let mut waiting = waiting_on(future);
    assert!(poll_reply(&mut waiting).is_pending());
    tx.send_here(Response::plain(204, "No Content", ""));
    assert!(
        waiting.flag.is_set(),
        "the waiting connection was not woken"
    );
    assert!(matches!(poll_reply(&mut waiting), Poll::Ready(Some(_))));
    assert!(!handoff.has_work());
}
