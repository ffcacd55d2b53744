//! nginx's two choices for a request, made on the [`Site`] model: which
//! `server {}` answers it ([`ServerTable::select`], by the connection's local
//! address and the Host), and which `location {}` inside it
//! ([`find_location`], by the normalised URI; [`find_named`] for `@name`).
//!
//! The rules follow nginx 1.22's code, not only its documentation:
//! `ngx_http_find_virtual_server` (exact name → longest `*.leading`
//! wildcard → longest `trailing.*` wildcard → first regex; a request without
//! Host looks up the name `""`) and `ngx_http_core_find_location` (see
//! [`find_location`]). Nothing here does I/O or validates the Host (a bad
//! Host is a 400 decided before selection).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};

use portico_config::site::{
    Content, ListenAddr, Location, LocationMatch, Server, ServerName, Site,
};
use regex::bytes::Regex;

use super::captures::Captures;

/// The local address a connection arrived on (what `getsockname` says).
pub(crate) type ConnAddr = ListenAddr;

/// The server chosen for a request, with the captures of the `server_name`
/// regex that chose it (empty otherwise).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Selected {
    /// Index into `Site::servers`.
    pub index: usize,
    pub captures: Captures,
}

/// Server selection precomputed from a [`Site`]: one group per distinct
/// listen address, each with its names sorted for lookup.
#[derive(Debug, Clone, Default)]
pub(crate) struct ServerTable {
    groups: Vec<ListenGroup>,
}

/// The servers sharing one listen address (nginx's `ngx_http_addr_conf_t`).
#[derive(Debug, Clone)]
struct ListenGroup {
    addr: ListenAddr,
    /// The `default_server`, else the first server with this listen.
    default: usize,
    /// Exact names (lower-case) → server; the first server wins a name.
    exact: HashMap<Box<[u8]>, usize>,
    /// `*.example.com` as `.example.com`, longest first.
    leading: Vec<(Box<[u8]>, usize)>,
    /// `mail.*` as `mail.`, longest first.
    trailing: Vec<(Box<[u8]>, usize)>,
    /// `~regex` names in configuration order.
    regexes: Vec<(Regex, usize)>,
    /// How many servers listen here (with one, nginx builds no name table).
    servers: usize,
    /// The server every request here gets, whatever its Host: the one
    /// server listening, when no regex name of it needs to run (for its
    /// captures). Set by `finish`.
    only: Option<usize>,
}

impl ListenGroup {
    fn new(addr: ListenAddr, first: usize) -> ListenGroup {
        ListenGroup {
            addr,
            default: first,
            exact: HashMap::new(),
            leading: Vec::new(),
            trailing: Vec::new(),
            regexes: Vec::new(),
            servers: 0,
            only: None,
        }
    }

    fn add_server(&mut self, index: usize, server: &Server) {
        self.servers += 1;
        if server.names.is_empty() {
            // No `server_name`: nginx gives the server the name "".
            self.exact.entry(Box::from(&b""[..])).or_insert(index);
        }
        for name in &server.names {
            match name {
                ServerName::Exact(n) => {
                    let key = n.to_ascii_lowercase().into_bytes().into_boxed_slice();
                    self.exact.entry(key).or_insert(index);
                }
                ServerName::LeadingWildcard(n) => {
                    let key = n.to_ascii_lowercase().into_bytes().into_boxed_slice();
                    self.leading.push((key, index));
                }
                ServerName::TrailingWildcard(n) => {
                    let key = n.to_ascii_lowercase().into_bytes().into_boxed_slice();
                    self.trailing.push((key, index));
                }
                ServerName::Regex(pattern) => self.regexes.push((pattern.regex.clone(), index)),
            }
        }
    }

    /// Sort the wildcards longest first (stable: the first server keeps a
    /// name written twice).
    fn finish(&mut self) {
        self.leading
            .sort_by_key(|(k, _)| std::cmp::Reverse(k.len()));
        self.trailing
            .sort_by_key(|(k, _)| std::cmp::Reverse(k.len()));
        // One server: a name found is that server, none found is the
        // default, that server too.
        self.only = (self.servers == 1 && self.regexes.is_empty()).then_some(self.default);
    }

