//! The file responder shared by the uWSGI-style static layer
//! ([`super::WithStatic`]) and the nginx-style site engine
//! (`crate::site`): given a file already chosen and checked, answer with
//! its validators, the conditional-request rules, byte ranges (multipart
//! for several), and the body from the content cache or for sendfile.
//!
//! It does not choose the file, its type or a precompressed sibling, and
//! does not render error pages: a refusal (412, 416, 403, 404, 500, 503)
//! goes back to the caller, which answers it in its own style and logs the
//! I/O error it carries ([`io_error_status`] is the one errno → status rule
//! of both callers).

use std::fs::Metadata;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Mutex;
use std::time::UNIX_EPOCH;

use bytes::Bytes;
use portico_proto::http1::{Ranges, parse_ranges};

use super::cache::ContentCache;
use super::conditional::{Condition, Validators, evaluate, if_range_allows};
use crate::handler::{Request, Response, ResponseBody, ResponseMeta};

/// Multipart bodies for several ranges are built in memory up to this size;
/// beyond it the whole file is sent instead (a 200 is always correct).
const MAX_MULTIPART_BYTES: u64 = 16 * 1024 * 1024;

/// The boundary nginx uses for multipart/byteranges (a 20-digit counter).
const MULTIPART_BOUNDARY: &str = "00000000000000000001";

/// The request headers the responder reads.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct FileRequest<'a> {
    pub if_match: Option<&'a [u8]>,
    pub if_unmodified_since: Option<&'a [u8]>,
    pub if_none_match: Option<&'a [u8]>,
    pub if_modified_since: Option<&'a [u8]>,
    pub range: Option<&'a [u8]>,
    pub if_range: Option<&'a [u8]>,
}

impl<'a> FileRequest<'a> {
    /// The headers of an HTTP request or a uwsgi packet's `HTTP_*` vars.
    pub(crate) fn of(request: &'a Request) -> FileRequest<'a> {
        let h = |name| request.header(name);
        FileRequest {
            if_match: h("if-match"),
            if_unmodified_since: h("if-unmodified-since"),
            if_none_match: h("if-none-match"),
            if_modified_since: h("if-modified-since"),
            range: h("range"),
            if_range: h("if-range"),
        }
    }
}

/// How to answer with one file.
#[derive(Debug, Clone, Default)]
pub(crate) struct FileOptions<'a> {
    pub content_type: &'a str,
    /// The `Content-Encoding` of a precompressed sibling being served.
    pub encoding: Option<&'static str>,
    /// Add `Vary: Accept-Encoding`.
    pub vary: bool,
    /// Headers placed after the validators (Expires, Cache-Control...).
    pub extra: Vec<(Bytes, Bytes)>,
}

/// Why the file was not sent; the caller renders the answer.
#[derive(Debug)]
pub(crate) struct Refusal {
    /// 412, 416, or for an I/O error [`io_error_status`]'s answer.
    pub status: u16,
    /// Headers that belong to the refusal: the validators and extras
    /// already computed and, for 416, `Content-Range: bytes */SIZE`.
    pub headers: Vec<(Bytes, Bytes)>,
    /// The I/O error behind the status, for the caller to log once.
    pub cause: Option<io::Error>,
}

/// The status for a failed stat, open or read of a file, as nginx maps
/// errno, except fd exhaustion: 404 when it is not there (any more), 403
/// when it may not be read, 503 when the process or the system is out of
/// file descriptors (EMFILE/ENFILE pass; nginx answers 500), 500 for any
/// other failure (EIO, ELOOP…). Never 404 for a file that exists.
pub(crate) fn io_error_status(e: &io::Error) -> u16 {
    match e.raw_os_error() {
        Some(libc::ENOENT | libc::ENOTDIR | libc::ENAMETOOLONG) => 404,
        Some(libc::EACCES | libc::EPERM) => 403,
        Some(libc::EMFILE | libc::ENFILE) => 503,
        _ => 500,
    }
}

