//! The try-files and content phases: `try_files`, then the location's
//! handler: `uwsgi_pass`, the option-style app, or nginx's static chain
//! for files under `root`/`alias`: index (an internal redirect to the
//! first index file there), autoindex, the static module (a directory
//! without its `/` is a 301, methods other than GET/HEAD are 405, missing
//! is 404, unreadable 403), with `gzip_static` and types by the URI's
//! extension. Files go out through the shared file responder
//! (`statics::respond_file`).
//!
//! Paths follow nginx: `root` + URI, or `alias` in place of the
//! location's prefix (the whole path for a regex location); symlinks are
//! followed as nginx does by default. The one nginx quirk not copied: an
//! `alias` whose location lacks the trailing `/` lets `/loc../x` climb out;
//! here a `..` segment left after the substitution is refused (403).

use std::ffi::OsStr;
use std::fs::{self, Metadata};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use portico_config::site::{
    Content, DocRoot, LocationConfig, LocationMatch, ProxyPass, TemplatePart, TryFallback,
    TryFiles, UpstreamTarget, Variable,
};
use tokio::sync::mpsc;

use super::autoindex;
use super::phases::Req;
use super::vars;
use crate::handler::{Response, ResponseBody, StreamItem};
use crate::statics::{
    FileOptions, FileRequest, errno_text, header_pair, io_error_status, respond_file, static_meta,
};

/// What the content phase decided.
pub(crate) enum Done<'s> {
    /// An answer that is not an error (a file, a listing, `return` text).
    Answer(Response),
    /// An answer Portico makes with this status (error_page applies),
    /// with headers that belong to it (Location, Content-Range).
    Special(u16, Vec<(Bytes, Bytes)>),
    /// An internal redirect to `uri[?args]` (split at the first `?`).
    Redirect(Vec<u8>),
    /// An internal redirect to this URI, keeping the request's args
    /// (index files: the URI may hold a decoded `?`).
    RedirectKeepArgs(Vec<u8>),
    /// A jump to `@name`.
    Named(String),
    Upstream(&'s UpstreamTarget),
    /// `proxy_pass`.
    Proxy(&'s ProxyPass),
    App,
}

/// nginx's built-in `types` when none are configured.
const BUILTIN_TYPES: [(&str, &str); 3] = [
    ("html", "text/html"),
    ("gif", "image/gif"),
    ("jpg", "image/jpeg"),
];

/// Run `try_files` (if any) and the location's content handler.
pub(crate) fn run<'s>(req: &mut Req<'s>) -> Done<'s> {
    let config: &'s LocationConfig = req.loc.config;
    if let Some(tf) = &config.try_files
        && let Some(done) = try_files(req, tf)
    {
        return done;
    }
    let content: &'s Content = req.loc.content;
    match content {
        Content::Uwsgi(target) => Done::Upstream(target),
        Content::App => Done::App,
        Content::Static => static_content(req),
        Content::Proxy(pass) => Done::Proxy(pass),
    }
}

/// The answer of `return CODE TEXT`.
pub(crate) fn text_response(status: u16, content_type: String, body: Vec<u8>) -> Response {
    Response {
        status,
        reason: Bytes::from_static(super::pages::reason(status).as_bytes()),
        headers: vec![header_pair("Content-Type", content_type)],
        body: ResponseBody::Full(Bytes::from(body)),
        meta: static_meta(),
    }
}

/// The MIME type for a URI's extension under `config` (nginx's
/// `ngx_http_set_exten` + `ngx_http_set_content_type`).
pub(crate) fn type_for(uri: &[u8], config: &LocationConfig) -> String {
    if let Some(ext) = extension(uri).and_then(|e| std::str::from_utf8(e).ok()) {
        let found = if config.types.is_empty() {
            BUILTIN_TYPES
                .iter()
                .find(|(e, _)| e.eq_ignore_ascii_case(ext))
                .map(|(_, t)| *t)
        } else {
            config.types.lookup(ext)
        };
        if let Some(found) = found {
            return found.to_string();
        }
    }
    config.default_type.clone()
}

