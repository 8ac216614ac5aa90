//! Child processes that can be SIGKILLed and started again, a scratch directory for their
//! configuration, data and logs, and free loopback ports.

use std::{
    fs::{File, OpenOptions},
    io::{Read as _, Seek as _, SeekFrom, Write as _},
    net::TcpListener,
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Stdio},
    time::SystemTime,
};

use anyhow::{bail, Context as _};

/// A scratch directory under the system temp dir. It is removed on drop only after
/// [`Scratch::succeeded`] (and without `LIFELINE_CLUSTER_KEEP`), so the logs of a failed or
/// interrupted run stay.
pub struct Scratch {
    path: PathBuf,
    succeeded: bool,
}

impl Scratch {
    pub fn new() -> anyhow::Result<Scratch> {
        let id = uuid::Uuid::new_v4().simple().to_string();
        let path = std::env::temp_dir().join(format!("{PREFIX}{}", &id[..12]));
        std::fs::create_dir_all(path.join("logs"))?;
        std::fs::write(path.join("owner"), std::process::id().to_string())?;
        Ok(Scratch { path, succeeded: false })
    }

    /// The run passed: remove the directory on drop.
    pub fn succeeded(&mut self) {
        self.succeeded = true;
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn logs(&self) -> PathBuf {
        self.path.join("logs")
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let keep = !self.succeeded
            || std::thread::panicking()
            || std::env::var_os("LIFELINE_CLUSTER_KEEP").is_some();
        if keep {
            eprintln!("cluster: logs and data kept in {}", self.path.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

const PREFIX: &str = "lifeline-cluster-";

fn alive(pid: &str) -> bool {
    Path::new("/proc").join(pid).exists()
}

/// Kills what an earlier run left behind when its test process died without dropping its
/// processes (killed by a timeout, SIGKILLed): every scratch directory whose owner process is
/// gone has its listed processes SIGKILLed (only if the pid still runs the same program) and
/// its Postgres stopped with `stop_postgres` (given its data directory). Directories of runs
/// still going are left alone.
pub fn reap_stale_runs(stop_postgres: impl Fn(&Path)) {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else { return };
    for dir in entries.filter_map(Result::ok).map(|e| e.path()) {
        let is_ours =
            dir.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with(PREFIX));
        if !is_ours || dir.join("reaped").exists() {
            continue;
        }
        let owner = std::fs::read_to_string(dir.join("owner")).unwrap_or_default();
        if owner.trim().is_empty() || alive(owner.trim()) {
            continue;
        }
        let pids = std::fs::read_to_string(dir.join("pids")).unwrap_or_default();
        let mut stopped = 0;
        for line in pids.lines() {
            let Some((pid, program)) = line.split_once(' ') else { continue };
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            if String::from_utf8_lossy(&cmdline).starts_with(program) {
                let _ = run("kill", &["-KILL", pid]);
                stopped += 1;
            }
        }
        let data = dir.join("postgres").join("data");
        if data.join("postmaster.pid").exists() {
            stop_postgres(&data);
            stopped += 1;
        }
        if stopped > 0 {
            eprintln!(
                "cluster: stopped {stopped} processes an interrupted run left ({})",
                dir.display()
            );
        }
        let _ = std::fs::write(dir.join("reaped"), "");
    }
}

/// Ports handed out by the OS for an ephemeral listener, released at once; never 4222 (the
/// machine's NATS) nor 5432 (its Postgres), and never the same one twice in a run.
pub struct Ports {
    given: Vec<u16>,
}

impl Ports {
    pub fn new() -> Ports {
        Ports { given: Vec::new() }
    }

    pub fn take(&mut self) -> anyhow::Result<u16> {
        for _ in 0..100 {
            let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
            if ![4222, 5432, 6222, 8222].contains(&port) && !self.given.contains(&port) {
                self.given.push(port);
                return Ok(port);
            }
        }
        bail!("no free loopback port")
    }
}

impl Default for Ports {
    fn default() -> Self {
        Ports::new()
    }
}

/// How to start a process again after it was killed.
#[derive(Clone, Debug)]
pub struct Spec {
    pub program: PathBuf,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    /// The process starts with only `env` (plus PATH), not the test's environment.
    pub clear_env: bool,
}

/// A child process whose stdout and stderr go to a log file (appended across restarts). Killed
/// with SIGKILL on drop, so nothing outlives the test, also when it panics.
pub struct Proc {
    pub name: String,
    spec: Spec,
    log: PathBuf,
    child: Option<Child>,
    /// Starts of this process (1 after `spawn`).
    pub starts: u32,
}

impl Proc {
    pub fn spawn(name: &str, spec: Spec, logs: &Path) -> anyhow::Result<Proc> {
        let mut p = Proc::prepare(name, spec, logs);
        p.start()?;
        Ok(p)
    }

    /// A process ready to [`Proc::start`], not started yet.
    pub fn prepare(name: &str, spec: Spec, logs: &Path) -> Proc {
        Proc {
            name: name.to_owned(),
            spec,
            log: logs.join(format!("{name}.log")),
            child: None,
            starts: 0,
        }
    }

    pub fn start(&mut self) -> anyhow::Result<()> {
        if self.child.is_some() {
            bail!("{} is already running", self.name);
        }
        let out = OpenOptions::new().create(true).append(true).open(&self.log)?;
        let err = out.try_clone()?;
        let mut cmd = Command::new(&self.spec.program);
        cmd.args(&self.spec.args).stdin(Stdio::null()).stdout(out).stderr(err);
        if self.spec.clear_env {
            cmd.env_clear();
            if let Some(path) = std::env::var_os("PATH") {
                cmd.env("PATH", path);
            }
        }
        cmd.envs(self.spec.env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        let child = cmd.spawn().with_context(|| {
            format!("cannot start {} ({})", self.name, self.spec.program.display())
        })?;
        if let Some(scratch) = self.log.parent().and_then(Path::parent) {
            let mut f = OpenOptions::new().create(true).append(true).open(scratch.join("pids"))?;
            writeln!(f, "{} {}", child.id(), self.spec.program.display())?;
        }
        self.child = Some(child);
        self.starts += 1;
        Ok(())
    }

    /// SIGKILL, then reap. Returns when the process is gone.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// The exit status if the process ended by itself.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        let status = self.child.as_mut().and_then(|c| c.try_wait().ok().flatten());
        if status.is_some() {
            self.child = None;
        }
        status
    }

    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// The last `n` lines of its log.
    pub fn log_tail(&self, n: usize) -> String {
        tail(&self.log, n)
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The last `n` lines of a file (reads at most its last 256 KiB).
pub fn tail(path: &Path, n: usize) -> String {
    let Ok(mut f) = File::open(path) else {
        return String::new();
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let _ = f.seek(SeekFrom::Start(len.saturating_sub(256 * 1024)));
    let mut s = String::new();
    let _ = f.read_to_string(&mut s);
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Runs a command to completion, failing with its output when it fails.
pub fn run(program: &str, args: &[&str]) -> anyhow::Result<String> {
    let out = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("cannot run {program}"))?;
    let text =
        format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    if !out.status.success() {
        bail!("{program} {} failed ({}): {text}", args.join(" "), out.status);
    }
    Ok(text)
}

/// Seconds since the Unix epoch, as f64, of a wall-clock time.
pub fn epoch(t: SystemTime) -> f64 {
    t.duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0)
}
