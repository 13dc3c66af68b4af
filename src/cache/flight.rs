//! Single-flight: identical concurrent misses make one upstream call. The first request for a
//! key leads; the others follow, wait for the leader's outcome and take its answer from the
//! entry it stored, or its failure. If the leader goes away without an outcome (its client
//! disconnected, its stream broke), followers are released to try on their own.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::watch;

use super::entry::Entry;
use crate::failure::Failure;

#[derive(Default)]
pub struct Flights {
    running: Mutex<HashMap<String, watch::Receiver<Outcome>>>,
}

#[derive(Clone)]
pub enum Outcome {
    Running,
    Stored(Arc<Entry>),
    Failed(Failure),
    Abandoned,
}

pub enum Role {
    Leader(Flight),
    Follower(watch::Receiver<Outcome>),
}

/// The leader's side of a flight; dropping it without an outcome abandons the flight.
pub struct Flight {
    flights: Arc<Flights>,
    key: String,
    sender: watch::Sender<Outcome>,
}

impl Flights {
    pub fn join(self: &Arc<Self>, key: &str) -> Role {
        let mut running = self.running.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(receiver) = running.get(key) {
            return Role::Follower(receiver.clone());
        }
        let (sender, receiver) = watch::channel(Outcome::Running);
        running.insert(key.to_owned(), receiver);
        Role::Leader(Flight { flights: Arc::clone(self), key: key.to_owned(), sender })
    }
}

impl Flight {
    pub fn finish(self, outcome: Outcome) {
        self.sender.send_replace(outcome);
    }
}

impl Drop for Flight {
    fn drop(&mut self) {
        self.flights.running.lock().unwrap_or_else(PoisonError::into_inner).remove(&self.key);
        self.sender.send_if_modified(|outcome| {
            let running = matches!(outcome, Outcome::Running);
            if running {
                *outcome = Outcome::Abandoned;
            }
            running
        });
    }
}

/// Waits for the leader's outcome.
pub async fn follow(mut receiver: watch::Receiver<Outcome>) -> Outcome {
    match receiver.wait_for(|outcome| !matches!(outcome, Outcome::Running)).await {
        Ok(outcome) => outcome.clone(),
        Err(_) => Outcome::Abandoned,
    }
}
