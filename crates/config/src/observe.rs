//! The observability options: the stats server, the Prometheus endpoint and
//! the request log's format and filters. Typed here so `model.rs` only
//! hands these settings over; nothing here opens sockets or files.

use std::path::PathBuf;
use std::time::Duration;

use crate::argv::parse_bool;
use crate::{ConfigError, Setting};

/// Stats, metrics and request-log options (uWSGI's names where it has them).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ObserveOptions {
    /// `--stats ADDR`: where the master serves uWSGI's stats JSON
    /// (`host:port` is TCP, anything else a unix socket path).
    pub stats: Option<String>,
    /// `--stats-http`: answer HTTP requests on the stats socket.
    pub stats_http: bool,
    /// `--stats-minified`: no indentation or newlines in the JSON.
    pub stats_minified: bool,
    /// `--metrics ADDR`: where the master serves Prometheus metrics.
    pub metrics: Option<String>,
    /// `--log-format`: a custom request line with `%(var)` placeholders.
    pub log_format: Option<String>,
    /// `--log-format-json`: one JSON object per request.
    pub log_format_json: bool,
    /// Log 4xx / 5xx responses even with `--disable-logging`.
    pub log_4xx: bool,
    pub log_5xx: bool,
    /// Log requests slower than this even with `--disable-logging`.
    pub log_slow: Option<Duration>,
    /// Take the logged address from X-Forwarded-For's first entry.
    pub log_x_forwarded_for: bool,
    /// Prefix log lines with the date: `Some("")` is ctime, else a strftime format.
    pub log_date: Option<String>,
    /// Durations in the default line in microseconds (`usecs`).
    pub log_micros: bool,
    /// Reopen the log file when one of these files' mtime changes.
    pub touch_logreopen: Vec<PathBuf>,
    /// `--log-level`: the least severe diagnostic line written
    /// (`error`, `warn`, `info`, `debug`); `None` is info.
    pub log_level: Option<String>,
    /// `--log-json`: diagnostic lines as JSON objects.
    pub log_json: bool,
}

/// Every option [`ObserveOptions::apply`] takes (canonical names).
pub(crate) const OBSERVE_OPTIONS: &[&str] = &[
    "stats",
    "stats-http",
    "stats-minified",
    "metrics",
    "log-format",
    "log-format-json",
    "log-4xx",
    "log-5xx",
    "log-slow",
    "log-x-forwarded-for",
    "log-date",
    "log-micros",
    "touch-logreopen",
    "log-level",
    "log-json",
];

impl ObserveOptions {
    /// Take one setting whose name is in [`OBSERVE_OPTIONS`].
    pub(crate) fn apply(&mut self, s: &Setting) -> Result<(), ConfigError> {
        let bad = |expected: &str| ConfigError::BadValue {
            origin: s.origin.clone(),
            name: s.option.name.into(),
            value: s.value.clone(),
            expected: expected.into(),
        };
        let flag = || parse_bool(&s.value).unwrap_or(true);
        let addr = || {
            let v = s.value.trim();
            if v.is_empty() || v == "true" {
                Err(bad("an address (host:port, :port or a unix socket path)"))
            } else {
                Ok(v.to_string())
            }
        };
        match s.option.name {
            "stats" => self.stats = Some(addr()?),
            "stats-http" => self.stats_http = flag(),
            "stats-minified" => self.stats_minified = flag(),
            "metrics" => self.metrics = Some(addr()?),
            "log-format" => self.log_format = Some(s.value.clone()),
            "log-format-json" => self.log_format_json = flag(),
            "log-4xx" => self.log_4xx = flag(),
            "log-5xx" => self.log_5xx = flag(),
            "log-slow" => {
                let ms: u64 = s
                    .value
                    .trim()
                    .parse()
                    .map_err(|_| bad("a number of milliseconds"))?;
                self.log_slow = Some(Duration::from_millis(ms));
            }
            "log-x-forwarded-for" => self.log_x_forwarded_for = flag(),
            "log-date" => {
                self.log_date = match s.value.as_str() {
                    "true" | "1" => Some(String::new()),
                    "false" | "0" => None,
                    format => Some(format.to_string()),
                }
            }
            "log-micros" => self.log_micros = flag(),
            "touch-logreopen" => self.touch_logreopen.push(PathBuf::from(&s.value)),
            "log-level" => {
                let level = s.value.trim().to_ascii_lowercase();
                if !matches!(
                    level.as_str(),
                    "error" | "warn" | "warning" | "info" | "debug"
                ) {
                    return Err(bad("error, warn, info or debug"));
                }
                self.log_level = Some(level);
            }
            "log-json" => self.log_json = flag(),
            other => {
                return Err(ConfigError::Invalid(format!(
                    "{}: option \"--{other}\" is not an observability option",
                    s.origin
                )));
            }
        }
        Ok(())
    }

    /// True when these options need a master process (it serves stats and
    /// metrics and watches touch-logreopen files).
    pub fn needs_master(&self) -> bool {
        self.stats.is_some() || self.metrics.is_some() || !self.touch_logreopen.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use crate::{Config, parse_args};

    fn config(args: &[&str]) -> Config {
        Config::from_settings(&parse_args(args.iter().copied()).expect("parse")).expect("config")
    }

    #[test]
    fn stats_and_metrics_take_addresses_and_imply_a_master() {
        let c = config(&[
            "--stats",
            "127.0.0.1:9191",
            "--stats-http",
            "--metrics",
            ":9100",
        ]);
        assert_eq!(c.observe.stats.as_deref(), Some("127.0.0.1:9191"));
        assert!(c.observe.stats_http && !c.observe.stats_minified);
        assert_eq!(c.observe.metrics.as_deref(), Some(":9100"));
        assert!(c.observe.needs_master());
        let c = config(&["--stats-server", "/tmp/s.sock"]);
        assert_eq!(c.observe.stats.as_deref(), Some("/tmp/s.sock"));
        assert!(!config(&[]).observe.needs_master());
    }

    #[test]
    fn log_options_parse_uwsgi_style_values() {
        let c = config(&[
            "--logformat",
            "%(addr) %(uri)",
            "--log-slow",
            "250",
            "--log-4xx",
            "--log-date",
        ]);
        assert_eq!(c.observe.log_format.as_deref(), Some("%(addr) %(uri)"));
        assert_eq!(
            c.observe.log_slow,
            Some(std::time::Duration::from_millis(250))
        );
        assert!(c.observe.log_4xx && !c.observe.log_5xx);
        assert_eq!(c.observe.log_date.as_deref(), Some(""));
        let c = config(&["--log-date=%Y-%m-%d"]);
        assert_eq!(c.observe.log_date.as_deref(), Some("%Y-%m-%d"));
        let bad = Config::from_settings(&parse_args(["--log-slow", "soon"]).expect("parse"));
        assert_eq!(
            crate::test_err::text(bad),
            "command line: option \"--log-slow\": \"soon\" is not a number of milliseconds"
        );
    }

    #[test]
    fn log_level_takes_four_names_and_refuses_others() {
        let c = config(&["--log-level", "WARN", "--log-json"]);
        assert_eq!(c.observe.log_level.as_deref(), Some("warn"));
        assert!(c.observe.log_json);
        let settings = parse_args(["--log-level", "loud"]).expect("parse");
        let Err(e) = Config::from_settings(&settings) else {
            panic!("loud accepted");
        };
        assert!(
            e.to_string()
                .contains("\"loud\" is not error, warn, info or debug"),
            "{e}"
        );
    }
}
