//! A throwaway Postgres cluster: `initdb` into the scratch directory, its own port, started,
//! restarted and stopped with `pg_ctl`. Never the machine's shared cluster on 5432.
//!
//! initdb refuses to run as root, so as root every command runs as the `postgres` OS user
//! (`runuser -u postgres --`) and the data directory belongs to it.

use std::{
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use anyhow::{bail, Context as _};

use crate::process::run;

pub struct Postgres {
    pub bin: PathBuf,
    pub data: PathBuf,
    pub port: u16,
    pub log: PathBuf,
    as_postgres: bool,
    running: bool,
}

/// The newest `/usr/lib/postgresql/<ver>/bin`, or `LIFELINE_CLUSTER_PG_BIN`.
pub fn pg_bin() -> anyhow::Result<PathBuf> {
    if let Some(dir) = std::env::var_os("LIFELINE_CLUSTER_PG_BIN") {
        return Ok(PathBuf::from(dir));
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .context("no /usr/lib/postgresql (apt-get install postgresql)")?
        .filter_map(Result::ok)
        .filter_map(|e| {
            let v: u32 = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((v, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, b)| b).context("no initdb under /usr/lib/postgresql/<version>/bin")
}

fn is_root() -> bool {
    run("id", &["-u"]).map(|s| s.trim() == "0").unwrap_or(false)
}

impl Postgres {
    /// Creates the cluster (initdb) with its settings; does not start it.
    pub fn init(dir: &Path, port: u16) -> anyhow::Result<Postgres> {
        let bin = pg_bin()?;
        let home = dir.join("postgres");
        std::fs::create_dir_all(&home)?;
        let as_postgres = is_root();
        if as_postgres {
            run("chown", &["postgres:postgres", &home.to_string_lossy()])?;
        }
        let data = home.join("data");
        let pg = Postgres {
            bin,
            data,
            port,
            log: home.join("postgres.log"),
            as_postgres,
            running: false,
        };
        pg.tool(
            "initdb",
            &[
                "-D",
                &pg.data.to_string_lossy(),
                "-U",
                "postgres",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--no-sync",
            ],
        )?;
        // A throwaway cluster: durability traded for speed (a fast restart still checkpoints).
        let settings = format!(
            "\n# lifeline-cluster\nport = {port}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{home}'\n\
             max_connections = 200\nshared_buffers = 128MB\nfsync = off\nsynchronous_commit = off\n\
             full_page_writes = off\n",
            home = home.display()
        );
        let conf = pg.data.join("postgresql.conf");
        let mut text = std::fs::read_to_string(&conf)?;
        text.push_str(&settings);
        std::fs::write(&conf, text)?;
        Ok(pg)
    }

    fn tool(&self, name: &str, args: &[&str]) -> anyhow::Result<String> {
        let program = self.bin.join(name);
        let program = program.to_string_lossy();
        if self.as_postgres {
            let mut all = vec!["-u", "postgres", "--", program.as_ref()];
            all.extend_from_slice(args);
            run("runuser", &all)
        } else {
            run(&program, args)
        }
    }

    fn pg_ctl(&self, action: &str, extra: &[&str]) -> anyhow::Result<String> {
        let data = self.data.to_string_lossy();
        let log = self.log.to_string_lossy();
        let mut args = vec!["-D", data.as_ref(), "-l", log.as_ref()];
        args.extend_from_slice(extra);
        args.push(action);
        self.tool("pg_ctl", &args)
    }

    /// `pg_ctl start`; with `wait` false it returns at once (the server comes up meanwhile).
    pub fn start(&mut self, wait: bool) -> anyhow::Result<()> {
        self.pg_ctl("start", if wait { &["-w"] } else { &["-W"] })?;
        self.running = true;
        Ok(())
    }

    /// `pg_ctl restart -m fast`: every connection is cut; returns once it accepts again.
    pub fn restart(&mut self) -> anyhow::Result<Duration> {
        let t = Instant::now();
        self.pg_ctl("restart", &["-m", "fast", "-w"])?;
        self.running = true;
        Ok(t.elapsed())
    }

    pub fn stop(&mut self) -> anyhow::Result<()> {
        if self.running {
            self.running = false;
            self.pg_ctl("stop", &["-m", "immediate", "-w"])?;
        }
        Ok(())
    }

    /// Whether it accepts connections (`pg_isready`).
    pub fn is_ready(&self) -> bool {
        let port = self.port.to_string();
        run(&self.bin.join("pg_isready").to_string_lossy(), &["-h", "127.0.0.1", "-p", &port, "-q"])
            .is_ok()
    }

    pub fn wait_ready(&self, within: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + within;
        while !self.is_ready() {
            if Instant::now() > deadline {
                bail!(
                    "postgres on {} not ready within {within:?}: {}",
                    self.port,
                    crate::process::tail(&self.log, 20)
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(())
    }

    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }
}

/// `pg_ctl stop -m immediate` on the data directory an interrupted run left running.
pub fn stop_stale(data: &Path) {
    let Ok(bin) = pg_bin() else { return };
    let pg_ctl = bin.join("pg_ctl");
    let pg_ctl = pg_ctl.to_string_lossy();
    let data = data.to_string_lossy();
    let args = ["-D", data.as_ref(), "-m", "immediate", "-w", "stop"];
    let _ = if is_root() {
        let mut all = vec!["-u", "postgres", "--", pg_ctl.as_ref()];
        all.extend_from_slice(&args);
        run("runuser", &all)
    } else {
        run(&pg_ctl, &args)
    };
}

impl Drop for Postgres {
    fn drop(&mut self) {
        if let Err(e) = self.stop() {
            eprintln!("cluster: stopping the throwaway postgres: {e:#}");
        }
    }
}
