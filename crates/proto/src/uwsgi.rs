//! The uwsgi binary protocol, request side: a 4-byte header (modifier1,
//! little-endian vars size, modifier2) then `key_len key val_len val` pairs
//! (lengths little-endian u16). The body follows, unframed, as long as the
//! `CONTENT_LENGTH` var says. Pure: bytes in, packet or "need more" or error.
//!
//! A parsed packet keeps its vars block as it came, one `Bytes`, and reads
//! the vars from it by their length prefixes: no slice (and no reference
//! count) per var (design-notes §2, fifth pass). A packet built from a list
//! (the site engine's `uwsgi_param`s, tests) keeps the list.

use bytes::{Buf, Bytes, BytesMut};

/// Size of the packet header.
pub const HEADER_LEN: usize = 4;

/// Most vars accepted in one packet: far above nginx's 14 params plus the
/// request headers, low enough to bound the work per packet.
pub const MAX_VARS: usize = 4096;

/// modifier1 of a WSGI request (nginx's default).
pub const MODIFIER_WSGI: u8 = 0;
/// modifier1 asking for SCRIPT_NAME to be cut from PATH_INFO.
pub const MODIFIER_WSGI_PATH_FIXUP: u8 = 30;
/// modifier1 of a ping; answered with [`PONG`].
pub const MODIFIER_PING: u8 = 100;
/// The answer to a ping: modifier1 100, size 0, modifier2 1.
pub const PONG: [u8; 4] = [100, 0, 0, 1];

/// A parsed packet (vars only; the body is still on the wire).
#[derive(Debug, Clone)]
pub struct UwsgiPacket {
    /// The first header byte: the request kind (0 for WSGI, 100 for ping, ...).
    pub modifier1: u8,
    /// The last header byte: a sub-kind for `modifier1`.
    pub modifier2: u8,
    /// Every var in order, duplicates kept (the environ takes the last).
    vars: VarStore,
    /// Size of the vars block, as announced.
    pub datasize: usize,
}

/// Where a packet's vars are.
#[derive(Debug, Clone)]
enum VarStore {
    /// The block as received, checked by [`parse_packet`]: `count` pairs.
    Block {
        block: Bytes,
        count: usize,
        /// Where the last value of each of [`KNOWN`] is: its offset in the
        /// block (never 0: a key and two lengths come first) shifted left
        /// 16, or'ed with its length; 0 if the var was not sent.
        known: [u32; KNOWN.len()],
    },
    /// Built, or changed after parsing ([`UwsgiPacket::vars_mut`]).
    List(Vec<(Bytes, Bytes)>),
}

/// The vars read for every request besides the environ (by the
/// connection, the stats board, the log, the mount table): located once as
/// the block is checked, then each lookup is a `match` on the name instead
/// of a walk over the block.
const KNOWN: [&[u8]; 11] = [
    b"REQUEST_METHOD",
    b"REQUEST_URI",
    b"SERVER_PROTOCOL",
    b"HTTP_HOST",
    b"REMOTE_ADDR",
    b"PATH_INFO",
    b"QUERY_STRING",
    b"CONTENT_LENGTH",
    b"SCRIPT_NAME",
    b"REMOTE_USER",
    b"SERVER_NAME",
];

/// The first and the last eight bytes of a name of 8 to 16 bytes, as
/// little-endian `u64`s (they overlap below 16 bytes): together with the
/// length they are the name.
#[allow(clippy::indexing_slicing)] // compile time only, names of 8 to 16 bytes
const fn name_words(name: &[u8]) -> (u64, u64) {
    let (mut head, mut tail) = ([0u8; 8], [0u8; 8]);
    let mut i = 0;
    while i < 8 {
        head[i] = name[i];
        tail[i] = name[name.len() - 8 + i];
        i += 1;
    }
    (u64::from_le_bytes(head), u64::from_le_bytes(tail))
}

/// Multiplies the sum of a name's words into [`KNOWN_TABLE`]'s index (its
/// top four bits): chosen so that every [`KNOWN`] name has a bucket of its
/// own (checked at compile time below; a name added to [`KNOWN`] may need
/// another, found by trying odd multipliers).
const KNOWN_HASH: u64 = 0x33cd_d108_d748_5523;

