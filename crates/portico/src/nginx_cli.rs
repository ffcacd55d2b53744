//! The nginx-style command line: `portico -c nginx.conf` and its short
//! flags (`-c -t -T -p -g -s -q -e -v -V -h -?`), read the nginx way when
//! the command line names a config with `-c`; `--long` uWSGI options and
//! other words beside them are passed through untouched
//! (`portico -c site.conf --ini app.ini`). Also `-t`/`-T` (check and dump)
//! and `-s stop|quit|reload|reopen` (signal the running master).
//!
//! Serving the site is not here: `run_site` is where the run path plugs in.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use portico_config::nginx::{self, ConfTree, NginxError};
use portico_config::site::Site;

/// The prefix every line printed here starts with (nginx prints `nginx: `).
const PROG: &str = "portico";

/// Where the master's pid is when the config has no `pid` directive:
/// nginx's own default (`logs/nginx.pid` under the prefix).
pub(crate) const DEFAULT_PID: &str = "logs/nginx.pid";

/// `-s SIGNAL`, with nginx's meanings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NginxSignal {
    /// Fast shutdown.
    Stop,
    /// Graceful shutdown.
    Quit,
    /// Re-read the config, replace the workers gracefully.
    Reload,
    /// Reopen the log files.
    Reopen,
}

impl NginxSignal {
    fn parse(s: &str) -> Option<NginxSignal> {
        match s {
            "stop" => Some(NginxSignal::Stop),
            "quit" => Some(NginxSignal::Quit),
            "reload" => Some(NginxSignal::Reload),
            "reopen" => Some(NginxSignal::Reopen),
            _ => None,
        }
    }

    /// The signal Portico's master takes for this meaning (its signals are
    /// uWSGI's: SIGTERM graceful stop, SIGINT immediate stop, SIGHUP reload);
    /// reopen keeps nginx's SIGUSR1, which a master serving `-c` takes as
    /// nginx does (`MasterOptions::sigusr1_reopens`), so logrotate's
    /// `kill -USR1` works the same.
    pub(crate) fn os_signal(self) -> libc::c_int {
        match self {
            NginxSignal::Stop => libc::SIGINT,
            NginxSignal::Quit => libc::SIGTERM,
            NginxSignal::Reload => libc::SIGHUP,
            NginxSignal::Reopen => libc::SIGUSR1,
        }
    }
}

/// A command line read the nginx way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct NginxArgs {
    /// `-c FILE`, made absolute (against `-p` when given, as nginx does,
    /// else against the current directory).
    pub conf: PathBuf,
    /// `-p PREFIX`; default: the config file's directory.
    pub prefix: PathBuf,
    /// `-g "directives;"`
    pub globals: Option<String>,
    /// `-t` (or `-T`)
    pub test: bool,
    /// `-T`
    pub dump: bool,
    /// `-q`
    pub quiet: bool,
    /// `-s SIGNAL`
    pub signal: Option<NginxSignal>,
    /// `-v` (false) or `-V` (true)
    pub version: Option<bool>,
    /// `-h` or `-?`
    pub help: bool,
    /// `-e FILE|stderr`
    pub error_log: Option<String>,
    /// Everything else, in order: `--long` uWSGI options and their values.
    pub rest: Vec<String>,
}