    fn lookup(&self, host: &[u8]) -> Selected {
        self.find(host).unwrap_or(Selected {
            index: self.default,
            captures: Captures::default(),
        })
    }

    /// The server whose name matches `host`, `None` when none does.
    fn find(&self, host: &[u8]) -> Option<Selected> {
        let found = |index| {
            Some(Selected {
                index,
                captures: Captures::default(),
            })
        };
        if let Some(&index) = self.exact.get(host) {
            return found(index);
        }
        if !host.is_empty() {
            let leading = self
                .leading
                .iter()
                .find(|(suffix, _)| host.len() > suffix.len() && host.ends_with(suffix));
            if let Some(&(_, index)) = leading {
                return found(index);
            }
            let trailing = self
                .trailing
                .iter()
                .find(|(prefix, _)| host.len() > prefix.len() && host.starts_with(prefix));
            if let Some(&(_, index)) = trailing {
                return found(index);
            }
            for (regex, index) in &self.regexes {
                if let Some(captures) = Captures::of_match(regex, host) {
                    return Some(Selected {
                        index: *index,
                        captures,
                    });
                }
            }
        }
        None
    }
}

impl ServerTable {
    /// Group the site's servers by listen address, in configuration order.
    pub(crate) fn new(site: &Site) -> ServerTable {
        let mut groups: Vec<ListenGroup> = Vec::new();
        for (index, server) in site.servers.iter().enumerate() {
            for (nth, listen) in server.listens.iter().enumerate() {
                let at = match groups.iter().position(|g| g.addr == listen.addr) {
                    Some(at) => at,
                    None => {
                        groups.push(ListenGroup::new(listen.addr.clone(), index));
                        groups.len() - 1
                    }
                };
                let group = &mut groups[at];
                if listen.default_server {
                    group.default = index;
                }
                // A server listing one address twice is added once.
                if !server.listens[..nth].iter().any(|l| l.addr == listen.addr) {
                    group.add_server(index, server);
                }
            }
        }
        for group in &mut groups {
            group.finish();
        }
        ServerTable { groups }
    }

    /// The server for a request that arrived on `local` with Host `host`
    /// (as sent, or empty when absent: it is lower-cased and stripped of its
    /// port and of one trailing dot here). `None` only when no server
    /// listens on `local`, which a listener built from the same site
    /// cannot produce.
    pub(crate) fn select(&self, local: &ConnAddr, host: &[u8]) -> Option<Selected> {
        let group = self.group_for(local)?;
        if let Some(index) = group.only {
            return Some(Selected {
                index,
                captures: Captures::default(),
            });
        }
        let host = host_key(host);
        if host.iter().any(u8::is_ascii_uppercase) {
            Some(group.lookup(&host.to_ascii_lowercase()))
        } else {
            Some(group.lookup(host))
        }
    }

    /// Whether a TLS client's SNI name `sni` names a server on `local` as
    /// nginx's `ngx_http_ssl_servername` finds one: only where several
    /// servers share the address (with one, nginx has no name table).
    pub(crate) fn sni_names_a_server(&self, local: &ConnAddr, sni: &str) -> bool {
        self.group_for(local)
            .is_some_and(|g| g.servers > 1 && g.find(sni.to_ascii_lowercase().as_bytes()).is_some())
    }

    /// The default server of the address `local` arrived on (the one a
    /// TLS handshake without SNI gets its certificate from).
    pub(crate) fn default_for(&self, local: &ConnAddr) -> Option<usize> {
        self.group_for(local).map(|g| g.default)
    }

