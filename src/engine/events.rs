//! What the engine reports while a turn runs. A face renders these: wrapped text and a spinner on a terminal,
//! notices on stderr for a script, nothing at all for `--json`; a test face records them.

use std::cell::RefCell;
use std::time::Duration;

#[derive(Debug, Clone, PartialEq)]
pub enum Event<'a> {
    /// A request is going out to `url` (credentials redacted) with a body of `bytes`.
    Sending { url: &'a str, bytes: u64 },
    /// The last attempt failed with `reason`; attempt `attempt` of `attempts` starts after `wait`.
    Retrying {
        wait: Duration,
        attempt: u32,
        attempts: u32,
        reason: &'a str,
    },
    /// A streamed attempt failed after part of its answer was reported: what was shown of it is void, and the
    /// next attempt starts from nothing.
    AttemptRestarted,
    /// A piece of a thought summary, as it streamed in.
    Thought(&'a str),
    /// A piece of the answer's text, as it streamed in.
    Text(&'a str),
    /// What the status line should say now, in place of the model's name (variants: how many takes are done).
    Status(&'a str),
    /// Something worth telling that does not stop the work.
    Notice(&'a str),
    /// Something that went wrong without stopping the work.
    Warning(&'a str),
}

impl Event<'_> {
    /// `retrying in 4 s (2/5): 503 The model is overloaded`.
    pub fn retry_message(&self) -> Option<String> {
        let Event::Retrying {
            wait,
            attempt,
            attempts,
            reason,
        } = self
        else {
            return None;
        };
        let wait = if *wait >= Duration::from_secs(1) {
            format!("{} s", wait.as_secs_f64().round())
        } else {
            format!("{} ms", wait.as_millis())
        };
        Some(format!(
            "retrying in {wait} ({attempt}/{attempts}): {reason}"
        ))
    }
}

/// Where a turn's events go.
pub trait Events {
    fn emit(&self, event: Event<'_>);
}

/// For work nobody watches.
pub struct Quiet;

impl Events for Quiet {
    fn emit(&self, _: Event<'_>) {}
}

/// The test face: keeps every event, in order, as owned text.
#[derive(Debug, Default)]
pub struct Recorder {
    pub events: RefCell<Vec<String>>,
}

impl Events for Recorder {
    fn emit(&self, event: Event<'_>) {
        let line = match event {
            Event::Sending { bytes, .. } => format!("sending {bytes}"),
            Event::Retrying { .. } => event.retry_message().unwrap_or_default(),
            Event::AttemptRestarted => "restarted".to_string(),
            Event::Thought(text) => format!("thought: {text}"),
            Event::Text(text) => format!("text: {text}"),
            Event::Status(text) => format!("status: {text}"),
            Event::Notice(text) => format!("notice: {text}"),
            Event::Warning(text) => format!("warning: {text}"),
        };
        self.events.borrow_mut().push(line);
    }
}

impl Recorder {
    pub fn lines(&self) -> Vec<String> {
        self.events.borrow().clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_message_reads_well() {
        let e = Event::Retrying {
            wait: Duration::from_millis(3_600),
            attempt: 2,
            attempts: 5,
            reason: "503 The model is overloaded",
        };
        assert_eq!(
            e.retry_message().unwrap(),
            "retrying in 4 s (2/5): 503 The model is overloaded"
        );
        assert!(Event::Text("x").retry_message().is_none());
    }
}