/// An OS error as nginx prints it: `24: Too many open files`.
pub(crate) fn errno_text(e: &io::Error) -> String {
    match e.raw_os_error() {
        Some(code) => {
            let text = e.to_string();
            let text = text.split(" (os error").next().unwrap_or_default();
            format!("{code}: {text}")
        }
        None => e.to_string(),
    }
}

pub(crate) fn header_pair(name: &'static str, value: impl Into<Bytes>) -> (Bytes, Bytes) {
    (Bytes::from_static(name.as_bytes()), value.into())
}

pub(crate) fn static_meta() -> ResponseMeta {
    ResponseMeta {
        app_id: -1,
        ..ResponseMeta::default()
    }
}

/// Answer with the file at `path` (already opened for `meta` by the
/// caller's stat): 200, 206 or 304, or a [`Refusal`].
pub(crate) fn respond_file(
    path: &Path,
    meta: &Metadata,
    request: &FileRequest<'_>,
    options: FileOptions<'_>,
    cache: &Mutex<ContentCache>,
) -> Result<Response, Refusal> {
    let mut headers = vec![header_pair(
        "Content-Type",
        Bytes::copy_from_slice(options.content_type.as_bytes()),
    )];
    if let Some(coding) = options.encoding {
        headers.push(header_pair("Content-Encoding", coding));
    }
    if options.vary {
        headers.push(header_pair("Vary", "Accept-Encoding"));
    }
    let size = meta.len();
    // A cached small file comes with its validators already formatted.
    let cached = cache
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get(path, meta);
    let (cached, v) = match cached {
        Some((bytes, v)) => (Some(bytes), v),
        None => {
            let mtime = meta
                .modified()
                .ok()
                .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_secs());
            (None, Validators::new(mtime, size))
        }
    };
    headers.push(header_pair("Last-Modified", v.last_modified.clone()));
    headers.push(header_pair("ETag", v.etag.clone()));
    headers.extend(options.extra);
    match evaluate(
        &v,
        request.if_match,
        request.if_unmodified_since,
        request.if_none_match,
        request.if_modified_since,
    ) {
        Condition::NotModified => {
            headers.retain(|(n, _)| {
                !n.eq_ignore_ascii_case(b"content-type")
                    && !n.eq_ignore_ascii_case(b"content-encoding")
            });
            return Ok(Response {
                status: 304,
                reason: Bytes::from_static(b"Not Modified"),
                headers,
                body: ResponseBody::Empty,
                meta: static_meta(),
            });
        }
        Condition::Failed => {
            headers.remove(0);
            return Err(Refusal {
                status: 412,
                headers,
                cause: None,
            });
        }
        Condition::Proceed => {}
    }
    let ranges = match request.range {
        Some(range) if request.if_range.is_none_or(|ir| if_range_allows(ir, &v)) => {
            parse_ranges(range, size)
        }
        _ => Ranges::Full,
    };
    if ranges == Ranges::Unsatisfiable {
        headers.remove(0);
        headers.push(header_pair("Content-Range", format!("bytes */{size}")));
        return Err(Refusal {
            status: 416,
            headers,
            cause: None,
        });
    }
    let source = Source {
        path,
        meta,
        cache,
        cached,
        validators: &v,
    };
    match body(&source, ranges, options.content_type, size, &mut headers) {
        Ok((status, reason, body)) => Ok(Response {
            status,
            reason: Bytes::from_static(reason.as_bytes()),
            headers,
            body,
            meta: static_meta(),
        }),
        Err(e) => Err(Refusal {
            status: io_error_status(&e),
            headers: Vec::new(),
            cause: Some(e),
        }),
    }
}

/// Where the body comes from: the cache's copy, or the file.
struct Source<'a> {
    path: &'a Path,
    meta: &'a Metadata,
    cache: &'a Mutex<ContentCache>,
    /// The content, if the cache had it.
    cached: Option<Bytes>,
    validators: &'a Validators,
}

