//! Tests of worker_conns.rs: admission against `worker_connections`, the
//! idle queue's draining (oldest first), its timer and the stop.

use super::*;

/// Poll `r` once with a waker that counts its wakes.
fn poll_counting(r: &mut Reusable<'_>, wakes: &Arc<WakeCount>) -> Poll<()> {
    let waker = Waker::from(wakes.clone());
    let mut cx = Context::from_waker(&waker);
    Pin::new(r).poll(&mut cx)
}

#[derive(Default)]
struct WakeCount(AtomicUsize);

impl std::task::Wake for WakeCount {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

fn fill(open: &Arc<OpenConnections>, n: usize) {
    for _ in 0..n {
        assert!(matches!(open.make_room(), Admission::Room));
    }
}

#[test]
fn at_the_limit_the_oldest_idle_connection_is_told_to_close() {
    let open = OpenConnections::new(3);
    fill(&open, 3);
    let wakes: Vec<Arc<WakeCount>> = (0..3).map(|_| Arc::default()).collect();
    let mut idle: Vec<Reusable<'_>> = (0..3)
        .map(|_| Reusable::enter(&open, Duration::from_secs(75)))
        .collect();
    for (r, w) in idle.iter_mut().zip(&wakes) {
        assert!(poll_counting(r, w).is_pending());
    }
    assert_eq!(open.idle(), 3);
    assert!(matches!(open.make_room(), Admission::Drained(1)));
    assert_eq!(wakes[0].0.load(Ordering::SeqCst), 1, "the oldest is woken");
    assert_eq!(wakes[1].0.load(Ordering::SeqCst), 0);
    assert!(poll_counting(&mut idle[0], &wakes[0]).is_ready());
    assert!(idle[0].drained());
    assert!(poll_counting(&mut idle[1], &wakes[1]).is_pending());
    assert!(!idle[1].drained());
    assert_eq!(open.idle(), 2);
}

#[test]
fn with_none_idle_a_connection_over_the_limit_is_refused() {
    let open = OpenConnections::new(2);
    fill(&open, 2);
    assert!(matches!(open.make_room(), Admission::Full));
    // a connection that stopped being idle is not drained
    let w = Arc::new(WakeCount::default());
    let mut r = Reusable::enter(&open, Duration::from_secs(75));
    assert!(poll_counting(&mut r, &w).is_pending());
    drop(r);
    assert_eq!(open.idle(), 0);
    assert!(matches!(open.make_room(), Admission::Full));
}

#[test]
fn an_eighth_of_the_idle_connections_is_drained_at_most_32() {
    let open = OpenConnections::new(400);
    fill(&open, 400);
    let w = Arc::new(WakeCount::default());
    let mut idle: Vec<Reusable<'_>> = (0..400)
        .map(|_| Reusable::enter(&open, Duration::from_secs(75)))
        .collect();
    for r in &mut idle {
        assert!(poll_counting(r, &w).is_pending());
    }
    assert!(matches!(open.make_room(), Admission::Drained(32)));
    assert_eq!(open.idle(), 368);
    let drained: Vec<bool> = idle.iter().map(Reusable::drained).collect();
    assert!(drained[..32].iter().all(|d| *d), "the 32 oldest");
    assert!(drained[32..].iter().all(|d| !*d));
}

#[test]
fn without_a_limit_none_is_drained() {
    let open = OpenConnections::new(0);
    let w = Arc::new(WakeCount::default());
    let mut r = Reusable::enter(&open, Duration::from_secs(75));
    assert!(poll_counting(&mut r, &w).is_pending());
    fill(&open, 10_000);
    assert!(!r.drained());
}

#[test]
fn a_stop_wakes_every_idle_connection_and_keeps_new_ones_from_waiting() {
    let open = OpenConnections::new(0);
    let w = Arc::new(WakeCount::default());
    let mut idle: Vec<Reusable<'_>> = (0..3)
        .map(|_| Reusable::enter(&open, Duration::from_secs(75)))
        .collect();
    for r in &mut idle {
        assert!(poll_counting(r, &w).is_pending());
    }
    open.close_idle();
    assert_eq!(w.0.load(Ordering::SeqCst), 3);
    for r in &mut idle {
        assert!(poll_counting(r, &w).is_ready());
    }
    let mut late = Reusable::enter(&open, Duration::from_secs(75));
    assert!(poll_counting(&mut late, &w).is_ready());
}

#[tokio::test(start_paused = true)]
async fn an_idle_connection_is_woken_when_its_timeout_passes() {
    let open = OpenConnections::new(0);
    let start = Instant::now();
    let mut idle = Reusable::enter(&open, Duration::from_secs(5));
    (&mut idle).await;
    assert_eq!(start.elapsed(), Duration::from_secs(5));
    assert!(idle.drained(), "out of the queue");
    assert_eq!(open.idle(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_shorter_timeout_entered_later_wakes_first() {
    let open = OpenConnections::new(0);
    let start = Instant::now();
    let long = Reusable::enter(&open, Duration::from_secs(75));
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mut short = Reusable::enter(&open, Duration::from_secs(2));
    (&mut short).await;
    assert_eq!(
        start.elapsed(),
        Duration::from_secs(3),
        "the sweeper was rearmed"
    );
    assert!(!long.drained());
    let mut long = long;
    (&mut long).await;
    assert_eq!(start.elapsed(), Duration::from_secs(75));
}

#[tokio::test(start_paused = true)]
async fn the_timer_stops_with_no_idle_connection_and_starts_again() {
    let open = OpenConnections::new(0);
    let left = Reusable::enter(&open, Duration::from_secs(1));
    drop(left);
    assert_eq!(open.idle(), 0);
    // the sweeper wakes at 1 s, finds nothing and ends
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(!open.queue().sweeping);
    let start = Instant::now();
    let mut later = Reusable::enter(&open, Duration::from_secs(10));
    (&mut later).await;
    assert_eq!(start.elapsed(), Duration::from_secs(10));
    assert_eq!(open.idle(), 0);
}

#[test]
fn the_oldest_idle_connection_is_drained_whatever_its_timeout() {
    let open = OpenConnections::new(3);
    fill(&open, 3);
    let w = Arc::new(WakeCount::default());
    let mut idle = [
        Reusable::enter(&open, Duration::from_secs(75)),
        Reusable::enter(&open, Duration::from_secs(60)),
        Reusable::enter(&open, Duration::from_secs(75)),
    ];
    for r in &mut idle {
        assert!(poll_counting(r, &w).is_pending());
    }
    assert!(matches!(open.make_room(), Admission::Drained(1)));
    assert!(matches!(open.make_room(), Admission::Drained(1)));
    let drained: Vec<bool> = idle.iter().map(Reusable::drained).collect();
    assert_eq!(drained, [true, true, false]);
}

#[tokio::test(start_paused = true)]
async fn a_huge_timeout_never_fires_and_the_others_still_do() {
    let open = OpenConnections::new(0);
    let mut idle = Reusable::enter(&open, Duration::MAX);
    let waited = tokio::time::timeout(Duration::from_secs(3 * 86_400), &mut idle).await;
    assert!(waited.is_err(), "still idle");
    assert_eq!(open.idle(), 1);
    // and the timer still runs for the others
    let start = Instant::now();
    let mut short = Reusable::enter(&open, Duration::from_secs(1));
    let waited = tokio::time::timeout(Duration::from_secs(10), &mut short).await;
    assert!(waited.is_ok(), "timed out");
    assert_eq!(start.elapsed(), Duration::from_secs(1));
}

#[test]
fn the_published_count_follows_open_and_closed_connections() {
    static COUNTER: AtomicU64 = AtomicU64::new(99);
    let open = OpenConnections::new(0);
    open.publish_to(&COUNTER);
    assert_eq!(COUNTER.load(Ordering::Relaxed), 0);
    let held: Vec<Held> = (0..3)
        .map(|_| Held {
            conn: Connection::None,
            open: {
                assert!(matches!(open.make_room(), Admission::Room));
                open.clone()
            },
        })
        .collect();
    assert_eq!(COUNTER.load(Ordering::Relaxed), 3);
    drop(held);
    assert_eq!(COUNTER.load(Ordering::Relaxed), 0);
}

#[test]
fn a_place_packs_its_class_and_sequence_number_in_eight_bytes() {
    assert_eq!(std::mem::size_of::<Option<Place>>(), 8);
    let place = Place::new(3, 12_345).expect("fits");
    assert_eq!((place.class(), place.seq()), (3, 12_345));
    let last = Place::new(65_535, (1 << PLACE_SEQ_BITS) - 1).expect("fits");
    assert_eq!(
        (last.class(), last.seq()),
        (65_535, (1 << PLACE_SEQ_BITS) - 1)
    );
    assert!(Place::new(65_536, 1).is_none());
    assert!(Place::new(0, 1 << PLACE_SEQ_BITS).is_none());
}
