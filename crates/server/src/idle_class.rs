//! One class of the idle queue (`worker_conns.rs`): the idle connections
//! with the same idle timeout, oldest first, as a deque in ticket order.
//!
//! Tickets only grow, so a connection that goes idle is pushed at the
//! back, and within a class the front is the next to time out or to be
//! drained: nginx's reusable-connections queue, not a search tree. A
//! connection that leaves (a request came) is found by binary search and
//! marked left; left entries are dropped when they reach either end, and
//! the whole deque is compacted when they outnumber the waiting ones
//! (one long-idle connection at the front keeps every later one behind
//! it). A keep-alive request costs a push and a search instead of a tree's
//! insert and remove (about 440 instructions, docs/design-notes.md §15).

use std::collections::VecDeque;
use std::task::Waker;

/// Left entries kept before a compaction, beyond twice the waiting ones.
const LEFT_SLACK: usize = 32;

struct Entry {
    ticket: u64,
    /// The how-manieth push this was (from 1): what finds it again.
    seq: u64,
    /// `None`: the connection left the queue.
    waker: Option<Waker>,
}

/// The waiting connections of one idle timeout, in ticket order.
#[derive(Default)]
pub(crate) struct IdleClass {
    entries: VecDeque<Entry>,
    waiting: usize,
    pushed: u64,
}

impl IdleClass {
    /// Waiting connections.
    pub(crate) fn len(&self) -> usize {
        self.waiting
    }

    /// Add `ticket`, greater than every ticket added before. Returns the
    /// entry's sequence number (never 0), which finds it again: at its
    /// position counted from the front's number while no compaction moved
    /// it, by binary search after one (numbers grow as tickets do).
    pub(crate) fn push(&mut self, ticket: u64, waker: Waker) -> u64 {
        debug_assert!(self.entries.back().is_none_or(|e| e.ticket < ticket));
        self.pushed += 1;
        self.entries.push_back(Entry {
            ticket,
            seq: self.pushed,
            waker: Some(waker),
        });
        self.waiting += 1;
        self.pushed
    }

    fn find(&self, seq: u64) -> Option<usize> {
        let front = self.entries.front()?.seq;
        let hint = usize::try_from(seq.wrapping_sub(front)).unwrap_or(usize::MAX);
        let at = match self.entries.get(hint).is_some_and(|e| e.seq == seq) {
            true => hint,
            false => self.entries.binary_search_by_key(&seq, |e| e.seq).ok()?,
        };
        self.entries[at].waker.is_some().then_some(at)
    }

    pub(crate) fn contains(&self, seq: u64) -> bool {
        self.find(seq).is_some()
    }

    /// The waker of a waiting entry.
    pub(crate) fn waker_mut(&mut self, seq: u64) -> Option<&mut Waker> {
        let at = self.find(seq)?;
        self.entries[at].waker.as_mut()
    }

    /// Take entry `seq` out; false if it was not waiting.
    pub(crate) fn remove(&mut self, seq: u64) -> bool {
        let Some(at) = self.find(seq) else {
            return false;
        };
        self.entries[at].waker = None;
        self.waiting -= 1;
        self.trim();
        true
    }

    /// The oldest waiting ticket.
    pub(crate) fn first(&self) -> Option<u64> {
        // (`trim` keeps a waiting entry, or none, at the front.)
        self.entries.front().map(|e| e.ticket)
    }

    /// Take the oldest waiting connection out.
    pub(crate) fn pop_first(&mut self) -> Option<(u64, Waker)> {
        let entry = self.entries.pop_front()?;
        self.waiting -= 1;
        self.trim();
        Some((entry.ticket, entry.waker?))
    }

    /// Take every waiting connection out.
    pub(crate) fn take_all(&mut self) -> impl Iterator<Item = Waker> + use<> {
        self.waiting = 0;
        std::mem::take(&mut self.entries)
            .into_iter()
            .filter_map(|e| e.waker)
    }

    /// Drop left entries at both ends; compact when they are many.
    fn trim(&mut self) {
        while self.entries.front().is_some_and(|e| e.waker.is_none()) {
            self.entries.pop_front();
        }
        while self.entries.back().is_some_and(|e| e.waker.is_none()) {
            self.entries.pop_back();
        }
        if self.entries.len() > 2 * self.waiting + LEFT_SLACK {
            self.entries.retain(|e| e.waker.is_some());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn class_of(tickets: impl IntoIterator<Item = u64>) -> (IdleClass, Vec<u64>) {
        let mut class = IdleClass::default();
        let slots = tickets
            .into_iter()
            .map(|t| class.push(t, Waker::noop().clone()))
            .collect();
        (class, slots)
    }

    #[test]
    fn the_oldest_waiting_ticket_comes_first_whatever_left_before_it() {
        let (mut class, s) = class_of([10, 20, 30, 40]);
        assert!(class.remove(s[1]));
        assert!(!class.remove(s[1]), "once");
        assert_eq!(class.first(), Some(10));
        assert_eq!(class.pop_first().map(|(t, _)| t), Some(10));
        assert_eq!(class.first(), Some(30), "the left 20 is skipped");
        assert!(class.remove(s[3]));
        assert_eq!(class.len(), 1);
        assert!(class.contains(s[2]) && !class.contains(s[3]) && !class.contains(s[1]));
        assert_eq!(class.pop_first().map(|(t, _)| t), Some(30));
        assert_eq!((class.first(), class.len()), (None, 0));
        assert!(!class.contains(s[2]), "popped");
    }

    #[test]
    fn left_entries_behind_a_long_idle_one_are_compacted_away() {
        // Ticket 1 waits all along; of the others, every hundredth stays.
        let (mut class, first) = class_of([1]);
        let mut waiting = std::collections::BTreeMap::from([(1u64, first[0])]);
        let mut last = first[0];
        for t in 2..10_000u64 {
            let slot = class.push(t, Waker::noop().clone());
            waiting.insert(t, slot);
            if t > 2 && (t - 1) % 100 != 0 {
                assert!(class.remove(last));
                waiting.remove(&(t - 1));
            }
            last = slot;
            assert!(
                class.entries.len() <= 2 * class.len() + LEFT_SLACK + 1,
                "{} entries for {} waiting",
                class.entries.len(),
                class.len()
            );
        }
        assert_eq!(class.len(), waiting.len());
        // Found after the compactions moved them (by search), and in order.
        assert!(waiting.values().all(|slot| class.contains(*slot)));
        let order: Vec<u64> = std::iter::from_fn(|| class.pop_first().map(|(t, _)| t)).collect();
        assert_eq!(order, waiting.into_keys().collect::<Vec<_>>());
    }

    #[test]
    fn take_all_empties_the_class_and_later_entries_are_found() {
        let (mut class, s) = class_of([5, 6, 7]);
        class.remove(s[1]);
        assert_eq!(class.take_all().count(), 2);
        assert_eq!((class.len(), class.first()), (0, None));
        assert!(!class.contains(s[0]));
        let later = class.push(8, Waker::noop().clone());
        assert!(class.contains(later) && class.remove(later));
    }
}
