//! Runs the real peel binary with a clean environment (nothing from the developer's own setup leaks in), a
//! private HOME, database and output folder, pointed at a fake Gemini server.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use crate::support::fake_gemini::FakeGemini;

pub const PEEL: &str = env!("CARGO_BIN_EXE_peel");

/// A sandbox for one test: a temporary HOME holding the database and the images.
pub struct Sandbox {
    pub dir: tempfile::TempDir,
    base_url: Option<String>,
    key: Option<String>,
}

impl Sandbox {
    /// A sandbox whose peel talks to `server` with the server's key.
    pub fn new(server: &FakeGemini) -> Sandbox {
        Sandbox {
            dir: tempfile::tempdir().unwrap(),
            base_url: Some(server.url().to_string()),
            key: Some(server.api_key().to_string()),
        }
    }

    /// A sandbox with no server and no key (offline runs, or checking what happens without a key).
    pub fn bare() -> Sandbox {
        Sandbox {
            dir: tempfile::tempdir().unwrap(),
            base_url: None,
            key: None,
        }
    }

    pub fn db(&self) -> PathBuf {
        self.dir.path().join("peel.db")
    }

    pub fn out(&self) -> PathBuf {
        self.dir.path().join("out")
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// `peel ARGS` ready to run, environment cleared but for what peel is meant to read.
    pub fn peel(&self, args: &[&str]) -> Command {
        let mut command = Command::new(PEEL);
        command.env_clear().current_dir(self.dir.path()).args(args);
        command
            .env("HOME", self.dir.path())
            .env("PATH", std::env::var_os("PATH").unwrap_or_default());
        command
            .env("PEEL_DB", self.db())
            .env("PEEL_OUT", self.out())
            .env("NO_COLOR", "1");
        if let Some(url) = &self.base_url {
            command.env("PEEL_BASE_URL", url);
        }
        if let Some(key) = &self.key {
            command.env("GEMINI_API_KEY", key);
        }
        command
    }

    /// Runs peel with `stdin` piped in (script mode) and waits for it.
    pub fn run(&self, args: &[&str], stdin: &str) -> Run {
        let mut child = self.spawn(args, stdin);
        let output = wait_with_timeout(&mut child);
        Run::from(output)
    }

    /// Runs a command made with [`Sandbox::peel`] (and changed by the test, e.g. its environment) and waits for it.
    pub fn run_command(&self, command: Command, stdin: &str) -> Run {
        self.run_command_bytes(command, stdin.as_bytes())
    }

    /// [`Sandbox::run_command`] with any bytes on stdin (not only text).
    pub fn run_command_bytes(&self, command: Command, stdin: &[u8]) -> Run {
        let mut child = spawn_command(command, stdin);
        Run::from(wait_with_timeout(&mut child))
    }

    /// Starts peel with `stdin` piped in, without waiting.
    pub fn spawn(&self, args: &[&str], stdin: &str) -> Child {
        spawn_command(self.peel(args), stdin.as_bytes())
    }

    /// The database, opened read-only by the test itself.
    pub fn open_db(&self) -> rusqlite::Connection {
        rusqlite::Connection::open_with_flags(self.db(), rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .unwrap()
    }

    /// The first column of the one row `sql` selects from the database.
    pub fn query_one<T: rusqlite::types::FromSql>(&self, sql: &str) -> T {
        self.open_db()
            .query_row(sql, [], |r| r.get(0))
            .unwrap_or_else(|err| panic!("{sql}: {err}"))
    }

    /// The first column of each row `sql` selects from the database, in order.
    pub fn query_all<T: rusqlite::types::FromSql>(&self, sql: &str) -> Vec<T> {
        let db = self.open_db();
        let mut stmt = db.prepare(sql).unwrap_or_else(|err| panic!("{sql}: {err}"));
        stmt.query_map([], |r| r.get(0))
            .unwrap()
            .map(|row| row.unwrap_or_else(|err| panic!("{sql}: {err}")))
            .collect()
    }

    /// A `SELECT count(*) ...`'s count.
    pub fn count(&self, sql: &str) -> i64 {
        self.query_one(sql)
    }

    /// How many contents (prompts and answers) the database holds.
    pub fn stored_contents(&self) -> i64 {
        self.count("SELECT count(*) FROM contents")
    }

    /// The key appears in none of the runs' output and in no file of the sandbox (database, images, history).
    pub fn assert_key_nowhere(&self, key: &str, runs: &[&Run]) {
        for run in runs {
            assert!(
                !run.stdout.contains(key) && !run.stderr.contains(key),
                "{run:?}"
            );
        }
        for (path, bytes) in self.all_files() {
            assert!(
                !bytes.windows(key.len()).any(|w| w == key.as_bytes()),
                "the key is in {}",
                path.display()
            );
        }
    }

    /// Every file below the sandbox, read as bytes.
    fn all_files(&self) -> Vec<(PathBuf, Vec<u8>)> {
        fn walk(dir: &Path, out: &mut Vec<(PathBuf, Vec<u8>)>) {
            for entry in std::fs::read_dir(dir).unwrap().flatten() {
                let path = entry.path();
                if path.is_dir() {
                    walk(&path, out);
                } else if let Ok(bytes) = std::fs::read(&path) {
                    out.push((path, bytes));
                }
            }
        }
        let mut out = Vec::new();
        walk(self.dir.path(), &mut out);
        out
    }
}

/// Starts a peel command with `stdin` piped in.
fn spawn_command(mut command: Command, stdin: &[u8]) -> Child {
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the peel binary runs");
    let mut pipe = child.stdin.take().unwrap();
    pipe.write_all(stdin).unwrap();
    drop(pipe);
    child
}

/// Waits for peel (at most a minute, then kills it and panics), reading its output as it comes so a full pipe
/// never stalls it. A pipe the caller took already is left to the caller.
pub fn wait_with_timeout(child: &mut Child) -> Output {
    fn drain(
        pipe: Option<impl std::io::Read + Send + 'static>,
    ) -> std::thread::JoinHandle<Vec<u8>> {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            if let Some(mut pipe) = pipe {
                pipe.read_to_end(&mut bytes).unwrap();
            }
            bytes
        })
    }
    let stdout = drain(child.stdout.take());
    let stderr = drain(child.stderr.take());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if std::time::Instant::now() > deadline {
            child.kill().ok();
            panic!("peel did not finish within 60 s");
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    };
    Output {
        status,
        stdout: stdout.join().unwrap(),
        stderr: stderr.join().unwrap(),
    }
}

/// A finished run.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl From<Output> for Run {
    fn from(output: Output) -> Run {
        Run {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }
}

impl Run {
    /// Asserts the exit code, showing both streams when it is not the one expected.
    pub fn expect_code(self, code: i32) -> Run {
        assert_eq!(
            self.code, code,
            "exit code\n--- stdout\n{}\n--- stderr\n{}",
            self.stdout, self.stderr
        );
        self
    }

    pub fn stdout_lines(&self) -> Vec<&str> {
        self.stdout.lines().collect()
    }
}