const fn known_bucket((head, tail): (u64, u64)) -> usize {
    (head.wrapping_add(tail).wrapping_mul(KNOWN_HASH) >> 60) as usize
}

/// [`KNOWN`] by bucket: (the name's length, its words, its index), or a
/// length of 0 for an empty bucket.
#[allow(clippy::indexing_slicing)] // compile time only: a bucket is < 16
const KNOWN_TABLE: [(usize, (u64, u64), usize); 16] = {
    let mut table = [(0, (0, 0), 0); 16];
    let mut i = 0;
    while i < KNOWN.len() {
        let name = KNOWN[i];
        assert!(name.len() >= 8 && name.len() <= 16);
        let words = name_words(name);
        let bucket = known_bucket(words);
        assert!(
            table[bucket].0 == 0,
            "two KNOWN names share a bucket: change KNOWN_HASH"
        );
        table[bucket] = (name.len(), words, i);
        i += 1;
    }
    table
};

/// The index of `key` in [`KNOWN`]: one multiplication and one table entry
/// compared (its length and two words), where a `match` on the names
/// compared the key with each name of its length, a `memcmp` call each
/// (~35 instructions a var; design-notes §2, sixth pass).
#[inline]
fn known_slot(key: &[u8]) -> Option<usize> {
    let (Some(head), Some(tail)) = (key.first_chunk::<8>(), key.last_chunk::<8>()) else {
        return None;
    };
    let words = (u64::from_le_bytes(*head), u64::from_le_bytes(*tail));
    let (len, known_words, index) = *KNOWN_TABLE.get(known_bucket(words))?;
    (len == key.len() && known_words == words).then_some(index)
}

impl PartialEq for UwsgiPacket {
    fn eq(&self, other: &Self) -> bool {
        (self.modifier1, self.modifier2, self.datasize)
            == (other.modifier1, other.modifier2, other.datasize)
            && self.vars().eq(other.vars())
    }
}

impl Eq for UwsgiPacket {}

/// A packet's vars in order, as `(key, value)`.
pub struct Vars<'a> {
    inner: VarsInner<'a>,
}

