//! A head's header fields as positions in one buffer: [`Headers`].
//!
//! The parsers find every field's name and value as offsets into the head
//! they just read; `Headers` keeps those offsets and the head's `Bytes`, so
//! a parsed head costs one `Vec` of small position records and no `Bytes`
//! per name and value (each of those was an atomic increment to make and
//! an atomic decrement to drop). Consumers read fields as slices through
//! [`Header`], a borrowed view.
//!
//! A list can still be changed: fields added or given a new value after
//! parsing (`proxy_set_header`, the HTTP/2 driver, a uwsgi packet's
//! variables, tests) are copied into a second buffer the list owns, and
//! their positions say which buffer they are in. Removing or reordering
//! fields moves position records only.

use std::fmt;

use bytes::Bytes;

/// One header field, read from a [`Headers`] list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header<'a> {
    /// The name exactly as sent (case kept).
    pub name: &'a [u8],
    /// The value with leading and trailing OWS (SP / HTAB) removed.
    pub value: &'a [u8],
}

/// Where a field's name and value are: `head` (the shared buffer) or `own`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Field {
    name: (usize, usize),
    value: (usize, usize),
    /// In the list's own buffer, not in the head.
    owned: bool,
}

/// Header fields in order: positions into one shared head buffer, plus an
/// owned buffer for fields added or changed later. Cloning copies the
/// positions (and the owned bytes), not the head.
#[derive(Clone, Default)]
pub struct Headers {
    head: Bytes,
    own: Vec<u8>,
    fields: Vec<Field>,
}

impl Headers {
    /// An empty list; allocates nothing.
    pub const fn new() -> Headers {
        Headers {
            head: Bytes::new(),
            own: Vec::new(),
            fields: Vec::new(),
        }
    }

    /// An empty list with room for `fields` fields.
    pub fn with_capacity(fields: usize) -> Headers {
        Headers {
            head: Bytes::new(),
            own: Vec::new(),
            fields: Vec::with_capacity(fields),
        }
    }

