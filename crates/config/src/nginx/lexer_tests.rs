//! Tokens and token errors, table-driven; each expectation was checked
//! against nginx 1.22 where nginx can show it.

use super::*;

/// Every step up to the end, as text: words separated by spaces (quoted ones
/// in `<>`), then `;`, `{` or `}`; an error as `ERR line: message`.
fn render(src: &str) -> String {
    let mut lexer = Lexer::new(src.as_bytes());
    let mut out = Vec::new();
    for _ in 0..100 {
        match lexer.next_step() {
            Ok(Step::Directive(words, end)) => {
                let mut s: Vec<String> = words
                    .iter()
                    .map(|w| {
                        if w.quoted {
                            format!("<{}>", w.value)
                        } else {
                            w.value.clone()
                        }
                    })
                    .collect();
                s.push(match end {
                    End::Semicolon => ";".into(),
                    End::BlockStart => "{".into(),
                });
                out.push(format!("{}@{}", s.join(" "), lexer.line()));
            }
            Ok(Step::BlockEnd) => out.push(format!("}}@{}", lexer.line())),
            Ok(Step::Done) => break,
            Err(e) => {
                out.push(format!("ERR {}: {}", e.line, e.message));
                break;
            }
        }
    }
    out.join(" / ")
}

#[test]
fn tokens_split_quote_escape_and_count_lines_as_nginx() {
    let cases: &[(&str, &str)] = &[
        ("a b;", "a b ;@1"),
        ("a\tb\r\nc;", "a b c ;@2"),
        ("  a  ;  b;", "a ;@1 / b ;@1"),
        ("a {\n}\n", "a {@1 / }@2"),
        ("a{b;}", "a {@1 / b ;@1 / }@1"),
        // `#` starts a comment only at the start of a word
        ("a#b c; # comment ; {\nd;", "a#b c ;@1 / d ;@2"),
        ("a b#c;", "a b#c ;@1"),
        // a `}` inside a word is part of it
        ("a b}; ", "a b} ;@1"),
        // quotes keep spaces, `;`, `{`, `}`
        ("a \"b c;{}\";", "a <b c;{}> ;@1"),
        ("a 'b \"c\"';", "a <b \"c\"> ;@1"),
        ("a \"\";", "a <> ;@1"),
        // a quote inside a word is literal
        ("a b\"c;", "a b\"c ;@1"),
        // escapes
        (r#"a "x\"y" 'x\'y' x\\y;"#, r#"a <x"y> <x'y> x\y ;@1"#),
        (r"a \t\r\n;", "a \t\r\n ;@1"),
        (r"a ^\d+\.x$;", r"a ^\d+\.x$ ;@1"),
        (r"a b\;c;", "a b\\;c ;@1"),
        (r"a \;;", "a \\; ;@1"),
        // `${name}` does not open a block; a bare `{` ends a word
        ("set $a ${b}c;", "set $a ${b}c ;@1"),
        ("location ~ ^/a{2}$ {", "location ~ ^/a {@1 / 2}$ {@1"),
        ("a \"${x}\";", "a <${x}> ;@1"),
        // after a closing quote: space, `;`, `{` or `)`
        ("if ($a = \"b\") {", "if ($a = <b> ) {@1"),
        ("a \"b\"{", "a <b> {@1"),
        ("a 'b';", "a <b> ;@1"),
        // the line is where the `;` is
        ("a\n\nb\n;", "a b ;@4"),
        ("a \"x\ny\";", "a <x\ny> ;@2"),
    ];
    for (src, want) in cases {
        assert_eq!(render(src), *want, "input {src:?}");
    }
}

#[test]
fn token_errors_have_nginx_words_and_lines() {
    let cases: &[(&str, &str)] = &[
        ("a \"b\"x;", "ERR 1: unexpected \"x\""),
        ("a 'b'c;", "ERR 1: unexpected \"c\""),
        ("a \"b\"};", "ERR 1: unexpected \"}\""),
        (";", "ERR 1: unexpected \";\""),
        ("\n{", "ERR 2: unexpected \"{\""),
        ("a }", "ERR 1: unexpected \"}\""),
        (
            "a b",
            "ERR 1: unexpected end of file, expecting \";\" or \"}\"",
        ),
        (
            "a\n",
            "ERR 2: unexpected end of file, expecting \";\" or \"}\"",
        ),
        (
            "a \"b;\n\n",
            "ERR 3: unexpected end of file, expecting \";\" or \"}\"",
        ),
        (
            "a \\",
            "ERR 1: unexpected end of file, expecting \";\" or \"}\"",
        ),
        (
            "a; b\n# c",
            "a ;@1 / ERR 2: unexpected end of file, expecting \";\" or \"}\"",
        ),
    ];
    for (src, want) in cases {
        assert_eq!(render(src), *want, "input {src:?}");
    }
}

#[test]
fn comment_or_spaces_at_the_end_are_a_clean_end() {
    assert_eq!(render("a;\n# end"), "a ;@1");
    assert_eq!(render("a;   \n\n"), "a ;@1");
    assert_eq!(render(""), "");
}

#[test]
fn param_text_words_its_unfinished_end_apart() {
    let mut lexer = Lexer::for_param(b"daemon off");
    let err = lexer.next_step().err().map(|e| e.message);
    assert_eq!(
        err.as_deref(),
        Some("unexpected end of parameter, expecting \";\"")
    );
}
