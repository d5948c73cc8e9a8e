//! Script mode: stdin is not a terminal, and each of its lines is a prompt or a command, run in order. Every later
//! line may be a paid request, so the run stops at the first line that fails (its number in the error), unless
//! `--keep-going`; a line that is not UTF-8 text is such a failure.

use std::io::BufRead;

use anyhow::{Context as _, Result, anyhow};

use super::{Face, Flow};
use crate::engine::{Cancelled, NotRecorded};

/// Runs the lines of `input`; returns whether every line succeeded.
pub fn run(face: &mut Face, input: impl BufRead, keep_going: bool) -> Result<bool> {
    let mut all_ok = true;
    for (index, bytes) in input.split(b'\n').enumerate() {
        let number = index + 1;
        let bytes = bytes.context("reading the script from stdin")?;
        let outcome = match String::from_utf8(bytes) {
            Ok(line) => {
                let line = line.strip_suffix('\r').unwrap_or(&line);
                if line.trim_start().starts_with('#') {
                    continue;
                }
                face.line(line)
            }
            Err(_) => Err(anyhow!("the line is not UTF-8 text")),
        };
        if face.out.broken() {
            return Ok(false);
        }
        match outcome {
            Ok(Flow::Quit) => break,
            Ok(Flow::Continue) => {}
            Err(e) => {
                // A cancel, and an answer that could not be recorded, stop even --keep-going: every later line is
                // paid for, and nothing can be built on a turn that is not in the thread.
                let stop = e.is::<Cancelled>() || e.is::<NotRecorded>();
                face.out.error_at(&format!("line {number}"), &e);
                all_ok = false;
                if stop {
                    return Ok(false);
                }
                if !keep_going {
                    face.out.note(&format!(
                        "stopped at line {number}: the lines after it were not run (--keep-going runs on after a \
                         failed line)"
                    ));
                    return Ok(false);
                }
            }
        }
        if face.interrupts.take_outside() {
            face.out
                .note(&format!("stopped by Ctrl-C after line {number}"));
            return Ok(false);
        }
    }
    Ok(all_ok)
}
