//! YAML's flow scalars as the YAML reader needs them: plain, single-quoted
//! (`''` is a quote) and double-quoted with YAML 1.1's escapes (`\n`, `\t`,
//! `\xHH`, `\uHHHH`, `\UHHHHHHHH`, …), and flow lists split at the commas
//! outside quotes, so `[ "a,b", c ]` is two items, as PyYAML reads it
//! (tests/e2e/test_config_vs_python.py holds the two readers together).

/// One scalar (the text between `key: ` and the line's end or comment):
/// its value, or what is wrong with it.
pub(super) fn scalar(value: &str) -> Result<String, String> {
    let v = value.trim();
    let (quote, rest) = match v.chars().next() {
        Some(q @ ('"' | '\'')) => (q, &v[1..]),
        _ => return Ok(v.to_string()),
    };
    let (text, after) =
        quoted(quote, rest).ok_or_else(|| format!("expected a closing {quote} in {v}"))?;
    if !after.trim().is_empty() {
        return Err(format!(
            "expected the end of the value after the closing {quote}, found \"{}\"",
            after.trim()
        ));
    }
    Ok(text)
}

/// The contents of a quoted scalar whose opening `quote` has been read, and
/// what follows its closing quote; `None` when it is not closed (or has a
/// bad escape).
fn quoted(quote: char, rest: &str) -> Option<(String, &str)> {
    let mut out = String::new();
    let mut chars = rest.char_indices();
    while let Some((i, c)) = chars.next() {
        match (quote, c) {
            ('\'', '\'') => {
                if rest[i + 1..].starts_with('\'') {
                    out.push('\'');
                    chars.next();
                } else {
                    return Some((out, &rest[i + 1..]));
                }
            }
            ('"', '"') => return Some((out, &rest[i + 1..])),
            ('"', '\\') => {
                let (_, e) = chars.next()?;
                out.push(match e {
                    '0' => '\0',
                    'a' => '\u{7}',
                    'b' => '\u{8}',
                    't' | '\t' => '\t',
                    'n' => '\n',
                    'v' => '\u{b}',
                    'f' => '\u{c}',
                    'r' => '\r',
                    'e' => '\u{1b}',
                    ' ' => ' ',
                    '"' => '"',
                    '/' => '/',
                    '\\' => '\\',
                    'N' => '\u{85}',
                    '_' => '\u{a0}',
                    'L' => '\u{2028}',
                    'P' => '\u{2029}',
                    'x' | 'u' | 'U' => {
                        let digits = match e {
                            'x' => 2,
                            'u' => 4,
                            _ => 8,
                        };
                        let mut code = 0u32;
                        for _ in 0..digits {
                            code = code * 16 + chars.next()?.1.to_digit(16)?;
                        }
                        char::from_u32(code)?
                    }
                    _ => return None,
                });
            }
            _ => out.push(c),
        }
    }
    None
}

/// The items of a flow list's inside (`a, "b,c", 'd'`), split at the
/// commas outside quotes; empty items are dropped (`[a, ]`).
pub(super) fn flow_items(inner: &str) -> Vec<&str> {
    let mut items = Vec::new();
    let mut start = 0;
    let mut quote: Option<char> = None;
    let mut escaped = false;
    for (i, c) in inner.char_indices() {
        match (quote, c) {
            (Some('"'), _) if escaped => escaped = false,
            (Some('"'), '\\') => escaped = true,
            (Some(q), c) if c == q => quote = None,
            (None, '"' | '\'') => quote = Some(c),
            (None, ',') => {
                items.push(&inner[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    items.push(&inner[start..]);
    items
        .into_iter()
        .map(str::trim)
        .filter(|i| !i.is_empty())
        .collect()
}

/// Where a `#` comment starts in `line`: at the start or after a space,
/// outside quotes (a quote opens a scalar only where a value can start, so
/// the `'` of `it's` is text). `\"` stays inside double quotes.
pub(super) fn comment_start(line: &str) -> Option<usize> {
    let mut quote: Option<char> = None;
    let mut escaped = false;
    let mut prev_space = true;
    for (i, c) in line.char_indices() {
        match (quote, c) {
            (Some('"'), _) if escaped => escaped = false,
            (Some('"'), '\\') => escaped = true,
            (Some(q), c) if c == q => quote = None,
            (None, '"' | '\'') if prev_space || line[..i].ends_with([':', '[', ',']) => {
                quote = Some(c)
            }
            (None, '#') if prev_space => return Some(i),
            _ => {}
        }
        prev_space = c.is_whitespace();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn double_quoted_scalars_read_yaml_escapes() {
        assert_eq!(scalar(r#""tab\there""#), Ok("tab\there".into()));
        assert_eq!(scalar(r#""\x41\u00e9\U0001F600""#), Ok("Aé😀".into()));
        assert_eq!(scalar(r#""q\" b\\ \/""#), Ok("q\" b\\ /".into()));
        assert!(scalar(r#""bad \q""#).is_err_and(|e| e.contains("closing")));
        assert!(scalar(r#""open \""#).is_err_and(|e| e.contains("closing")));
        assert!(scalar(r#""a" b"#).is_err_and(|e| e.contains("after the closing")));
    }

    #[test]
    fn single_quoted_scalars_double_their_quotes() {
        assert_eq!(scalar("'it''s'"), Ok("it's".into()));
        assert_eq!(scalar("''"), Ok(String::new()));
        assert_eq!(scalar("plain  text"), Ok("plain  text".into()));
    }

    #[test]
    fn flow_items_split_outside_quotes_only() {
        assert_eq!(
            flow_items(r#""a,b", 'c, d', e,"#),
            vec![r#""a,b""#, "'c, d'", "e"]
        );
        assert_eq!(flow_items(r#""x\",y", z"#), vec![r#""x\",y""#, "z"]);
        assert!(flow_items(" ").is_empty());
    }

    #[test]
    fn comments_start_at_a_hash_after_a_space_outside_quotes() {
        assert_eq!(comment_start("k: v # c"), Some(5));
        assert_eq!(comment_start("k: a#b"), None);
        assert_eq!(comment_start(r#"k: "a \" # b""#), None);
        assert_eq!(comment_start("k: it's # c"), Some(8));
        assert_eq!(comment_start("# whole"), Some(0));
    }
}
