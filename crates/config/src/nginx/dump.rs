//! `-T`: every file the configuration was read from, as nginx prints them
//! (`# configuration file PATH:`, the text verbatim, an empty line).

use super::ast::ConfTree;

/// The `-T` text for a tree (nginx writes it to stdout).
pub fn dump(tree: &ConfTree) -> String {
    let mut out = String::new();
    for (path, text) in &tree.files {
        out.push_str("# configuration file ");
        out.push_str(&path.to_string_lossy());
        out.push_str(":\n");
        out.push_str(text);
        out.push('\n');
    }
    out
}
