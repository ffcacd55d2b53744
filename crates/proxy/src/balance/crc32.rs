//! CRC-32 (IEEE 802.3: reflected, polynomial 0xEDB88820, init and final
//! xor 0xFFFFFFFF), nginx's `ngx_crc32_*` (`src/core/ngx_crc32.h`), with
//! the incremental form `hash ... consistent` needs (a base state reused
//! for every point of a server). A 1 KiB table built at compile time.

/// The reflected CRC-32 polynomial.
const POLY: u32 = 0xEDB8_8320;

const TABLE: [u32; 256] = {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 { POLY ^ (c >> 1) } else { c >> 1 };
            k += 1;
        }
        table[i] = c;
        i += 1;
    }
    table
};

/// A running CRC-32 (`ngx_crc32_init` / `_update` / `_final`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Crc32(u32);

impl Crc32 {
    pub(super) fn new() -> Crc32 {
        Crc32(0xFFFF_FFFF)
    }

    pub(super) fn update(mut self, bytes: &[u8]) -> Crc32 {
        for &b in bytes {
            self.0 = TABLE[((self.0 ^ u32::from(b)) & 0xff) as usize] ^ (self.0 >> 8);
        }
        self
    }

    pub(super) fn finish(self) -> u32 {
        self.0 ^ 0xFFFF_FFFF
    }
}

/// `ngx_crc32_long`: the CRC-32 of `bytes`.
pub(crate) fn crc32(bytes: &[u8]) -> u32 {
    Crc32::new().update(bytes).finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32_matches_the_standard_check_values() {
        for (input, want) in [
            (&b""[..], 0u32),
            (b"123456789", 0xCBF4_3926),
            (b"The quick brown fox jumps over the lazy dog", 0x414F_A339),
        ] {
            assert_eq!(crc32(input), want, "{input:?}");
        }
    }

    #[test]
    fn incremental_crc32_equals_one_shot() {
        let whole = crc32(b"127.0.0.1\x008080");
        let parts = Crc32::new()
            .update(b"127.0.0.1")
            .update(b"\0")
            .update(b"8080");
        assert_eq!(parts.finish(), whole);
    }
}
