//! Argument values as nginx reads them: sizes (`1m`, `512k`), times
//! (`60s`, `1h30m`, `500ms`), `on`/`off` flags and plain numbers, each with
//! the error message nginx prints for a bad one. Nothing here knows which
//! directive it serves beyond the name used in the message.

use std::time::Duration;

use super::super::ast::{Directive, NginxError};

/// The one argument of a one-argument directive (the reader checked the count).
pub(super) fn arg(d: &Directive, i: usize) -> Result<&str, NginxError> {
    d.args.get(i).map(|a| a.value.as_str()).ok_or_else(|| {
        NginxError::at(
            d,
            format!("invalid number of arguments in \"{}\" directive", d.name),
        )
    })
}

/// `"NAME" directive invalid value`: nginx's wording for a bad size or time.
pub(super) fn invalid_value(d: &Directive) -> NginxError {
    NginxError::at(d, format!("\"{}\" directive invalid value", d.name))
}

/// A size as `ngx_parse_size`: digits with an optional `k`, `m` or `g`.
pub(super) fn parse_size(text: &str) -> Option<u64> {
    let (digits, scale) = match text.as_bytes().last()? {
        b'k' | b'K' => (&text[..text.len() - 1], 1024),
        b'm' | b'M' => (&text[..text.len() - 1], 1024 * 1024),
        b'g' | b'G' => (&text[..text.len() - 1], 1024 * 1024 * 1024),
        _ => (text, 1),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse::<u64>().ok()?.checked_mul(scale)
}

/// A time as `ngx_parse_time`: `N[unit]...` with units `y M w d h m s ms`
/// each at most once and in that order; no unit means seconds. With
/// `seconds_only` (nginx's `is_sec`), `ms` is not allowed. Spaces between
/// parts are allowed, as nginx allows them.
pub(super) fn parse_time(text: &str, seconds_only: bool) -> Option<Duration> {
    const UNITS: [(&str, u64); 8] = [
        ("y", 365 * 86_400_000),
        ("M", 30 * 86_400_000),
        ("w", 7 * 86_400_000),
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("ms", 1),
        ("m", 60_000),
        ("s", 1000),
    ];
    // Order in which units must appear (index into an ordering table).
    fn rank(unit: &str) -> usize {
        match unit {
            "y" => 0,
            "M" => 1,
            "w" => 2,
            "d" => 3,
            "h" => 4,
            "m" => 5,
            "s" => 6,
            _ => 7, // ms
        }
    }
    let mut total_ms: u64 = 0;
    let mut last_rank: Option<usize> = None;
    let mut rest = text.trim_start_matches(' ');
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(|b| b.is_ascii_digit()).count();
        if digits == 0 {
            return None;
        }
        let n: u64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let (unit, scale) = match UNITS.iter().find(|(u, _)| rest.starts_with(u)) {
            Some(&(u, s)) => (u, s),
            None if rest.is_empty() || rest.starts_with(' ') => {
                // A bare number counts as seconds, and must be last.
                if !rest.trim_start_matches(' ').is_empty() {
                    return None;
                }
                ("s", 1000)
            }
            None => return None,
        };
        if unit == "ms" && seconds_only {
            return None;
        }
        let r = rank(unit);
        if last_rank.is_some_and(|l| l >= r) {
            return None;
        }
        last_rank = Some(r);
        if rest.starts_with(unit) {
            rest = &rest[unit.len()..];
        }
        total_ms = total_ms.checked_add(n.checked_mul(scale)?)?;
        rest = rest.trim_start_matches(' ');
    }
    Some(Duration::from_millis(total_ms))
}

/// An `on`/`off` flag (`ngx_conf_set_flag_slot` and its message).
pub(super) fn flag(d: &Directive) -> Result<bool, NginxError> {
    let v = arg(d, 0)?;
    if v.eq_ignore_ascii_case("on") {
        Ok(true)
    } else if v.eq_ignore_ascii_case("off") {
        Ok(false)
    } else {
        Err(NginxError::at(
            d,
            format!(
                "invalid value \"{v}\" in \"{}\" directive, it must be \"on\" or \"off\"",
                d.name
            ),
        ))
    }
}

/// A size argument (`"NAME" directive invalid value`).
pub(super) fn size(d: &Directive) -> Result<u64, NginxError> {
    parse_size(arg(d, 0)?).ok_or_else(|| invalid_value(d))
}

/// A time argument in milliseconds precision (nginx's msec slot).
pub(super) fn msec(d: &Directive) -> Result<Duration, NginxError> {
    parse_time(arg(d, 0)?, false).ok_or_else(|| invalid_value(d))
}

/// A plain number (`"NAME" directive invalid number`).
pub(super) fn number(d: &Directive) -> Result<u64, NginxError> {
    let v = arg(d, 0)?;
    if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
        return Err(NginxError::at(
            d,
            format!("\"{}\" directive invalid number", d.name),
        ));
    }
    v.parse::<u64>()
        .map_err(|_| NginxError::at(d, format!("\"{}\" directive invalid number", d.name)))
}

/// Digits only, as `ngx_atoi` reads them.
pub(super) fn atoi(text: &str) -> Option<u64> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_take_k_m_g_suffixes() {
        let cases = [
            ("0", Some(0)),
            ("512", Some(512)),
            ("512k", Some(512 * 1024)),
            ("1m", Some(1024 * 1024)),
            ("1M", Some(1024 * 1024)),
            ("2g", Some(2 * 1024 * 1024 * 1024)),
            ("1q", None),
            ("k", None),
            ("", None),
            ("-1", None),
            ("1.5m", None),
        ];
        for (text, want) in cases {
            assert_eq!(parse_size(text), want, "{text}");
        }
    }

    #[test]
    fn times_take_units_in_decreasing_order() {
        let ms = |n| Some(Duration::from_millis(n));
        let cases = [
            ("60", false, ms(60_000)),
            ("60s", false, ms(60_000)),
            ("1h30m", false, ms(5_400_000)),
            ("1h 30m", false, ms(5_400_000)),
            ("500ms", false, ms(500)),
            ("1s500ms", false, ms(1500)),
            ("500ms", true, None),
            ("1d", true, ms(86_400_000)),
            ("1w", true, ms(7 * 86_400_000)),
            ("1M", true, ms(30 * 86_400_000)),
            ("1y", true, ms(365 * 86_400_000)),
            ("30m1h", false, None),
            ("1m1m", false, None),
            ("1x", false, None),
            ("", false, None),
            ("s", false, None),
        ];
        for (text, sec, want) in cases {
            assert_eq!(parse_time(text, sec), want, "{text}");
        }
    }
}
