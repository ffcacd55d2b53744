//! A head's header fields as positions in one buffer: [`Headers`].
//!
//! The parsers find every field's name and value as offsets into the head
//! they just read; `Headers` keeps those offsets and the head's `Bytes`, so
//! a parsed head costs one `Vec` of small position records and no `Bytes`
//! per name and value (each of those was an atomic increment to make and
//! an atomic decrement to drop). Consumers read fields as slices through
//! [`Header`], a borrowed view.
//!
//! A list can still be changed. Removing or reordering fields moves
//! position records only. A field added or given a new value (the HTTP/2
//! driver, a uwsgi packet's variables, `proxy_set_header`, tests) is
//! appended to the buffer: in place when the list holds the buffer's only
//! reference, else after one copy of the list's fields into a buffer of its
//! own. Every field is in the one buffer, so reading one is two range
//! checks, and the list stays 56 bytes (a `Bytes` and a `Vec`).

use std::fmt;

use bytes::{Bytes, BytesMut};

/// One header field, read from a [`Headers`] list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header<'a> {
    /// The name exactly as sent (case kept).
    pub name: &'a [u8],
    /// The value with leading and trailing OWS (SP / HTAB) removed.
    pub value: &'a [u8],
}

/// Where a field's name and value are in the buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Field {
    name: (usize, usize),
    value: (usize, usize),
}

impl Field {
    /// The field whose name is `name_start..name_end` and value
    /// `value_start..value_end`.
    pub(crate) fn at(
        name_start: usize,
        name_end: usize,
        value_start: usize,
        value_end: usize,
    ) -> Field {
        Field {
            name: (name_start, name_end),
            value: (value_start, value_end),
        }
    }

    fn name_len(&self) -> usize {
        self.name.1.wrapping_sub(self.name.0)
    }
}

/// Header fields in order, as positions in one shared buffer (the head
/// they were parsed from). Cloning copies the positions, not the bytes.
#[derive(Clone, Default)]
pub struct Headers {
    buf: Bytes,
    fields: Vec<Field>,
}

impl Headers {
    /// An empty list; allocates nothing.
    pub const fn new() -> Headers {
        Headers {
            buf: Bytes::new(),
            fields: Vec::new(),
        }
    }

    /// An empty list with room for `fields` fields.
    pub fn with_capacity(fields: usize) -> Headers {
        Headers {
            buf: Bytes::new(),
            fields: Vec::with_capacity(fields),
        }
    }

    /// A list of the fields at `fields` in `head`; a position outside
    /// `head` reads as an empty slice (the parser's are all within it).
    pub(crate) fn from_fields(head: Bytes, fields: Vec<Field>) -> Headers {
        Headers { buf: head, fields }
    }

    /// How many fields.
    pub fn len(&self) -> usize {
        self.fields.len()
    }

