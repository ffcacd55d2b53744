//! The master loop: fork the workers, then react to signals, retirement
//! notices and the clock (harakiri, memory limits, touch-reload, deadlines)
//! until a stop or a reload. Its log lines keep uWSGI's words, so existing
//! alerts on them keep matching.

use std::collections::{HashMap, VecDeque};
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime};

mod checks;

use crate::observe::{AppInfo, Observer, SocketInfo, StatsServer};
use crate::scoreboard::Scoreboard;
use crate::signals::{block_reopen_signal, open_signalfd, read_pending, send, unblock_all};
use checks::mtime;

/// How often the master looks at the clock-driven checks.
const TICK: Duration = Duration::from_millis(200);

/// Every this many ticks the master samples the workers' RSS and VSZ.
const MEMORY_SAMPLE_TICKS: u64 = 5;

/// More respawns than workers within this window means a crash loop.
const RESPAWN_WINDOW: Duration = Duration::from_secs(1);

/// How long a crash loop pauses respawning (uWSGI's forkbomb-delay).
const FORKBOMB_DELAY: Duration = Duration::from_secs(2);

/// uWSGI's exit code for "the app could not be loaded".
const EXIT_APP_LOAD_FAILED: i32 = 22;

/// What the master needs to know.
#[derive(Debug, Clone)]
pub struct MasterOptions {
    pub processes: usize,
    /// With `--master`: respawn, harakiri, memory limits, touch-reload, reload.
    /// Without: the workers are forked and waited for, nothing more.
    pub supervise: bool,
    pub harakiri: Duration,
    pub harakiri_verbose: bool,
    pub evil_reload_on_rss: u64,
    pub reload_mercy: Duration,
    pub touch_reload: Vec<PathBuf>,
    /// `--stats`: the stats server, served by the master.
    pub stats: Option<StatsServer>,
    /// `--metrics ADDR`: Prometheus metrics, served by the master.
    pub metrics: Option<String>,
    /// The listening sockets, as stats and metrics describe them.
    pub sockets: Vec<SocketInfo>,
    /// The apps, as the stats describe them.
    pub apps: Vec<AppInfo>,
    /// Reopen the log when one of these files' mtime changes.
    pub touch_logreopen: Vec<PathBuf>,
    /// The log file (`--logto`/`--daemonize`) to reopen.
    pub log_file: Option<PathBuf>,
    /// nginx's meaning of SIGUSR1 (`portico -c`, where logrotate configs
    /// written for nginx signal the pid file): reopen the log files, this
    /// process's and (SIGUSR2) the workers'. Otherwise SIGUSR1 is uWSGI's:
    /// log the workers' request counters.
    pub sigusr1_reopens: bool,
    /// Run by the master on that reopen, after its own log and before the
    /// workers are told (nginx mode: create the `access_log` files afresh,
    /// owned by the workers' user, as nginx's master does).
    pub on_reopen: Option<ReopenHook>,
    /// Asked before every reload: an error keeps the current workers
    /// serving and is logged (nginx's "the old configuration keeps going").
    pub reload_check: Option<ReloadCheck>,
}

/// A check run before a reload (e.g. reading a changed nginx.conf).
#[derive(Clone)]
pub struct ReloadCheck(pub Arc<dyn Fn() -> Result<(), String> + Send + Sync>);

impl std::fmt::Debug for ReloadCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ReloadCheck")
    }
}

/// Work the master does when it reopens the logs (see `on_reopen`).
#[derive(Clone)]
pub struct ReopenHook(pub Arc<dyn Fn() + Send + Sync>);

impl std::fmt::Debug for ReopenHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ReopenHook")
    }
}

/// What a worker process gets.
pub struct WorkerContext {
    /// 1-based worker number.
    pub wid: usize,
    pub board: Arc<Scoreboard>,
    /// Write end of the master's notice pipe.
    pub notify_fd: RawFd,
}

/// The outcome of a fork, as the binary's fork function reports it.
pub enum Forked {
    Parent(i32),
    Child,
}

