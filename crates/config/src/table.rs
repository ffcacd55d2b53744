//! The option table: every option Portico accepts, with its aliases, kind,
//! topic and one line of help. `--help`, the argv reader and (later) the
//! config-file readers all read this table and nothing else.

/// What an option takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A boolean switch: `--master`, `--master=false`.
    Flag,
    /// One value; a later occurrence replaces an earlier one.
    Value,
    /// One value per occurrence; occurrences accumulate in order.
    List,
    /// A value that may be left out (`--chmod-socket`, `--chmod-socket=660`).
    OptionalValue,
}

/// The group an option is listed under in `--help`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Topic {
    General,
    Listeners,
    App,
    Processes,
    Logging,
    Static,
    Compression,
    Configuration,
}

impl Topic {
    /// Every topic, in the order `--help` lists them.
    const ALL: [Topic; 8] = [
        Topic::General,
        Topic::Listeners,
        Topic::App,
        Topic::Processes,
        Topic::Logging,
        Topic::Static,
        Topic::Compression,
        Topic::Configuration,
    ];

    fn title(self) -> &'static str {
        match self {
            Topic::General => "General",
            Topic::Listeners => "Listeners",
            Topic::App => "Application",
            Topic::Processes => "Processes and threads",
            Topic::Logging => "Logging",
            Topic::Configuration => "Configuration files",
            Topic::Static => "Static files",
            Topic::Compression => "Compression",
        }
    }
}

/// One entry of the option table.
#[derive(Debug, PartialEq, Eq)]
pub struct OptionSpec {
    /// Canonical long name, without dashes (`wsgi-file`).
    pub name: &'static str,
    /// Other long names accepted for it (`file`).
    pub aliases: &'static [&'static str],
    /// The one-letter form, if any (`w` for `-w`).
    pub short: Option<char>,
    pub kind: Kind,
    pub topic: Topic,
    /// Placeholder for the value in help (`ADDR`), empty for flags.
    pub value_name: &'static str,
    pub help: &'static str,
}

const fn opt(
    name: &'static str,
    aliases: &'static [&'static str],
    short: Option<char>,
    kind: Kind,
    topic: Topic,
    value_name: &'static str,
    help: &'static str,
) -> OptionSpec {
    OptionSpec {
        name,
        aliases,
        short,
        kind,
        topic,
        value_name,
        help,
    }
}

use Kind::*;
use Topic::*;

