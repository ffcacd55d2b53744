//! Tests of `load`: precedence, file formats end to end, placeholders,
//! unknown keys and the `--show-config` round trip.

use std::path::PathBuf;

use super::*;
use crate::show_config;

/// A fresh directory for one test's files.
fn dir(test: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("portico-load-{}-{test}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("temp dir");
    d
}

fn write(dir: &std::path::Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write");
    path.to_string_lossy().into_owned()
}

fn pairs(loaded: &Loaded) -> Vec<(&'static str, &str)> {
    loaded
        .settings
        .iter()
        .map(|s| (s.option.name, s.value.as_str()))
        .collect()
}

fn last<'a>(loaded: &'a Loaded, name: &str) -> Option<&'a str> {
    loaded
        .settings
        .iter()
        .rev()
        .find(|s| s.option.name == name)
        .map(|s| s.value.as_str())
}

fn env(vars: &[(&str, &str)]) -> Vec<(String, String)> {
    vars.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn env_comes_first_then_the_command_line_then_positional_files() {
    let d = dir("precedence");
    let ini = write(&d, "app.ini", "[uwsgi]\nprocesses = 3\n");
    let e = env(&[
        ("UWSGI_PROCESSES", "5"),
        ("PORTICO_THREADS", "2"),
        ("UWSGI_NOT_AN_OPTION", "x"),
    ]);
    let got = load([ini.as_str(), "--processes", "9"], &e).expect("valid");
    assert_eq!(
        pairs(&got),
        vec![
            ("processes", "5"),
            ("threads", "2"),
            ("processes", "9"),
            ("processes", "3")
        ]
    );
    assert_eq!(got.settings[0].origin, "env UWSGI_PROCESSES");
    assert_eq!(got.settings[3].origin, format!("{ini}:2"));
    let got = load(["--ini", ini.as_str(), "--processes", "9"], &[]).expect("valid");
    assert_eq!(last(&got, "processes"), Some("9"));
}

#[test]
fn portico_variables_win_over_uwsgi_ones() {
    let e = env(&[
        ("PORTICO_PROCESSES", "7"),
        ("UWSGI_PROCESSES", "5"),
        ("UWSGI_MASTER", "0"),
    ]);
    let got = load(Vec::<String>::new(), &e).expect("valid");
    assert_eq!(last(&got, "processes"), Some("7"));
    assert_eq!(last(&got, "master"), Some("false"));
}

#[test]
fn the_same_config_in_every_format_gives_the_same_settings() {
    let d = dir("formats");
    let ini = write(
        &d,
        "app.ini",
        "[uwsgi]\nsocket = 127.0.0.1:3031\nsocket = /tmp/a.sock\nmaster\nprocesses = 4\nvacuum = false\n",
    );
    let xml = write(
        &d,
        "app.xml",
        "<uwsgi>\n<socket>127.0.0.1:3031</socket><socket>/tmp/a.sock</socket>\n<master/>\n<processes>4</processes><vacuum>off</vacuum></uwsgi>\n",
    );
    let yaml = write(
        &d,
        "app.yaml",
        "uwsgi:\n  socket:\n    - 127.0.0.1:3031\n    - /tmp/a.sock\n  master: true\n  processes: 4\n  vacuum: no\n",
    );
    let json = write(
        &d,
        "app.json",
        "{\"uwsgi\": {\"socket\": [\"127.0.0.1:3031\", \"/tmp/a.sock\"], \"master\": true, \"processes\": 4, \"vacuum\": false}}",
    );
    let want = vec![
        ("socket", "127.0.0.1:3031"),
        ("socket", "/tmp/a.sock"),
        ("master", "true"),
        ("processes", "4"),
        ("vacuum", "false"),
    ];
    for path in [&ini, &xml, &yaml, &json] {
        assert_eq!(
            pairs(&load([path.as_str()], &[]).expect(path)),
            want,
            "{path}"
        );
    }
    let flags = load(
        [
            "-s",
            "127.0.0.1:3031",
            "--socket",
            "/tmp/a.sock",
            "-M",
            "-p",
            "4",
            "--vacuum=false",
        ],
        &[],
    )
    .expect("flags");
    assert_eq!(pairs(&flags), want);
}

#[test]
fn show_config_reads_back_to_the_same_settings() {
    let d = dir("roundtrip");
    let ini = write(
        &d,
        "app.ini",
        "[uwsgi]\nproject = demo\nmodule = %(project).wsgi\nenv = P=100%%\nchdir = %d\nmaster\n",
    );
    let first = load([ini.as_str()], &[]).expect("valid");
    let shown = show_config(&first.settings);
    let again = write(&d, "shown.ini", &shown);
    let second = load(["--ini", again.as_str()], &[]).expect("valid");
    assert_eq!(pairs(&first), pairs(&second));
    assert_eq!(show_config(&second.settings), shown);
    assert!(
        shown.contains("set-placeholder = project=demo\n"),
        "{shown}"
    );
    assert!(shown.contains("env = P=100%%\n"), "{shown}");
}

#[test]
fn placeholders_refer_to_options_set_before_and_to_set_and_unknown_keys() {
    let d = dir("placeholders");
    let ini = write(
        &d,
        "app.ini",
        "[uwsgi]\nset-ph = base=/srv\nproject = demo\nset = processes=2\nset = flavour=dark\n\
         chdir = %(base)/%(project)\nthreads = %(workers + 2 * 3)\nenv = F=%(flavour)\n",
    );
    let got = load(["--ini", ini.as_str()], &[]).expect("valid");
    assert_eq!(last(&got, "chdir"), Some("/srv/demo"));
    assert_eq!(last(&got, "threads"), Some("12"));
    assert_eq!(last(&got, "env"), Some("F=dark"));
    assert_eq!(last(&got, "processes"), Some("2"));
    assert!(
        got.notes.is_empty(),
        "a referenced unknown key is a placeholder: {:?}",
        got.notes
    );
}

#[test]
fn env_and_file_references_are_expanded_in_files_only() {
    let d = dir("refs");
    let secret = write(&d, "secret.txt", "hunter2\n");
    let ini = write(
        &d,
        "app.ini",
        &format!("[uwsgi]\nenv = H=$(MY_HOME)\nenv = S=@({secret})\nenv = D=@(%dsecret.txt)\n"),
    );
    let e = env(&[("MY_HOME", "/home/me")]);
    let got = load(["--env", "C=$(MY_HOME)", ini.as_str()], &e).expect("valid");
    assert_eq!(
        pairs(&got),
        vec![
            ("env", "C=$(MY_HOME)"),
            ("env", "H=/home/me"),
            ("env", "S=hunter2"),
            ("env", "D=hunter2")
        ]
    );
}

#[test]
fn includes_are_spliced_in_place_and_may_name_a_section_of_the_same_file() {
    let d = dir("includes");
    let base = write(&d, "base.json", "{\"uwsgi\": {\"threads\": 2}}");
    let ini = write(
        &d,
        "app.ini",
        &format!(
            "[uwsgi]\nprocesses = 1\ninclude = {base}\nini = :extra\nmaster\n[extra]\nvacuum\n"
        ),
    );
    let got = load([ini.as_str()], &[]).expect("valid");
    assert_eq!(
        pairs(&got),
        vec![
            ("processes", "1"),
            ("threads", "2"),
            ("vacuum", "true"),
            ("master", "true")
        ]
    );
    let selfish = write(&d, "loop.ini", "[uwsgi]\nini = %p\n");
    let err = load([selfish.as_str()], &[]).expect_err("loop");
    assert!(
        err.to_string().contains("nested more than 16 deep"),
        "{err}"
    );
}

#[test]
fn unknown_keys_warn_with_file_line_and_suggestion_or_fail_with_strict() {
    let d = dir("unknown");
    let ini = write(&d, "app.ini", "[uwsgi]\nmaster = true\nproceses = 4\n");
    let got = load([ini.as_str()], &[]).expect("a warning only");
    assert_eq!(
        got.notes,
        vec![format!(
            "WARNING: {ini}:3: unknown option \"proceses\" (did you mean \"--processes\"?)"
        )]
    );
    let err = load(["--strict", ini.as_str()], &[]).expect_err("strict");
    assert_eq!(
        err.to_string(),
        format!("{ini}:3: unknown option \"proceses\" (did you mean \"--processes\"?)")
    );
    let strict_in_file = write(&d, "strict.ini", "[uwsgi]\nstrict = true\nfoo = 1\n");
    assert_eq!(
        crate::test_err::text(load([strict_in_file.as_str()], &[])),
        format!("{strict_in_file}:3: unknown option \"foo\"")
    );
}

#[test]
fn thousands_of_unknown_keys_warn_about_the_first_fifty_and_count_the_rest() {
    let mut text = String::from("[uwsgi]\n");
    for n in 0..5000 {
        text.push_str(&format!("unknown-{n} = v\n"));
    }
    let files = crate::files::Memory::new().with("many.ini", text.as_bytes());
    let Ok(got) = crate::fuzz::load_in_memory(&["many.ini"], &files) else {
        panic!("unknown keys are warnings");
    };
    assert_eq!(got.notes.len(), MAX_UNKNOWN_WARNINGS + 1);
    assert_eq!(
        got.notes[0],
        "WARNING: many.ini:2: unknown option \"unknown-0\""
    );
    assert_eq!(
        got.notes[MAX_UNKNOWN_WARNINGS],
        "WARNING: 4950 more unknown options not shown (the first 50 are above)"
    );
    assert_eq!(got.settings.len(), 5000, "each is still a placeholder");
}

#[test]
fn plugins_are_ignored_with_a_note() {
    let d = dir("plugins");
    let ini = write(
        &d,
        "app.ini",
        "[uwsgi]\nplugins = python3\nplugin = gevent\n",
    );
    let got = load([ini.as_str()], &[]).expect("valid");
    assert!(got.settings.is_empty());
    assert_eq!(
        got.notes,
        vec![
            "plugins = python3 ignored: Python is built in".to_string(),
            "plugins = gevent ignored: Portico has no plugins (Python is built in)".to_string(),
        ]
    );
}

#[test]
fn file_errors_name_the_file_the_line_and_what_was_expected() {
    let d = dir("errors");
    let check = |name: &str, text: &str, want: &str| {
        let path = write(&d, name, text);
        let err = load([path.as_str()], &[]).expect_err(name).to_string();
        assert_eq!(err, want.replace("{}", &path), "{name}");
    };
    check(
        "bad.xml",
        "<uwsgi>\n<master/>\n<processes>4</uwsgi>\n",
        "{}:3:13: expected </processes>, found </uwsgi>",
    );
    check(
        "bad.yaml",
        "uwsgi:\n  master: 1\n   processes: 4\n",
        "{}:3: bad indentation: expected 2 spaces like line 2, found 3",
    );
    check(
        "bad.json",
        "{\"uwsgi\": {\"master\": tru}}",
        "{}:1:25: expected true, false or null, found '}'",
    );
    check(
        "bad.ini",
        "[uwsgi]\nmaster\nprocesses 4\n",
        "{}:3: expected \"key = value\", found \"processes 4\"",
    );
    check(
        "bare.ini",
        "[uwsgi]\nfoo\n",
        "{}:2: expected \"key = value\", found \"foo\" (not the name of a switch)",
    );
    check(
        "novalue.ini",
        "[uwsgi]\nsocket\n",
        "{}:2: option \"--socket\" needs a value",
    );
    check(
        "nosection.ini",
        "[dev]\nmaster\n",
        "{}: no section \"uwsgi\" (found: \"dev\")",
    );
    let missing = d.join("missing.ini").to_string_lossy().into_owned();
    let err = load([missing.as_str()], &[]).expect_err("missing");
    assert_eq!(err.to_string(), format!("cannot read {missing}"));
    // The OS's error is the cause, not flattened into the message.
    let cause = std::error::Error::source(&err).map(|c| c.to_string());
    assert_eq!(
        cause.as_deref(),
        Some("No such file or directory (os error 2)")
    );
    assert!(matches!(
        load(["app.py"], &[]),
        Err(ConfigError::UnexpectedArgument { .. })
    ));
}

#[test]
fn a_section_is_chosen_with_a_colon() {
    let d = dir("sections");
    let ini = write(
        &d,
        "app.ini",
        "[uwsgi]\nprocesses = 1\n[prod]\nprocesses = 8\n",
    );
    let got = load(["--ini", &format!("{ini}:prod")], &[]).expect("valid");
    assert_eq!(pairs(&got), vec![("processes", "8")]);
    let xml = write(
        &d,
        "app.xml",
        "<r><uwsgi id=\"a\"><threads>3</threads></uwsgi></r>",
    );
    let got = load(["--xml", &format!("{xml}:a")], &[]).expect("valid");
    assert_eq!(pairs(&got), vec![("threads", "3")]);
}

#[test]
fn the_placeholder_entry_is_in_the_table() {
    assert_eq!(placeholder_spec().name, "set-placeholder");
}

#[test]
fn show_config_escapes_newlines_and_edge_spaces_so_no_value_adds_a_line() {
    let d = dir("roundtrip-escapes");
    let first = load(
        [
            "--env",
            "A=one\nmaster = true\r\n",
            "--env",
            " B=padded\t",
            "--log-format",
            "%(addr) 100%",
        ],
        &[],
    )
    .expect("valid");
    let shown = show_config(&first.settings);
    assert!(!shown.contains("\nmaster"), "{shown}");
    let again = write(&d, "shown.ini", &shown);
    let second = load(["--ini", again.as_str()], &[]).expect("valid");
    assert_eq!(pairs(&first), pairs(&second));
    assert_eq!(show_config(&second.settings), shown);
}

#[test]
fn chained_placeholders_fail_fast_at_the_size_limit_with_file_and_line() {
    let d = dir("chain");
    let mut text = String::from("[uwsgi]\nset-placeholder = a0=xx\n");
    for n in 1..=40 {
        text.push_str(&format!(
            "set-placeholder = a{n}=%(a{})%(a{})\n",
            n - 1,
            n - 1
        ));
    }
    let ini = write(&d, "chain.ini", &text);
    let started = std::time::Instant::now();
    let err = load([ini.as_str()], &[]).expect_err("too big");
    assert!(started.elapsed() < std::time::Duration::from_secs(2));
    // a15 would be 2^16 bytes, one more than the limit.
    assert_eq!(
        err.to_string(),
        format!("{ini}:17: expanding %(...) makes the value longer than the limit of 65536 bytes")
    );
}

#[test]
fn log_format_keeps_log_variables_and_expands_placeholders() {
    let d = dir("logformat");
    let ini = write(
        &d,
        "app.ini",
        "[uwsgi]\nsite = shop\nlog-format = %(site) %(addr) - %(user) [%(ltime)] \
         \"%(method) %(uri) %(proto)\" %(status) %(size)\n",
    );
    let got = load([ini.as_str()], &[]).expect("log variables are not placeholders");
    assert_eq!(
        last(&got, "log-format"),
        Some("shop %(addr) - %(user) [%(ltime)] \"%(method) %(uri) %(proto)\" %(status) %(size)")
    );
    let other = write(&d, "bad.ini", "[uwsgi]\nchdir = %(addr)\n");
    assert_eq!(
        crate::test_err::text(load([other.as_str()], &[])),
        format!(
            "{other}:2: %(addr): \"addr\" is not an option or placeholder set before this line \
             (set one with \"set-placeholder = addr=VALUE\")"
        ),
        "other options still refuse"
    );
}

#[test]
fn a_config_file_past_the_size_limit_is_refused() {
    let d = dir("bigfile");
    let path = d.join("big.ini");
    let file = std::fs::File::create(&path).expect("create");
    file.set_len(MAX_CONFIG_FILE + 1).expect("sparse file");
    let path = path.to_string_lossy().into_owned();
    let err = load([path.as_str()], &[]).expect_err("too big");
    assert_eq!(err.to_string(), format!("cannot read {path}"));
    let cause = std::error::Error::source(&err).map(|c| c.to_string());
    assert_eq!(
        cause.as_deref(),
        Some("larger than the limit of 4194304 bytes")
    );
}