/// Why the master loop ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MasterExit {
    /// Stop with this exit code.
    Stop(i32),
    /// Re-execute for a graceful reload (the workers are gone).
    Reload,
}

/// A worker's message that it is retiring (max-requests, reload-on-rss).
pub(crate) struct RetireNotice {
    pub wid: u32,
    pub pid: u32,
}

impl RetireNotice {
    const SIZE: usize = 8;

    pub(crate) fn send(&self, fd: RawFd) {
        let mut buf = [0u8; Self::SIZE];
        buf[..4].copy_from_slice(&self.wid.to_ne_bytes());
        buf[4..].copy_from_slice(&self.pid.to_ne_bytes());
        // SAFETY: an 8-byte write (atomic on a pipe) from our own buffer.
        unsafe {
            libc::write(fd, buf.as_ptr().cast(), Self::SIZE);
        }
    }

    fn read_all(fd: &OwnedFd) -> Vec<RetireNotice> {
        let mut out = Vec::new();
        let mut buf = [0u8; Self::SIZE];
        while nix::unistd::read(fd, &mut buf) == Ok(Self::SIZE) {
            let wid = u32::from_ne_bytes([buf[0], buf[1], buf[2], buf[3]]);
            let pid = u32::from_ne_bytes([buf[4], buf[5], buf[6], buf[7]]);
            out.push(RetireNotice { wid, pid });
        }
        out
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Running,
    /// Workers were asked to finish; then stop or reload.
    Stopping {
        then: MasterExit,
        deadline: Instant,
        since: Instant,
    },
}

struct Slot {
    pid: Option<i32>,
    respawn_at: Option<Instant>,
}

struct Master<'a> {
    options: MasterOptions,
    board: Arc<Scoreboard>,
    fork: &'a dyn Fn() -> io::Result<Forked>,
    body: &'a dyn Fn(WorkerContext) -> i32,
    slots: Vec<Slot>,
    /// Retiring processes: pid -> (worker id, SIGKILL deadline).
    retiring: HashMap<i32, (usize, Instant)>,
    respawns: VecDeque<Instant>,
    mode: Mode,
    notify_read: OwnedFd,
    notify_write: OwnedFd,
    signalfd: nix::sys::signalfd::SignalFd,
    touch_mtimes: Vec<Option<SystemTime>>,
    logreopen_mtimes: Vec<Option<SystemTime>>,
    master_pid: i32,
    observer: Option<Observer>,
    last_tick: Instant,
    ticks: u64,
}

fn now_seconds() -> u64 {
    portico_server::date::unix_seconds(SystemTime::now())
}

fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    use nix::fcntl::OFlag;
    Ok(nix::unistd::pipe2(OFlag::O_CLOEXEC | OFlag::O_NONBLOCK)?)
}

/// Run the master until it stops or reloads. `fork` forks the process
/// (with whatever the embedded runtime needs around it); `body` is what a
/// worker runs in the child, returning its exit code.
pub fn run_master(
    options: MasterOptions,
    board: Arc<Scoreboard>,
    fork: &dyn Fn() -> io::Result<Forked>,
    body: &dyn Fn(WorkerContext) -> i32,
) -> io::Result<MasterExit> {
    let signalfd = open_signalfd()?;
    let (notify_read, notify_write) = pipe()?;
    let touch_mtimes = options.touch_reload.iter().map(mtime).collect();
    let logreopen_mtimes = options.touch_logreopen.iter().map(mtime).collect();
    let observer = Observer::bind(
        options.stats.as_ref(),
        options.metrics.as_deref(),
        board.clone(),
        options.sockets.clone(),
        options.apps.clone(),
    )?;
    let slots = (0..options.processes)
        .map(|_| Slot {
            pid: None,
            respawn_at: None,
        })
        .collect();
    let mut master = Master {
        options,
        board,
        fork,
        body,
        slots,
        retiring: HashMap::new(),
        respawns: VecDeque::new(),
        mode: Mode::Running,
        notify_read,
        notify_write,
        signalfd,
        touch_mtimes,
        logreopen_mtimes,
        master_pid: std::process::id() as i32,
        observer,
        last_tick: Instant::now(),
        ticks: 0,
    };
    portico_log::logln!("spawned uWSGI master process (pid: {})", master.master_pid);
    for wid in 1..=master.options.processes {
        master.spawn(wid, false)?;
    }
    master.run()
}