/// The extension of the URI's last segment (a leading dot makes none).
fn extension(uri: &[u8]) -> Option<&[u8]> {
    let mut i = uri.len().checked_sub(1)?;
    while i > 1 {
        match uri[i] {
            b'.' if uri[i - 1] != b'/' => return Some(&uri[i + 1..]),
            b'/' => return None,
            _ => i -= 1,
        }
    }
    None
}

fn method_is(req: &Req<'_>, names: &[&[u8]]) -> bool {
    names.iter().any(|m| req.method.as_ref() == *m)
}

/// True when a path remainder holds a `..` segment.
fn climbs(rest: &[u8]) -> bool {
    rest.split(|&b| b == b'/').any(|s| s == b"..")
}

fn absolute(req: &Req<'_>, path: Vec<u8>) -> PathBuf {
    let path = PathBuf::from(OsStr::from_bytes(&path));
    if path.is_absolute() {
        path
    } else {
        req.engine.prefix.join(path)
    }
}

/// The length of the URI part an `alias` replaces, `None` for a regex
/// location's alias (which is the whole path).
fn alias_prefix(req: &Req<'_>) -> Option<usize> {
    match req.loc.matcher {
        Some(LocationMatch::Prefix { uri, .. }) | Some(LocationMatch::Exact(uri)) => {
            Some(uri.len())
        }
        Some(LocationMatch::Regex(_)) => None,
        _ => Some(0),
    }
}

/// `$request_filename` for `uri`: the file the URI names (`Err` with the
/// status when it cannot be mapped: 403 for a climb out of an alias, 500
/// for an alias whose prefix the rewritten URI lost).
pub(crate) fn map_uri(req: &Req<'_>, uri: &[u8]) -> Result<PathBuf, u16> {
    if matches!(req.loc.config.root, DocRoot::Alias(_))
        && let Some(cut) = alias_prefix(req)
        && climbs(uri.get(cut.min(uri.len())..).unwrap_or_default())
    {
        return Err(403);
    }
    let mut path = Vec::new();
    if !vars::request_filename(&req.var_context(uri), &mut path) {
        crate::logln!(
            "portico: \"alias\" cannot be used in a location where the URI was rewritten"
        );
        return Err(500);
    }
    Ok(absolute(req, path))
}

/// `$document_root` (relative roots under the prefix).
fn document_root(req: &Req<'_>) -> Vec<u8> {
    let mut root = Vec::new();
    vars::eval_var(
        &Variable::DocumentRoot,
        &req.var_context(&req.uri),
        &mut root,
    );
    root
}

fn log_open_error(req: &Req<'_>, path: &Path, e: &io::Error) {
    crate::logln!(
        "portico: open() \"{}\" failed ({}), client: {}, request: \"{}\"",
        path.display(),
        errno_text(e),
        req.facts.client_text(),
        req.facts.request_line()
    );
}

/// `try_files`: the first candidate that exists (a trailing `/` asks for
/// a directory) becomes the URI; none: the fallback.
fn try_files<'s>(req: &mut Req<'s>, tf: &TryFiles) -> Option<Done<'s>> {
    for candidate in &tf.files {
        let test_dir = matches!(
            candidate.parts.last(),
            Some(TemplatePart::Literal(text)) if text.ends_with('/')
        );
        let mut name = req.eval(candidate);
        if test_dir {
            name.pop();
        }
        let mut path = document_root(req);
        let uri = match (&req.loc.config.root, alias_prefix(req)) {
            (DocRoot::Alias(_), Some(cut)) => {
                let prefix = req.uri.get(..cut.min(req.uri.len())).unwrap_or_default();
                let rest = name.strip_prefix(prefix).unwrap_or(&name);
                if climbs(rest) {
                    continue;
                }
                path.extend_from_slice(rest);
                let mut uri = prefix.to_vec();
                uri.extend_from_slice(rest);
                uri
            }
            _ => {
                path.extend_from_slice(&name);
                name
            }
        };
        let path = absolute(req, path);
        match fs::metadata(&path) {
            Ok(meta) if meta.is_dir() == test_dir => {
                req.uri = Bytes::from(uri);
                return None;
            }
            Ok(_) => {}
            Err(e) if io_error_status(&e) != 404 => {
                log_open_error(req, &path, &e);
            }
            Err(_) => {}
        }
    }
    Some(match &tf.fallback {
        TryFallback::Code(code) => Done::Special(*code, Vec::new()),
        TryFallback::Named(name) => Done::Named(name.clone()),
        TryFallback::Uri(t) => Done::Redirect(req.eval(t)),
    })
}