/// The body for the chosen ranges, adding Content-Range/Content-Type as needed.
fn body(
    source: &Source<'_>,
    ranges: Ranges,
    content_type: &str,
    size: u64,
    headers: &mut Vec<(Bytes, Bytes)>,
) -> io::Result<(u16, &'static str, ResponseBody)> {
    match ranges {
        Ranges::Full | Ranges::Unsatisfiable => {
            // As nginx: a full answer says ranges are possible; a 206 does not.
            headers.push(header_pair("Accept-Ranges", "bytes"));
            Ok((200, "OK", whole(source)?))
        }
        Ranges::Partial(parts) if parts.len() == 1 => {
            let (start, end) = parts[0];
            headers.push(header_pair(
                "Content-Range",
                format!("bytes {start}-{end}/{size}"),
            ));
            let body = match whole(source)? {
                ResponseBody::Full(all) => {
                    ResponseBody::Full(all.slice(start as usize..=end as usize))
                }
                ResponseBody::File { file, .. } => ResponseBody::File {
                    file,
                    offset: start,
                    len: end - start + 1,
                },
                other => other,
            };
            Ok((206, "Partial Content", body))
        }
        Ranges::Partial(parts) => {
            let total: u64 = parts.iter().map(|(s, e)| e - s + 1).sum();
            if total > MAX_MULTIPART_BYTES {
                headers.push(header_pair("Accept-Ranges", "bytes"));
                return Ok((200, "OK", whole(source)?));
            }
            let file = std::fs::File::open(source.path)?;
            let mut out = Vec::with_capacity(total as usize + parts.len() * 128);
            for (start, end) in parts {
                out.extend_from_slice(
                    format!(
                        "\r\n--{MULTIPART_BOUNDARY}\r\nContent-Type: {content_type}\r\nContent-Range: bytes {start}-{end}/{size}\r\n\r\n"
                    )
                    .as_bytes(),
                );
                let at = out.len();
                out.resize(at + (end - start + 1) as usize, 0);
                file.read_exact_at(&mut out[at..], start)?;
            }
            out.extend_from_slice(format!("\r\n--{MULTIPART_BOUNDARY}--\r\n").as_bytes());
            headers.retain(|(n, _)| !n.eq_ignore_ascii_case(b"content-type"));
            headers.push(header_pair(
                "Content-Type",
                format!("multipart/byteranges; boundary={MULTIPART_BOUNDARY}"),
            ));
            Ok((206, "Partial Content", ResponseBody::Full(Bytes::from(out))))
        }
    }
}

/// The whole file: from the content cache when small, else for sendfile.
fn whole(source: &Source<'_>) -> io::Result<ResponseBody> {
    if let Some(bytes) = &source.cached {
        return Ok(ResponseBody::Full(bytes.clone()));
    }
    let file = std::fs::File::open(source.path)?;
    let len = source.meta.len();
    let mut cache = source.cache.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(bytes) = cache.insert(source.path, source.meta, source.validators, &file)? {
        return Ok(ResponseBody::Full(bytes));
    }
    Ok(ResponseBody::File {
        file,
        offset: 0,
        len,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_errors_on_a_file_that_exists_are_never_404() {
        let status = |errno| io_error_status(&io::Error::from_raw_os_error(errno));
        assert_eq!(status(libc::ENOENT), 404);
        assert_eq!(status(libc::ENOTDIR), 404);
        assert_eq!(status(libc::EACCES), 403);
        assert_eq!(status(libc::EMFILE), 503);
        assert_eq!(status(libc::ENFILE), 503);
        assert_eq!(status(libc::EIO), 500);
        assert_eq!(status(libc::ELOOP), 500);
        assert_eq!(io_error_status(&io::Error::other("not an OS error")), 500);
    }

    #[test]
    fn os_errors_read_as_nginx_prints_them() {
        let e = io::Error::from_raw_os_error(libc::EMFILE);
        assert_eq!(errno_text(&e), "24: Too many open files");
        assert_eq!(errno_text(&io::Error::other("odd")), "odd");
    }
}