impl Master<'_> {
    fn spawn(&mut self, wid: usize, respawn: bool) -> io::Result<()> {
        let slot = self.board.worker(wid);
        // What the new worker writes itself is reset before the fork: a
        // worker that starts fast would otherwise have its "accepting" (set
        // when ready) overwritten by the parent after the fork.
        slot.accepting.store(0, Ordering::Relaxed);
        slot.busy.store(0, Ordering::Relaxed);
        for core in 0..self.board.cores() {
            self.board
                .core(wid, core)
                .started_us
                .store(0, Ordering::Relaxed);
        }
        block_reopen_signal(true);
        let forked = (self.fork)();
        if !matches!(forked, Ok(Forked::Child)) {
            block_reopen_signal(false);
        }
        match forked? {
            Forked::Child => {
                let _ = nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL);
                if nix::unistd::getppid().as_raw() != self.master_pid {
                    // SAFETY: leaving the orphaned child without running the master's destructors.
                    unsafe { libc::_exit(1) }
                }
                if let Some(observer) = self.observer.as_mut() {
                    observer.close_in_child();
                }
                // SIGUSR2 (log reopen), blocked since before the fork, is
                // remembered until the worker's runtime handles it: a worker
                // still starting up reopens its logs then.
                if let Err(e) = portico_server::reopen_signal::remember_early_reopen() {
                    portico_log::logln!("worker {wid}: cannot catch SIGUSR2: {e}");
                }
                block_reopen_signal(false);
                unblock_all();
                slot.delta_requests.store(0, Ordering::Relaxed);
                let code = (self.body)(WorkerContext {
                    wid,
                    board: self.board.clone(),
                    notify_fd: self.notify_write.as_raw_fd(),
                });
                crate::pgo::write_training_profile();
                // SAFETY: leaving the worker without running the master's destructors.
                unsafe { libc::_exit(code) }
            }
            Forked::Parent(pid) => {
                slot.pid.store(pid, Ordering::Relaxed);
                slot.last_spawn.store(now_seconds(), Ordering::Relaxed);
                self.slots[wid - 1] = Slot {
                    pid: Some(pid),
                    respawn_at: None,
                };
                if respawn {
                    slot.respawns.fetch_add(1, Ordering::Relaxed);
                    portico_log::logln!("Respawned uWSGI worker {wid} (new pid: {pid})");
                } else {
                    portico_log::logln!(
                        "spawned uWSGI worker {wid} (pid: {pid}, cores: {})",
                        self.board.cores()
                    );
                }
                Ok(())
            }
        }
    }

    fn run(&mut self) -> io::Result<MasterExit> {
        loop {
            let mut fds = vec![
                libc::pollfd {
                    fd: self.signalfd.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                },
                libc::pollfd {
                    fd: self.notify_read.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                },
            ];
            if let Some(observer) = &self.observer {
                fds.extend(observer.poll_fds());
            }
            let wait = TICK.saturating_sub(self.last_tick.elapsed());
            // SAFETY: poll on descriptors we own, with a bounded timeout.
            unsafe {
                libc::poll(
                    fds.as_mut_ptr(),
                    fds.len() as libc::nfds_t,
                    wait.as_millis() as libc::c_int,
                )
            };
            let for_master = fds[0].revents != 0 || fds[1].revents != 0;
            for signal in read_pending(&self.signalfd) {
                self.on_signal(signal)?;
            }
            for notice in RetireNotice::read_all(&self.notify_read) {
                self.on_retire(notice)?;
            }
            if let Some(observer) = self.observer.as_mut() {
                observer.service();
            }
            // Stats clients wake the loop often: the checks keep their pace.
            if for_master || self.last_tick.elapsed() >= TICK {
                self.last_tick = Instant::now();
                if let Some(exit) = self.tick()? {
                    return Ok(exit);
                }
            }
        }
    }

    fn begin_stop(&mut self, then: MasterExit, graceful: bool) {
        // A second graceful request changes nothing; an immediate one escalates.
        if graceful && matches!(self.mode, Mode::Stopping { .. }) {
            return;
        }
        let now = Instant::now();
        self.mode = Mode::Stopping {
            then,
            deadline: now + self.options.reload_mercy.max(Duration::from_secs(1)),
            since: now,
        };
        let signal = if graceful {
            libc::SIGTERM
        } else {
            libc::SIGINT
        };
        for (i, slot) in self.slots.iter_mut().enumerate() {
            slot.respawn_at = None;
            if let Some(pid) = slot.pid {
                if graceful {
                    portico_log::logln!("Gracefully killing worker {} (pid: {pid})...", i + 1);
                }
                send(pid, signal);
            }
        }
        for pid in self.retiring.keys() {
            send(*pid, signal);
        }
    }

    fn on_signal(&mut self, signal: libc::c_int) -> io::Result<()> {
        match signal {
            libc::SIGCHLD => self.reap()?,
            libc::SIGHUP if self.options.supervise => {
                if let Some(ReloadCheck(check)) = &self.options.reload_check
                    && let Err(e) = check()
                {
                    portico_log::logln!("{e}");
                    portico_log::logln!("reload refused: the current configuration keeps serving");
                    return Ok(());
                }
                portico_log::logln!("...gracefully killing workers...");
                self.begin_stop(MasterExit::Reload, true);
            }
            libc::SIGHUP | libc::SIGTERM => {
                portico_log::logln!("SIGTERM received...gracefully killing workers...");
                self.begin_stop(MasterExit::Stop(0), true);
            }
            libc::SIGINT | libc::SIGQUIT => {
                portico_log::logln!("SIGINT/SIGQUIT received...killing workers...");
                self.begin_stop(MasterExit::Stop(0), false);
            }
            libc::SIGUSR1 if self.options.sigusr1_reopens => self.reopen_logs(),
            libc::SIGUSR1 => self.log_counters(),
            _ => {}
        }
        Ok(())
    }

    fn log_counters(&self) {
        let mut total = 0;
        for wid in 1..=self.slots.len() {
            let slot = self.board.worker(wid);
            let requests = slot.requests.load(Ordering::Relaxed);
            total += requests;
            portico_log::logln!(
                "worker {wid} app 0 [] requests: {requests} exceptions: {} (pid: {}, respawns: {}, harakiri: {})",
                slot.exceptions.load(Ordering::Relaxed),
                slot.pid.load(Ordering::Relaxed),
                slot.respawns.load(Ordering::Relaxed),
                slot.harakiri_count.load(Ordering::Relaxed),
            );
        }
        portico_log::logln!("workers total requests: {total}");
    }

    fn reap(&mut self) -> io::Result<()> {
        // A retiring worker writes its notice before it exits: read notices
        // first, so its exit is not taken for a crash.
        for notice in RetireNotice::read_all(&self.notify_read) {
            self.on_retire(notice)?;
        }
        loop {
            use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
            // (exit code, killing signal) of a child that ended.
            let (pid, code, signal) = match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::Exited(pid, code)) => (pid.as_raw(), Some(code), None),
                Ok(WaitStatus::Signaled(pid, signal, _)) => {
                    (pid.as_raw(), None, Some(signal as i32))
                }
                Ok(WaitStatus::StillAlive) | Err(_) => return Ok(()),
                Ok(_) => continue,
            };
            if let Some((wid, _)) = self.retiring.remove(&pid) {
                portico_log::logln!("worker {wid} killed successfully (pid: {pid})");
                continue;
            }
            let Some(index) = self.slots.iter().position(|s| s.pid == Some(pid)) else {
                continue;
            };
            let wid = index + 1;
            self.slots[index].pid = None;
            let slot = self.board.worker(wid);
            slot.pid.store(0, Ordering::Relaxed);
            slot.accepting.store(0, Ordering::Relaxed);
            if let Mode::Stopping { since, .. } = self.mode {
                portico_log::logln!(
                    "worker {wid} buried after {} seconds",
                    since.elapsed().as_secs()
                );
                continue;
            }
            if code == Some(EXIT_APP_LOAD_FAILED) {
                portico_log::logln!(
                    "OOPS ! failed loading app in worker {wid} (pid {pid}) :( trying again..."
                );
            } else if let Some(signal) = signal {
                portico_log::logln!(
                    "DAMN ! worker {wid} (pid: {pid}) died, killed by signal {signal} :( trying respawn ..."
                );
            } else {
                portico_log::logln!("DAMN ! worker {wid} (pid: {pid}) died :( trying respawn ...");
            }
            if self.options.supervise {
                self.schedule_respawn(index);
            }
        }
    }

    fn schedule_respawn(&mut self, index: usize) {
        let now = Instant::now();
        while self
            .respawns
            .front()
            .is_some_and(|t| now.duration_since(*t) > RESPAWN_WINDOW)
        {
            self.respawns.pop_front();
        }
        if self.respawns.len() >= self.options.processes.max(1) {
            portico_log::logln!(
                "worker respawning too fast !!! i have to sleep a bit ({} seconds)...",
                FORKBOMB_DELAY.as_secs()
            );
            self.slots[index].respawn_at = Some(now + FORKBOMB_DELAY);
        } else {
            self.slots[index].respawn_at = Some(now);
        }
    }

    fn on_retire(&mut self, notice: RetireNotice) -> io::Result<()> {
        let wid = notice.wid as usize;
        let pid = notice.pid as i32;
        if self.mode != Mode::Running
            || wid == 0
            || wid > self.slots.len()
            || self.slots[wid - 1].pid != Some(pid)
        {
            return Ok(());
        }
        // Spawn the replacement first, so the sockets always have a worker.
        self.retiring.insert(
            pid,
            (
                wid,
                Instant::now() + self.options.reload_mercy.max(Duration::from_secs(1)),
            ),
        );
        self.slots[wid - 1].pid = None;
        self.spawn(wid, true)
    }

    fn tick(&mut self) -> io::Result<Option<MasterExit>> {
        let now = Instant::now();
        for (pid, (wid, deadline)) in &self.retiring {
            if now > *deadline {
                portico_log::logln!(
                    "worker {wid} (pid: {pid}) is taking too much time to die...NO MERCY !!!"
                );
                send(*pid, libc::SIGKILL);
            }
        }
        match self.mode {
            Mode::Running => {
                for index in 0..self.slots.len() {
                    if self.slots[index].respawn_at.is_some_and(|at| now >= at) {
                        self.respawns.push_back(now);
                        self.spawn(index + 1, true)?;
                    }
                }
                self.ticks += 1;
                if self.ticks.is_multiple_of(MEMORY_SAMPLE_TICKS) {
                    self.sample_memory();
                }
                if self.options.supervise {
                    self.check_harakiri();
                    self.check_memory();
                    self.check_logreopen();
                    if self.touched() {
                        self.begin_stop(MasterExit::Reload, true);
                    }
                } else if self.slots.iter().all(|s| s.pid.is_none()) {
                    return Ok(Some(MasterExit::Stop(0)));
                }
                Ok(None)
            }
            Mode::Stopping { then, deadline, .. } => {
                let alive: Vec<(usize, i32)> = self
                    .slots
                    .iter()
                    .enumerate()
                    .filter_map(|(i, s)| s.pid.map(|p| (i + 1, p)))
                    .collect();
                if alive.is_empty() && self.retiring.is_empty() {
                    return Ok(Some(then));
                }
                if now > deadline {
                    for (wid, pid) in alive {
                        portico_log::logln!(
                            "worker {wid} (pid: {pid}) is taking too much time to die...NO MERCY !!!"
                        );
                        send(pid, libc::SIGKILL);
                    }
                    for pid in self.retiring.keys() {
                        send(*pid, libc::SIGKILL);
                    }
                }
                Ok(None)
            }
        }
    }
}
