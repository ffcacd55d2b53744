//! The `access_log` files of a site, handled by the master as nginx's
//! master handles them: it opens (creates) each file itself, as the user it
//! runs as, before the workers start and again on `-s reopen` / SIGUSR1.
//! Running as root with a `user` directive, it gives each file to the
//! workers' user (and makes it readable and writable by it), as nginx's
//! `ngx_reopen_files` does, so that the workers, which write the lines and
//! reopen the files by path, can open a file where they could not create
//! it (a root-owned `/var/log/...`). The same goes for the `error_log`
//! file, which the master reopens and the workers then open by path.

use std::fs::OpenOptions;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use portico_config::site::{AccessLogTarget, Location, Site};
use portico_supervisor::ReopenHook;

use crate::front::SiteSetup;

impl SiteSetup {
    /// Create the site's `access_log` files and give them, and the master's
    /// own log `master_log` (`error_log FILE`, which the workers reopen by
    /// path too), to the workers' user (see the module doc).
    pub(crate) fn prepare_log_files(&self, master_log: Option<&Path>) {
        prepare(
            &self.log_files(master_log),
            worker_owner(self.worker_user.as_ref()),
        );
    }

    /// The master's part of `-s reopen`, after it reopened `master_log`:
    /// [`Self::prepare_log_files`] again.
    pub(crate) fn reopen_hook(&self, master_log: Option<&Path>) -> ReopenHook {
        let paths = self.log_files(master_log);
        let owner = worker_owner(self.worker_user.as_ref());
        ReopenHook(Arc::new(move || prepare(&paths, owner)))
    }

    fn log_files(&self, master_log: Option<&Path>) -> Vec<PathBuf> {
        let mut paths = access_log_paths(&self.site);
        paths.extend(master_log.map(Path::to_path_buf));
        paths
    }
}

/// Every `access_log` file the site writes (not `stderr`), once each.
pub(crate) fn access_log_paths(site: &Site) -> Vec<PathBuf> {
    fn add(targets: &[AccessLogTarget], out: &mut Vec<PathBuf>) {
        for target in targets {
            if let AccessLogTarget::File { path, .. } = target
                && path != Path::new("stderr")
                && !out.contains(path)
            {
                out.push(path.clone());
            }
        }
    }
    fn walk(locations: &[Location], out: &mut Vec<PathBuf>) {
        for location in locations {
            add(&location.config.access_log, out);
            walk(&location.locations, out);
        }
    }
    let mut out = Vec::new();
    for server in &site.servers {
        add(&server.config.access_log, &mut out);
        walk(&server.locations, &mut out);
        walk(&server.named, &mut out);
    }
    out
}

/// Open (create) each file for appending; with `owner`, make each regular
/// file that user's, with `u+rw`. Failures are logged with nginx's words
/// and are not fatal (the workers report the file again when they write).
pub(crate) fn prepare(paths: &[PathBuf], owner: Option<libc::uid_t>) {
    for path in paths {
        let file = match OpenOptions::new().append(true).create(true).open(path) {
            Ok(file) => file,
            Err(e) => {
                portico_server::logln!(
                    "[alert] open() \"{}\" failed ({})",
                    path.display(),
                    os_error(&e)
                );
                continue;
            }
        };
        let Some(uid) = owner else { continue };
        let Ok(meta) = file.metadata() else { continue };
        if !meta.is_file() {
            continue; // /dev/stdout and the like stay as they are
        }
        if meta.uid() != uid
            && let Err(e) = std::os::unix::fs::fchown(&file, Some(uid), None)
        {
            portico_server::logln!(
                "[alert] chown(\"{}\", {uid}) failed ({})",
                path.display(),
                os_error(&e)
            );
        }
        let mode = meta.permissions().mode();
        if mode & 0o600 != 0o600
            && let Err(e) = file.set_permissions(std::fs::Permissions::from_mode(mode | 0o600))
        {
            portico_server::logln!(
                "[alert] chmod() \"{}\" failed ({})",
                path.display(),
                os_error(&e)
            );
        }
    }
}

/// The uid the workers switch to (the `user` directive), when the master
/// runs as root and so can give them files.
fn worker_owner(user: Option<&(String, Option<String>)>) -> Option<libc::uid_t> {
    if !nix::unistd::geteuid().is_root() {
        return None;
    }
    let (name, _) = user?;
    match portico_supervisor::resolve_uid(name) {
        Ok((uid, _)) => Some(uid),
        Err(e) => {
            portico_server::logln!("user {name}: {e}");
            None
        }
    }
}

/// `13: Permission denied`, as nginx words an OS error.
fn os_error(e: &std::io::Error) -> String {
    let text = e.to_string();
    let text = text.split(" (os error").next().unwrap_or("");
    format!("{}: {text}", e.raw_os_error().unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prepare_creates_missing_files_and_keeps_existing_lines() {
        let dir = std::env::temp_dir().join(format!("portico-site-logs-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let new = dir.join("new.log");
        let old = dir.join("old.log");
        std::fs::write(&old, b"kept\n").expect("old");
        let missing_dir = dir.join("no/such/dir.log");
        prepare(&[new.clone(), old.clone(), missing_dir.clone()], None);
        let new_exists = new.is_file();
        let old_text = std::fs::read(&old).unwrap_or_default();
        std::fs::remove_dir_all(&dir).ok();
        assert!(new_exists);
        assert_eq!(old_text, b"kept\n");
    }

    #[test]
    fn access_log_paths_are_every_file_once_without_stderr() {
        let text = "events {} http { access_log /tmp/a.log; \
                    server { listen 127.0.0.1:8080; access_log stderr; \
                    location / { access_log /tmp/b.log; access_log /tmp/a.log; \
                    location /x { access_log off; } } } \
                    server { listen 127.0.0.1:8081; } }";
        let dir = std::env::temp_dir().join(format!("portico-site-paths-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let conf = dir.join("nginx.conf");
        std::fs::write(&conf, text).expect("conf");
        let tree = portico_config::nginx::read_conf(&conf, None);
        std::fs::remove_dir_all(&dir).ok();
        let site = portico_config::nginx::to_site(&tree.expect("reads"), &dir).expect("converts");
        assert_eq!(
            access_log_paths(&site),
            vec![PathBuf::from("/tmp/b.log"), PathBuf::from("/tmp/a.log")]
        );
    }
}