enum VarsInner<'a> {
    Block { rest: &'a [u8], left: usize },
    List(std::slice::Iter<'a, (Bytes, Bytes)>),
}

/// The front `u16`-prefixed field of `rest`, and what follows it.
fn field(rest: &[u8]) -> Option<(&[u8], &[u8])> {
    let (len, rest) = rest.split_first_chunk::<2>()?;
    let len = usize::from(u16::from_le_bytes(*len));
    (len <= rest.len()).then(|| rest.split_at(len))
}

impl<'a> Iterator for Vars<'a> {
    type Item = (&'a [u8], &'a [u8]);

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        match &mut self.inner {
            VarsInner::Block { rest, left } => {
                let (key, after) = field(rest)?;
                let (value, after) = field(after)?;
                *rest = after;
                *left -= 1;
                Some((key, value))
            }
            VarsInner::List(list) => list.next().map(|(k, v)| (k.as_ref(), v.as_ref())),
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = match &self.inner {
            VarsInner::Block { left, .. } => *left,
            VarsInner::List(list) => list.len(),
        };
        (n, Some(n))
    }
}

impl ExactSizeIterator for Vars<'_> {}

impl UwsgiPacket {
    /// A packet of `vars` (built by the site engine for an upstream, or by a test).
    pub fn from_vars(
        modifier1: u8,
        modifier2: u8,
        vars: Vec<(Bytes, Bytes)>,
        datasize: usize,
    ) -> UwsgiPacket {
        UwsgiPacket {
            modifier1,
            modifier2,
            vars: VarStore::List(vars),
            datasize,
        }
    }

    /// Every var in order, duplicates kept.
    pub fn vars(&self) -> Vars<'_> {
        let inner = match &self.vars {
            VarStore::Block { block, count, .. } => VarsInner::Block {
                rest: block,
                left: *count,
            },
            VarStore::List(list) => VarsInner::List(list.iter()),
        };
        Vars { inner }
    }

    /// Every var in order as `Bytes` sharing the packet's memory (one
    /// reference count each: for a caller that keeps them).
    pub fn shared_vars(&self) -> impl Iterator<Item = (Bytes, Bytes)> + '_ {
        let block = match &self.vars {
            VarStore::Block { block, .. } => Some(block),
            VarStore::List(_) => None,
        };
        let list = match &self.vars {
            VarStore::List(list) => &list[..],
            VarStore::Block { .. } => &[],
        };
        let parsed = block.into_iter().flat_map(move |block| {
            self.vars()
                .map(move |(k, v)| (slice_of(block, k), slice_of(block, v)))
        });
        parsed.chain(list.iter().cloned())
    }

    /// The vars block as received, for a parsed packet (`None` for one
    /// built from a list): a caller may compare it with an earlier packet's
    /// in one pass (the WSGI environ of a packet like the last one).
    pub fn block(&self) -> Option<&[u8]> {
        match &self.vars {
            VarStore::Block { block, .. } => Some(block),
            VarStore::List(_) => None,
        }
    }

    /// How many vars were sent.
    pub fn var_count(&self) -> usize {
        match &self.vars {
            VarStore::Block { count, .. } => *count,
            VarStore::List(list) => list.len(),
        }
    }

    /// The vars as a list to change (a parsed packet's block is copied out
    /// first: a rare path, modifier1 30).
    pub fn vars_mut(&mut self) -> &mut Vec<(Bytes, Bytes)> {
        if let VarStore::Block { block, .. } = &self.vars {
            let list = self
                .vars()
                .map(|(k, v)| (slice_of(block, k), slice_of(block, v)))
                .collect();
            self.vars = VarStore::List(list);
        }
        match &mut self.vars {
            VarStore::List(list) => list,
            VarStore::Block { .. } => unreachable!("made a list above"),
        }
    }

    /// The last value of `key`, if sent.
    pub fn var(&self, key: &[u8]) -> Option<&[u8]> {
        if let VarStore::Block { block, known, .. } = &self.vars
            && let Some(at) = known_slot(key).and_then(|i| known.get(i))
        {
            let start = (*at >> 16) as usize;
            return (*at != 0)
                .then(|| block.get(start..start + (*at & 0xffff) as usize))
                .flatten();
        }
        let mut found = None;
        for (k, v) in self.vars() {
            if k == key {
                found = Some(v);
            }
        }
        found
    }

    /// The last value of `key` as a `Bytes` of its own (a slice of the
    /// block: one reference count).
    pub fn var_bytes(&self, key: &[u8]) -> Option<Bytes> {
        match &self.vars {
            VarStore::Block { block, .. } => self.var(key).map(|v| slice_of(block, v)),
            VarStore::List(list) => list
                .iter()
                .rev()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.clone()),
        }
    }

    /// The last value of each of `keys`, in one pass over the vars (where
    /// [`UwsgiPacket::var`] makes one per key).
    pub fn vars_of<const N: usize>(&self, keys: [&[u8]; N]) -> [Option<&[u8]>; N] {
        let mut found = [None; N];
        for (key, value) in self.vars() {
            if let Some(slot) = keys
                .iter()
                .position(|k| *k == key)
                .and_then(|i| found.get_mut(i))
            {
                *slot = Some(value);
            }
        }
        found
    }

    /// The body length from CONTENT_LENGTH: `None` if the value is not a
    /// number; an absent or empty value means no body.
    pub fn content_length(&self) -> Option<u64> {
        content_length_of(self.var(b"CONTENT_LENGTH"))
    }
}

/// `part` (a slice of `block`'s bytes) as a `Bytes` sharing `block`.
fn slice_of(block: &Bytes, part: &[u8]) -> Bytes {
    block.slice_ref(part)
}

/// The body length a CONTENT_LENGTH var says (see [`UwsgiPacket::content_length`]).
pub fn content_length_of(value: Option<&[u8]>) -> Option<u64> {
    match value {
        None => Some(0),
        Some([]) => Some(0),
        Some(v) if v.iter().all(u8::is_ascii_digit) && v.len() <= 19 => {
            std::str::from_utf8(v).ok()?.parse().ok()
        }
        Some(_) => None,
    }
}