/// The URI plus the request's args, as index redirects keep them.
fn with_args(req: &Req<'_>, mut uri: Vec<u8>) -> Vec<u8> {
    if !req.args.is_empty() {
        uri.push(b'?');
        uri.extend_from_slice(&req.args);
    }
    uri
}

/// nginx's static chain for a location without another handler.
fn static_content<'s>(req: &mut Req<'s>) -> Done<'s> {
    let uri = req.uri.clone();
    if uri.last() == Some(&b'/') {
        return directory(req, &uri);
    }
    if !method_is(req, &[b"GET", b"HEAD", b"POST"]) {
        return Done::Special(405, Vec::new());
    }
    let path = match map_uri(req, &uri) {
        Ok(path) => path,
        Err(status) => return Done::Special(status, Vec::new()),
    };
    let config = req.loc.config;
    let meta = match config.open_file_cache {
        Some(max) => req
            .engine
            .file_meta
            .metadata(&path, max, config.open_file_cache_valid),
        None => fs::metadata(&path),
    };
    let meta = match meta {
        Ok(meta) => meta,
        Err(e) => {
            log_open_error(req, &path, &e);
            return Done::Special(io_error_status(&e), Vec::new());
        }
    };
    if meta.is_dir() {
        let mut location = uri.to_vec();
        location.push(b'/');
        let location = with_args(req, location);
        return Done::Special(301, vec![header_pair("Location", location)]);
    }
    if !meta.is_file() {
        crate::logln!("portico: \"{}\" is not a regular file", path.display());
        return Done::Special(404, Vec::new());
    }
    if method_is(req, &[b"POST"]) {
        return Done::Special(405, Vec::new());
    }
    serve_file(req, &path, &meta)
}

/// A URI ending in `/`: index files, then autoindex, else 403.
fn directory<'s>(req: &mut Req<'s>, uri: &[u8]) -> Done<'s> {
    let dir = match map_uri(req, uri) {
        Ok(dir) => dir,
        Err(status) => return Done::Special(status, Vec::new()),
    };
    if !method_is(req, &[b"GET", b"HEAD", b"POST"]) {
        return Done::Special(405, Vec::new());
    }
    {
        let mut dir_tested = false;
        let config: &'s LocationConfig = req.loc.config;
        for index in &config.index {
            let name = req.eval(index);
            if name.first() == Some(&b'/') {
                return Done::RedirectKeepArgs(name);
            }
            let path = dir.join(OsStr::from_bytes(&name));
            match fs::metadata(&path) {
                Ok(_) => {
                    let mut target = uri.to_vec();
                    target.extend_from_slice(&name);
                    return Done::RedirectKeepArgs(target);
                }
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
                    if !dir_tested {
                        match fs::metadata(&dir) {
                            Ok(m) if m.is_dir() => {}
                            Ok(_) => return Done::Special(404, Vec::new()),
                            Err(e) => {
                                log_open_error(req, &dir, &e);
                                return Done::Special(io_error_status(&e), Vec::new());
                            }
                        }
                        dir_tested = true;
                    }
                }
                Err(e) => {
                    log_open_error(req, &path, &e);
                    return Done::Special(io_error_status(&e), Vec::new());
                }
            }
        }
    }
    if req.loc.config.autoindex && method_is(req, &[b"GET", b"HEAD"]) {
        return match autoindex::read_entries(&dir) {
            Ok(entries) => {
                let style = autoindex::ListingStyle {
                    exact_size: req.loc.config.autoindex_exact_size,
                    localtime: req.loc.config.autoindex_localtime,
                };
                Done::Answer(listing(autoindex::render_styled(uri, entries, style)))
            }
            Err(e) => {
                log_open_error(req, &dir, &e);
                Done::Special(io_error_status(&e), Vec::new())
            }
        };
    }
    crate::logln!(
        "portico: directory index of \"{}\" is forbidden, client: {}",
        dir.display(),
        req.facts.client_text()
    );
    Done::Special(403, Vec::new())
}

