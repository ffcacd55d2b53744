//! HTTP/2 settings of the `http` and `server` levels: `http2 on|off`
//! (nginx 1.25.1+; 1.22 knows only `listen ... http2`),
//! `http2_max_concurrent_streams`, the header list limit
//! (`http2_max_header_size`, else `large_client_header_buffers` as nginx
//! 1.25.1+ reads it), `http2_max_field_size` (no field may exceed it, so
//! the list limit is at least it), `http2_chunk_size`,
//! `http2_recv_buffer_size` (a stream's receive window here) and the idle
//! timeout (`http2_idle_timeout`, else `keepalive_timeout` as nginx 1.19.7+
//! does) and the streams per connection (`keepalive_requests`, likewise).
//! The connection's settings are its default server's: HTTP/2 is
//! spoken before any Host is known.

use std::time::Duration;

use crate::Http2Settings;
use crate::site::Http2Config;

use super::super::ast::{Directive, NginxError};
use super::common::once;
use super::values::{arg, flag, invalid_value, number, parse_size, parse_time};

/// The HTTP/2 directives one block sets (`None`: inherited).
#[derive(Debug, Clone, Default)]
pub(super) struct Http2Layer {
    pub on: Option<bool>,
    pub max_concurrent_streams: Option<u32>,
    pub max_header_size: Option<u32>,
    pub max_field_size: Option<u32>,
    /// `large_client_header_buffers NUMBER SIZE`: their product.
    pub large_buffers: Option<u32>,
    pub chunk_size: Option<u32>,
    pub recv_buffer_size: Option<u32>,
    pub idle_timeout: Option<Duration>,
}

fn size_u32(d: &Directive, text: &str) -> Result<u32, NginxError> {
    parse_size(text)
        .and_then(|n| u32::try_from(n).ok())
        .filter(|n| *n > 0)
        .ok_or_else(|| invalid_value(d))
}

impl Http2Layer {
    /// Take directive `d` if it is one of these; `Ok(false)` if not.
    pub(super) fn apply(&mut self, d: &Directive) -> Result<bool, NginxError> {
        match d.name.as_str() {
            "http2" => once(&mut self.on, d, flag(d)?)?,
            "http2_max_concurrent_streams" => {
                let n = u32::try_from(number(d)?).map_err(|_| invalid_value(d))?;
                once(&mut self.max_concurrent_streams, d, n)?;
            }
            "http2_max_header_size" => {
                once(&mut self.max_header_size, d, size_u32(d, arg(d, 0)?)?)?
            }
            "http2_max_field_size" => once(&mut self.max_field_size, d, size_u32(d, arg(d, 0)?)?)?,
            "large_client_header_buffers" => {
                let count = arg(d, 0)?
                    .parse::<u32>()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or_else(|| invalid_value(d))?;
                let size = size_u32(d, arg(d, 1)?)?;
                once(&mut self.large_buffers, d, count.saturating_mul(size))?;
            }
            "http2_chunk_size" => once(&mut self.chunk_size, d, size_u32(d, arg(d, 0)?)?)?,
            "http2_recv_buffer_size" => {
                once(&mut self.recv_buffer_size, d, size_u32(d, arg(d, 0)?)?)?
            }
            "http2_idle_timeout" => {
                let t = parse_time(arg(d, 0)?, false).ok_or_else(|| invalid_value(d))?;
                once(&mut self.idle_timeout, d, t)?;
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// This layer over its parent's; `keepalive_timeout` and
    /// `keepalive_requests` are the block's own (`None`: not set here).
    pub(super) fn resolve(
        &self,
        parent: &Http2Config,
        keepalive_timeout: Option<Duration>,
        keepalive_requests: Option<u64>,
    ) -> Http2Config {
        let p = &parent.settings;
        let mut list = self
            .max_header_size
            .or(self.large_buffers)
            .unwrap_or(p.max_header_list_size);
        if let Some(field) = self.max_field_size {
            list = list.max(field);
        }
        Http2Config {
            on: self.on.unwrap_or(parent.on),
            settings: Http2Settings {
                max_concurrent_streams: self
                    .max_concurrent_streams
                    .unwrap_or(p.max_concurrent_streams),
                max_header_list_size: list,
                chunk_size: self.chunk_size.unwrap_or(p.chunk_size),
                recv_window: self
                    .recv_buffer_size
                    .unwrap_or(p.recv_window)
                    .clamp(65_535, (1 << 31) - 1),
                idle_timeout: self
                    .idle_timeout
                    .or(keepalive_timeout)
                    .unwrap_or(p.idle_timeout),
                max_requests: keepalive_requests.map_or(p.max_requests, Some),
            },
        }
    }
}
