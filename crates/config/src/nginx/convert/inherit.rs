//! nginx's inheritance from `http` to `server` to `location`, as the
//! `merge_loc_conf` functions of the core, index, headers, access, log,
//! rewrite and uwsgi modules do it: each block's directives fill a
//! [`Layer`] of "set here" values; [`Layer::resolve`] lays a layer over its
//! parent's resolved [`LocationConfig`]. A scalar set here wins; an array
//! directive (`index`, `error_page`, `add_header`, `allow`/`deny`,
//! `access_log`, `uwsgi_param`, `types`, and the proxy's: see `proxy.rs`)
//! is taken whole from the parent only
//! when this block sets none of it. `try_files` is never inherited
//! (`ngx_http_core_merge_loc_conf` does not merge it).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use crate::site::{
    AccessLogTarget, AccessRule, AddHeader, DocRoot, ErrorPage, ErrorPageTarget, Expires,
    LocationConfig, MimeTypes, NextUpstream, Template, TryFallback, TryFiles, UwsgiParam,
};

use super::super::ast::NginxError;
use super::compress::CompressLayer;
use super::http2::Http2Layer;
use super::proxy::ProxyLayer;

/// What one block sets itself (`None`: not set here, inherit).
#[derive(Debug, Clone, Default)]
pub(super) struct Layer {
    /// `root` or `alias`, with the directive's name for messages.
    pub root: Option<(DocRoot, &'static str)>,
    pub index: Option<Vec<Template>>,
    pub try_files: Option<TryFiles>,
    pub error_pages: Option<Vec<ErrorPage>>,
    pub add_headers: Option<Vec<AddHeader>>,
    pub expires: Option<Expires>,
    pub access: Option<Vec<AccessRule>>,
    pub client_max_body_size: Option<u64>,
    pub keepalive_timeout: Option<Duration>,
    pub keepalive_requests: Option<u64>,
    pub client_header_timeout: Option<Duration>,
    pub client_body_timeout: Option<Duration>,
    pub send_timeout: Option<Duration>,
    pub client_body_buffer_size: Option<u64>,
    pub client_body_temp_path: Option<std::path::PathBuf>,
    pub server_tokens: Option<bool>,
    pub types: Option<MimeTypes>,
    pub default_type: Option<String>,
    pub gzip_static: Option<bool>,
    /// `open_file_cache`: `Some(None)` is `off`.
    pub open_file_cache: Option<Option<usize>>,
    pub open_file_cache_valid: Option<Duration>,
    pub autoindex: Option<bool>,
    pub access_log: Option<Vec<AccessLogTarget>>,
    pub uwsgi_params: Option<Vec<UwsgiParam>>,
    pub uwsgi_connect_timeout: Option<Duration>,
    pub uwsgi_send_timeout: Option<Duration>,
    pub uwsgi_read_timeout: Option<Duration>,
    pub uwsgi_buffering: Option<bool>,
    pub uwsgi_intercept_errors: Option<bool>,
    /// `uwsgi_next_upstream` (the set, `off` seen), tries, timeout.
    pub uwsgi_next_upstream: Option<(NextUpstream, bool)>,
    pub uwsgi_next_upstream_tries: Option<u32>,
    pub uwsgi_next_upstream_timeout: Option<Duration>,
    /// `charset NAME|off` (`Some(None)`: `off` set here).
    pub charset: Option<Option<String>>,
    pub internal: Option<bool>,
    pub autoindex_exact_size: Option<bool>,
    pub autoindex_localtime: Option<bool>,
    pub gzip_vary: Option<bool>,
    /// `gzip*` and `brotli*`.
    pub compress: CompressLayer,
    /// The `proxy_*` settings (and `resolver`).
    pub proxy: ProxyLayer,
    /// `http2` and the `http2_*` limits.
    pub http2: Http2Layer,
}

/// nginx's built-in MIME table, used when no `types {}` is set anywhere
/// (`ngx_http_core_default_types`).
pub(super) fn builtin_types() -> MimeTypes {
    MimeTypes::of([
        ("html", "text/html"),
        ("gif", "image/gif"),
        ("jpg", "image/jpeg"),
    ])
}

/// The configuration above `http {}`: nginx's defaults, with `root html`
/// and the default `access_log logs/access.log combined` under the prefix.
pub(super) fn base_config(prefix: &Path) -> LocationConfig {
    LocationConfig {
        root: DocRoot::Root(Template::literal(&prefix.join("html").to_string_lossy())),
        types: Arc::new(builtin_types()),
        access_log: vec![AccessLogTarget::File {
            path: prefix.join("logs/access.log"),
            format: "combined".to_string(),
        }],
        // nginx's `keepalive_requests` default limits HTTP/2 streams too.
        http2: crate::site::Http2Config {
            on: false,
            settings: crate::Http2Settings {
                max_requests: Some(crate::site::DEFAULT_KEEPALIVE_REQUESTS),
                ..crate::Http2Settings::default()
            },
        },
        ..LocationConfig::default()
    }
}

fn pick<T: Clone>(own: &Option<T>, parent: &T) -> T {
    own.clone().unwrap_or_else(|| parent.clone())
}

impl Layer {
    /// This layer over its parent's resolved configuration.
    pub(super) fn resolve(&self, parent: &LocationConfig) -> LocationConfig {
        LocationConfig {
            root: self
                .root
                .as_ref()
                .map(|(root, _)| root.clone())
                .unwrap_or_else(|| parent.root.clone()),
            index: pick(&self.index, &parent.index),
            try_files: self.try_files.clone(),
            error_pages: pick(&self.error_pages, &parent.error_pages),
            add_headers: pick(&self.add_headers, &parent.add_headers),
            expires: pick(&self.expires, &parent.expires),
            access: pick(&self.access, &parent.access),
            client_max_body_size: pick(&self.client_max_body_size, &parent.client_max_body_size),
            keepalive_timeout: pick(&self.keepalive_timeout, &parent.keepalive_timeout),
            keepalive_requests: pick(&self.keepalive_requests, &parent.keepalive_requests),
            client_header_timeout: pick(&self.client_header_timeout, &parent.client_header_timeout),
            client_body_timeout: pick(&self.client_body_timeout, &parent.client_body_timeout),
            send_timeout: pick(&self.send_timeout, &parent.send_timeout),
            client_body_buffer_size: pick(
                &self.client_body_buffer_size,
                &parent.client_body_buffer_size,
            ),
            client_body_temp_path: self
                .client_body_temp_path
                .clone()
                .or_else(|| parent.client_body_temp_path.clone()),
            server_tokens: pick(&self.server_tokens, &parent.server_tokens),
            types: match &self.types {
                Some(types) => Arc::new(types.clone()),
                None => parent.types.clone(),
            },
            default_type: pick(&self.default_type, &parent.default_type),
            gzip_static: pick(&self.gzip_static, &parent.gzip_static),
            open_file_cache: pick(&self.open_file_cache, &parent.open_file_cache),
            open_file_cache_valid: pick(&self.open_file_cache_valid, &parent.open_file_cache_valid),
            autoindex: pick(&self.autoindex, &parent.autoindex),
            access_log: pick(&self.access_log, &parent.access_log),
            uwsgi_params: pick(&self.uwsgi_params, &parent.uwsgi_params),
            uwsgi_connect_timeout: pick(&self.uwsgi_connect_timeout, &parent.uwsgi_connect_timeout),
            uwsgi_send_timeout: pick(&self.uwsgi_send_timeout, &parent.uwsgi_send_timeout),
            uwsgi_read_timeout: pick(&self.uwsgi_read_timeout, &parent.uwsgi_read_timeout),
            uwsgi_buffering: pick(&self.uwsgi_buffering, &parent.uwsgi_buffering),
            uwsgi_intercept_errors: pick(
                &self.uwsgi_intercept_errors,
                &parent.uwsgi_intercept_errors,
            ),
            uwsgi_next_upstream: match self.uwsgi_next_upstream {
                Some((_, true)) => NextUpstream::OFF,
                Some((set, false)) => set,
                None => parent.uwsgi_next_upstream,
            },
            uwsgi_next_upstream_tries: pick(
                &self.uwsgi_next_upstream_tries,
                &parent.uwsgi_next_upstream_tries,
            ),
            uwsgi_next_upstream_timeout: pick(
                &self.uwsgi_next_upstream_timeout,
                &parent.uwsgi_next_upstream_timeout,
            ),
            charset: pick(&self.charset, &parent.charset),
            internal: pick(&self.internal, &parent.internal),
            autoindex_exact_size: pick(&self.autoindex_exact_size, &parent.autoindex_exact_size),
            autoindex_localtime: pick(&self.autoindex_localtime, &parent.autoindex_localtime),
            gzip_vary: pick(&self.gzip_vary, &parent.gzip_vary),
            compress: self.compress.resolve(&parent.compress),
            // nginx's default headers are added by `proxy::finish` once
            // the nested blocks have inherited the configured ones.
            proxy: Arc::new(self.proxy.resolve(&parent.proxy)),
            http2: self.http2.resolve(
                &parent.http2,
                self.keepalive_timeout,
                self.keepalive_requests,
            ),
        }
    }

