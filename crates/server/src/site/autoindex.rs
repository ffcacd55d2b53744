//! `autoindex on`: nginx's HTML directory listing, byte for byte
//! (`ngx_http_autoindex_html`, checked against nginx 1.22.1): a `../`
//! link, directories first, then files, each group by byte order of the
//! name; dotfiles left out; hrefs percent-escaped (everything but letters,
//! digits and `-._~`), names HTML-escaped and padded to 50 columns (a
//! longer name is cut to 47 bytes and ends in `..&gt;`), the mtime as
//! `dd-Mon-yyyy HH:MM` in UTC and the exact size right-aligned in 19
//! columns (`-` for directories).
//!
//! Names are measured in bytes, as nginx does without `charset utf-8`.
//! [`ListingStyle`] carries `autoindex_exact_size off` (sizes as `2M`,
//! `10K`) and `autoindex_localtime on` (local time).

use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::time::UNIX_EPOCH;

/// The width names are padded to (`NGX_HTTP_AUTOINDEX_NAME_LEN`).
const NAME_LEN: usize = 50;

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// One directory entry as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Entry {
    pub name: Vec<u8>,
    pub dir: bool,
    /// Seconds since the epoch.
    pub mtime: i64,
    pub size: u64,
}

/// Read `dir` for a listing: dotfiles are skipped; an entry that cannot be
/// stat'ed through a symlink is described by the link itself.
pub(crate) fn read_entries(dir: &Path) -> io::Result<Vec<Entry>> {
    let mut entries = Vec::new();
    for item in fs::read_dir(dir)? {
        let item = item?;
        let name = item.file_name().as_bytes().to_vec();
        if name.first() == Some(&b'.') {
            continue;
        }
        let path = item.path();
        let Ok(meta) = fs::metadata(&path).or_else(|_| fs::symlink_metadata(&path)) else {
            continue;
        };
        let mtime = meta
            .modified()
            .ok()
            .map_or(0, |t| match t.duration_since(UNIX_EPOCH) {
                Ok(d) => d.as_secs() as i64,
                Err(e) => -(e.duration().as_secs() as i64),
            });
        entries.push(Entry {
            name,
            dir: meta.is_dir(),
            mtime,
            size: meta.len(),
        });
    }
    Ok(entries)
}

/// `autoindex_exact_size` and `autoindex_localtime`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ListingStyle {
    pub exact_size: bool,
    pub localtime: bool,
}

impl Default for ListingStyle {
    /// nginx's defaults: exact sizes, UTC.
    fn default() -> Self {
        ListingStyle {
            exact_size: true,
            localtime: false,
        }
    }
}

/// The listing page for `uri` (the decoded request path, ending in `/`),
/// in nginx's default style.
#[cfg(test)]
pub(crate) fn render(uri: &[u8], entries: Vec<Entry>) -> Vec<u8> {
    render_styled(uri, entries, ListingStyle::default())
}

/// The listing page for `uri` (the decoded request path, ending in `/`).
pub(crate) fn render_styled(uri: &[u8], mut entries: Vec<Entry>, style: ListingStyle) -> Vec<u8> {
    entries.sort_by(|a, b| b.dir.cmp(&a.dir).then_with(|| a.name.cmp(&b.name)));
    let mut out = Vec::with_capacity(256 + entries.len() * 120);
    out.extend_from_slice(b"<html>\r\n<head><title>Index of ");
    escape_html(&mut out, uri);
    out.extend_from_slice(b"</title></head>\r\n<body>\r\n<h1>Index of ");
    escape_html(&mut out, uri);
    out.extend_from_slice(b"</h1><hr><pre><a href=\"../\">../</a>\r\n");
    for entry in &entries {
        line(&mut out, entry, style);
    }
    out.extend_from_slice(b"</pre><hr></body>\r\n</html>\r\n");
    out
}