/// Read `args` (without the program name) the nginx way if they hold `-c`;
/// `None` when they do not (the uWSGI-style reading applies).
pub(crate) fn parse_nginx_args(args: &[String]) -> Option<Result<NginxArgs, String>> {
    let mut conf: Option<String> = None;
    let mut prefix: Option<String> = None;
    let mut out = NginxArgs {
        conf: PathBuf::new(),
        prefix: PathBuf::new(),
        globals: None,
        test: false,
        dump: false,
        quiet: false,
        signal: None,
        version: None,
        help: false,
        error_log: None,
        rest: Vec::new(),
    };
    let mut saw_c = false;
    let mut error: Option<String> = None;
    let mut fail = |e: String| {
        error.get_or_insert(e);
    };
    let mut i = 0;
    while i < args.len() {
        let arg = &args[i];
        i += 1;
        if arg.starts_with("--") || !arg.starts_with('-') || arg == "-" {
            out.rest.push(arg.clone());
            continue;
        }
        let flags: Vec<char> = arg.chars().skip(1).collect();
        let mut j = 0;
        while j < flags.len() {
            let c = flags[j];
            j += 1;
            match c {
                't' => out.test = true,
                'T' => {
                    out.test = true;
                    out.dump = true;
                }
                'q' => out.quiet = true,
                'v' => out.version = Some(out.version.unwrap_or(false)),
                'V' => out.version = Some(true),
                'h' | '?' => out.help = true,
                'c' | 'p' | 'g' | 's' | 'e' => {
                    saw_c |= c == 'c';
                    let tail: String = flags[j..].iter().collect();
                    j = flags.len();
                    let value = if !tail.is_empty() {
                        Some(tail)
                    } else if let Some(next) = args.get(i) {
                        i += 1;
                        Some(next.clone())
                    } else {
                        None
                    };
                    let what = match c {
                        'c' => "file name",
                        'p' => "directory name",
                        'e' => "file name",
                        _ => "parameter",
                    };
                    let Some(value) = value else {
                        fail(format!("option \"-{c}\" requires {what}"));
                        continue;
                    };
                    match c {
                        'c' => conf = Some(value),
                        'p' => prefix = Some(value),
                        'g' => out.globals = Some(value),
                        'e' => out.error_log = Some(value),
                        _ => match NginxSignal::parse(&value) {
                            Some(s) => out.signal = Some(s),
                            None => fail(format!("invalid option: \"-s {value}\"")),
                        },
                    }
                }
                other => fail(format!("invalid option: \"{other}\"")),
            }
        }
    }
    if !saw_c {
        return None;
    }
    if let Some(e) = error {
        return Some(Err(e));
    }
    let conf = conf?;
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/"));
    let prefix_dir = prefix.as_deref().map(|p| cwd.join(p));
    out.conf = match &prefix_dir {
        Some(p) => p.join(&conf),
        None => cwd.join(&conf),
    };
    out.prefix = match prefix_dir {
        Some(p) => p,
        None => out
            .conf
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("/")),
    };
    Some(Ok(out))
}

/// `nginx -h`'s text, for Portico.
fn usage() -> String {
    format!(
        "Usage: {PROG} -c FILE [-?hvVtTq] [-s signal] [-p prefix] [-e filename] [-g directives] [--uwsgi-option ...]\n\n\
Options:\n\
  -?,-h         : this help\n\
  -v            : show version and exit\n\
  -V            : show version and build details and exit\n\
  -t            : test configuration and exit\n\
  -T            : test configuration, dump it and exit\n\
  -q            : suppress non-error messages during configuration testing\n\
  -s signal     : send signal to a master process: stop, quit, reopen, reload\n\
  -p prefix     : set prefix path (default: the directory of the -c file)\n\
  -e filename   : set error log file (default: stderr)\n\
  -c filename   : the nginx.conf to read\n\
  -g directives : set global directives out of configuration file\n\
  --OPTION      : any uWSGI-style long option, passed through (e.g. --ini app.ini)\n"
    )
}

fn emerg(e: &NginxError) {
    eprintln!("{PROG}: {e}");
}

/// The pid file a master serving `tree` writes: the main `pid` directive
/// (relative to the prefix, as nginx resolves it), else [`DEFAULT_PID`].
pub(crate) fn pid_path(tree: &ConfTree, prefix: &Path) -> PathBuf {
    let named = tree
        .main
        .iter()
        .rev()
        .find(|d| d.name == "pid")
        .and_then(|d| d.args.first())
        .map(|a| a.value.as_str());
    prefix.join(named.unwrap_or(DEFAULT_PID))
}

