//! Mapping a decoded URL path onto a directory without ever leaving it:
//! segments are normalised (`.` and empty dropped), and anything that could
//! escape or hide is refused before the filesystem is touched: `..`,
//! backslashes, NUL bytes, and dotfiles. Symlinks are checked afterwards by
//! resolving the real path (see `mod.rs`).

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// Why a path was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refused {
    /// `..`, a backslash or a NUL byte: an attempt to leave the root (403).
    Traversal,
    /// A segment starting with `.` (403 by default, as dotfiles are hidden).
    Dotfile,
}

/// The relative path under a root for the decoded URL path `rest`, which
/// is what remains after the mount prefix. Trailing `/` is reported so a
/// directory request can be told apart.
pub(crate) fn relative_path(rest: &[u8]) -> Result<(PathBuf, bool), Refused> {
    if rest.contains(&0) || rest.contains(&b'\\') {
        return Err(Refused::Traversal);
    }
    let mut out = PathBuf::new();
    for segment in rest.split(|&b| b == b'/') {
        match segment {
            b"" | b"." => {}
            b".." => return Err(Refused::Traversal),
            s if s.first() == Some(&b'.') => return Err(Refused::Dotfile),
            s => out.push(OsStr::from_bytes(s)),
        }
    }
    let trailing_slash = rest.last() == Some(&b'/');
    Ok((out, trailing_slash))
}

/// True when `real` (a canonical path) lies inside `root` or one of `safe`
/// (all canonical).
pub(crate) fn is_inside(real: &Path, root: &Path, safe: &[PathBuf]) -> bool {
    real.starts_with(root) || safe.iter().any(|s| real.starts_with(s))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_paths_map_below_the_root() {
        assert_eq!(
            relative_path(b"/css/site.css"),
            Ok((PathBuf::from("css/site.css"), false))
        );
        assert_eq!(
            relative_path(b"//a/./b//"),
            Ok((PathBuf::from("a/b"), true))
        );
        assert_eq!(relative_path(b""), Ok((PathBuf::new(), false)));
    }

    #[test]
    fn traversal_vectors_are_refused() {
        for bad in [
            &b"/../etc/passwd"[..],
            b"/a/../../x",
            b"/..",
            b"/a\\..\\b",
            b"/a\0b",
            b"/x/..",
        ] {
            assert_eq!(
                relative_path(bad),
                Err(Refused::Traversal),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn dotfiles_are_refused() {
        assert_eq!(relative_path(b"/.env"), Err(Refused::Dotfile));
        assert_eq!(relative_path(b"/a/.git/config"), Err(Refused::Dotfile));
        assert_eq!(
            relative_path(b"/a/b.c"),
            Ok((PathBuf::from("a/b.c"), false))
        );
    }

    #[test]
    fn overlong_utf8_dots_are_just_bytes() {
        // %c0%ae decodes to 0xC0 0xAE, not '.', so it names a (missing) file.
        let (p, _) = relative_path(b"/\xc0\xae\xc0\xae/x").expect("not a traversal");
        assert_eq!(p.components().count(), 2);
    }

    #[test]
    fn containment_uses_whole_components() {
        let root = Path::new("/srv/static");
        assert!(is_inside(Path::new("/srv/static/a.txt"), root, &[]));
        assert!(!is_inside(Path::new("/srv/staticX/a.txt"), root, &[]));
        assert!(is_inside(
            Path::new("/opt/shared/a.txt"),
            root,
            &[PathBuf::from("/opt/shared")]
        ));
    }
}