    /// No fields.
    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    /// The fields in order.
    pub fn iter(&self) -> Iter<'_> {
        Iter {
            buf: &self.buf,
            fields: self.fields.iter(),
        }
    }

    /// Field `i`, if there is one.
    pub fn get(&self, i: usize) -> Option<Header<'_>> {
        self.fields.get(i).map(|f| view(&self.buf, f))
    }

    /// The index of the first field named `name` (ASCII case-insensitive).
    /// Names of another length are passed over without being read.
    pub fn position(&self, name: &[u8]) -> Option<usize> {
        self.fields.iter().position(|f| {
            f.name_len() == name.len() && slice(&self.buf, f.name).eq_ignore_ascii_case(name)
        })
    }

    /// Whether a field before field `i` is named `name` (ASCII
    /// case-insensitive).
    pub fn named_before(&self, i: usize, name: &[u8]) -> bool {
        self.fields
            .get(..i)
            .unwrap_or(&self.fields)
            .iter()
            .any(|f| {
                f.name_len() == name.len() && slice(&self.buf, f.name).eq_ignore_ascii_case(name)
            })
    }

    /// The value of the first field named `name` (ASCII case-insensitive).
    pub fn first(&self, name: &[u8]) -> Option<&[u8]> {
        let i = self.position(name)?;
        self.fields.get(i).map(|f| slice(&self.buf, f.value))
    }

    /// The values of every field named `name` (ASCII case-insensitive), in
    /// order, from field `from` on.
    pub fn values_from<'a>(
        &'a self,
        name: &'a [u8],
        from: usize,
    ) -> impl Iterator<Item = &'a [u8]> + Clone + 'a {
        self.fields
            .get(from..)
            .unwrap_or_default()
            .iter()
            .filter(move |f| {
                f.name_len() == name.len() && slice(&self.buf, f.name).eq_ignore_ascii_case(name)
            })
            .map(|f| slice(&self.buf, f.value))
    }

    /// Field `i`'s value as `Bytes`: a slice of the buffer, no copy.
    pub fn value_bytes(&self, i: usize) -> Option<Bytes> {
        let f = self.fields.get(i)?;
        Some(shared(&self.buf, f.value))
    }

    /// Field `i`'s name as `Bytes`: a slice of the buffer, no copy.
    pub fn name_bytes(&self, i: usize) -> Option<Bytes> {
        let f = self.fields.get(i)?;
        Some(shared(&self.buf, f.name))
    }

    /// Appends a field (its bytes are copied into the buffer).
    pub fn push(&mut self, name: &[u8], value: &[u8]) {
        let field = self.append(name, value);
        self.fields.push(field);
    }

    /// Inserts a field before field `at` (at the end if `at` is past it).
    pub fn insert(&mut self, at: usize, name: &[u8], value: &[u8]) {
        let field = self.append(name, value);
        self.fields.insert(at.min(self.fields.len()), field);
    }

    /// Gives field `i` a new value (copied); false if there is no field `i`.
    pub fn set_value(&mut self, i: usize, value: &[u8]) -> bool {
        if i >= self.fields.len() {
            return false;
        }
        let appended = self.append(b"", value);
        if let Some(f) = self.fields.get_mut(i) {
            f.value = appended.value;
        }
        true
    }

    /// Removes field `i`; false if there is no field `i`.
    pub fn remove(&mut self, i: usize) -> bool {
        if i < self.fields.len() {
            self.fields.remove(i);
            true
        } else {
            false
        }
    }

    /// Keeps the fields `keep` says yes to, in order.
    pub fn retain(&mut self, mut keep: impl FnMut(Header<'_>) -> bool) {
        let buf = &self.buf;
        self.fields.retain(|f| keep(view(buf, f)));
    }

    /// Appends the fields of `other` that `keep` says yes to. When this
    /// list is empty or shares `other`'s buffer, they are added as
    /// positions (no copy), else copied.
    pub fn extend_from(&mut self, other: &Headers, mut keep: impl FnMut(Header<'_>) -> bool) {
        if self.fields.is_empty() && !same_buffer(&self.buf, &other.buf) {
            self.buf = other.buf.clone();
        }
        if same_buffer(&self.buf, &other.buf) {
            let buf = &other.buf;
            self.fields
                .extend(other.fields.iter().filter(|f| keep(view(buf, f))).copied());
            return;
        }
        for h in other.iter() {
            if keep(h) {
                self.push(h.name, h.value);
            }
        }
    }

    /// Writes `name` and `value` at the end of the buffer; the field's
    /// positions. The buffer is extended in place when this list holds its
    /// only reference; else the list's fields are first copied into a new
    /// buffer of their own (once: it is then the only reference).
    fn append(&mut self, name: &[u8], value: &[u8]) -> Field {
        let extra = name.len() + value.len();
        let mut buf = match std::mem::take(&mut self.buf).try_into_mut() {
            Ok(buf) => buf,
            Err(shared) => self.compact(&shared, extra),
        };
        let name_start = buf.len();
        buf.extend_from_slice(name);
        let value_start = buf.len();
        buf.extend_from_slice(value);
        let field = Field {
            name: (name_start, value_start),
            value: (value_start, buf.len()),
        };
        self.buf = buf.freeze();
        field
    }

    /// The fields' bytes copied out of `shared` into a new buffer with
    /// `extra` bytes to spare; the positions are moved to match.
    fn compact(&mut self, shared: &Bytes, extra: usize) -> BytesMut {
        let used: usize = self
            .fields
            .iter()
            .map(|f| f.name_len() + f.value.1.saturating_sub(f.value.0))
            .sum();
        let mut buf = BytesMut::with_capacity(used + extra);
        for f in &mut self.fields {
            let name_start = buf.len();
            buf.extend_from_slice(slice(shared, f.name));
            let value_start = buf.len();
            buf.extend_from_slice(slice(shared, f.value));
            *f = Field {
                name: (name_start, value_start),
                value: (value_start, buf.len()),
            };
        }
        buf
    }
}

/// Both `Bytes` view the same bytes (one is a clone of the other).
fn same_buffer(a: &Bytes, b: &Bytes) -> bool {
    a.as_ptr() == b.as_ptr() && a.len() == b.len()
}

fn slice(buf: &[u8], (start, end): (usize, usize)) -> &[u8] {
    buf.get(start..end).unwrap_or_default()
}

fn shared(buf: &Bytes, (start, end): (usize, usize)) -> Bytes {
    if start <= end && end <= buf.len() {
        buf.slice(start..end)
    } else {
        Bytes::new()
    }
}

fn view<'a>(buf: &'a [u8], f: &Field) -> Header<'a> {
    Header {
        name: slice(buf, f.name),
        value: slice(buf, f.value),
    }
}

