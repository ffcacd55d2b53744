//! Portico's configuration: the option table (one source of truth for names,
//! aliases, kinds and help), the command-line reader, and the typed [`Config`]
//! the rest of the program is built from.
//!
//! Every source of options (today argv; ini, xml, yaml, json and env files
//! later) reduces to one ordered list of [`Setting`]s, and that list to a
//! [`Config`]. Nothing here touches sockets or Python.

mod argv;
mod error;
mod model;
mod table;

pub use argv::parse_args;
pub use error::ConfigError;
pub use model::{
    AppSource, Config, ListenAddr, Listener, Mount, ProcessConfig, Protocol, StaticOptions,
};
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
