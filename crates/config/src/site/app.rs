//! The option-style part of a site: the listeners of `--http`/`--socket`
//! serve the app (behind uWSGI's `--static-map` files) through one server
//! with one location, so both configuration styles go through one router.

use std::sync::Arc;

use super::{Content, Listen, Location, LocationConfig, LocationMatch, Server};

impl Server {
    /// A server on `listens` whose every request goes to the option-style app.
    pub fn for_app(listens: Vec<Listen>) -> Server {
        let config = Arc::new(LocationConfig {
            // uWSGI has no body limit unless --limit-post (the app decides).
            client_max_body_size: 0,
            ..LocationConfig::default()
        });
        Server {
            listens,
            names: Vec::new(),
            rewrites: Vec::new(),
            locations: vec![Location {
                matcher: LocationMatch::Prefix {
                    uri: "/".to_string(),
                    stop_regex: false,
                },
                rewrites: Vec::new(),
                locations: Vec::new(),
                content: Content::App,
                config: config.clone(),
                origin: "command line".to_string(),
            }],
            named: Vec::new(),
            config,
            origin: "command line".to_string(),
            tls: None,
        }
    }

    /// True for the option-style app server made by [`Server::for_app`].
    pub fn is_app_server(&self) -> bool {
        matches!(self.locations.as_slice(), [only] if matches!(only.content, Content::App))
            && self.names.is_empty()
    }
}