/// The fields of a [`Headers`] list, in order.
#[derive(Clone)]
pub struct Iter<'a> {
    buf: &'a [u8],
    fields: std::slice::Iter<'a, Field>,
}

impl<'a> Iterator for Iter<'a> {
    type Item = Header<'a>;

    fn next(&mut self) -> Option<Header<'a>> {
        self.fields.next().map(|f| view(self.buf, f))
    }

    fn nth(&mut self, n: usize) -> Option<Header<'a>> {
        self.fields.nth(n).map(|f| view(self.buf, f))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.fields.size_hint()
    }
}

impl DoubleEndedIterator for Iter<'_> {
    fn next_back(&mut self) -> Option<Self::Item> {
        self.fields.next_back().map(|f| view(self.buf, f))
    }
}

impl ExactSizeIterator for Iter<'_> {}

impl<'a> IntoIterator for &'a Headers {
    type Item = Header<'a>;
    type IntoIter = Iter<'a>;

    fn into_iter(self) -> Iter<'a> {
        self.iter()
    }
}

impl<N: AsRef<[u8]>, V: AsRef<[u8]>> FromIterator<(N, V)> for Headers {
    fn from_iter<I: IntoIterator<Item = (N, V)>>(fields: I) -> Headers {
        let fields = fields.into_iter();
        let mut list = Headers::with_capacity(fields.size_hint().0);
        for (name, value) in fields {
            list.push(name.as_ref(), value.as_ref());
        }
        list
    }
}

impl PartialEq for Headers {
    fn eq(&self, other: &Headers) -> bool {
        self.iter().eq(other.iter())
    }
}

impl Eq for Headers {}

