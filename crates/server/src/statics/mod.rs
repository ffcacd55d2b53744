//! Static files, as uWSGI's `--static-map`/`--check-static` map them and as
//! nginx's static module answers: MIME types, ETag and Last-Modified,
//! conditional requests, byte ranges (multipart for several), directory
//! redirects and index files, precompressed `.gz`/`.br` siblings, expiry
//! headers. A file that is not there falls through to the app, as in uWSGI.
//!
//! Nothing outside a mapped root is served: `..`, backslashes, NUL bytes
//! and dotfiles are refused before the filesystem is touched, and the real
//! path of every file (symlinks resolved) must lie inside its root or a
//! `--static-safe` directory. Small files are kept in memory and checked
//! against the file's size and mtime on every request; large ones go out
//! with sendfile(2). Error answers never name a filesystem path.

mod cache;
mod conditional;
mod mime;
mod path;
mod respond;

use std::collections::HashMap;
use std::fs::Metadata;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::handler::{Handler, HandlerFuture, Request, Response, ResponseBody};
pub(crate) use cache::{ContentCache, MetaCache};
use conditional::expires_in;
pub(crate) use conditional::http_date;
pub use mime::mime_type;
pub(crate) use path::{Refused, is_inside, relative_path};
pub(crate) use respond::{
    FileOptions, FileRequest, errno_text, header_pair, io_error_status, respond_file, static_meta,
};

/// One `--static-map /url=DIR` (or `--static-map2`, which keeps the prefix).
#[derive(Debug, Clone)]
pub struct StaticMap {
    /// URL prefix, without a trailing `/` (empty for `--check-static`).
    pub prefix: String,
    /// The directory the files are served from.
    pub root: PathBuf,
    /// `--static-map2`: the file is ROOT + the whole path, prefix included.
    pub keep_prefix: bool,
}

/// Everything the static handler is told.
#[derive(Debug, Clone, Default)]
pub struct StaticConfig {
    /// Every `--static-map`/`--static-map2`/`--check-static`, in order.
    pub maps: Vec<StaticMap>,
    /// `--static-index NAME`: files tried for a directory, in order.
    pub index: Vec<String>,
    /// `--static-expires-type MIME=SECONDS`.
    pub expires_by_type: Vec<(String, u64)>,
    /// `--static-skip-ext EXT`: never served statically (falls through).
    pub skip_ext: Vec<String>,
    /// `--static-safe DIR`: directories symlinks may point into.
    pub safe: Vec<PathBuf>,
}

/// How long a file's real path and precompressed siblings are trusted
/// before being checked again (nginx's `open_file_cache_valid` is 60 s);
/// the file's own size and mtime are checked on every request.
const RESOLVE_VALID: Duration = Duration::from_secs(1);

/// Resolved paths remembered per worker; past it the memory starts afresh.
const MAX_RESOLVED: usize = 10_000;

#[derive(Clone)]
struct Resolved {
    real: PathBuf,
    inside: bool,
    siblings: Vec<(&'static str, PathBuf)>,
    checked: Instant,
}

/// The static layer in front of another handler (the app).
pub struct WithStatic {
    resolved: Mutex<HashMap<PathBuf, Resolved>>,
    maps: Vec<(StaticMap, Option<PathBuf>)>,
    config: StaticConfig,
    safe: Vec<PathBuf>,
    cache: Mutex<ContentCache>,
    next: Arc<dyn Handler>,
}

impl WithStatic {
    /// Put the static maps in front of `next`. Roots that do not exist are
    /// kept (they may appear later) and checked on each request.
    pub fn new(config: StaticConfig, next: Arc<dyn Handler>) -> WithStatic {
        let maps = config
            .maps
            .iter()
            .map(|m| (m.clone(), std::fs::canonicalize(&m.root).ok()))
            .collect();
        let safe = config
            .safe
            .iter()
            .filter_map(|s| std::fs::canonicalize(s).ok())
            .collect();
        WithStatic {
            maps,
            config,
            safe,
            cache: Mutex::new(ContentCache::default()),
            resolved: Mutex::new(HashMap::new()),
            next,
        }
    }
}

impl Handler for WithStatic {
    fn handle(&self, request: Request) -> HandlerFuture {
        match self.try_serve(&request) {
            Some(response) => HandlerFuture::new(move || std::future::ready(response)),
            None => self.next.handle(request),
        }
    }
}

fn simple(status: u16, reason: &'static str, text: &'static str) -> Response {
    let mut response = Response::plain(status, reason, text);
    response.meta = static_meta();
    response
}

impl WithStatic {
    /// A response if the request is for a static file; `None` to fall through.
    fn try_serve(&self, request: &Request) -> Option<Response> {
        let method = request.method();
        if method != b"GET" && method != b"HEAD" {
            return None;
        }
        let path = request.path();
        for (map, canonical_root) in &self.maps {
            let rest: &[u8] = if map.prefix.is_empty() {
                &path
            } else {
                let prefix = map.prefix.as_bytes();
                if !path.starts_with(prefix) || !matches!(path.get(prefix.len()), None | Some(b'/'))
                {
                    continue;
                }
                if map.keep_prefix {
                    &path
                } else {
                    &path[prefix.len()..]
                }
            };
            let (relative, trailing_slash) = match relative_path(rest) {
                Ok(found) => found,
                Err(Refused::Traversal) | Err(Refused::Dotfile) => {
                    return Some(simple(403, "Forbidden", "403 Forbidden\n"));
                }
            };
            if self.skipped(&relative) {
                return None;
            }
            let full = map.root.join(&relative);
            let Ok(meta) = std::fs::metadata(&full) else {
                continue; // missing: the next map, then the app
            };
            let root = canonical_root
                .clone()
                .or_else(|| std::fs::canonicalize(&map.root).ok())?;
            if meta.is_dir() {
                if !trailing_slash {
                    return Some(self.redirect_to_directory(request));
                }
                return Some(self.serve_index(request, &full, &root));
            }
            if trailing_slash {
                continue; // `file.txt/` names no file (nginx: 404): the app decides
            }
            return Some(self.serve_file(request, &full, &meta, &root));
        }
        None
    }