fn line(out: &mut Vec<u8>, entry: &Entry, style: ListingStyle) {
    out.extend_from_slice(b"<a href=\"");
    escape_uri_component(out, &entry.name);
    if entry.dir {
        out.push(b'/');
    }
    out.extend_from_slice(b"\">");
    let mut len = entry.name.len();
    if len > NAME_LEN {
        escape_html(out, &entry.name[..NAME_LEN - 3]);
        out.extend_from_slice(b"..&gt;</a>");
    } else {
        escape_html(out, &entry.name);
        if entry.dir && len < NAME_LEN {
            out.push(b'/');
            len += 1;
        }
        out.extend_from_slice(b"</a>");
        out.resize(out.len() + (NAME_LEN - len), b' ');
    }
    out.push(b' ');
    let (year, month, day, hour, minute) = if style.localtime {
        local(entry.mtime)
    } else {
        civil(entry.mtime)
    };
    out.extend_from_slice(
        format!(
            "{day:02}-{}-{year} {hour:02}:{minute:02} ",
            MONTHS[(month - 1) as usize]
        )
        .as_bytes(),
    );
    match (style.exact_size, entry.dir) {
        (true, true) => out.extend_from_slice(b"                  -"),
        (true, false) => out.extend_from_slice(format!("{:>19}", entry.size).as_bytes()),
        (false, true) => out.extend_from_slice(b"      -"),
        (false, false) => out.extend_from_slice(approx_size(entry.size).as_bytes()),
    }
    out.extend_from_slice(b"\r\n");
}

/// `autoindex_exact_size off`: seven columns, `K`/`M`/`G` rounded half up.
fn approx_size(size: u64) -> String {
    const K: u64 = 1024;
    let scaled = |unit: u64, letter: char| {
        let mut n = size / unit;
        if size % unit > unit / 2 - 1 {
            n += 1;
        }
        format!("{n:>6}{letter}")
    };
    if size > K * K * K - 1 {
        scaled(K * K * K, 'G')
    } else if size > K * K - 1 {
        scaled(K * K, 'M')
    } else if size > 9999 {
        scaled(K, 'K')
    } else {
        format!(" {size:>6}")
    }
}

/// Local calendar fields of a Unix time (`autoindex_localtime on`).
fn local(secs: i64) -> (i64, u32, u32, u32, u32) {
    let t = secs as libc::time_t;
    // SAFETY: localtime_r fills the zeroed `tm` we own and reads only `t`.
    let tm = unsafe {
        let mut tm: libc::tm = std::mem::zeroed();
        if libc::localtime_r(&t, &mut tm).is_null() {
            return civil(secs);
        }
        tm
    };
    (
        i64::from(tm.tm_year) + 1900,
        (tm.tm_mon + 1) as u32,
        tm.tm_mday as u32,
        tm.tm_hour as u32,
        tm.tm_min as u32,
    )
}

/// `&`, `<`, `>` and `"` as entities (`ngx_escape_html`).
pub(crate) fn escape_html(out: &mut Vec<u8>, text: &[u8]) {
    for &b in text {
        match b {
            b'<' => out.extend_from_slice(b"&lt;"),
            b'>' => out.extend_from_slice(b"&gt;"),
            b'&' => out.extend_from_slice(b"&amp;"),
            b'"' => out.extend_from_slice(b"&quot;"),
            b => out.push(b),
        }
    }
}

/// Percent-escape all but the unreserved characters, upper-case hex
/// (`ngx_escape_uri(NGX_ESCAPE_URI_COMPONENT)`, as observed).
fn escape_uri_component(out: &mut Vec<u8>, text: &[u8]) {
    portico_proto::percent::percent_encode_into(out, text, portico_proto::percent::URI_COMPONENT);
}

