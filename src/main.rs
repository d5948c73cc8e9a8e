//! The peel binary: parse the arguments, run, and turn the result into an exit code (0 done, 1 failed, 2 usage).

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    if let Err(message) = peel::cli::check_environment() {
        eprintln!("error: {message}");
        return ExitCode::from(2);
    }
    let cli = peel::cli::Cli::parse();
    let quiet = cli.quiet;
    match peel::run(cli) {
        Ok(peel::Outcome::Done) => ExitCode::SUCCESS,
        Ok(peel::Outcome::Failed) => ExitCode::from(1),
        Err(error) => {
            let ui = peel::ui::Ui::new(false, false, quiet, Default::default());
            if error.is::<peel::app::Cancelled>() {
                ui.error(&error);
                return ExitCode::from(130);
            }
            ui.error(&error);
            if error.is::<peel::config::UsageError>() {
                ExitCode::from(2)
            } else {
                ExitCode::from(1)
            }
        }
    }
}
