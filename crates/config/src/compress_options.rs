//! The option style's compression switches (`--gzip`, `--gzip-types`,
//! `--gzip-min-length`, `--gzip-level`, `--brotli`, `--brotli-level`, and
//! uWSGI's `--http-auto-gzip`) as read from the settings, and the Site
//! model's [`CompressSettings`](crate::site::CompressSettings) they stand for.

/// The compression options (Portico's names; uWSGI's `--http-auto-gzip`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CompressOptions {
    pub gzip: bool,
    pub brotli: bool,
    /// `--gzip-types`, in order.
    pub types: Vec<String>,
    pub min_length: Option<u64>,
    pub gzip_level: Option<u32>,
    pub brotli_level: Option<u32>,
    /// `--gzip-proxied`: nginx's keywords, as bits (`None`: `off`).
    pub proxied: Option<u16>,
    /// `--http-auto-gzip`: only answers the app marks with `uWSGI-Encoding: gzip`.
    pub auto_gzip: bool,
}

impl CompressOptions {
    /// The Site model's settings for these options (`None`: no compression
    /// asked for, or only `--http-auto-gzip`, which the front handles).
    pub fn settings(&self) -> Option<crate::site::CompressSettings> {
        use crate::site::{CompressSettings, CompressTypes, DEFAULT_MIN_LENGTH, GzipProxied};
        if !self.gzip && !self.brotli {
            return None;
        }
        let types = CompressTypes::from_values(self.types.iter().map(String::as_str));
        let defaults = CompressSettings::default();
        let min_length = self.min_length.unwrap_or(DEFAULT_MIN_LENGTH);
        Some(CompressSettings {
            gzip: self.gzip,
            gzip_types: types.clone(),
            gzip_min_length: min_length,
            gzip_level: self.gzip_level.unwrap_or(defaults.gzip_level),
            brotli: self.brotli,
            brotli_types: types,
            brotli_min_length: min_length,
            brotli_level: self.brotli_level.unwrap_or(defaults.brotli_level),
            gzip_proxied: self.proxied.map_or(defaults.gzip_proxied, GzipProxied),
            ..defaults
        })
    }
}

#[cfg(test)]
mod tests {
    use crate::site::{CompressTypes, GzipProxied, MinHttpVersion};
    use crate::{Config, parse_args};

    fn options(args: &[&str]) -> super::CompressOptions {
        let mut all = vec!["--wsgi-file", "app.py"];
        all.extend_from_slice(args);
        match parse_args(all.iter().copied()).and_then(|s| Config::from_settings(&s)) {
            Ok(c) => c.compress,
            Err(e) => panic!("{args:?}: {e}"),
        }
    }

    #[test]
    fn no_switch_means_no_compression() {
        assert_eq!(options(&[]).settings().map(|_| ()), None);
        assert_eq!(options(&["--gzip-level", "5"]).settings().map(|_| ()), None);
        assert!(options(&["--http-auto-gzip"]).auto_gzip);
    }

    #[test]
    fn switches_become_nginx_settings() {
        let o = options(&[
            "--gzip",
            "--gzip-types",
            "application/json text/css",
            "--gzip-types=text/plain",
            "--gzip-min-length",
            "100",
            "--gzip-level",
            "4",
            "--brotli",
            "--brotli-level",
            "3",
        ]);
        let Some(s) = o.settings() else {
            panic!("no settings")
        };
        assert!(s.gzip && s.brotli);
        let types = CompressTypes::List(
            ["text/html", "application/json", "text/css", "text/plain"]
                .map(String::from)
                .to_vec(),
        );
        assert_eq!(
            (s.gzip_types.clone(), s.brotli_types.clone()),
            (types.clone(), types)
        );
        assert_eq!((s.gzip_min_length, s.brotli_min_length), (100, 100));
        assert_eq!((s.gzip_level, s.brotli_level), (4, 3));
        assert_eq!(s.gzip_http_version, MinHttpVersion::Http11);
        assert_eq!(s.gzip_proxied, GzipProxied(GzipProxied::OFF));
        let o = options(&[
            "--gzip",
            "--gzip-proxied",
            "expired auth",
            "--gzip-proxied=any",
        ]);
        let bits = GzipProxied::EXPIRED | GzipProxied::AUTH | GzipProxied::ANY;
        assert_eq!(
            o.settings().map(|s| s.gzip_proxied),
            Some(GzipProxied(bits))
        );
    }

    #[test]
    fn levels_out_of_range_are_refused() {
        for args in [
            ["--gzip-level", "0"],
            ["--gzip-level", "10"],
            ["--brotli-level", "12"],
        ] {
            let mut all = vec!["--wsgi-file", "app.py"];
            all.extend_from_slice(&args);
            let got = parse_args(all.iter().copied()).and_then(|s| Config::from_settings(&s));
            assert!(got.is_err(), "{args:?}");
        }
    }
}