    /// The servers listening on `local`: an exact listen address, else the
    /// wildcard (`0.0.0.0` / `[::]`) of the same family and port.
    fn group_for(&self, local: &ConnAddr) -> Option<&ListenGroup> {
        let local = match local {
            ListenAddr::Tcp(addr) => unmap_v4(*addr),
            ListenAddr::Unix(path) => {
                return self
                    .groups
                    .iter()
                    .find(|g| matches!(&g.addr, ListenAddr::Unix(p) if p == path));
            }
        };
        let exact = self
            .groups
            .iter()
            .find(|g| matches!(&g.addr, ListenAddr::Tcp(a) if *a == local));
        exact.or_else(|| {
            self.groups.iter().find(|g| match &g.addr {
                ListenAddr::Tcp(a) => {
                    a.ip().is_unspecified()
                        && a.port() == local.port()
                        && a.is_ipv4() == local.is_ipv4()
                }
                ListenAddr::Unix(_) => false,
            })
        })
    }
}

/// `::ffff:a.b.c.d` (a v4 client on a dual-stack socket) as `a.b.c.d`.
fn unmap_v4(addr: SocketAddr) -> SocketAddr {
    match addr.ip() {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => SocketAddr::new(IpAddr::V4(v4), addr.port()),
            None => addr,
        },
        IpAddr::V4(_) => addr,
    }
}

/// The Host as nginx compares it: without `:port` and one trailing dot
/// (`[v6]` literals keep their brackets). Case is left to the caller.
pub(crate) fn host_key(host: &[u8]) -> &[u8] {
    let end = if host.first() == Some(&b'[') {
        host.iter()
            .position(|&b| b == b']')
            .map_or(host.len(), |i| i + 1)
    } else {
        host.iter().position(|&b| b == b':').unwrap_or(host.len())
    };
    let host = &host[..end];
    host.strip_suffix(b".").unwrap_or(host)
}

/// The location chosen for a URI.
#[derive(Debug, Clone)]
pub(crate) struct Found<'a> {
    pub location: &'a Location,
    /// The captures of the regex location that matched (empty for prefix
    /// and exact locations).
    pub captures: Captures,
    /// nginx's auto-redirect: the URI is the location's prefix without its
    /// trailing `/`, and the location passes requests upstream
    /// (`uwsgi_pass`): answer 301 with the URI plus `/` (args kept).
    pub redirect_slash: bool,
}

/// The outcome of one level of the search (nginx's `NGX_OK`, `NGX_DONE`,
/// `NGX_AGAIN`, `NGX_DECLINED`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    Exact,
    Redirect,
    Prefix,
    None,
}

/// The search's state: the location chosen so far (`r->loc_conf`) and the
/// captures of the last regex that matched.
struct Search<'a> {
    current: Option<&'a Location>,
    captures: Captures,
}

/// How deep nested locations are searched (nginx has no limit; configs
/// nest two or three levels). A bound keeps a hostile model finite.
const MAX_NESTING: usize = 16;

/// The location for `uri` (decoded, normalised, no args) among `locations`
/// (a server's, or a location's nested ones), as
/// `ngx_http_core_find_location` chooses it:
///
/// 1. among the prefix and `=` locations of this level: an `=` equal to the
///    URI wins at once; else the longest prefix is remembered (a prefix
///    equal to the whole URI too: regexes are still tried), and its nested
///    locations are searched first, by these same rules;
/// 2. unless the remembered prefix is `^~` or the nested search ended in an
///    `=`, the regex locations of this level are tried in order; the first
///    that matches wins, and its own nested locations are searched;
/// 3. else the remembered prefix (or the nested one found under it).
///
/// A `^~` stops the regexes of its own level only: regexes nested inside it
/// and those of the levels above are still tried (nginx's `noregex` is
/// local to each level). `None` when nothing matches: the server's own
/// configuration answers.
pub(crate) fn find_location<'a>(locations: &'a [Location], uri: &[u8]) -> Option<Found<'a>> {
    let mut search = Search {
        current: None,
        captures: Captures::default(),
    };
    let step = search_level(locations, uri, &mut search, 0);
    let location = search.current?;
    Some(Found {
        location,
        captures: search.captures,
        redirect_slash: step == Step::Redirect,
    })
}