    /// A list of the fields at `positions` (name start, name end, value
    /// start, value end) in `head`; every position must be within `head`
    /// (the parsers' own positions are).
    pub(crate) fn in_head(
        head: Bytes,
        positions: impl Iterator<Item = (usize, usize, usize, usize)>,
    ) -> Headers {
        let mut fields = Vec::with_capacity(positions.size_hint().0);
        fields.extend(positions.map(|(ns, ne, vs, ve)| Field {
            name: (ns, ne),
            value: (vs, ve),
            owned: false,
        }));
        Headers {
            head,
            own: Vec::new(),
            fields,
        }
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
            list: self,
            fields: self.fields.iter(),
        }
    }

    /// Field `i`, if there is one.
    pub fn get(&self, i: usize) -> Option<Header<'_>> {
        self.fields.get(i).map(|f| self.view(f))
    }

    /// The value of the first field named `name` (ASCII case-insensitive).
    pub fn first(&self, name: &[u8]) -> Option<&[u8]> {
        self.iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value)
    }

    /// Field `i`'s value as `Bytes`: a slice of the head (no copy) for a
    /// parsed field, a copy for an added or changed one.
    pub fn value_bytes(&self, i: usize) -> Option<Bytes> {
        let f = self.fields.get(i)?;
        Some(if f.owned {
            Bytes::copy_from_slice(self.own.get(f.value.0..f.value.1).unwrap_or_default())
        } else {
            self.head_slice(f.value)
        })
    }

    /// Field `i`'s name as `Bytes`, as [`Headers::value_bytes`].
    pub fn name_bytes(&self, i: usize) -> Option<Bytes> {
        let f = self.fields.get(i)?;
        Some(if f.owned {
            Bytes::copy_from_slice(self.own.get(f.name.0..f.name.1).unwrap_or_default())
        } else {
            self.head_slice(f.name)
        })
    }

    /// Appends a field (its bytes are copied into the list's own buffer).
    pub fn push(&mut self, name: &[u8], value: &[u8]) {
        let field = self.store(name, value);
        self.fields.push(field);
    }

    /// Inserts a field before field `at` (at the end if `at` is past it).
    pub fn insert(&mut self, at: usize, name: &[u8], value: &[u8]) {
        let field = self.store(name, value);
        self.fields.insert(at.min(self.fields.len()), field);
    }

    /// Gives field `i` a new value (copied); false if there is no field `i`.
    pub fn set_value(&mut self, i: usize, value: &[u8]) -> bool {
        let Some(&f) = self.fields.get(i) else {
            return false;
        };
        let name = self.view(&f).name.to_vec();
        let field = self.store(&name, value);
        if let Some(slot) = self.fields.get_mut(i) {
            *slot = field;
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
        let (head, own) = (&self.head, &self.own);
        self.fields.retain(|f| keep(view(head, own, f)));
    }

    /// Appends the fields of `other` that `keep` says yes to. A field of
    /// `other`'s head is added as a position when this list has no head
    /// yet or the same one (no copy), else copied.
    pub fn extend_from(&mut self, other: &Headers, mut keep: impl FnMut(Header<'_>) -> bool) {
        let adopt = self.head.is_empty() && !self.fields.iter().any(|f| !f.owned);
        if adopt && !other.head.is_empty() {
            self.head = other.head.clone();
        }
        let same_head = same_buffer(&self.head, &other.head);
        for f in &other.fields {
            let h = other.view(f);
            if !keep(h) {
                continue;
            }
            if !f.owned && same_head {
                self.fields.push(*f);
            } else {
                let field = self.store(h.name, h.value);
                self.fields.push(field);
            }
        }
    }

    /// Copies `name` and `value` into the own buffer.
    fn store(&mut self, name: &[u8], value: &[u8]) -> Field {
        let name_start = self.own.len();
        self.own.extend_from_slice(name);
        let value_start = self.own.len();
        self.own.extend_from_slice(value);
        Field {
            name: (name_start, value_start),
            value: (value_start, self.own.len()),
            owned: true,
        }
    }

    fn head_slice(&self, (start, end): (usize, usize)) -> Bytes {
        if start <= end && end <= self.head.len() {
            self.head.slice(start..end)
        } else {
            Bytes::new()
        }
    }

    fn view(&self, f: &Field) -> Header<'_> {
        view(&self.head, &self.own, f)
    }
}

/// Both `Bytes` view the same bytes (one is a clone of the other).
fn same_buffer(a: &Bytes, b: &Bytes) -> bool {
    a.as_ptr() == b.as_ptr() && a.len() == b.len()
}

fn view<'a>(head: &'a [u8], own: &'a [u8], f: &Field) -> Header<'a> {
    let store = if f.owned { own } else { head };
    Header {
        name: store.get(f.name.0..f.name.1).unwrap_or_default(),
        value: store.get(f.value.0..f.value.1).unwrap_or_default(),
    }
}

/// The fields of a [`Headers`] list, in order.
#[derive(Clone)]
pub struct Iter<'a> {
    list: &'a Headers,
    fields: std::slice::Iter<'a, Field>,
}

impl<'a> Iterator for Iter<'a> {
    type Item = Header<'a>;

    fn next(&mut self) -> Option<Header<'a>> {
        self.fields.next().map(|f| self.list.view(f))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.fields.size_hint()
    }
}

impl DoubleEndedIterator for Iter<'_> {
    fn next_back(&mut self) -> Option<Self::Item> {
        self.fields.next_back().map(|f| self.list.view(f))
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

    fn parsed() -> Headers {
        let head = Bytes::from_static(b"Host: a\r\nX-B: bb\r\n");
        Headers::in_head(head, [(0, 4, 6, 7), (9, 12, 14, 16)].into_iter())
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
        // The parsed field is a position in the shared head, not a copy.
        assert!(same_buffer(&out.head, &client.head));
        assert_eq!(out.own.len(), b"Hostupstream".len());
        // From another head: copied.
        let mut other =
            Headers::in_head(Bytes::from_static(b"A: 1\r\n"), [(0, 1, 3, 4)].into_iter());
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