/// Why a packet was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UwsgiError {
    /// The header announces a vars block larger than the limit.
    TooBig {
        /// The announced size of the vars block.
        size: usize,
        /// The largest size accepted.
        limit: usize,
    },
    /// A var has an empty key.
    NullKey,
    /// A key or value runs past the announced vars block.
    Overrun {
        /// Offset in the vars block of the length that runs past its end.
        at: usize,
    },
    /// More vars than [`MAX_VARS`].
    TooManyVars,
}

impl std::fmt::Display for UwsgiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            UwsgiError::TooBig { size, limit } => {
                write!(f, "invalid request block size: {size} (max {limit})")
            }
            UwsgiError::NullKey => f.write_str("uwsgi key cannot be null"),
            UwsgiError::Overrun { at } => {
                write!(
                    f,
                    "invalid uwsgi request (a var overruns the block at byte {at})"
                )
            }
            UwsgiError::TooManyVars => write!(f, "more than {MAX_VARS} vars"),
        }
    }
}

impl std::error::Error for UwsgiError {}

/// Parse one packet from the front of `buf`, removing it on success.
/// `Ok(None)`: incomplete, read more. `limit` caps the vars block (`--buffer-size`).
pub fn parse_packet(buf: &mut BytesMut, limit: usize) -> Result<Option<UwsgiPacket>, UwsgiError> {
    let Some(&[modifier1, size_lo, size_hi, modifier2]) = buf.first_chunk::<HEADER_LEN>() else {
        return Ok(None);
    };
    let datasize = usize::from(u16::from_le_bytes([size_lo, size_hi]));
    if datasize > limit {
        return Err(UwsgiError::TooBig {
            size: datasize,
            limit,
        });
    }
    if buf.len() < HEADER_LEN + datasize {
        return Ok(None);
    }
    buf.advance(HEADER_LEN);
    let block = buf.split_to(datasize).freeze();
    let (count, known) = count_vars(&block)?;
    Ok(Some(UwsgiPacket {
        modifier1,
        modifier2,
        vars: VarStore::Block {
            block,
            count,
            known,
        },
        datasize,
    }))
}

/// Check that `block` is whole `key_len key val_len val` pairs with no
/// empty key, count them and locate the [`KNOWN`] ones.
fn count_vars(block: &[u8]) -> Result<(usize, [u32; KNOWN.len()]), UwsgiError> {
    let mut count = 0;
    let mut known = [0u32; KNOWN.len()];
    let mut rest = block;
    let at = |rest: &[u8]| block.len() - rest.len();
    while !rest.is_empty() {
        if count == MAX_VARS {
            return Err(UwsgiError::TooManyVars);
        }
        let (key, after) = field(rest).ok_or(UwsgiError::Overrun { at: at(rest) })?;
        if key.is_empty() {
            return Err(UwsgiError::NullKey);
        }
        let (value, after) = field(after).ok_or(UwsgiError::Overrun { at: at(after) })?;
        if let Some(slot) = known_slot(key).and_then(|i| known.get_mut(i)) {
            // A block is at most 65,535 bytes (its size is a u16): both fit.
            let start = (at(after) - value.len()) as u32;
            *slot = start << 16 | value.len() as u32;
        }
        rest = after;
        count += 1;
    }
    Ok((count, known))
}

