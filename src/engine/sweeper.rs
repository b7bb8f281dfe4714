//! The background sweeper: a thread per writable engine that, every `interval_ms`, runs one
//! active-expire cycle the way Redis does: take `sample` of the soonest-expiring registered
//! documents, delete the expired ones (durably), and repeat while more than
//! `threshold_pct` percent of the sample had expired and the cycle's `budget_ms` is not
//! spent. `interval_ms = 0` pauses it. It stops when the engine's last connection closes
//! ([`Sweeper::stop`]).

use super::Engine;
use crate::error::{Error, Result};
use crate::options::OptionReader;
use parking_lot::{Condvar, Mutex};
use std::sync::{Arc, Weak};
use std::thread::JoinHandle;
use std::time::Duration;

/// Settings of the background expiry sweeper (engine-wide).
///
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SweeperConfig {
    /// Time between cycles (0: paused).
    pub interval_ms: u64,
    /// Registered documents looked at per round.
    pub sample: usize,
    /// Another round follows while more than this percentage of a sample had expired.
    pub threshold_pct: u64,
    /// Time budget of one cycle.
    pub budget_ms: u64,
}

impl Default for SweeperConfig {
    fn default() -> Self {
        Self {
            interval_ms: 100,
            sample: 20,
            threshold_pct: 10,
            budget_ms: 25,
        }
    }
}

impl SweeperConfig {
    /// Reads `sweeper_interval_ms`, `sweeper_sample`, `sweeper_threshold_pct`,
    /// `sweeper_budget_ms`; returns whether any was given.
    pub(crate) fn read(&mut self, r: &mut OptionReader) -> Result<bool> {
        let mut any = false;
        if let Some(v) = r.u64("sweeper_interval_ms")? {
            self.interval_ms = v;
            any = true;
        }
        if let Some(v) = r.u64("sweeper_sample")? {
            self.sample = usize::try_from(v)
                .ok()
                .filter(|v| (1..=10_000).contains(v))
                .ok_or_else(|| {
                    Error::invalid("option 'sweeper_sample' must be between 1 and 10000")
                })?;
            any = true;
        }
        if let Some(v) = r.u64("sweeper_threshold_pct")? {
            if v > 100 {
                return Err(Error::invalid(
                    "option 'sweeper_threshold_pct' must be at most 100",
                ));
            }
            self.threshold_pct = v;
            any = true;
        }
        if let Some(v) = r.u64("sweeper_budget_ms")? {
            self.budget_ms = v;
            any = true;
        }
        Ok(any)
    }
}

#[derive(Default)]
struct Signal {
    stopped: Mutex<bool>,
    wake: Condvar,
}

/// Handle of a running sweeper thread.
pub(crate) struct Sweeper {
    signal: Arc<Signal>,
    thread: Option<JoinHandle<()>>,
}

impl Sweeper {
    /// Starts the thread for `engine`; it holds only a weak reference.
    pub(crate) fn start(engine: Weak<Engine>) -> Result<Self> {
        let signal = Arc::new(Signal::default());
        let sig = Arc::clone(&signal);
        let thread = std::thread::Builder::new()
            .name("nexus-sweeper".into())
            .spawn(move || run(engine, sig))
            .map_err(|e| Error::Internal(format!("cannot start the sweeper thread: {e}")))?;
        Ok(Self {
            signal,
            thread: Some(thread),
        })
    }

    /// Wakes the thread early (after a configuration change).
    pub(crate) fn nudge(&self) {
        self.signal.wake.notify_all();
    }

    /// Stops the thread and waits for it to finish its cycle.
    pub(crate) fn stop(mut self) {
        *self.signal.stopped.lock() = true;
        self.signal.wake.notify_all();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Sweeper {
    fn drop(&mut self) {
        *self.signal.stopped.lock() = true;
        self.signal.wake.notify_all();
    }
}

fn run(engine: Weak<Engine>, signal: Arc<Signal>) {
    loop {
        let interval = match engine.upgrade() {
            Some(e) => e.sweeper_config().interval_ms,
            None => return,
        };
        {
            let mut stopped = signal.stopped.lock();
            if *stopped {
                return;
            }
            let wait = if interval == 0 { 1000 } else { interval };
            signal
                .wake
                .wait_for(&mut stopped, Duration::from_millis(wait));
            if *stopped {
                return;
            }
        }
        if interval == 0 {
            continue;
        }
        let Some(e) = engine.upgrade() else { return };
        if let Err(err) = e.sweep_cycle() {
            if !matches!(err, Error::Busy(_)) {
                ::log::warn!("sweeper cycle failed: {err}");
            }
        }
    }
}