/// Read the config and convert it to a `Site`, so that meaning errors
/// (ports, variables, upstreams) show as well as syntax ones. nginx's
/// `[warn]` lines from the conversion join the tree's notes.
fn read(args: &NginxArgs) -> Result<(ConfTree, Site), NginxError> {
    let mut tree = nginx::read_conf(&args.conf, args.globals.as_deref())?;
    let (site, warnings) = nginx::to_site_with_warnings(&tree, &args.prefix)?;
    tree.notes.extend(warnings.into_iter().map(|w| {
        if w.starts_with('[') {
            w
        } else {
            format!("[warn] {w}")
        }
    }));
    // Certificates and keys are loaded here, as start-up loads them, so
    // a bad one fails `-t` with the file named.
    if let Err(e) = portico_server::tls::SiteTls::build(&site) {
        return Err(NginxError {
            message: e.message,
            file: None,
            line: None,
        });
    }
    Ok((tree, site))
}

/// Handle a command line read the nginx way, to the exit code.
pub(crate) fn main(args: NginxArgs) -> ExitCode {
    if args.help {
        eprint!("{}", usage());
        return ExitCode::SUCCESS;
    }
    if let Some(verbose) = args.version {
        eprintln!("{PROG} version: {PROG}/{}", crate::VERSION);
        if verbose {
            eprintln!("nginx.conf read as nginx 1.22 reads it (see docs/nginx.md)");
            eprintln!(
                "built for Python {} at {}",
                portico_wsgi::PYTHON_BUILD_VERSION,
                portico_wsgi::PYTHON_EXECUTABLE
            );
        }
        if !args.test && args.signal.is_none() {
            return ExitCode::SUCCESS;
        }
    }
    let conf = args.conf.display().to_string();
    if args.test {
        return match read(&args) {
            Ok((tree, _site)) => {
                // -q hides the notices and the success lines; warnings
                // stay, as nginx prints them under -q too
                for note in &tree.notes {
                    if !args.quiet || !note.starts_with("[notice]") {
                        eprintln!("{PROG}: {note}");
                    }
                }
                if !args.quiet {
                    eprintln!("{PROG}: the configuration file {conf} syntax is ok");
                    eprintln!("{PROG}: configuration file {conf} test is successful");
                }
                if args.dump {
                    print!("{}", nginx::dump(&tree));
                }
                ExitCode::SUCCESS
            }
            Err(e) => {
                emerg(&e);
                eprintln!("{PROG}: configuration file {conf} test failed");
                ExitCode::from(1)
            }
        };
    }
    let (tree, site) = match read(&args) {
        Ok(read) => read,
        Err(e) => {
            emerg(&e);
            return ExitCode::from(1);
        }
    };
    if let Some(signal) = args.signal {
        return send_signal(signal, &pid_path(&tree, &args.prefix));
    }
    for note in &tree.notes {
        eprintln!("{PROG}: {note}");
    }
    run_site(args, tree, site)
}

/// `-s`: read the master's pid and signal it (nginx's messages and exit 1
/// on failure).
fn send_signal(signal: NginxSignal, pid_file: &Path) -> ExitCode {
    let text = match std::fs::read_to_string(pid_file) {
        Ok(t) => t,
        Err(e) => {
            let code = e.raw_os_error().unwrap_or(0);
            let text = std::io::Error::from_raw_os_error(code).to_string();
            let text = text.split(" (os error").next().unwrap_or("").to_string();
            eprintln!(
                "{PROG}: [error] open() \"{}\" failed ({code}: {text})",
                pid_file.display()
            );
            return ExitCode::from(1);
        }
    };
    let trimmed = text.trim();
    let pid = match trimmed.parse::<libc::pid_t>() {
        Ok(pid) if pid > 0 => pid,
        _ => {
            eprintln!(
                "{PROG}: [error] invalid PID number \"{trimmed}\" in \"{}\"",
                pid_file.display()
            );
            return ExitCode::from(1);
        }
    };
    let signo = signal.os_signal();
    // SAFETY: kill(2) with a pid read from the pid file and a valid signal.
    if unsafe { libc::kill(pid, signo) } != 0 {
        let e = std::io::Error::last_os_error();
        let code = e.raw_os_error().unwrap_or(0);
        let text = e.to_string();
        let text = text.split(" (os error").next().unwrap_or("");
        eprintln!("{PROG}: [alert] kill({pid}, {signo}) failed ({code}: {text})");
        return ExitCode::from(1);
    }
    ExitCode::SUCCESS
}