/// An autoindex page, streamed as nginx streams it (chunked, no length).
fn listing(page: Vec<u8>) -> Response {
    let (tx, rx) = mpsc::channel(2);
    let _ = tx.try_send(StreamItem::Data(Bytes::from(page)));
    let _ = tx.try_send(StreamItem::End);
    Response {
        status: 200,
        reason: Bytes::from_static(b"OK"),
        headers: vec![header_pair("Content-Type", "text/html")],
        body: ResponseBody::Stream(crate::BodyStream::channel(rx)),
        meta: static_meta(),
    }
}

/// A regular file: gzip_static, validators, conditionals, ranges.
fn serve_file<'s>(req: &mut Req<'s>, path: &Path, meta: &Metadata) -> Done<'s> {
    let content_type = type_for(&req.uri, req.loc.config);
    let mut served = (path.to_path_buf(), meta.clone());
    let mut encoding = None;
    let mut vary = false;
    if req.loc.config.gzip_static {
        // nginx's gzip_static: a `.gz` sibling makes the answer vary
        // (under `gzip_vary on`); it is served when `ngx_http_gzip_ok`
        // says so (Accept-Encoding, gzip_http_version, gzip_proxied,
        // gzip_disable), without ranges.
        let mut gz = path.as_os_str().to_owned();
        gz.push(".gz");
        let gz = PathBuf::from(gz);
        if let Ok(m) = fs::metadata(&gz)
            && m.is_file()
        {
            vary = req.loc.config.gzip_vary;
            if crate::compress::gzip_ok(&req.compress_facts(), &req.loc.config.compress) {
                served = (gz, m);
                encoding = Some("gzip");
            }
        }
    }
    let facts = &req.facts;
    let file_request = if req.in_error_page() {
        FileRequest::default()
    } else {
        FileRequest {
            if_match: facts.header("if-match"),
            if_unmodified_since: facts.header("if-unmodified-since"),
            if_none_match: facts.header("if-none-match"),
            if_modified_since: facts.header("if-modified-since"),
            range: facts.header("range").filter(|_| encoding.is_none()),
            if_range: facts.header("if-range"),
        }
    };
    let options = FileOptions {
        content_type: &content_type,
        encoding,
        vary,
        extra: Vec::new(),
    };
    match respond_file(
        &served.0,
        &served.1,
        &file_request,
        options,
        &req.engine.cache,
    ) {
        Ok(mut response) => {
            if encoding.is_some() {
                response
                    .headers
                    .retain(|(n, _)| !n.eq_ignore_ascii_case(b"accept-ranges"));
            }
            Done::Answer(response)
        }
        Err(refusal) => {
            if let Some(e) = &refusal.cause {
                log_open_error(req, &served.0, e);
            }
            let kept = refusal
                .headers
                .into_iter()
                .filter(|(n, _)| n.eq_ignore_ascii_case(b"content-range"))
                .collect();
            Done::Special(refusal.status, kept)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extensions_are_taken_as_nginx_takes_them() {
        assert_eq!(extension(b"/a/b.TXT"), Some(&b"TXT"[..]));
        assert_eq!(extension(b"/a.d/b"), None);
        assert_eq!(extension(b"/.hidden"), None);
        assert_eq!(extension(b"/x.tar.gz"), Some(&b"gz"[..]));
        assert_eq!(extension(b"/"), None);
    }

    #[test]
    fn builtin_types_apply_without_a_types_block() {
        let config = LocationConfig::default();
        assert_eq!(type_for(b"/i.html", &config), "text/html");
        assert_eq!(type_for(b"/i.json", &config), "text/plain");
    }

    #[test]
    fn a_dotdot_left_after_alias_is_a_climb() {
        assert!(climbs(b"../static_alias/a.txt"));
        assert!(!climbs(b"/a..b/c"));
    }
}
