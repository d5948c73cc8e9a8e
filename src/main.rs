//! The peel binary: parse the arguments, run, and turn the result into an exit code (0 done, 1 failed, 2 usage,
//! 130 cancelled).

use std::process::ExitCode;

use std::io::Write as _;

use clap::Parser;

fn main() -> ExitCode {
    keep_freed_memory();
    // `COMPLETE=bash peel ...` (from `peel completions bash`): answer the shell's completion request and leave.
    clap_complete::CompleteEnv::with_factory(<peel::cli::Cli as clap::CommandFactory>::command)
        .complete();
    if let Err(message) = peel::cli::check_environment() {
        // A closed stderr is no reason to panic.
        let _ = writeln!(std::io::stderr(), "error: {message}");
        return ExitCode::from(2);
    }
    let cli = peel::cli::Cli::parse();
    let quiet = cli.quiet;
    match peel::run(cli) {
        Ok(peel::Outcome::Done) => ExitCode::SUCCESS,
        Ok(peel::Outcome::Failed) => ExitCode::from(1),
        Err(error) => {
            let out =
                peel::face::out::Out::new(peel::face::out::Mode::OneShot, false, quiet, false);
            out.error(&error);
            if error.is::<peel::engine::Cancelled>() {
                ExitCode::from(130)
            } else if error.is::<peel::config::UsageError>() {
                ExitCode::from(2)
            } else {
                ExitCode::from(1)
            }
        }
    }
}

/// A 2K turn allocates and frees buffers of megabytes (5 MB of answer, 3.7 MB decoded, the request's chunks).
/// glibc maps each such buffer afresh and unmaps it when freed, so every turn the kernel zero-fills and faults in
/// the same pages again. Keeping freed memory in the heap instead (up to glibc's 32 MiB cap for a single mapped
/// buffer) does away with that; the resident peak is the turn's peak either way.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn keep_freed_memory() {
    // SAFETY: mallopt only changes allocator parameters; called before any other thread exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 256 << 20);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn keep_freed_memory() {}