/// Encode a packet (for tests, and later the uwsgi upstream client).
pub fn encode_packet(modifier1: u8, modifier2: u8, vars: &[(&[u8], &[u8])]) -> Vec<u8> {
    let mut block = Vec::new();
    for (k, v) in vars {
        block.extend_from_slice(&(k.len() as u16).to_le_bytes());
        block.extend_from_slice(k);
        block.extend_from_slice(&(v.len() as u16).to_le_bytes());
        block.extend_from_slice(v);
    }
    let mut out = vec![modifier1];
    out.extend_from_slice(&(block.len() as u16).to_le_bytes());
    out.push(modifier2);
    out.extend_from_slice(&block);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &[u8] =
        b"\x00\x23\x00\x00\x0e\x00REQUEST_METHOD\x03\x00GET\x09\x00PATH_INFO\x01\x00/";

    #[test]
    fn reference_example_parses_to_its_vars() {
        let mut buf = BytesMut::from(EXAMPLE);
        buf.extend_from_slice(b"body");
        let p = parse_packet(&mut buf, 65535)
            .expect("valid")
            .expect("complete");
        assert_eq!((p.modifier1, p.modifier2, p.datasize), (0, 0, 0x23));
        assert_eq!(p.var(b"REQUEST_METHOD"), Some(&b"GET"[..]));
        assert_eq!(p.var(b"PATH_INFO"), Some(&b"/"[..]));
        assert_eq!(&buf[..], b"body", "the body stays in the buffer");
    }

    #[test]
    fn vars_of_finds_the_last_value_of_each_key_in_one_pass() {
        let mut buf = BytesMut::from(
            &encode_packet(
                0,
                0,
                &[(b"A", b"1"), (b"B", b"2"), (b"A", b"3"), (b"C", b"")],
            )[..],
        );
        let Ok(Some(p)) = parse_packet(&mut buf, 65535) else {
            panic!("a valid packet");
        };
        let [a, b, c, d] = p.vars_of([b"A", b"B", b"C", b"D"]);
        let text = |v: Option<&[u8]>| v.map(|v| v.to_vec());
        assert_eq!(text(a), Some(b"3".to_vec()));
        assert_eq!(text(b), Some(b"2".to_vec()));
        assert_eq!(text(c), Some(Vec::new()));
        assert_eq!(text(d), None);
        assert_eq!(text(a), text(p.var(b"A")));
    }

    #[test]
    fn a_parsed_packet_equals_the_same_vars_built_as_a_list() {
        let vars: [(&[u8], &[u8]); 3] = [(b"A", b"1"), (b"B", b""), (b"A", b"3")];
        let wire = encode_packet(0, 0, &vars);
        let mut buf = BytesMut::from(&wire[..]);
        let Ok(Some(parsed)) = parse_packet(&mut buf, 65535) else {
            panic!("a valid packet");
        };
        let list = vars
            .iter()
            .map(|(k, v)| (Bytes::copy_from_slice(k), Bytes::copy_from_slice(v)))
            .collect();
        let built = UwsgiPacket::from_vars(0, 0, list, wire.len() - HEADER_LEN);
        assert_eq!(parsed, built);
        assert_eq!(parsed.vars().collect::<Vec<_>>(), vars.to_vec());
        assert_eq!(parsed.var_bytes(b"A"), Some(Bytes::from_static(b"3")));
        assert_eq!(built.var_bytes(b"A"), Some(Bytes::from_static(b"3")));
        assert_eq!(parsed.var_bytes(b"C"), None);
        assert!(parsed.shared_vars().eq(built.shared_vars()));
        assert_eq!(parsed.shared_vars().count(), 3);
        assert_ne!(parsed, UwsgiPacket::from_vars(0, 0, Vec::new(), 0));
        assert_eq!(parsed.block(), wire.get(HEADER_LEN..));
        assert_eq!(built.block(), None);
    }

    #[test]
    fn the_vars_located_at_parse_time_read_as_a_scan_reads_them() {
        let mut vars: Vec<(&[u8], &[u8])> = vec![(b"X", b"1"), (b"REQUEST_METHOD", b"GET")];
        vars.extend(KNOWN.iter().map(|k| (*k, &b"first"[..])));
        vars.push((b"REQUEST_URI", b"/last"));
        vars.push((b"HTTP_HOST", b""));
        let mut buf = BytesMut::from(&encode_packet(0, 0, &vars)[..]);
        let Ok(Some(p)) = parse_packet(&mut buf, 65535) else {
            panic!("a valid packet");
        };
        let scan = |key: &[u8]| p.vars().filter(|(k, _)| *k == key).last().map(|(_, v)| v);
        for key in KNOWN.iter().chain([&&b"X"[..], &&b"NOPE"[..]]) {
            assert_eq!(p.var(key), scan(key), "{key:?}");
        }
        assert_eq!(p.var(b"REQUEST_URI"), Some(&b"/last"[..]));
        assert_eq!(p.var(b"HTTP_HOST"), Some(&b""[..]));
        let mut buf = BytesMut::from(&encode_packet(0, 0, &[(b"X", b"1")])[..]);
        let Ok(Some(p)) = parse_packet(&mut buf, 65535) else {
            panic!("a valid packet");
        };
        assert_eq!(p.var(b"REQUEST_METHOD"), None);
        assert!(
            KNOWN
                .iter()
                .enumerate()
                .all(|(i, k)| known_slot(k) == Some(i))
        );
    }

    #[test]
    fn a_name_one_byte_off_a_known_one_is_not_known() {
        for name in KNOWN {
            for at in 0..name.len() {
                for delta in [1u8, 32, 128, 255] {
                    let mut other = name.to_vec();
                    other[at] = other[at].wrapping_add(delta);
                    assert_eq!(
                        known_slot(&other),
                        None,
                        "{:?}",
                        String::from_utf8_lossy(&other)
                    );
                }
            }
            for len in [0, 1, 7, name.len() - 1, name.len() + 1, 17, 40] {
                let other: Vec<u8> = name.iter().copied().cycle().take(len).collect();
                assert_eq!(known_slot(&other), None);
            }
        }
    }

    #[test]
    fn a_parsed_packets_vars_can_be_changed_as_a_list() {
        let mut buf = BytesMut::from(&encode_packet(30, 0, &[(b"A", b"1"), (b"B", b"2")])[..]);
        let Ok(Some(mut p)) = parse_packet(&mut buf, 65535) else {
            panic!("a valid packet");
        };
        if let Some((_, v)) = p.vars_mut().iter_mut().find(|(k, _)| k == "B") {
            *v = Bytes::from_static(b"changed");
        }
        p.vars_mut().push((Bytes::from_static(b"C"), Bytes::new()));
        let got: Vec<(&[u8], &[u8])> = p.vars().collect();
        let want: [(&[u8], &[u8]); 3] = [(b"A", b"1"), (b"B", b"changed"), (b"C", b"")];
        assert_eq!(got, want.to_vec());
        assert_eq!((p.modifier1, p.var_count()), (30, 3));
    }

    #[test]
    fn encode_round_trips_and_every_prefix_is_incomplete() {
        let packet = encode_packet(
            0,
            0,
            &[(b"A", b""), (b"CONTENT_LENGTH", b"4"), (b"A", b"2")],
        );
        for n in 0..packet.len() {
            let mut buf = BytesMut::from(&packet[..n]);
            assert_eq!(parse_packet(&mut buf, 65535), Ok(None), "prefix {n}");
        }
        let mut buf = BytesMut::from(&packet[..]);
        let p = parse_packet(&mut buf, 65535)
            .expect("valid")
            .expect("complete");
        assert_eq!(p.var(b"A"), Some(&b"2"[..]), "last wins");
        assert_eq!(p.var_count(), 3, "duplicates are kept");
        assert_eq!(p.vars().len(), 3);
        assert_eq!(p.content_length(), Some(4));
    }

    #[test]
    fn empty_values_are_kept() {
        let mut buf = BytesMut::from(
            &encode_packet(0, 0, &[(b"CONTENT_TYPE", b""), (b"CONTENT_LENGTH", b"")])[..],
        );
        let p = parse_packet(&mut buf, 65535)
            .expect("valid")
            .expect("complete");
        assert_eq!(p.var(b"CONTENT_TYPE").map(|v| v.len()), Some(0));
        assert_eq!(p.content_length(), Some(0));
    }

    #[test]
    fn block_over_the_limit_is_refused_before_it_arrives() {
        let mut buf = BytesMut::from(&[0u8, 0x88, 0x14, 0][..]);
        assert_eq!(
            parse_packet(&mut buf, 4096),
            Err(UwsgiError::TooBig {
                size: 5256,
                limit: 4096
            })
        );
        assert_eq!(
            UwsgiError::TooBig {
                size: 5256,
                limit: 4096
            }
            .to_string(),
            "invalid request block size: 5256 (max 4096)"
        );
    }

    #[test]
    fn null_key_and_overruns_are_refused() {
        let mut null = BytesMut::from(&b"\x00\x05\x00\x00\x00\x00\x01\x00x"[..]);
        assert_eq!(parse_packet(&mut null, 65535), Err(UwsgiError::NullKey));
        let mut key_overrun = BytesMut::from(&b"\x00\x04\x00\x00\x09\x00ab"[..]);
        assert!(matches!(
            parse_packet(&mut key_overrun, 65535),
            Err(UwsgiError::Overrun { .. })
        ));
        let mut lone_length = BytesMut::from(&b"\x00\x04\x00\x00\x01\x00a\x03"[..]);
        assert!(matches!(
            parse_packet(&mut lone_length, 65535),
            Err(UwsgiError::Overrun { .. })
        ));
    }

    #[test]
    fn content_length_must_be_a_number() {
        for (value, want) in [
            (&b"12"[..], Some(12)),
            (b"", Some(0)),
            (b"-1", None),
            (b"abc", None),
            (b"1 2", None),
        ] {
            let mut buf = BytesMut::from(&encode_packet(0, 0, &[(b"CONTENT_LENGTH", value)])[..]);
            let p = parse_packet(&mut buf, 65535)
                .expect("valid")
                .expect("complete");
            assert_eq!(p.content_length(), want, "{value:?}");
        }
    }

    #[test]
    fn random_bytes_never_panic_and_every_outcome_matches_the_header() {
        // what each outcome was seen for: incomplete, too big, parsed, bad vars
        let mut seen = [0usize; 4];
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..20_000 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let len = (seed % 64) as usize;
            let mut bytes: Vec<u8> = (0..len)
                .map(|i| (seed >> (i % 8 * 8)) as u8 ^ i as u8)
                .collect();
            if len >= HEADER_LEN && seed.is_multiple_of(4) {
                // announce exactly the bytes that follow, so whole packets occur too
                let size = u16::try_from(len - HEADER_LEN).expect("under 64");
                bytes[1..3].copy_from_slice(&size.to_le_bytes());
            }
            let limit = (seed % 70_000) as usize;
            let mut buf = BytesMut::from(&bytes[..]);
            let got = parse_packet(&mut buf, limit);
            let Some(header) = bytes.get(..HEADER_LEN) else {
                assert_eq!(got, Ok(None), "{bytes:?}");
                assert_eq!(&buf[..], &bytes[..], "an incomplete header is left as is");
                seen[0] += 1;
                continue;
            };
            let size = usize::from(u16::from_le_bytes([header[1], header[2]]));
            if size > limit {
                assert_eq!(got, Err(UwsgiError::TooBig { size, limit }), "{bytes:?}");
                assert_eq!(&buf[..], &bytes[..], "a refused packet is left as is");
                seen[1] += 1;
            } else if len < HEADER_LEN + size {
                assert_eq!(got, Ok(None), "{bytes:?}");
                assert_eq!(&buf[..], &bytes[..], "an incomplete packet is left as is");
                seen[0] += 1;
            } else {
                // the packet is consumed whether or not its vars are well formed
                assert_eq!(&buf[..], &bytes[HEADER_LEN + size..], "{bytes:?}");
                match got {
                    Ok(Some(p)) => {
                        assert_eq!(
                            (p.modifier1, p.modifier2, p.datasize),
                            (header[0], header[3], size)
                        );
                        let vars: Vec<(&[u8], &[u8])> = p.vars().collect();
                        let again = encode_packet(p.modifier1, p.modifier2, &vars);
                        assert_eq!(
                            &again[..],
                            &bytes[..HEADER_LEN + size],
                            "vars re-encode to the same bytes"
                        );
                        seen[2] += 1;
                    }
                    Err(UwsgiError::Overrun { .. } | UwsgiError::NullKey) => seen[3] += 1,
                    other => panic!("{other:?} for {bytes:?}"),
                }
            }
        }
        assert!(
            seen.iter().all(|&n| n > 0),
            "every outcome was exercised: {seen:?}"
        );
    }
}
