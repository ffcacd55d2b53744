//! The handler a serving process answers with: the option-style app (the
//! WSGI apps behind uWSGI's `--static-map` files), or, with `-c
//! nginx.conf`, the Site router in front of it.

use std::path::PathBuf;
use std::sync::Arc;

use portico_config::Config;
use portico_config::site::Site;
use portico_server::{Handler, NotFound, StaticConfig, StaticMap, WithStatic};
use portico_supervisor::ReloadCheck;
use portico_wsgi::WsgiHandler;

/// What `-c nginx.conf` adds to a run.
#[derive(Clone)]
pub(crate) struct SiteSetup {
    pub site: Arc<Site>,
    /// nginx's prefix (`-p`): relative paths of the site resolve against it.
    pub prefix: PathBuf,
    /// Re-reads the configuration before a reload.
    pub reload_check: Option<ReloadCheck>,
}

/// The handler for this process.
pub(crate) fn front_handler(
    config: &Config,
    site: Option<&SiteSetup>,
    app: Option<WsgiHandler>,
) -> Arc<dyn Handler> {
    let app = with_statics(config, app);
    match site {
        None => app,
        Some(_setup) => app,
    }
}

/// The handler for this process: the apps, behind the static maps if any.
pub(crate) fn with_statics(config: &Config, app: Option<WsgiHandler>) -> Arc<dyn Handler> {
    let app: Arc<dyn Handler> = match app {
        Some(app) => Arc::new(app),
        None => Arc::new(NotFound),
    };
    let s = &config.statics;
    if s.maps.is_empty() && s.check_static.is_empty() {
        return app;
    }
    let mut maps: Vec<StaticMap> = s
        .maps
        .iter()
        .map(|(prefix, root, keep_prefix)| StaticMap {
            prefix: prefix.clone(),
            root: root.clone(),
            keep_prefix: *keep_prefix,
        })
        .collect();
    maps.extend(s.check_static.iter().map(|root| StaticMap {
        prefix: String::new(),
        root: root.clone(),
        keep_prefix: true,
    }));
    for map in &maps {
        portico_server::logln!(
            "static-map {} -> {}",
            if map.prefix.is_empty() {
                "/"
            } else {
                &map.prefix
            },
            map.root.display()
        );
    }
    Arc::new(WithStatic::new(
        StaticConfig {
            maps,
            index: s.index.clone(),
            expires_by_type: s.expires_by_type.clone(),
            skip_ext: s.skip_ext.clone(),
            safe: s.safe.clone(),
        },
        app,
    ))
}