fn search_level<'a>(
    locations: &'a [Location],
    uri: &[u8],
    search: &mut Search<'a>,
    depth: usize,
) -> Step {
    if depth > MAX_NESTING {
        return Step::None;
    }
    let mut step = static_level(locations, uri, search);
    let mut noregex = false;
    if step == Step::Prefix
        && let Some(prefix) = search.current
    {
        noregex = matches!(
            prefix.matcher,
            LocationMatch::Prefix {
                stop_regex: true,
                ..
            }
        );
        step = search_level(&prefix.locations, uri, search, depth + 1);
    }
    if step == Step::Exact || step == Step::Redirect {
        return step;
    }
    if !noregex {
        for location in locations {
            let LocationMatch::Regex(pattern) = &location.matcher else {
                continue;
            };
            if let Some(mut captures) = Captures::of_match(&pattern.regex, uri) {
                captures.inherit_names(&search.captures);
                search.current = Some(location);
                search.captures = captures;
                search_level(&location.locations, uri, search, depth + 1);
                return Step::Exact;
            }
        }
    }
    step
}

/// nginx's `ngx_http_core_find_static_location` for one level.
fn static_level<'a>(locations: &'a [Location], uri: &[u8], search: &mut Search<'a>) -> Step {
    let mut longest: Option<(&'a Location, usize)> = None;
    let mut redirect: Option<&'a Location> = None;
    for location in locations {
        let name = match &location.matcher {
            LocationMatch::Exact(name) => {
                if name.as_bytes() == uri {
                    search.current = Some(location);
                    return Step::Exact;
                }
                name.as_bytes()
            }
            LocationMatch::Prefix { uri: name, .. } => {
                let name = name.as_bytes();
                let longer = longest.is_none_or(|(_, len)| name.len() > len);
                if longer && uri.starts_with(name) {
                    longest = Some((location, name.len()));
                }
                name
            }
            LocationMatch::Regex(_) | LocationMatch::Named(_) => continue,
        };
        // `/app` asked, `/app/` passes upstream: nginx redirects to it.
        if redirect.is_none()
            && name.len() == uri.len() + 1
            && name.starts_with(uri)
            && name.ends_with(b"/")
            && auto_redirects(location)
        {
            redirect = Some(location);
        }
    }
    match (longest, redirect) {
        // A prefix equal to the URI is found before the redirect.
        (Some((location, len)), _) if len == uri.len() => {
            search.current = Some(location);
            Step::Prefix
        }
        (_, Some(location)) => {
            search.current = Some(location);
            Step::Redirect
        }
        (Some((location, _)), None) => {
            search.current = Some(location);
            Step::Prefix
        }
        (None, None) => Step::None,
    }
}

/// Whether nginx sets `auto_redirect` for a location: its content passes
/// the request upstream (`uwsgi_pass`; `proxy_pass` and the others alike).
fn auto_redirects(location: &Location) -> bool {
    matches!(location.content, Content::Uwsgi(_) | Content::Proxy(_))
}

/// The part of the URI that `alias` replaces in `location`: its prefix or
/// `=` URI ([`super::VarContext::location_prefix`]); `None` for a regex
/// location (its alias is the whole path) and a named one.
pub(crate) fn alias_prefix(location: &Location) -> Option<&[u8]> {
    match &location.matcher {
        LocationMatch::Exact(uri) | LocationMatch::Prefix { uri, .. } => Some(uri.as_bytes()),
        LocationMatch::Regex(_) | LocationMatch::Named(_) => None,
    }
}

/// The `location @name` block of a server (`name` with or without `@`).
pub(crate) fn find_named<'a>(server: &'a Server, name: &str) -> Option<&'a Location> {
    let name = name.strip_prefix('@').unwrap_or(name);
    server
        .named
        .iter()
        .find(|location| match &location.matcher {
            LocationMatch::Named(n) => n.strip_prefix('@').unwrap_or(n) == name,
            _ => false,
        })
}

#[cfg(test)]
#[path = "select_tests.rs"]
mod tests;