/// Every option Portico knows, in the order `--help` lists them.
#[rustfmt::skip]
pub static OPTIONS: &[OptionSpec] = &[
    opt("help", &["usage"], Some('h'), Flag, General, "", "print this help and exit"),
    opt("version", &[], None, Flag, General, "", "print the version and the Python it embeds, then exit"),
    opt("http", &[], None, List, Listeners, "ADDR", "serve HTTP/1.1 on ADDR (host:port, :port, [::1]:port)"),
    opt("http-socket", &[], None, List, Listeners, "ADDR", "serve HTTP/1.1 on ADDR in the worker (same as --http here)"),
    opt("http2", &[], None, Flag, Listeners, "", "also speak HTTP/2 on the HTTP listeners: prior-knowledge h2c beside HTTP/1.1 (Portico's own)"),
    opt("https", &[], None, List, Listeners, "ADDR,CERT,KEY[,CIPHERS[,CA]]", "serve HTTP/1.1 over TLS on ADDR with the PEM certificate (chain) and key; CIPHERS an OpenSSL list, CA verifies client certificates (!CA: required)"),
    opt("https-socket", &[], None, List, Listeners, "ADDR,CERT,KEY[,CIPHERS[,CA]]", "the same as --https here"),
    opt("socket", &["uwsgi-socket"], Some('s'), List, Listeners, "ADDR", "serve the uwsgi protocol (nginx uwsgi_pass) on ADDR (host:port or a unix path)"),
    opt("chmod-socket", &["chmod"], Some('C'), OptionalValue, Listeners, "[MODE]", "chmod unix sockets to MODE (bare: 666)"),
    opt("chown-socket", &[], None, Value, Listeners, "USER[:GROUP]", "chown unix sockets"),
    opt("buffer-size", &[], Some('b'), Value, Listeners, "N", "largest uwsgi vars block accepted (default 65535)"),
    opt("worker-connections", &[], None, Value, Listeners, "N", "client connections each worker holds at most (nginx's worker_connections; default 512): at the limit the oldest idle keep-alive connections are closed to make room, and a new one is refused (HTTP 503) only when none is idle (Portico's own)"),
    opt("limit-post", &[], None, Value, Listeners, "BYTES", "answer 413 to a request body over BYTES before the app runs (0: no limit)"),
    opt("post-buffering", &[], None, Value, Listeners, "BYTES", "receive request bodies in full before the app runs, in memory up to BYTES, then in a temporary file (default 16384; 0: stream bodies to the app)"),
    opt("post-buffering-bufsize", &[], None, Value, Listeners, "BYTES", "accepted for uWSGI compatibility: bodies are read in 16 KiB steps"),
    opt("socket-timeout", &[], Some('z'), Value, Listeners, "S", "uwsgi listeners: time allowed for a packet, between two body reads and two writes (default 4)"),
    opt("http-timeout", &[], None, Value, Listeners, "S", "HTTP listeners: time allowed for a request head, between two body reads and two writes (default 60)"),
    opt("wsgi-file", &["file"], None, Value, App, "FILE", "load the WSGI app from a Python file"),
    opt("module", &["wsgi"], Some('w'), Value, App, "MOD[:CALLABLE]", "load the WSGI app from a module (mod, mod:callable, mod:factory())"),
    opt("callable", &[], None, Value, App, "NAME", "name of the WSGI callable (default: application)"),
    opt("pythonpath", &["python-path", "pp"], None, List, App, "DIR", "add DIR to the front of sys.path (repeatable)"),
    opt("chdir", &[], None, Value, App, "DIR", "change to DIR before loading the app"),
    opt("virtualenv", &["venv", "home", "pyhome"], Some('H'), Value, App, "DIR", "use the virtualenv at DIR (default: $VIRTUAL_ENV)"),
    opt("env", &[], None, List, App, "KEY=VALUE", "set an environment variable before loading the app (repeatable)"),
    opt("mount", &[], None, List, App, "/PREFIX=APP", "mount an app (file or module[:callable]) under a URL prefix (repeatable)"),
    opt("manage-script-name", &[], None, Flag, App, "", "route by mountpoint; set SCRIPT_NAME to it and strip it from PATH_INFO"),
    opt("master", &[], Some('M'), Flag, Processes, "", "run a master process that supervises the workers"),
    opt("processes", &["workers"], Some('p'), Value, Processes, "N", "number of worker processes (default 1)"),
    opt("threads", &[], None, Value, Processes, "N", "concurrent Python calls per worker (default 1)"),
    opt("enable-threads", &[], Some('T'), Flag, Processes, "", "accepted for uWSGI compatibility: Python threads always work"),
    opt("lazy-apps", &[], None, Flag, Processes, "", "load the app in each worker after fork instead of in the master"),
    opt("listen", &[], Some('l'), Value, Processes, "N", "listen queue (backlog) of the sockets (default 1024)"),
    opt("max-requests", &[], Some('R'), Value, Processes, "N", "recycle a worker after N requests"),
    opt("max-requests-delta", &[], None, Value, Processes, "N", "add (worker id - 1) * N to max-requests, to stagger recycling"),
    opt("max-requests-jitter", &[], None, Value, Processes, "N", "add a random 0..N to each worker's max-requests"),
    opt("min-worker-lifetime", &[], None, Value, Processes, "S", "never recycle a worker younger than S seconds (default 10)"),
    opt("reload-on-rss", &[], None, Value, Processes, "MB", "recycle a worker after the request that took its RSS over MB"),
    opt("evil-reload-on-rss", &[], None, Value, Processes, "MB", "the master kills a worker whose RSS is over MB"),
    opt("limit-as", &[], None, Value, Processes, "MB", "limit each worker's address space to MB (RLIMIT_AS)"),
    opt("harakiri", &[], Some('t'), Value, Processes, "S", "kill and respawn a worker whose request runs longer than S seconds"),
    opt("harakiri-verbose", &[], None, Flag, Processes, "", "log more about harakiri kills"),
    opt("reload-mercy", &["worker-reload-mercy"], None, Value, Processes, "S", "how long workers may take to finish on reload or stop (default 60)"),
    opt("die-on-term", &[], None, Flag, Processes, "", "accepted for uWSGI compatibility: SIGTERM always shuts down"),
    opt("touch-reload", &[], None, List, Processes, "FILE", "gracefully reload when FILE's modification time changes"),
    opt("daemonize", &[], Some('d'), Value, Processes, "LOGFILE", "detach from the terminal and log to LOGFILE"),
    opt("logto", &[], None, Value, Logging, "FILE", "log to FILE instead of stderr"),
    opt("pidfile", &[], None, Value, Processes, "FILE", "write the master's pid to FILE (before dropping privileges)"),
    opt("pidfile2", &[], None, Value, Processes, "FILE", "write the master's pid to FILE (after dropping privileges)"),
    opt("vacuum", &[], None, Flag, Processes, "", "remove pidfiles and unix sockets on exit"),
    opt("uid", &[], None, Value, Processes, "USER", "drop privileges to USER (name or number) after binding"),
    opt("gid", &[], None, Value, Processes, "GROUP", "drop privileges to GROUP (name or number) after binding"),
    opt("disable-logging", &[], Some('L'), Flag, Logging, "", "do not write the per-request access log line"),
    opt("log-format", &["logformat"], None, Value, Logging, "FORMAT", "custom request line with uWSGI's %(var) placeholders, values escaped"),
    opt("log-format-json", &[], None, Flag, Logging, "", "write each request as one JSON object per line"),
    opt("log-4xx", &[], None, Flag, Logging, "", "log 4xx responses even with --disable-logging"),
    opt("log-5xx", &[], None, Flag, Logging, "", "log 5xx responses even with --disable-logging"),
    opt("log-slow", &[], None, Value, Logging, "MS", "log requests slower than MS milliseconds even with --disable-logging"),
    opt("log-x-forwarded-for", &[], None, Flag, Logging, "", "log the first X-Forwarded-For address instead of the peer's"),
    opt("log-date", &["logdate"], None, OptionalValue, Logging, "[FORMAT]", "prefix log lines with the date (ctime, or a strftime FORMAT)"),
    opt("log-micros", &[], None, Flag, Logging, "", "request durations in microseconds in the default line"),
    opt("log-level", &[], None, Value, Logging, "LEVEL", "diagnostic lines to write: error, warn, info (default) or debug; the request log is not affected"),
    opt("log-json", &[], None, Flag, Logging, "", "write diagnostic lines as JSON objects (time, level, target, message)"),
    opt("touch-logreopen", &[], None, List, Logging, "FILE", "reopen the log file when FILE's modification time changes (logrotate)"),
    opt("stats", &["stats-server"], None, Value, Logging, "ADDR", "serve uWSGI's stats JSON (uwsgitop) on ADDR (host:port or a unix path) from the master"),
    opt("stats-http", &[], None, Flag, Logging, "", "serve the stats as an HTTP response"),
    opt("stats-minified", &["stats-min"], None, Flag, Logging, "", "stats JSON without indentation"),
    opt("metrics", &[], None, Value, Logging, "ADDR", "serve Prometheus metrics on ADDR (host:port or a unix path) from the master"),
    opt("static-map", &[], None, List, Static, "/URL=DIR", "serve files under DIR for paths starting with /URL (a missing file falls through to the app)"),
    opt("static-map2", &[], None, List, Static, "/URL=DIR", "like --static-map, but the file is DIR + the whole path"),
    opt("check-static", &[], None, List, Static, "DIR", "serve DIR + PATH_INFO when that file exists"),
    opt("static-index", &[], None, List, Static, "NAME", "file served for a directory (repeatable, tried in order)"),
    opt("static-expires-type", &[], None, List, Static, "MIME=SECONDS", "Expires and Cache-Control max-age for files of a MIME type"),
    opt("static-skip-ext", &[], None, List, Static, "EXT", "never serve files ending in EXT statically"),
    opt("static-safe", &[], None, List, Static, "DIR", "a directory outside the roots that symlinks may point into"),
    opt("offload-threads", &[], None, Value, Static, "N", "accepted for uWSGI compatibility: file serving is already asynchronous"),    opt("memory-report", &[], Some('m'), Flag, Logging, "", "report each worker's memory use after every request"),
    opt("gzip", &[], None, Flag, Compression, "", "compress answers with gzip for clients that accept it (nginx's gzip on: text/html and --gzip-types, at least --gzip-min-length bytes)"),
    opt("gzip-types", &[], None, List, Compression, "MIME", "also compress this type (repeatable; * for every type); text/html always"),
    opt("gzip-min-length", &[], None, Value, Compression, "BYTES", "leave answers shorter than BYTES (when their length is known) as they are (default 20)"),
    opt("gzip-level", &["gzip-comp-level"], None, Value, Compression, "1-9", "gzip compression level (default 1, nginx's)"),
    opt("gzip-proxied", &[], None, List, Compression, "KEYWORDS", "nginx's gzip_proxied for requests with Via: off (default), any, expired, no-cache, no-store, private, no_last_modified, no_etag, auth"),
    opt("brotli", &[], None, Flag, Compression, "", "compress with brotli (br) for clients that accept it, before gzip; same types and minimum length"),
    opt("brotli-level", &[], None, Value, Compression, "0-11", "brotli compression level (default 6, ngx_brotli's)"),
    opt("http-auto-gzip", &[], None, Flag, Compression, "", "uWSGI's: gzip answers whose app set the header uWSGI-Encoding: gzip (and no Content-Length or Content-Encoding)"),
    opt("ini", &[], None, List, Configuration, "FILE[:SECTION]", "read options from the [uwsgi] (or SECTION) section of an ini file"),
    opt("xml", &[], Some('x'), List, Configuration, "FILE[:ID]", "read options from the <uwsgi> (or <uwsgi id=\"ID\">) element of an XML file"),
    opt("yaml", &["yml"], Some('y'), List, Configuration, "FILE[:SECTION]", "read options from the uwsgi: (or SECTION:) mapping of a YAML file"),
    opt("json", &[], Some('j'), List, Configuration, "FILE[:SECTION]", "read options from the \"uwsgi\" (or SECTION) object of a JSON file"),
    opt("include", &[], None, List, Configuration, "FILE[:SECTION]", "read another config file, its format chosen by its extension"),
    opt("set", &[], Some('S'), List, Configuration, "NAME=VALUE", "set an option, or a placeholder for %(NAME) if NAME is not an option"),
    opt("set-placeholder", &["set-ph"], None, List, Configuration, "NAME=VALUE", "set a placeholder for %(NAME) in config files"),
    opt("strict", &[], None, Flag, Configuration, "", "make unknown keys in config files fatal instead of a warning"),
    opt("show-config", &[], None, Flag, Configuration, "", "print the effective configuration as an ini file and exit"),
    opt("plugins", &["plugin"], None, List, Configuration, "NAMES", "accepted for uWSGI compatibility and ignored: Python is built in"),
];

