//! Choosing the app for a request among `--mount`s, as uWSGI's
//! `--manage-script-name` does: the longest mountpoint that prefixes
//! PATH_INFO at a `/` boundary wins and becomes SCRIPT_NAME, PATH_INFO
//! keeps the rest. Otherwise the SCRIPT_NAME the front server sent picks a
//! mount by exact match, then the default app (mountpoint ''), else 404.

use bytes::Bytes;

/// The app chosen, and the SCRIPT_NAME/PATH_INFO to give it when they change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Route {
    pub app: usize,
    pub split: Option<(Bytes, Bytes)>,
}

/// The mount table of a worker.
#[derive(Debug, Clone)]
pub(crate) struct Mounts {
    /// (mountpoint, app index), longest mountpoint first; no default here.
    prefixed: Vec<(Bytes, usize)>,
    default: Option<usize>,
    manage_script_name: bool,
}

impl Mounts {
    /// `mountpoints[i]` belongs to app `i`; `""` is the default app.
    pub(crate) fn new(mountpoints: &[String], manage_script_name: bool) -> Mounts {
        let mut prefixed: Vec<(Bytes, usize)> = mountpoints
            .iter()
            .enumerate()
            .filter(|(_, m)| !m.is_empty())
            .map(|(i, m)| (Bytes::copy_from_slice(m.as_bytes()), i))
            .collect();
        prefixed.sort_by_key(|m| std::cmp::Reverse(m.0.len()));
        Mounts {
            prefixed,
            default: mountpoints.iter().position(String::is_empty),
            manage_script_name,
        }
    }

    /// Only a default app: every request goes to it unchanged.
    pub(crate) fn is_trivial(&self) -> bool {
        self.prefixed.is_empty() && self.default == Some(0)
    }

    /// The app for a request with this SCRIPT_NAME and PATH_INFO; `None`: 404.
    pub(crate) fn route(&self, script_name: &[u8], path_info: &Bytes) -> Option<Route> {
        if self.manage_script_name {
            for (mountpoint, app) in &self.prefixed {
                let boundary = matches!(path_info.get(mountpoint.len()), None | Some(b'/'));
                if path_info.starts_with(mountpoint) && boundary {
                    return Some(Route {
                        app: *app,
                        split: Some((mountpoint.clone(), path_info.slice(mountpoint.len()..))),
                    });
                }
            }
        }
        let script_name = script_name.strip_suffix(b"/").unwrap_or(script_name);
        if !script_name.is_empty()
            && let Some((_, app)) = self
                .prefixed
                .iter()
                .find(|(m, _)| m.as_ref() == script_name)
        {
            return Some(Route {
                app: *app,
                split: None,
            });
        }
        self.default.map(|app| Route {
            app,
            split: self
                .manage_script_name
                .then(|| (Bytes::new(), path_info.clone())),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(r: Option<Route>) -> Option<(usize, String, String)> {
        r.map(|r| {
            let (s, p) = r.split.unwrap_or_default();
            (
                r.app,
                String::from_utf8_lossy(&s).into_owned(),
                String::from_utf8_lossy(&p).into_owned(),
            )
        })
    }

    fn route(m: &Mounts, script: &str, path: &str) -> Option<(usize, String, String)> {
        split(m.route(script.as_bytes(), &Bytes::copy_from_slice(path.as_bytes())))
    }

    #[test]
    fn longest_mountpoint_at_a_slash_boundary_wins() {
        let m = Mounts::new(&["/myapp".into(), "/myapp/admin".into()], true);
        assert_eq!(
            route(&m, "", "/myapp/x"),
            Some((0, "/myapp".into(), "/x".into()))
        );
        assert_eq!(
            route(&m, "", "/myapp"),
            Some((0, "/myapp".into(), "".into()))
        );
        assert_eq!(
            route(&m, "", "/myapp/admin/y"),
            Some((1, "/myapp/admin".into(), "/y".into()))
        );
        assert_eq!(route(&m, "", "/myappX"), None, "no default app: 404");
        assert_eq!(route(&m, "", "/"), None);
    }

    #[test]
    fn unmatched_paths_go_to_the_default_app_unchanged() {
        let m = Mounts::new(&["".into(), "/myapp".into()], true);
        assert_eq!(
            route(&m, "", "/myappX"),
            Some((0, "".into(), "/myappX".into()))
        );
        assert_eq!(
            route(&m, "", "/myapp/a"),
            Some((1, "/myapp".into(), "/a".into()))
        );
    }

    #[test]
    fn nginx_style_script_name_with_full_path_info_is_split() {
        let m = Mounts::new(&["/myapp".into()], true);
        assert_eq!(
            route(&m, "/myapp", "/myapp/foo"),
            Some((0, "/myapp".into(), "/foo".into()))
        );
    }

    #[test]
    fn without_manage_script_name_the_sent_script_name_picks_the_mount() {
        let m = Mounts::new(&["/a".into(), "/b".into()], false);
        assert_eq!(
            split(m.route(b"/b", &Bytes::from_static(b"/x"))).map(|r| r.0),
            Some(1)
        );
        assert_eq!(m.route(b"", &Bytes::from_static(b"/b/x")), None);
        assert!(!m.is_trivial());
        assert!(Mounts::new(&["".into()], false).is_trivial());
    }
}