impl fmt::Debug for Headers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.iter().map(|h| {
                (
                    String::from_utf8_lossy(h.name),
                    String::from_utf8_lossy(h.value),
                )
            }))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn in_head(head: Bytes, positions: &[(usize, usize, usize, usize)]) -> Headers {
        let fields = positions
            .iter()
            .map(|&(ns, ne, vs, ve)| Field::at(ns, ne, vs, ve))
            .collect();
        Headers::from_fields(head, fields)
    }

    fn parsed() -> Headers {
        let head = Bytes::from_static(b"Host: a\r\nX-B: bb\r\n");
        in_head(head, &[(0, 4, 6, 7), (9, 12, 14, 16)])
    }

    fn pairs(list: &Headers) -> Vec<(Vec<u8>, Vec<u8>)> {
        list.iter()
            .map(|h| (h.name.to_vec(), h.value.to_vec()))
            .collect()
    }

    #[test]
    fn parsed_fields_read_as_slices_of_the_head() {
        let list = parsed();
        assert_eq!(list.len(), 2);
        assert_eq!(
            list.get(1),
            Some(Header {
                name: b"X-B",
                value: b"bb"
            })
        );
        assert_eq!(list.first(b"host"), Some(&b"a"[..]));
        assert_eq!(list.first(b"nope"), None);
        assert_eq!(list.first(b"hos"), None);
        assert_eq!(list.position(b"x-b"), Some(1));
        assert!(list.named_before(1, b"HOST"));
        assert!(!list.named_before(0, b"host"));
        assert!(!list.named_before(9, b"x-c"));
        assert!(list.named_before(9, b"x-b"));
        assert_eq!(list.values_from(b"HOST", 0).collect::<Vec<_>>(), [b"a"]);
        assert_eq!(list.values_from(b"host", 1).count(), 0);
        assert_eq!(list.iter().nth(1).map(|h| h.value), Some(&b"bb"[..]));
        assert_eq!(list.value_bytes(1).as_deref(), Some(&b"bb"[..]));
        assert_eq!(list.name_bytes(0).as_deref(), Some(&b"Host"[..]));
        assert_eq!(list.iter().next_back().map(|h| h.name), Some(&b"X-B"[..]));
    }

    #[test]
    fn added_and_changed_fields_live_beside_the_parsed_ones() {
        let mut list = parsed();
        list.push(b"X-New", b"n");
        list.insert(0, b"First", b"f");
        assert!(list.set_value(1, b"changed"));
        assert!(!list.set_value(9, b"x"));
        assert_eq!(
            pairs(&list),
            [
                (b"First".to_vec(), b"f".to_vec()),
                (b"Host".to_vec(), b"changed".to_vec()),
                (b"X-B".to_vec(), b"bb".to_vec()),
                (b"X-New".to_vec(), b"n".to_vec()),
            ]
        );
        assert_eq!(list.value_bytes(1).as_deref(), Some(&b"changed"[..]));
        list.retain(|h| h.name != b"X-B");
        assert!(list.remove(0));
        assert!(!list.remove(5));
        assert_eq!(
            pairs(&list),
            [
                (b"Host".to_vec(), b"changed".to_vec()),
                (b"X-New".to_vec(), b"n".to_vec()),
            ]
        );
    }

    #[test]
    fn extending_from_a_parsed_list_shares_its_head() {
        let client = parsed();
        let mut out = Headers::new();
        out.push(b"Host", b"upstream");
        out.extend_from(&client, |h| !h.name.eq_ignore_ascii_case(b"host"));
        assert_eq!(
            pairs(&out),
            [
                (b"Host".to_vec(), b"upstream".to_vec()),
                (b"X-B".to_vec(), b"bb".to_vec()),
            ]
        );
        // Into an empty list: positions in the shared head, not a copy.
        let mut passed = Headers::new();
        passed.extend_from(&client, |h| h.name != b"Host");
        assert!(same_buffer(&passed.buf, &client.buf));
        assert_eq!(pairs(&passed), [(b"X-B".to_vec(), b"bb".to_vec())]);
        // Into a list with its own buffer: copied.
        let mut other = in_head(Bytes::from_static(b"A: 1\r\n"), &[(0, 1, 3, 4)]);
        other.extend_from(&client, |_| true);
        assert_eq!(
            pairs(&other),
            [
                (b"A".to_vec(), b"1".to_vec()),
                (b"Host".to_vec(), b"a".to_vec()),
                (b"X-B".to_vec(), b"bb".to_vec()),
            ]
        );
    }

    #[test]
    fn a_changed_list_leaves_the_parsed_head_alone() {
        let head = Bytes::from_static(b"Host: a\r\nX-B: bb\r\n");
        let list = in_head(head.clone(), &[(0, 4, 6, 7), (9, 12, 14, 16)]);
        let mut changed = list.clone();
        changed.push(b"X-C", b"c");
        assert!(changed.set_value(0, b"z"));
        assert_eq!(&head[..], b"Host: a\r\nX-B: bb\r\n");
        assert_eq!(list.first(b"host"), Some(&b"a"[..]));
        assert_eq!(changed.first(b"host"), Some(&b"z"[..]));
        // Many pushes on a list of its own: the buffer grows in place.
        let mut built = Headers::new();
        for i in 0..100u8 {
            built.push(&[b'a' + i % 26], &[i]);
        }
        assert_eq!(built.len(), 100);
        assert_eq!(
            built.get(99),
            Some(Header {
                name: b"v",
                value: &[99]
            })
        );
        // A position past the buffer (never made by the parsers) reads empty.
        let odd = in_head(Bytes::from_static(b"ab"), &[(0, 9, 1, 2)]);
        assert_eq!(
            odd.get(0),
            Some(Header {
                name: b"",
                value: b"b"
            })
        );
        assert_eq!(odd.name_bytes(0).as_deref(), Some(&b""[..]));
    }

    #[test]
    fn lists_compare_and_collect_by_their_fields() {
        let collected: Headers = [("Host", "a"), ("X-B", "bb")].into_iter().collect();
        assert_eq!(collected, parsed());
        assert_eq!(
            format!("{collected:?}"),
            r#"[("Host", "a"), ("X-B", "bb")]"#
        );
        assert_ne!(collected, Headers::new());
    }
}
