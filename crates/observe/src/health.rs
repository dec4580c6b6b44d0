//! Liveness and readiness as the kubelet probes them.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// What `/healthz` and `/readyz` answer.
///
/// Live: the agent's loop has beaten within `stale_after` (a wedged loop gets the pod
/// restarted). Ready: the node is programmed (subnets claimed, routes converged, and with
/// NetworkPolicy on, the first ruleset applied); until then the DaemonSet's rolling update
/// waits instead of moving on to the next node.
#[derive(Debug)]
pub struct Health {
    stale_after: Duration,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    last_beat: Instant,
    not_ready: Option<String>,
}

impl Health {
    /// Starts live (the loop is just starting) and not ready.
    pub fn new(stale_after: Duration) -> Self {
        Health {
            stale_after,
            state: Mutex::new(State {
                last_beat: Instant::now(),
                not_ready: Some("starting".to_string()),
            }),
        }
    }

    /// The agent's loop is alive.
    pub fn beat(&self) {
        if let Ok(mut s) = self.state.lock() {
            s.last_beat = Instant::now();
        }
    }

    /// Ready, or not ready and why.
    pub fn set_ready(&self, ready: Result<(), String>) {
        if let Ok(mut s) = self.state.lock() {
            s.not_ready = ready.err();
        }
    }

    /// `Ok` if live, else why not.
    pub fn live(&self) -> Result<(), String> {
        let s = self
            .state
            .lock()
            .map_err(|_| "health state poisoned".to_string())?;
        let quiet = s.last_beat.elapsed();
        if quiet > self.stale_after {
            return Err(format!("agent loop silent for {} s", quiet.as_secs()));
        }
        Ok(())
    }

    /// `Ok` if live and ready, else why not.
    pub fn ready(&self) -> Result<(), String> {
        self.live()?;
        let s = self
            .state
            .lock()
            .map_err(|_| "health state poisoned".to_string())?;
        match &s.not_ready {
            None => Ok(()),
            Some(why) => Err(why.clone()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_only_after_set_and_not_when_stale() {
        let h = Health::new(Duration::from_millis(50));
        assert!(h.live().is_ok());
        assert_eq!(h.ready(), Err("starting".to_string()));
        h.set_ready(Ok(()));
        assert!(h.ready().is_ok());
        h.set_ready(Err("peers not listed".into()));
        assert_eq!(h.ready(), Err("peers not listed".to_string()));
        h.set_ready(Ok(()));
        std::thread::sleep(Duration::from_millis(80));
        assert!(h.live().is_err());
        assert!(h.ready().is_err());
        h.beat();
        assert!(h.ready().is_ok());
    }
}
