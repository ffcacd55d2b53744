//! The compression directives of `http`, `server` and `location` blocks:
//! nginx's gzip filter (`gzip`, `gzip_types`, `gzip_min_length`,
//! `gzip_comp_level`, `gzip_buffers`), the core module's `gzip_http_version`,
//! `gzip_proxied` and `gzip_disable`, and ngx_brotli's `brotli`,
//! `brotli_types`, `brotli_comp_level`, `brotli_min_length`,
//! `brotli_window` (`brotli_buffers` is deprecated and unused there too).
//! Read into a [`CompressLayer`] with nginx's checks, then merged as
//! `ngx_http_gzip_merge_conf`, `ngx_http_core_merge_loc_conf` and
//! `ngx_http_brotli_merge_conf` merge them: a value set in a block wins,
//! `gzip_types`/`brotli_types` and the `gzip_disable` regexes are taken
//! whole, `gzip_disable msie6` is inherited on its own, and the
//! `gzip_proxied` keywords of one block accumulate.

use crate::site::{CompressSettings, CompressTypes, GzipProxied, MinHttpVersion, Pattern};

use super::super::ast::{Directive, NginxError};
use super::Ctx;
use super::common::once;
use super::values::{arg, flag, invalid_value, number, parse_size, size};

/// The compression directives one block sets (`None`: inherit).
#[derive(Debug, Clone, Default)]
pub(super) struct CompressLayer {
    pub gzip: Option<bool>,
    /// `gzip_types` values of this block, in order (several directives add up).
    pub gzip_types: Option<Vec<String>>,
    pub gzip_min_length: Option<u64>,
    pub gzip_level: Option<u32>,
    pub gzip_buffers: Option<(usize, usize)>,
    pub gzip_http_version: Option<MinHttpVersion>,
    pub gzip_proxied: Option<u16>,
    pub gzip_disable: Option<Vec<Pattern>>,
    pub gzip_disable_msie6: Option<bool>,
    pub brotli: Option<bool>,
    pub brotli_types: Option<Vec<String>>,
    pub brotli_min_length: Option<u64>,
    pub brotli_level: Option<u32>,
    pub brotli_window_bits: Option<u32>,
}

/// `ngx_conf_check_num_bounds`' message.
fn bounds(d: &Directive, n: u64, low: u64, high: u64) -> Result<u32, NginxError> {
    if n < low || n > high {
        return Err(NginxError::at(
            d,
            format!("value must be between {low} and {high}"),
        ));
    }
    Ok(n as u32)
}

/// `N SIZE` (`ngx_conf_set_bufs_slot`).
fn bufs(d: &Directive) -> Result<(usize, usize), NginxError> {
    let n = arg(d, 0)?
        .parse::<usize>()
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| invalid_value(d))?;
    let s = parse_size(arg(d, 1)?)
        .and_then(|s| usize::try_from(s).ok())
        .filter(|s| *s > 0)
        .ok_or_else(|| invalid_value(d))?;
    Ok((n, s))
}

/// `brotli_window SIZE`: a power of two from 1k to 16m, kept as its log.
fn window_bits(d: &Directive) -> Result<u32, NginxError> {
    let n = size(d)?;
    if !n.is_power_of_two() || !(1024..=16 * 1024 * 1024).contains(&n) {
        return Err(NginxError::at(
            d,
            format!("\"{}\" directive must be power of 2 from 1k to 16m", d.name),
        ));
    }
    Ok(n.trailing_zeros())
}