    /// Every template this layer holds, for the variable pass.
    pub(super) fn templates_mut(
        &mut self,
        f: &mut dyn FnMut(&mut Template) -> Result<(), NginxError>,
    ) -> Result<(), NginxError> {
        if let Some((DocRoot::Root(t) | DocRoot::Alias(t), _)) = &mut self.root {
            f(t)?;
        }
        for t in self.index.iter_mut().flatten() {
            f(t)?;
        }
        if let Some(tf) = &mut self.try_files {
            for t in &mut tf.files {
                f(t)?;
            }
            if let TryFallback::Uri(t) = &mut tf.fallback {
                f(t)?;
            }
        }
        for page in self.error_pages.iter_mut().flatten() {
            if let ErrorPageTarget::Uri(t) | ErrorPageTarget::Redirect(t) = &mut page.target {
                f(t)?;
            }
        }
        for h in self.add_headers.iter_mut().flatten() {
            f(&mut h.value)?;
        }
        for p in self.uwsgi_params.iter_mut().flatten() {
            f(&mut p.value)?;
        }
        self.proxy.templates_mut(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scalars_set_inside_win_and_others_are_inherited() {
        let parent = LocationConfig {
            client_max_body_size: 5,
            gzip_static: true,
            ..LocationConfig::default()
        };
        let layer = Layer {
            client_max_body_size: Some(7),
            ..Layer::default()
        };
        let got = layer.resolve(&parent);
        assert_eq!(got.client_max_body_size, 7);
        assert!(got.gzip_static);
    }

    #[test]
    fn try_files_is_not_inherited() {
        let parent = LocationConfig {
            try_files: Some(TryFiles {
                files: vec![],
                fallback: TryFallback::Code(404),
            }),
            ..LocationConfig::default()
        };
        assert!(Layer::default().resolve(&parent).try_files.is_none());
    }
}
