//! nginx.conf: the reader (tokens, blocks, `include`, contexts and argument
//! counts, nginx's own error messages) and the conversion of the tree into
//! a [`Site`](crate::site::Site).

mod ast;

pub use ast::{Arg, ConfTree, Directive, NginxError};
mod convert;

pub use convert::{
    DEFAULT_ONLY_DIRECTIVES, IGNORED_DIRECTIVES, UNSUPPORTED_DIRECTIVES, to_site,
    to_site_with_warnings,
};
