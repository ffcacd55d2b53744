//! The master's clock-driven checks, run every tick: harakiri, memory
//! limits and sampling, touch-reload and touch-logreopen; and the log
//! reopen they share with nginx mode's SIGUSR1.

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::time::SystemTime;

use super::Master;
use crate::signals::send;
use crate::worker::unix_micros;
use portico_server::procfs::{memory_bytes, rss_bytes};

fn ctime_now() -> String {
    portico_server::date::ctime(SystemTime::now())
}

pub(super) fn mtime(path: &PathBuf) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// The `--touch-*` files touched since the last look, in order: those whose
/// mtime changed and that exist now (`seen` holds each file's last mtime and
/// is brought up to date; a file removed is not a touch, but its return is).
fn touched_files<'a>(paths: &'a [PathBuf], seen: &mut [Option<SystemTime>]) -> Vec<&'a PathBuf> {
    let mut touched = Vec::new();
    for (path, seen) in paths.iter().zip(seen.iter_mut()) {
        let current = mtime(path);
        if current != *seen {
            *seen = current;
            if current.is_some() {
                touched.push(path);
            }
        }
    }
    touched
}

impl Master<'_> {
    /// Record every live worker's RSS and VSZ for the stats and metrics.
    pub(super) fn sample_memory(&self) {
        for (index, slot) in self.slots.iter().enumerate() {
            let Some(pid) = slot.pid else { continue };
            if let Some((vsz, rss)) = memory_bytes(Some(pid)) {
                let w = self.board.worker(index + 1);
                w.vsz.store(vsz, Ordering::Relaxed);
                w.rss.store(rss, Ordering::Relaxed);
            }
        }
    }

    /// `--touch-logreopen`: reopen our log file, and ask the workers
    /// (SIGUSR2) to reopen theirs.
    pub(super) fn check_logreopen(&mut self) {
        let touched = touched_files(&self.options.touch_logreopen, &mut self.logreopen_mtimes);
        let Some(path) = touched.last() else { return };
        let Some(log) = &self.options.log_file else {
            portico_log::logln!(
                "*** {} has been touched... but there is no log file to reopen ***",
                path.display()
            );
            return;
        };
        match crate::daemon::redirect_output(log) {
            Ok(()) => portico_log::logln!(
                "*** {} has been touched... reopening log {} ***",
                path.display(),
                log.display()
            ),
            Err(e) => portico_log::logln!("cannot reopen the log: {e}"),
        }
        self.signal_workers(libc::SIGUSR2);
    }

    /// SIGUSR1 in nginx mode (`-s reopen`): reopen our log file if there is
    /// one, then ask every worker (SIGUSR2) to reopen its log and its
    /// `access_log` files. The notice is written after the reopen, so it
    /// starts the new file, as nginx's "reopening logs" does.
    pub(super) fn reopen_logs(&mut self) {
        if let Some(log) = &self.options.log_file
            && let Err(e) = crate::daemon::redirect_output(log)
        {
            portico_log::logln!("cannot reopen the log {}: {e}", log.display());
        }
        portico_log::logln!("signal SIGUSR1 received, reopening logs");
        if let Some(super::ReopenHook(hook)) = &self.options.on_reopen {
            hook();
        }
        self.signal_workers(libc::SIGUSR2);
    }

    /// Send `signal` to every worker, the retiring ones included.
    fn signal_workers(&self, signal: libc::c_int) {
        for pid in self.slots.iter().filter_map(|slot| slot.pid) {
            send(pid, signal);
        }
        for pid in self.retiring.keys() {
            send(*pid, signal);
        }
    }

    pub(super) fn touched(&mut self) -> bool {
        let touched = touched_files(&self.options.touch_reload, &mut self.touch_mtimes);
        for path in &touched {
            portico_log::logln!(
                "*** {} has been touched... grace them all !!! ***",
                path.display()
            );
        }
        !touched.is_empty()
    }

    pub(super) fn check_harakiri(&mut self) {
        if self.options.harakiri.is_zero() {
            return;
        }
        let now_us = unix_micros();
        let limit_us = self.options.harakiri.as_micros() as u64;
        for (index, slot) in self.slots.iter().enumerate() {
            let Some(pid) = slot.pid else { continue };
            let wid = index + 1;
            let overdue = (0..self.board.cores()).find(|&core| {
                let started = self
                    .board
                    .core(wid, core)
                    .started_us
                    .load(Ordering::Acquire);
                started != 0 && now_us.saturating_sub(started) > limit_us
            });
            let Some(core) = overdue else { continue };
            let worker = self.board.worker(wid);
            let tries = worker.harakiri_count.fetch_add(1, Ordering::Relaxed) + 1;
            let when = ctime_now();
            let core_slot = self.board.core(wid, core);
            let started = core_slot.started_us.load(Ordering::Acquire) / 1_000_000;
            portico_log::logln!(
                "{when} - *** HARAKIRI ON WORKER {wid} (pid: {pid}, try: {tries}, graceful: no) ***"
            );
            portico_log::logln!("{when} - HARAKIRI !!! worker {wid} status !!!");
            portico_log::logln!(
                "{when} - HARAKIRI [core {core}] - {} since {started}",
                core_slot.text()
            );
            if self.options.harakiri_verbose {
                for other in 0..self.board.cores() {
                    let c = self.board.core(wid, other);
                    let since = c.started_us.load(Ordering::Acquire);
                    if since != 0 && other != core {
                        portico_log::logln!(
                            "{when} - HARAKIRI [core {other}] - {} since {}",
                            c.text(),
                            since / 1_000_000
                        );
                    }
                }
            }
            portico_log::logln!("{when} - HARAKIRI !!! end of worker {wid} status !!!");
            portico_log::logln!("{when} - HARAKIRI triggered by worker {wid} core {core} !!!");
            for c in 0..self.board.cores() {
                self.board
                    .core(wid, c)
                    .started_us
                    .store(0, Ordering::Release);
            }
            send(pid, libc::SIGKILL);
        }
    }

    pub(super) fn check_memory(&mut self) {
        if self.options.evil_reload_on_rss == 0 {
            return;
        }
        for (index, slot) in self.slots.iter().enumerate() {
            let Some(pid) = slot.pid else { continue };
            let Some(rss) = rss_bytes(Some(pid)) else {
                continue;
            };
            self.board
                .worker(index + 1)
                .rss
                .store(rss, Ordering::Relaxed);
            if rss > self.options.evil_reload_on_rss {
                portico_log::logln!(
                    "*** EVIL RELOAD ON WORKER {} RSS: {rss} (pid: {pid}) ***",
                    index + 1
                );
                send(pid, libc::SIGKILL);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;
    use std::time::{Duration, SystemTime};

    use super::{mtime, touched_files};

    fn set_mtime(path: &PathBuf, at: SystemTime) {
        let file = std::fs::OpenOptions::new().append(true).open(path);
        let Ok(file) = file else {
            panic!("cannot open {}", path.display())
        };
        assert!(file.set_modified(at).is_ok());
    }

    #[test]
    fn touched_files_names_each_change_once_and_not_a_removal() {
        let dir = std::env::temp_dir().join(format!("portico-touch-{}", std::process::id()));
        assert!(std::fs::create_dir_all(&dir).is_ok());
        let (a, b) = (dir.join("a"), dir.join("b"));
        assert!(std::fs::write(&a, "").is_ok());
        let paths = vec![a.clone(), b.clone()];
        let mut seen: Vec<_> = paths.iter().map(mtime).collect();
        assert!(
            touched_files(&paths, &mut seen).is_empty(),
            "nothing touched yet"
        );

        set_mtime(&a, SystemTime::now() + Duration::from_secs(5));
        assert!(std::fs::write(&b, "").is_ok()); // created: a touch
        assert_eq!(touched_files(&paths, &mut seen), vec![&a, &b]);
        assert!(
            touched_files(&paths, &mut seen).is_empty(),
            "seen brought up to date"
        );

        assert!(std::fs::remove_file(&b).is_ok());
        assert!(
            touched_files(&paths, &mut seen).is_empty(),
            "a removal is no touch"
        );
        assert_eq!(seen[1], None);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
