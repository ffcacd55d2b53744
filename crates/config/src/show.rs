//! `--show-config`: the effective settings printed as an ini file that,
//! read back with `--ini`, gives the same settings (and so prints the same
//! file again).

use crate::Setting;

/// Options that act at once rather than configure, left out of the output
/// (printing `show-config` would make the output print itself, not start).
const NOT_SHOWN: &[&str] = &["help", "version", "show-config"];

/// The settings as an ini file: `[uwsgi]` then one `key = value` line per
/// setting in order, lists repeated, switches as `true`/`false`, `%` written
/// `%%` so it survives the magic-variable pass when read back, and newlines,
/// control characters and whitespace at a value's ends as `%\xHH`, so no
/// value can add a line of its own (see `magic::escape`).
pub fn show_config(settings: &[Setting]) -> String {
    let mut out = String::from(";portico instance configuration\n[uwsgi]\n");
    for s in settings
        .iter()
        .filter(|s| !NOT_SHOWN.contains(&s.option.name))
    {
        out.push_str(s.option.name);
        out.push_str(" = ");
        out.push_str(&crate::magic::escape(&s.value));
        out.push('\n');
    }
    out.push_str(";end of configuration\n");
    out
}