/// Apply one compression directive. `Ok(false)`: not one of these.
pub(super) fn apply(
    ctx: &mut Ctx,
    layer: &mut CompressLayer,
    d: &Directive,
) -> Result<bool, NginxError> {
    match d.name.as_str() {
        "gzip" => once(&mut layer.gzip, d, flag(d)?)?,
        "gzip_types" => layer
            .gzip_types
            .get_or_insert_with(Vec::new)
            .extend(d.values().map(str::to_string)),
        "gzip_min_length" => once(&mut layer.gzip_min_length, d, size(d)?)?,
        "gzip_comp_level" => {
            let level = bounds(d, number(d)?, 1, 9)?;
            once(&mut layer.gzip_level, d, level)?;
        }
        "gzip_buffers" => once(&mut layer.gzip_buffers, d, bufs(d)?)?,
        "gzip_http_version" => {
            let v = match arg(d, 0)? {
                "1.0" => MinHttpVersion::Http10,
                "1.1" => MinHttpVersion::Http11,
                other => return Err(NginxError::at(d, format!("invalid value \"{other}\""))),
            };
            once(&mut layer.gzip_http_version, d, v)?;
        }
        "gzip_proxied" => {
            let mut bits = layer.gzip_proxied.unwrap_or(0);
            for v in d.values() {
                let Some(bit) = GzipProxied::keyword(v) else {
                    return Err(NginxError::at(d, format!("invalid value \"{v}\"")));
                };
                if bits & bit != 0 {
                    ctx.warn(d, &format!("duplicate value \"{v}\""));
                }
                bits |= bit;
            }
            layer.gzip_proxied = Some(bits);
        }
        "gzip_disable" => {
            let list = layer.gzip_disable.get_or_insert_with(Vec::new);
            for v in d.values() {
                match v {
                    "msie6" => layer.gzip_disable_msie6 = Some(true),
                    // Only with nginx's degradation module, not in its builds.
                    "degradation" => {}
                    _ => list.push(super::rewrite::compile(ctx, d, v, true)?),
                }
            }
        }
        "brotli" => once(&mut layer.brotli, d, flag(d)?)?,
        "brotli_types" => layer
            .brotli_types
            .get_or_insert_with(Vec::new)
            .extend(d.values().map(str::to_string)),
        "brotli_min_length" => once(&mut layer.brotli_min_length, d, size(d)?)?,
        "brotli_comp_level" => {
            let level = bounds(d, number(d)?, 0, 11)?;
            once(&mut layer.brotli_level, d, level)?;
        }
        "brotli_window" => once(&mut layer.brotli_window_bits, d, window_bits(d)?)?,
        "brotli_buffers" => {
            bufs(d)?;
        }
        _ => return Ok(false),
    }
    Ok(true)
}

impl CompressLayer {
    /// True when the block sets nothing (its parent's settings are shared).
    fn is_empty(&self) -> bool {
        self.gzip.is_none()
            && self.gzip_types.is_none()
            && self.gzip_min_length.is_none()
            && self.gzip_level.is_none()
            && self.gzip_buffers.is_none()
            && self.gzip_http_version.is_none()
            && self.gzip_proxied.is_none()
            && self.gzip_disable.is_none()
            && self.gzip_disable_msie6.is_none()
            && self.brotli.is_none()
            && self.brotli_types.is_none()
            && self.brotli_min_length.is_none()
            && self.brotli_level.is_none()
            && self.brotli_window_bits.is_none()
    }

    /// This block's settings over its parent's.
    pub(super) fn resolve(
        &self,
        parent: &std::sync::Arc<CompressSettings>,
    ) -> std::sync::Arc<CompressSettings> {
        if self.is_empty() {
            return parent.clone();
        }
        let p = &**parent;
        let types = |own: &Option<Vec<String>>, inherited: &CompressTypes| match own {
            Some(values) => CompressTypes::from_values(values.iter().map(String::as_str)),
            None => inherited.clone(),
        };
        std::sync::Arc::new(CompressSettings {
            gzip: self.gzip.unwrap_or(p.gzip),
            gzip_types: types(&self.gzip_types, &p.gzip_types),
            gzip_min_length: self.gzip_min_length.unwrap_or(p.gzip_min_length),
            gzip_level: self.gzip_level.unwrap_or(p.gzip_level),
            gzip_buffers: self.gzip_buffers.or(p.gzip_buffers),
            gzip_http_version: self.gzip_http_version.unwrap_or(p.gzip_http_version),
            gzip_proxied: self.gzip_proxied.map_or(p.gzip_proxied, GzipProxied),
            gzip_disable: self
                .gzip_disable
                .clone()
                .unwrap_or_else(|| p.gzip_disable.clone()),
            gzip_disable_msie6: self.gzip_disable_msie6.unwrap_or(p.gzip_disable_msie6),
            brotli: self.brotli.unwrap_or(p.brotli),
            brotli_types: types(&self.brotli_types, &p.brotli_types),
            brotli_min_length: self.brotli_min_length.unwrap_or(p.brotli_min_length),
            brotli_level: self.brotli_level.unwrap_or(p.brotli_level),
            brotli_window_bits: self.brotli_window_bits.unwrap_or(p.brotli_window_bits),
        })
    }
}
