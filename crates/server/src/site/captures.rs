//! The captures of the last regex that matched (a `location ~`, a
//! `server_name ~`, a `rewrite`), owned so that they can outlive the subject
//! they were taken from: `$1`..`$9` and named groups (`(?<name>...)`) are
//! variables for the rest of the request, while `$uri` may change under them.
//!
//! An empty [`Captures`] (no regex matched) costs nothing: no allocation.

use regex::bytes::Regex;

/// Numbered and named groups of one regex match, with their subject.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Captures {
    /// The bytes the regex ran on.
    subject: Vec<u8>,
    /// `(start, end)` of each group (0 is the whole match); `None` for a
    /// group that did not take part in the match.
    spans: Vec<Span>,
    /// Named groups: name → span, as `spans`. Empty when the regex has none.
    names: Vec<(Box<str>, Span)>,
}

/// Where a group matched in the subject, if it took part in the match.
type Span = Option<(usize, usize)>;

impl Captures {
    /// Run `regex` on `subject`; the captures if it matches.
    ///
    /// A regex that cannot match is rejected by the cheap `is_match` scan
    /// first, so the group search (and the copies) happen only on a match.
    pub(crate) fn of_match(regex: &Regex, subject: &[u8]) -> Option<Captures> {
        if !regex.is_match(subject) {
            return None;
        }
        let caps = regex.captures(subject)?;
        let spans: Vec<_> = caps
            .iter()
            .map(|group| group.map(|m| (m.start(), m.end())))
            .collect();
        let names = regex
            .capture_names()
            .zip(&spans)
            .filter_map(|(name, span)| name.map(|n| (Box::from(n), *span)))
            .collect();
        Some(Captures {
            subject: subject.to_vec(),
            spans,
            names,
        })
    }

    /// True when no regex matched (no groups at all).
    pub(crate) fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }

    /// The number of groups, the whole match (0) included.
    pub(crate) fn len(&self) -> usize {
        self.spans.len()
    }

    /// Group `n` (`$n`); `None` when there is no such group or it did not
    /// take part in the match (nginx then substitutes nothing).
    pub(crate) fn get(&self, n: usize) -> Option<&[u8]> {
        let (start, end) = (*self.spans.get(n)?)?;
        self.subject.get(start..end)
    }

    /// The named group `name` (`(?<name>...)`).
    pub(crate) fn named(&self, name: &str) -> Option<&[u8]> {
        let &(_, span) = self.names.iter().find(|(n, _)| &**n == name)?;
        let (start, end) = span?;
        self.subject.get(start..end)
    }

    /// Keep the named groups of an `earlier` match on the same subject that
    /// this one does not define: nginx sets named captures as variables,
    /// so `$name` from a location regex survives a nested regex's match
    /// while `$1` is replaced. Earlier matches on other subjects are left
    /// out.
    pub(crate) fn inherit_names(&mut self, earlier: &Captures) {
        if earlier.names.is_empty() || earlier.subject != self.subject {
            return;
        }
        for (name, span) in &earlier.names {
            if !self.names.iter().any(|(n, _)| n == name) {
                self.names.push((name.clone(), *span));
            }
        }
    }

    /// The names of the named groups, in group order.
    pub(crate) fn names(&self) -> impl Iterator<Item = &str> {
        self.names.iter().map(|(n, _)| &**n)
    }

    /// The bytes the regex ran on.
    pub(crate) fn subject(&self) -> &[u8] {
        &self.subject
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn re(source: &str) -> Regex {
        Regex::new(source).unwrap_or_else(|e| panic!("{source}: {e}"))
    }

    #[test]
    fn an_empty_captures_answers_nothing() {
        let caps = Captures::default();
        assert!(caps.is_empty());
        assert_eq!(caps.get(0), None);
        assert_eq!(caps.named("x"), None);
    }

    #[test]
    fn numbered_and_named_groups_are_kept_with_their_subject() {
        let caps = Captures::of_match(&re(r"^/(?<app>\w+)/(\d+)(x)?"), b"/shop/42/rest");
        let caps = caps.unwrap_or_default();
        assert_eq!(caps.len(), 4);
        assert_eq!(caps.get(0), Some(&b"/shop/42"[..]));
        assert_eq!(caps.get(1), Some(&b"shop"[..]));
        assert_eq!(caps.get(2), Some(&b"42"[..]));
        assert_eq!(caps.get(3), None, "a group outside the match");
        assert_eq!(caps.get(4), None, "no such group");
        assert_eq!(caps.named("app"), Some(&b"shop"[..]));
        assert_eq!(caps.named("nope"), None);
        assert_eq!(caps.names().collect::<Vec<_>>(), vec!["app"]);
        assert_eq!(caps.subject(), b"/shop/42/rest");
    }

    #[test]
    fn inherited_names_fill_in_without_overriding() {
        let outer = Captures::of_match(&re(r"^/(?<a>\w+)/(?<b>\w+)"), b"/x/y/z");
        let inner = Captures::of_match(&re(r"^/\w+/(?<b>\w+)/(\w+)"), b"/x/y/z");
        let (Some(outer), Some(mut inner)) = (outer, inner) else {
            panic!("both regexes match");
        };
        inner.inherit_names(&outer);
        assert_eq!(inner.named("a"), Some(&b"x"[..]));
        assert_eq!(inner.named("b"), Some(&b"y"[..]));
        assert_eq!(inner.get(2), Some(&b"z"[..]));
        let other = Captures::of_match(&re(r"(?<c>.)"), b"host").unwrap_or_default();
        inner.inherit_names(&other);
        assert_eq!(inner.named("c"), None, "another subject is not inherited");
    }

    #[test]
    fn no_match_gives_none() {
        assert_eq!(Captures::of_match(&re("^/a"), b"/b"), None);
    }
}
