//! Portico's configuration: the option table (one source of truth for names,
//! aliases, kinds and help), the command-line reader, and the typed [`Config`]
//! the rest of the program is built from.
//!
//! Every source of options (argv, `UWSGI_*`/`PORTICO_*` environment
//! variables, ini, xml, yaml and json files) reduces to one ordered list of
//! [`Setting`]s ([`load`]), and that list to a [`Config`]
//! ([`Config::from_settings`]); [`show_config`] prints the list back as an
//! ini file. Nothing here touches sockets or Python. The formats and rules
//! are described for users in docs/config.md.

mod argv;
mod client;
mod compress_options;
mod error;
mod expand;
mod files;
mod formats;
#[doc(hidden)]
pub mod fuzz;
mod load;
mod magic;
mod model;
pub mod nginx;
mod observe;
mod show;
pub mod site;
mod table;

pub use argv::parse_args;
pub use compress_options::CompressOptions;
pub use error::{ConfigError, IoCause};
pub use load::{Loaded, MAX_INCLUDE_DEPTH, load};
pub use model::{
    AppSource, ClientOptions, Config, Http2Settings, ListenAddr, Listener, ListenerTls, Mount,
    ProcessConfig, Protocol, StaticOptions,
};
pub use observe::ObserveOptions;
pub use show::show_config;
pub use table::{Kind, OPTIONS, OptionSpec, Topic, help_text, lookup};

/// One option as given by a source, before it is typed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setting {
    /// The option's entry in the table.
    pub option: &'static OptionSpec,
    /// The value as written (`"true"` for a bare flag).
    pub value: String,
    /// Where it came from, for error messages (`command line`, `app.ini:12`).
    pub origin: String,
}

#[cfg(test)]
pub(crate) mod test_err {
    //! Test helper: which error a call that must fail returned.

    /// The error text of `result`; panics when it is `Ok`.
    pub(crate) fn text<T, E: std::fmt::Display>(result: Result<T, E>) -> String {
        match result {
            Ok(_) => panic!("expected an error, got Ok"),
            Err(e) => e.to_string(),
        }
    }

    /// The error text of `result` with its causes (`: `-joined, as the
    /// binary prints them); panics when it is `Ok`.
    pub(crate) fn chain<T, E: std::error::Error>(result: Result<T, E>) -> String {
        match result {
            Ok(_) => panic!("expected an error, got Ok"),
            Err(e) => {
                let mut text = e.to_string();
                let mut cause = e.source();
                while let Some(c) = cause {
                    text.push_str(": ");
                    text.push_str(&c.to_string());
                    cause = c.source();
                }
                text
            }
        }
    }
}
