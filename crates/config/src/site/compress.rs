//! Compression on the fly, as settings: nginx's gzip filter (`gzip`,
//! `gzip_types`, `gzip_min_length`, `gzip_comp_level`, `gzip_buffers`), the
//! core module's rules shared with `gzip_static` (`gzip_http_version`,
//! `gzip_proxied`, `gzip_disable`), and the ngx_brotli filter's `brotli`,
//! `brotli_types`, `brotli_comp_level`, `brotli_min_length`. Inheritance is
//! already applied (nginx.conf: `convert/compress.rs`; the option style's
//! `--gzip` fills the same fields). What the settings mean for one response
//! is `portico_server`'s compress filter; `gzip_vary` stays in
//! [`super::LocationConfig`] because `gzip_static` reads it too.

use super::Pattern;

/// nginx's default `gzip_min_length` and ngx_brotli's `brotli_min_length`.
pub const DEFAULT_MIN_LENGTH: u64 = 20;
/// nginx's default `gzip_comp_level`.
pub const DEFAULT_GZIP_LEVEL: u32 = 1;
/// ngx_brotli's default `brotli_comp_level`.
pub const DEFAULT_BROTLI_LEVEL: u32 = 6;
/// ngx_brotli's default `brotli_window` (512k: a 2^19-byte window).
pub const DEFAULT_BROTLI_WINDOW_BITS: u32 = 19;

/// The response types a filter compresses (`gzip_types`, `brotli_types`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CompressTypes {
    /// Lower-case MIME types; `text/html` is always one of them.
    List(Vec<String>),
    /// `*`: every response, even one without a Content-Type.
    Any,
}

impl Default for CompressTypes {
    /// nginx's default: `text/html` only.
    fn default() -> Self {
        CompressTypes::List(vec!["text/html".to_string()])
    }
}

impl CompressTypes {
    /// The list a `*_types` directive makes: `text/html` first (nginx
    /// always compresses it), then the given types lower-cased, without
    /// repeats; `*` anywhere makes it [`CompressTypes::Any`].
    pub fn from_values<'a>(values: impl IntoIterator<Item = &'a str>) -> CompressTypes {
        let mut list = vec!["text/html".to_string()];
        for v in values {
            if v == "*" {
                return CompressTypes::Any;
            }
            let lower = v.to_ascii_lowercase();
            if !list.contains(&lower) {
                list.push(lower);
            }
        }
        CompressTypes::List(list)
    }

    /// Does a response whose type (without parameters, any case) is
    /// `mime` qualify? `None`: the response has no Content-Type.
    pub fn matches(&self, mime: Option<&[u8]>) -> bool {
        match (self, mime) {
            (CompressTypes::Any, _) => true,
            (CompressTypes::List(_), None) => false,
            (CompressTypes::List(list), Some(m)) => {
                list.iter().any(|t| t.as_bytes().eq_ignore_ascii_case(m))
            }
        }
    }
}

/// `gzip_proxied`: which answers to requests that came through a proxy
/// (they carry `Via`) may be compressed. nginx's bitmask.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct GzipProxied(pub u16);

impl GzipProxied {
    pub const OFF: u16 = 0x0002;
    pub const EXPIRED: u16 = 0x0004;
    pub const NO_CACHE: u16 = 0x0008;
    pub const NO_STORE: u16 = 0x0010;
    pub const PRIVATE: u16 = 0x0020;
    pub const NO_LAST_MODIFIED: u16 = 0x0040;
    pub const NO_ETAG: u16 = 0x0080;
    pub const AUTH: u16 = 0x0100;
    pub const ANY: u16 = 0x0200;

    /// The keyword's bit (`None`: not a `gzip_proxied` keyword).
    pub fn keyword(word: &str) -> Option<u16> {
        Some(match word {
            "off" => Self::OFF,
            "expired" => Self::EXPIRED,
            "no-cache" => Self::NO_CACHE,
            "no-store" => Self::NO_STORE,
            "private" => Self::PRIVATE,
            "no_last_modified" => Self::NO_LAST_MODIFIED,
            "no_etag" => Self::NO_ETAG,
            "auth" => Self::AUTH,
            "any" => Self::ANY,
            _ => return None,
        })
    }

    /// Is `bit` set?
    pub fn has(self, bit: u16) -> bool {
        self.0 & bit != 0
    }
}

/// The lowest request version compressed (`gzip_http_version`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum MinHttpVersion {
    Http10,
    Http11,
}

/// Everything a location compresses with, inheritance applied.
#[derive(Debug, Clone)]
pub struct CompressSettings {
    /// `gzip on|off` (default off).
    pub gzip: bool,
    pub gzip_types: CompressTypes,
    /// `gzip_min_length`: answers whose known length is below are sent as they are.
    pub gzip_min_length: u64,
    /// `gzip_comp_level` 1..=9.
    pub gzip_level: u32,
    /// `gzip_buffers N SIZE`: read and kept, not used: Portico's encoder
    /// drains its output after every input piece instead.
    pub gzip_buffers: Option<(usize, usize)>,
    /// `gzip_http_version` (default 1.1).
    pub gzip_http_version: MinHttpVersion,
    /// `gzip_proxied` (default `off`).
    pub gzip_proxied: GzipProxied,
    /// `gzip_disable` regexes, matched case-insensitively on User-Agent.
    pub gzip_disable: Vec<Pattern>,
    /// `gzip_disable msie6`: MSIE 4 to 6 (not 6 with SV1).
    pub gzip_disable_msie6: bool,
    /// `brotli on|off` (default off).
    pub brotli: bool,
    pub brotli_types: CompressTypes,
    pub brotli_min_length: u64,
    /// `brotli_comp_level` 0..=11 (default 6).
    pub brotli_level: u32,
    /// `brotli_window` as a power of two (default 19: 512k).
    pub brotli_window_bits: u32,
}

impl Default for CompressSettings {
    fn default() -> Self {
        CompressSettings {
            gzip: false,
            gzip_types: CompressTypes::default(),
            gzip_min_length: DEFAULT_MIN_LENGTH,
            gzip_level: DEFAULT_GZIP_LEVEL,
            gzip_buffers: None,
            gzip_http_version: MinHttpVersion::Http11,
            gzip_proxied: GzipProxied(GzipProxied::OFF),
            gzip_disable: Vec::new(),
            gzip_disable_msie6: false,
            brotli: false,
            brotli_types: CompressTypes::default(),
            brotli_min_length: DEFAULT_MIN_LENGTH,
            brotli_level: DEFAULT_BROTLI_LEVEL,
            brotli_window_bits: DEFAULT_BROTLI_WINDOW_BITS,
        }
    }
}

impl CompressSettings {
    /// Is any filter on?
    pub fn any(&self) -> bool {
        self.gzip || self.brotli
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_always_hold_text_html_and_star_means_any() {
        let t = CompressTypes::from_values(["Text/CSS", "text/css", "application/json"]);
        assert_eq!(
            t,
            CompressTypes::List(vec![
                "text/html".into(),
                "text/css".into(),
                "application/json".into()
            ])
        );
        assert!(t.matches(Some(b"text/html")));
        assert!(!t.matches(None));
        let any = CompressTypes::from_values(["text/css", "*"]);
        assert_eq!(any, CompressTypes::Any);
        assert!(any.matches(None));
    }

    #[test]
    fn proxied_keywords_are_nginx_bits() {
        assert_eq!(GzipProxied::keyword("any"), Some(GzipProxied::ANY));
        assert_eq!(GzipProxied::keyword("no-etag"), None);
        assert!(GzipProxied(GzipProxied::OFF).has(GzipProxied::OFF));
    }
}
