//! Ctrl-C. While a request runs it cancels that request (nothing is recorded); at any other moment it cancels
//! nothing later on: a Ctrl-C never carries over to the next wait. In script and one-shot mode, a Ctrl-C outside a
//! request stops the run after the line in progress.
//!
//! A thread of its own takes SIGINT as it comes (tokio's signal listener on a runtime that is always running), so
//! no signal waits, remembered, for a later request to pick it up.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use crate::engine::Cancel;

#[derive(Clone, Default)]
pub struct Interrupts {
    shared: Arc<Shared>,
}

#[derive(Default)]
struct Shared {
    /// The request that Ctrl-C cancels now, if one is running.
    current: Mutex<Option<Cancel>>,
    /// Ctrl-C came while no request ran.
    outside: AtomicBool,
}

impl Interrupts {
    /// Starts taking Ctrl-C. From here on it no longer ends the process by itself. The handler is in place when
    /// this returns: rustyline saves the handler it finds at each prompt and puts it back after, so one installed
    /// later, from another thread, could be undone.
    pub fn start() -> Interrupts {
        let interrupts = Interrupts::default();
        let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        else {
            // Without a listener Ctrl-C keeps its default: it ends peel, which loses nothing committed.
            return interrupts;
        };
        let signals = {
            let _inside = runtime.enter();
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
        };
        let Ok(mut signals) = signals else {
            return interrupts;
        };
        let shared = interrupts.shared.clone();
        let _ = std::thread::Builder::new()
            .name("peel-ctrl-c".into())
            .spawn(move || {
                runtime.block_on(async move {
                    while signals.recv().await.is_some() {
                        let current = shared.current.lock().ok().and_then(|c| c.clone());
                        match current {
                            Some(cancel) => cancel.cancel(),
                            None => shared.outside.store(true, Ordering::SeqCst),
                        }
                    }
                });
            });
        interrupts
    }

    /// A fresh cancel for one request: Ctrl-C cancels it until the guard is dropped.
    pub fn request(&self) -> (Cancel, RequestGuard) {
        let cancel = Cancel::new();
        if let Ok(mut current) = self.shared.current.lock() {
            *current = Some(cancel.clone());
        }
        (
            cancel,
            RequestGuard {
                shared: self.shared.clone(),
            },
        )
    }

    /// Whether Ctrl-C came while no request ran (since the last call); clears it.
    pub fn take_outside(&self) -> bool {
        self.shared.outside.swap(false, Ordering::SeqCst)
    }
}

pub struct RequestGuard {
    shared: Arc<Shared>,
}

impl Drop for RequestGuard {
    fn drop(&mut self) {
        if let Ok(mut current) = self.shared.current.lock() {
            *current = None;
        }
    }
}
