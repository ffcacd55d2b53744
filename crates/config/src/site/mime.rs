//! The MIME type table of the Site model (`types {}`, `default_type` is
//! kept beside it in the location config): extension -> type with a hash
//! index, because every static answer looks one up.

/// A MIME type table (`types {}`): extension (lower case) → type, in the
/// order listed, with a hash index (looked up on every static answer: a
/// scan of nginx's `mime.types` cost ~1,800 instructions per request).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MimeTypes {
    by_extension: Vec<(String, String)>,
    index: std::collections::HashMap<String, usize>,
}

impl MimeTypes {
    /// A table of `(extension, type)` pairs (a later pair for the same
    /// extension replaces the earlier).
    pub fn of<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> MimeTypes {
        let mut table = MimeTypes::default();
        for (ext, mime) in pairs {
            table.insert(ext, mime.to_string());
        }
        table
    }

    /// Map `extension` (lower-cased here) to `mime`; the type it had, if any.
    pub fn insert(&mut self, extension: &str, mime: String) -> Option<String> {
        let ext = extension.to_ascii_lowercase();
        match self.index.get(&ext) {
            Some(&i) => Some(std::mem::replace(&mut self.by_extension[i].1, mime)),
            None => {
                self.index.insert(ext.clone(), self.by_extension.len());
                self.by_extension.push((ext, mime));
                None
            }
        }
    }

    /// Whether the table lists nothing.
    pub fn is_empty(&self) -> bool {
        self.by_extension.is_empty()
    }

    /// The `(extension, type)` pairs, in the order listed.
    pub fn entries(&self) -> &[(String, String)] {
        &self.by_extension
    }

    /// The type for a file extension (case-insensitive), if listed.
    pub fn lookup(&self, extension: &str) -> Option<&str> {
        let i = if extension.bytes().any(|b| b.is_ascii_uppercase()) {
            self.index.get(&extension.to_ascii_lowercase())
        } else {
            self.index.get(extension)
        };
        i.map(|&i| self.by_extension[i].1.as_str())
    }
}