    fn skipped(&self, relative: &Path) -> bool {
        let name = relative.to_string_lossy();
        self.config
            .skip_ext
            .iter()
            .any(|ext| name.ends_with(ext.as_str()))
    }

    fn redirect_to_directory(&self, request: &Request) -> Response {
        let (path, query) = (request.raw_path(), request.query());
        let mut location = Vec::new();
        if let Some(host) = request.header("host").filter(|h| !h.is_empty()) {
            location.extend_from_slice(b"http://");
            location.extend_from_slice(host);
        }
        location.extend_from_slice(path);
        location.push(b'/');
        if !query.is_empty() {
            location.push(b'?');
            location.extend_from_slice(query);
        }
        let mut response = simple(301, "Moved Permanently", "301 Moved Permanently\n");
        response.headers.push(header_pair("Location", location));
        response
    }

    fn serve_index(&self, request: &Request, dir: &Path, root: &Path) -> Response {
        for name in &self.config.index {
            let candidate = dir.join(name);
            if let Ok(meta) = std::fs::metadata(&candidate)
                && meta.is_file()
            {
                return self.serve_file(request, &candidate, &meta, root);
            }
        }
        simple(403, "Forbidden", "403 Forbidden\n")
    }

    /// The real path's containment and the precompressed siblings of
    /// `full`, remembered for [`RESOLVE_VALID`] to save the syscalls.
    fn resolve(&self, full: &Path, root: &Path) -> std::io::Result<Resolved> {
        let now = Instant::now();
        {
            let cache = self.resolved.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(r) = cache.get(full)
                && now.duration_since(r.checked) < RESOLVE_VALID
            {
                return Ok(r.clone());
            }
        }
        let real = std::fs::canonicalize(full)?;
        let inside = is_inside(&real, root, &self.safe);
        let mut siblings = Vec::new();
        for (coding, suffix) in [("br", ".br"), ("gzip", ".gz")] {
            let mut sibling = real.clone().into_os_string();
            sibling.push(suffix);
            // A sibling is a file of its own: it must be inside the roots too
            // (a `.gz` symlinked out of the root must not leak its target).
            if let Ok(sibling) = std::fs::canonicalize(PathBuf::from(sibling))
                && is_inside(&sibling, root, &self.safe)
                && std::fs::metadata(&sibling).is_ok_and(|m| m.is_file())
            {
                siblings.push((coding, sibling));
            }
        }
        let resolved = Resolved {
            real,
            inside,
            siblings,
            checked: now,
        };
        let mut cache = self.resolved.lock().unwrap_or_else(|p| p.into_inner());
        if cache.len() >= MAX_RESOLVED {
            cache.clear();
        }
        cache.insert(full.to_path_buf(), resolved.clone());
        Ok(resolved)
    }