/// Serve the site `tree` describes (already converted: `site`), with
/// `args.rest` as extra uWSGI-style options and the master's pid file at
/// [`pid_path`].
fn run_site(args: NginxArgs, tree: ConfTree, site: Site) -> ExitCode {
    let pid_file = pid_path(&tree, &args.prefix);
    crate::site_run::run_site(
        &args.conf,
        &args.prefix,
        args.globals.as_deref(),
        pid_file,
        &args.rest,
        site,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Option<Result<NginxArgs, String>> {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        parse_nginx_args(&args)
    }

    #[test]
    fn without_c_the_uwsgi_reading_applies() {
        assert_eq!(parse(&["--http", ":8000", "-p", "4", "-t", "30"]), None);
        assert_eq!(parse(&["-M", "app.ini"]), None);
        assert_eq!(parse(&[]), None);
    }

    #[test]
    fn short_flags_read_the_nginx_way_and_long_options_pass_through() {
        let got = parse(&[
            "-t",
            "-c",
            "/etc/site.conf",
            "--ini",
            "app.ini",
            "-q",
            "--http=:8000",
        ])
        .expect("has -c")
        .expect("valid");
        assert!(got.test && got.quiet && !got.dump);
        assert_eq!(got.conf, PathBuf::from("/etc/site.conf"));
        assert_eq!(got.prefix, PathBuf::from("/etc"));
        assert_eq!(got.rest, ["--ini", "app.ini", "--http=:8000"]);

        let got = parse(&[
            "-Tq",
            "-c/etc/a.conf",
            "-p",
            "/srv/",
            "-g",
            "daemon off;",
            "-s",
            "reload",
        ])
        .expect("has -c")
        .expect("valid");
        assert!(got.test && got.dump && got.quiet);
        assert_eq!(got.conf, PathBuf::from("/etc/a.conf"));
        assert_eq!(got.prefix, PathBuf::from("/srv/"));
        assert_eq!(got.globals.as_deref(), Some("daemon off;"));
        assert_eq!(got.signal, Some(NginxSignal::Reload));
    }

    #[test]
    fn a_relative_conf_is_taken_from_the_prefix_when_one_is_given() {
        let got = parse(&["-p", "/srv/site", "-c", "conf/nginx.conf"])
            .expect("has -c")
            .expect("valid");
        assert_eq!(got.conf, PathBuf::from("/srv/site/conf/nginx.conf"));
        assert_eq!(got.prefix, PathBuf::from("/srv/site"));
    }

    #[test]
    fn bad_flags_have_nginx_messages() {
        let cases: &[(&[&str], &str)] = &[
            (&["-c"], "option \"-c\" requires file name"),
            (&["-c", "a", "-p"], "option \"-p\" requires directory name"),
            (
                &["-c", "a", "-s", "restart"],
                "invalid option: \"-s restart\"",
            ),
            (&["-c", "a", "-M"], "invalid option: \"M\""),
        ];
        for (args, want) in cases {
            match parse(args) {
                Some(Err(e)) => assert_eq!(e, *want, "{args:?}"),
                other => panic!("{args:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn signals_map_nginx_meanings_onto_the_master() {
        assert_eq!(NginxSignal::Stop.os_signal(), libc::SIGINT);
        assert_eq!(NginxSignal::Quit.os_signal(), libc::SIGTERM);
        assert_eq!(NginxSignal::Reload.os_signal(), libc::SIGHUP);
        assert_eq!(NginxSignal::Reopen.os_signal(), libc::SIGUSR1);
    }
}
