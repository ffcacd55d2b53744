//! Session-ticket keys shared by every worker. The master makes one key
//! (and its name) when it loads the configuration, before it forks, so a
//! ticket issued by one worker resumes on any other; a reload (which
//! re-executes the master) makes a new one. That is nginx 1.22's model
//! without `ssl_session_ticket_key` files (keys per configuration load,
//! shared by the workers).
//!
//! Not rustls's own ticketer: its key rotation runs in each process after
//! the fork, so after the first rotation (6 h) the workers' keys differ, and
//! its over-length guard starts at zero in a process that has not issued a
//! ticket yet, so each worker's first resumption attempt fails (measured:
//! with two workers, the first resumption on the second worker was refused).
//! The format is the same as rustls's: key name, nonce, ChaCha20-Poly1305.

use ring::aead::{Aad, CHACHA20_POLY1305, LessSafeKey, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};

/// Bytes of the key name that starts every ticket.
const KEY_NAME_LEN: usize = 16;

/// Bytes of a ticket's nonce.
const NONCE_LEN: usize = 12;

/// Tickets encrypted with one key made at start-up.
pub(crate) struct SharedTickets {
    key: LessSafeKey,
    key_name: [u8; KEY_NAME_LEN],
    /// The lifetime hint sent with each ticket (`ssl_session_timeout`).
    lifetime: u32,
}

impl std::fmt::Debug for SharedTickets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedTickets")
            .field("lifetime", &self.lifetime)
            .finish()
    }
}

impl SharedTickets {
    /// A fresh random key; `None` if the system has no randomness to give.
    pub(crate) fn new(lifetime: u32) -> Option<SharedTickets> {
        let random = SystemRandom::new();
        let mut key = [0u8; 32];
        random.fill(&mut key).ok()?;
        let mut key_name = [0u8; KEY_NAME_LEN];
        random.fill(&mut key_name).ok()?;
        Some(SharedTickets {
            key: LessSafeKey::new(UnboundKey::new(&CHACHA20_POLY1305, &key).ok()?),
            key_name,
            lifetime,
        })
    }
}

impl rustls::server::ProducesTickets for SharedTickets {
    fn enabled(&self) -> bool {
        true
    }

    fn lifetime(&self) -> u32 {
        self.lifetime
    }

    fn encrypt(&self, plain: &[u8]) -> Option<Vec<u8>> {
        let mut nonce = [0u8; NONCE_LEN];
        SystemRandom::new().fill(&mut nonce).ok()?;
        let mut out = Vec::with_capacity(
            KEY_NAME_LEN + NONCE_LEN + plain.len() + CHACHA20_POLY1305.tag_len(),
        );
        out.extend_from_slice(&self.key_name);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(plain);
        let tag = self
            .key
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(self.key_name),
                out.get_mut(KEY_NAME_LEN + NONCE_LEN..)?,
            )
            .ok()?;
        out.extend_from_slice(tag.as_ref());
        Some(out)
    }

    fn decrypt(&self, ticket: &[u8]) -> Option<Vec<u8>> {
        let (name, rest) = ticket.split_at_checked(KEY_NAME_LEN)?;
        if name != self.key_name {
            return None;
        }
        let (nonce, sealed) = rest.split_at_checked(NONCE_LEN)?;
        let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
        let mut sealed = sealed.to_vec();
        let plain_len = self
            .key
            .open_in_place(nonce, Aad::from(self.key_name), &mut sealed)
            .ok()?
            .len();
        sealed.truncate(plain_len);
        Some(sealed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::server::ProducesTickets;

    #[test]
    fn a_ticket_opens_only_with_the_key_that_sealed_it() {
        let (Some(sealer), Some(opener)) = (SharedTickets::new(300), SharedTickets::new(300))
        else {
            panic!("no randomness");
        };
        let opener = SharedTickets {
            key_name: sealer.key_name,
            ..opener
        };
        let Some(ticket) = sealer.encrypt(b"session state") else {
            panic!("encrypt failed");
        };
        assert_eq!(
            sealer.decrypt(&ticket).as_deref(),
            Some(&b"session state"[..])
        );
        // another key under the same name does not open it
        assert_eq!(opener.decrypt(&ticket), None);
    }

    #[test]
    fn tampered_short_or_foreign_tickets_are_refused() {
        let (Some(keys), Some(other)) = (SharedTickets::new(300), SharedTickets::new(300)) else {
            panic!("no randomness");
        };
        let Some(mut ticket) = keys.encrypt(b"state") else {
            panic!("encrypt failed");
        };
        assert_eq!(other.decrypt(&ticket), None);
        assert_eq!(keys.decrypt(&ticket[..20]), None);
        if let Some(last) = ticket.last_mut() {
            *last ^= 1;
        }
        assert_eq!(keys.decrypt(&ticket), None);
        assert_eq!(keys.lifetime(), 300);
    }
}