/// Find an option by any of its long names (without dashes).
pub fn lookup(name: &str) -> Option<&'static OptionSpec> {
    OPTIONS
        .iter()
        .find(|o| o.name == name || o.aliases.contains(&name))
}

/// Find an option by its one-letter form.
pub(crate) fn lookup_short(c: char) -> Option<&'static OptionSpec> {
    OPTIONS.iter().find(|o| o.short == Some(c))
}

/// The closest known long name to `name`, if it is close enough to be a typo.
pub(crate) fn suggest(name: &str) -> Option<&'static str> {
    OPTIONS
        .iter()
        .flat_map(|o| std::iter::once(o.name).chain(o.aliases.iter().copied()))
        .map(|candidate| (edit_distance(name, candidate), candidate))
        .filter(|(d, candidate)| *d <= 2.max(candidate.len() / 4))
        .min_by_key(|(d, _)| *d)
        .map(|(_, candidate)| candidate)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = if ca == *cb {
                prev
            } else {
                1 + prev.min(cur).min(row[j])
            };
            prev = cur;
        }
    }
    row[b.len()]
}

/// `--help`, generated from the table and grouped by topic.
pub fn help_text() -> String {
    let mut out = String::from(
        "Usage: portico [OPTIONS] [CONFIG_FILE]\n\nServe a Python WSGI application.\n\
         Example: portico --http :8000 --wsgi-file app.py\n\
         CONFIG_FILE (app.ini, .xml, .yaml/.yml, .json/.js) is read after the options;\n\
         environment variables UWSGI_<OPTION> and PORTICO_<OPTION> come before them.\n",
    );
    for topic in Topic::ALL {
        out.push_str(&format!("\n{}:\n", topic.title()));
        for o in OPTIONS.iter().filter(|o| o.topic == topic) {
            let mut names = String::new();
            if let Some(c) = o.short {
                names.push_str(&format!("-{c}, "));
            }
            names.push_str(&format!("--{}", o.name));
            for a in o.aliases {
                names.push_str(&format!(", --{a}"));
            }
            if !o.value_name.is_empty() {
                names.push(' ');
                names.push_str(o.value_name);
            }
            out.push_str(&format!("  {names:<44} {}\n", o.help));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_and_alias_is_unique() {
        let mut seen = std::collections::HashSet::new();
        for o in OPTIONS {
            for n in std::iter::once(o.name).chain(o.aliases.iter().copied()) {
                assert!(seen.insert(n), "duplicate option name {n}");
            }
        }
    }

    #[test]
    fn typo_suggests_the_closest_option() {
        assert_eq!(suggest("wsgi-fil"), Some("wsgi-file"));
        assert_eq!(suggest("calable"), Some("callable"));
        assert_eq!(suggest("zzzzzzzz"), None);
    }

    #[test]
    fn help_lists_every_option_under_its_topic() {
        let help = help_text();
        for o in OPTIONS {
            assert!(
                help.contains(&format!("--{}", o.name)),
                "{} missing",
                o.name
            );
        }
        assert!(help.find("Listeners:") < help.find("--http ADDR"));
    }
}