    fn serve_file(&self, request: &Request, full: &Path, meta: &Metadata, root: &Path) -> Response {
        let resolved = match self.resolve(full, root) {
            Ok(resolved) => resolved,
            Err(e) => return io_failure(request, full, &e),
        };
        if !resolved.inside {
            return simple(403, "Forbidden", "403 Forbidden\n");
        }
        let content_type = mime_type(full.as_os_str().as_encoded_bytes());
        // gzip_static / brotli_static: a sibling the client accepts wins.
        let mut served = (resolved.real.clone(), meta.clone());
        let mut encoding = None;
        if !resolved.siblings.is_empty() {
            let accept = request.header("accept-encoding").unwrap_or_default();
            if let Some((coding, sibling)) =
                resolved.siblings.iter().find(|(c, _)| accepts(accept, c))
                && let Ok(m) = std::fs::metadata(sibling)
            {
                encoding = Some(*coding);
                served = (sibling.clone(), m);
            }
        }
        let (path, meta) = served;
        let mut extra = Vec::new();
        if let Some((_, seconds)) = self
            .config
            .expires_by_type
            .iter()
            .find(|(t, _)| t == content_type)
        {
            extra.push(header_pair("Expires", expires_in(*seconds)));
            extra.push(header_pair("Cache-Control", format!("max-age={seconds}")));
        }
        let options = FileOptions {
            content_type,
            encoding,
            vary: !resolved.siblings.is_empty(),
            extra,
        };
        match respond_file(
            &path,
            &meta,
            &FileRequest::of(request),
            options,
            &self.cache,
        ) {
            Ok(response) => response,
            Err(refusal) => match refusal.status {
                412 => simple(412, "Precondition Failed", "412 Precondition Failed\n"),
                416 => {
                    let (range, mut headers): (Vec<_>, Vec<_>) = refusal
                        .headers
                        .into_iter()
                        .partition(|(n, _)| n.eq_ignore_ascii_case(b"content-range"));
                    headers.push(header_pair("Content-Type", "text/plain; charset=utf-8"));
                    headers.extend(range);
                    Response {
                        status: 416,
                        reason: Bytes::from_static(b"Range Not Satisfiable"),
                        headers,
                        body: ResponseBody::Full(Bytes::from_static(
                            b"416 Range Not Satisfiable\n",
                        )),
                        meta: static_meta(),
                    }
                }
                _ => match refusal.cause {
                    Some(e) => io_failure(request, &path, &e),
                    None => simple(500, "Internal Server Error", "500 Internal Server Error\n"),
                },
            },
        }
    }
}

/// The answer to an I/O error on a file that exists (404 only if it has
/// gone since the stat), logged once with the errno; the answer itself
/// never names the path.
fn io_failure(request: &Request, path: &Path, e: &std::io::Error) -> Response {
    let status = io_error_status(e);
    crate::logln!(
        "portico: static file \"{}\" failed ({}), answered {status}, request: \"{} {}\"",
        path.display(),
        errno_text(e),
        String::from_utf8_lossy(request.method()),
        String::from_utf8_lossy(request.raw_path()),
    );
    match status {
        403 => simple(403, "Forbidden", "403 Forbidden\n"),
        404 => simple(404, "Not Found", "404 Not Found\n"),
        503 => {
            let mut response = simple(503, "Service Unavailable", "503 Service Unavailable\n");
            response.headers.push(header_pair("Retry-After", "1"));
            response
        }
        _ => simple(500, "Internal Server Error", "500 Internal Server Error\n"),
    }
}

/// Does an Accept-Encoding value accept `coding` (q=0 refuses)?
fn accepts(accept: &[u8], coding: &str) -> bool {
    let Ok(accept) = std::str::from_utf8(accept) else {
        return false;
    };
    accept.split(',').any(|item| {
        let mut parts = item.split(';');
        let name = parts.next().unwrap_or("").trim();
        let refused = parts.any(|p| {
            let p = p.trim();
            p.strip_prefix("q=")
                .is_some_and(|q| q.trim().parse::<f32>().is_ok_and(|q| q == 0.0))
        });
        name.eq_ignore_ascii_case(coding) && !refused
    })
}

#[cfg(test)]
mod tests {
    use super::accepts;

    #[test]
    fn accept_encoding_honours_q_zero() {
        assert!(accepts(b"gzip, deflate, br", "gzip"));
        assert!(accepts(b"br;q=1.0, gzip;q=0.5", "br"));
        assert!(!accepts(b"gzip;q=0", "gzip"));
        assert!(!accepts(b"identity", "gzip"));
        assert!(!accepts(b"gzipx", "gzip"));
    }
}
