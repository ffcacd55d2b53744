//! nginx's tokenizer, byte for byte as `ngx_conf_read_token` (nginx 1.22,
//! `src/core/ngx_conf_file.c`) reads a file: words split on space, tab, CR
//! and LF; `;` ends a directive, `{` opens a block, `}` closes one (only
//! where a new word could start); `#` starts a comment only at the start of
//! a word; quotes, backslash escapes and `${name}`. Lines are counted as
//! nginx counts them: one per LF, and a directive's line is the line where
//! its `;` or `{` is.
//!
//! This knows nothing of directives or contexts: that is the parser's job.

/// Why reading a word failed, with the line nginx reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LexError {
    pub message: String,
    pub line: usize,
}

/// One word of a directive, quotes and escapes resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Word {
    pub value: String,
    /// Written in quotes (`"..."` or `'...'`).
    pub quoted: bool,
}

/// How a directive's words end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum End {
    /// `;`
    Semicolon,
    /// `{`
    BlockStart,
}

/// What the next call to [`Lexer::next`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Step {
    /// The words of one directive and how they ended.
    Directive(Vec<Word>, End),
    /// A `}` where a directive could start.
    BlockEnd,
    /// The end of the input, between directives.
    Done,
}

/// Reads the steps of one file (or of the `-g` text) in order.
pub(crate) struct Lexer<'a> {
    src: &'a [u8],
    pos: usize,
    line: usize,
    /// The `-g` text: an unfinished directive at the end is worded apart.
    param: bool,
}

fn is_space(ch: u8) -> bool {
    matches!(ch, b' ' | b'\t' | b'\r' | b'\n')
}

impl<'a> Lexer<'a> {
    /// A lexer over a file's bytes; lines start at 1.
    pub(crate) fn new(src: &'a [u8]) -> Lexer<'a> {
        Lexer {
            src,
            pos: 0,
            line: 1,
            param: false,
        }
    }

    /// A lexer over the `-g` text (nginx counts its lines from 0 and names
    /// no line in its messages).
    pub(crate) fn for_param(src: &'a [u8]) -> Lexer<'a> {
        Lexer {
            src,
            pos: 0,
            line: 0,
            param: true,
        }
    }

    /// The current line: where the last `;`, `{`, `}` or error was.
    pub(crate) fn line(&self) -> usize {
        self.line
    }

    fn error(&self, message: String) -> LexError {
        LexError {
            message,
            line: self.line,
        }
    }

    /// The next directive, `}` or end of input.
    pub(crate) fn next_step(&mut self) -> Result<Step, LexError> {
        let mut words: Vec<Word> = Vec::new();
        let mut need_space = false;
        let mut last_space = true;
        let mut sharp_comment = false;
        let mut variable = false;
        let mut quoted = false; // the previous byte was a backslash
        let mut s_quoted = false;
        let mut d_quoted = false;
        let mut word_quoted = false;
        let mut start = self.pos;

        loop {
            let Some(&ch) = self.src.get(self.pos) else {
                if !words.is_empty() || !last_space {
                    return Err(self.error(if self.param {
                        "unexpected end of parameter, expecting \";\"".to_string()
                    } else {
                        "unexpected end of file, expecting \";\" or \"}\"".to_string()
                    }));
                }
                return Ok(Step::Done);
            };
            self.pos += 1;

            if ch == b'\n' {
                self.line += 1;
                sharp_comment = false;
            }
            if sharp_comment {
                continue;
            }
            if quoted {
                quoted = false;
                continue;
            }

            if need_space {
                if is_space(ch) {
                    last_space = true;
                    need_space = false;
                    continue;
                }
                match ch {
                    b';' => return Ok(Step::Directive(words, End::Semicolon)),
                    b'{' => return Ok(Step::Directive(words, End::BlockStart)),
                    b')' => {
                        last_space = true;
                        need_space = false;
                    }
                    _ => return Err(self.error(format!("unexpected \"{}\"", char_of(ch)))),
                }
            }

            if last_space {
                start = self.pos - 1;
                if is_space(ch) {
                    continue;
                }
                word_quoted = false;
                match ch {
                    b';' | b'{' => {
                        if words.is_empty() {
                            return Err(self.error(format!("unexpected \"{}\"", char_of(ch))));
                        }
                        let end = if ch == b'{' {
                            End::BlockStart
                        } else {
                            End::Semicolon
                        };
                        return Ok(Step::Directive(words, end));
                    }
                    b'}' => {
                        if !words.is_empty() {
                            return Err(self.error("unexpected \"}\"".to_string()));
                        }
                        return Ok(Step::BlockEnd);
                    }
                    b'#' => {
                        sharp_comment = true;
                        continue;
                    }
                    b'\\' => {
                        quoted = true;
                        last_space = false;
                        continue;
                    }
                    b'"' => {
                        start += 1;
                        d_quoted = true;
                        word_quoted = true;
                        last_space = false;
                        continue;
                    }
                    b'\'' => {
                        start += 1;
                        s_quoted = true;
                        word_quoted = true;
                        last_space = false;
                        continue;
                    }
                    b'$' => {
                        variable = true;
                        last_space = false;
                        continue;
                    }
                    _ => last_space = false,
                }
            } else {
                if ch == b'{' && variable {
                    continue;
                }
                variable = false;
                if ch == b'\\' {
                    quoted = true;
                    continue;
                }
                if ch == b'$' {
                    variable = true;
                    continue;
                }
                let found = if d_quoted {
                    if ch == b'"' {
                        d_quoted = false;
                        need_space = true;
                        true
                    } else {
                        false
                    }
                } else if s_quoted {
                    if ch == b'\'' {
                        s_quoted = false;
                        need_space = true;
                        true
                    } else {
                        false
                    }
                } else if is_space(ch) || ch == b';' || ch == b'{' {
                    last_space = true;
                    true
                } else {
                    false
                };
                if found {
                    let raw = self.src.get(start..self.pos - 1).unwrap_or_default();
                    words.push(Word {
                        value: unescape(raw),
                        quoted: word_quoted,
                    });
                    match ch {
                        b';' => return Ok(Step::Directive(words, End::Semicolon)),
                        b'{' => return Ok(Step::Directive(words, End::BlockStart)),
                        _ => {}
                    }
                }
            }
        }
    }
}

/// A byte as nginx prints it in `unexpected "%c"`.
fn char_of(ch: u8) -> String {
    String::from_utf8_lossy(&[ch]).into_owned()
}

/// nginx's escapes: `\"`, `\'`, `\\` give the character; `\t`, `\r`, `\n`
/// the control character; any other `\x` stays as it is (regexes keep `\d`).
fn unescape(raw: &[u8]) -> String {
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while let Some(&b) = raw.get(i) {
        if b == b'\\' {
            match raw.get(i + 1) {
                Some(b'"' | b'\'' | b'\\') => i += 1,
                Some(b't') => {
                    out.push(b'\t');
                    i += 2;
                    continue;
                }
                Some(b'r') => {
                    out.push(b'\r');
                    i += 2;
                    continue;
                }
                Some(b'n') => {
                    out.push(b'\n');
                    i += 2;
                    continue;
                }
                _ => {}
            }
        }
        if let Some(&c) = raw.get(i) {
            out.push(c);
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
#[path = "lexer_tests.rs"]
mod tests;
