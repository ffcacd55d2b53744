//! The random source of `random [two]`: nginx calls `ngx_random()`, which
//! is glibc's `random()` (additive feedback, 31 words of state, values in
//! `[0, 2^31)`), seeded per worker with `srandom((pid << 16) ^ sec ^ msec)`.
//! [`GlibcRandom`] reproduces that generator exactly, so a known seed gives
//! nginx's draws; groups take any [`RandomSource`], so tests inject theirs.

use std::time::{SystemTime, UNIX_EPOCH};

/// Something that draws like `ngx_random()`: uniform in `[0, 2^31)`.
pub type RandomSource = Box<dyn FnMut() -> u32 + Send>;

/// glibc's TYPE_3 `random()`: degree 31, separation 3.
#[derive(Debug, Clone)]
pub struct GlibcRandom {
    state: [i32; 31],
    front: usize,
    rear: usize,
}

impl GlibcRandom {
    /// `srandom(seed)`.
    pub fn new(seed: u32) -> GlibcRandom {
        let mut state = [0i32; 31];
        // glibc: `state[0] = seed` (0 becomes 1) in an int32, then a
        // `long int` walk of 16807 * word % 2147483647 (Schrage's method).
        let seed = if seed == 0 { 1 } else { seed };
        let mut word = i64::from(seed);
        state[0] = seed as i32;
        for slot in state.iter_mut().skip(1) {
            let hi = word / 127_773;
            let lo = word % 127_773;
            word = 16_807 * lo - 2_836 * hi;
            if word < 0 {
                word += 2_147_483_647;
            }
            *slot = word as i32;
        }
        let mut g = GlibcRandom {
            state,
            front: 3,
            rear: 0,
        };
        for _ in 0..310 {
            g.random();
        }
        g
    }

    /// nginx's worker seed: `(pid << 16) ^ seconds ^ milliseconds`.
    pub fn nginx_seeded() -> GlibcRandom {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let sec = now.as_secs() as u32;
        let msec = now.subsec_millis();
        GlibcRandom::new((std::process::id() << 16) ^ sec ^ msec)
    }

    /// `random()`.
    pub fn random(&mut self) -> u32 {
        let sum = (self.state[self.front] as u32).wrapping_add(self.state[self.rear] as u32);
        self.state[self.front] = sum as i32;
        self.front = (self.front + 1) % 31;
        self.rear = (self.rear + 1) % 31;
        sum >> 1
    }

    /// This generator as a group's [`RandomSource`].
    pub fn into_source(mut self) -> RandomSource {
        Box::new(move || self.random())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glibc_random_with_seed_one_gives_glibcs_first_values() {
        // `srandom(1); random()` ×3 on glibc.
        let mut g = GlibcRandom::new(1);
        assert_eq!(
            [g.random(), g.random(), g.random()],
            [1_804_289_383, 846_930_886, 1_681_692_777]
        );
    }
}