/// UTC calendar fields of a Unix time: (year, month 1-12, day, hour, minute).
fn civil(secs: i64) -> (i64, u32, u32, u32, u32) {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Howard Hinnant's days-to-civil.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (
        year,
        month,
        day,
        (rem / 3600) as u32,
        (rem % 3600 / 60) as u32,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEC1: i64 = 1_796_136_240; // 01-Dec-2026 14:44 UTC

    fn file(name: &[u8], mtime: i64, size: u64) -> Entry {
        Entry {
            name: name.to_vec(),
            dir: false,
            mtime,
            size,
        }
    }

    fn dir(name: &[u8]) -> Entry {
        Entry {
            name: name.to_vec(),
            dir: true,
            mtime: DEC1,
            size: 4096,
        }
    }

    #[test]
    fn calendar_matches_gmtime() {
        assert_eq!(civil(0), (1970, 1, 1, 0, 0));
        assert_eq!(civil(1_577_934_245), (2020, 1, 2, 3, 4));
        assert_eq!(civil(DEC1), (2026, 12, 1, 14, 44));
        assert_eq!(civil(951_782_400), (2000, 2, 29, 0, 0));
    }

    /// The listing nginx 1.22.1 gave for the same tree (captured).
    #[test]
    fn listing_is_byte_for_byte_nginxs() {
        let entries = vec![
            file(b"a.txt", 1_577_934_245, 3),
            dir(b"b dir"),
            file(b"big.bin", DEC1, 2_097_152),
            file(b"<&>\"q.html", DEC1, 2),
            dir(b"sub"),
            file(
                b"very-long-file-name-that-exceeds-fifty-characters-for-sure.txt",
                DEC1,
                100,
            ),
            file(b"Zfile", DEC1, 2),
            dir(b"zdir"),
            file("é.txt".as_bytes(), DEC1, 2),
        ];
        let expected = concat!(
            "<html>\r\n<head><title>Index of /auto/</title></head>\r\n<body>\r\n",
            "<h1>Index of /auto/</h1><hr><pre><a href=\"../\">../</a>\r\n",
            "<a href=\"b%20dir/\">b dir/</a>                                             01-Dec-2026 14:44                   -\r\n",
            "<a href=\"sub/\">sub/</a>                                               01-Dec-2026 14:44                   -\r\n",
            "<a href=\"zdir/\">zdir/</a>                                              01-Dec-2026 14:44                   -\r\n",
            "<a href=\"%3C%26%3E%22q.html\">&lt;&amp;&gt;&quot;q.html</a>                                         01-Dec-2026 14:44                   2\r\n",
            "<a href=\"Zfile\">Zfile</a>                                              01-Dec-2026 14:44                   2\r\n",
            "<a href=\"a.txt\">a.txt</a>                                              02-Jan-2020 03:04                   3\r\n",
            "<a href=\"big.bin\">big.bin</a>                                            01-Dec-2026 14:44             2097152\r\n",
            "<a href=\"very-long-file-name-that-exceeds-fifty-characters-for-sure.txt\">very-long-file-name-that-exceeds-fifty-characte..&gt;</a> 01-Dec-2026 14:44                 100\r\n",
            "<a href=\"%C3%A9.txt\">é.txt</a>                                             01-Dec-2026 14:44                   2\r\n",
            "</pre><hr></body>\r\n</html>\r\n",
        );
        let got = render(b"/auto/", entries);
        assert_eq!(String::from_utf8_lossy(&got), expected);
    }

    #[test]
    fn approximate_sizes_round_as_nginx() {
        let table = [
            (2, "      2"),
            (9999, "   9999"),
            (10_000, "     10K"),
            (1_572_864, "      2M"),
            (2_097_152, "      2M"),
            (1_572_863, "      1M"),
            (3 << 30, "      3G"),
        ];
        for (size, want) in table {
            assert_eq!(approx_size(size), want[want.len() - 7..], "{size}");
        }
    }

    /// Lines nginx 1.22.1 gave with `autoindex_exact_size off` (captured).
    #[test]
    fn approximate_listing_lines_match_nginx() {
        let page = render_styled(
            b"/approx/",
            vec![
                dir(b"sub"),
                file(b"big.bin", DEC1, 2_097_152),
                file(b"k10.bin", DEC1, 10_000),
            ],
            ListingStyle {
                exact_size: false,
                localtime: false,
            },
        );
        let text = String::from_utf8_lossy(&page);
        for line in [
            "<a href=\"sub/\">sub/</a>                                               01-Dec-2026 14:44       -\r\n",
            "<a href=\"big.bin\">big.bin</a>                                            01-Dec-2026 14:44      2M\r\n",
            "<a href=\"k10.bin\">k10.bin</a>                                            01-Dec-2026 14:44     10K\r\n",
        ] {
            assert!(text.contains(line), "{line:?} in\n{text}");
        }
    }

    #[test]
    fn hrefs_escape_everything_but_unreserved() {
        let mut out = Vec::new();
        escape_uri_component(&mut out, b"a !\"#$%&'()*+,-.:;<=>?@[\\]^_`{|}~z\x01\xff");
        assert_eq!(
            out,
            b"a%20%21%22%23%24%25%26%27%28%29%2A%2B%2C-.%3A%3B%3C%3D%3E%3F%40%5B%5C%5D%5E_%60%7B%7C%7D~z%01%FF"
        );
    }

    #[test]
    fn the_title_is_html_escaped() {
        let page = render(b"/a<b>/", Vec::new());
        assert!(page.starts_with(b"<html>\r\n<head><title>Index of /a&lt;b&gt;/</title>"));
    }
}
