//! Single-flight: identical concurrent misses make one upstream call. The first request for a
//! key leads; the others follow, wait for the leader's outcome and take its answer from the
//! entry it stored, or its failure. If the leader goes away without an outcome (its client
//! disconnected, its stream broke), followers are released to try on their own.
//!
//! A follower waits for one leader at most its *patience*; then the flight counts as stalled
//! (the leader's stream is slow, or its client stopped reading and so holds the stream back),
//! and the follower takes the leader's place: `take_over` starts a new flight for the key, which
//! later followers, and the stalled flight's other followers when their own patience runs out,
//! join instead. So a stalled leader costs one more upstream call per patience, not one per
//! follower. The stalled leader carries on for its own client; when it ends, it leaves the
//! flight that replaced it alone (flights are told apart by a generation number).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::watch;

use super::entry::Entry;
use crate::failure::Failure;

#[derive(Default)]
pub struct Flights {
    running: Mutex<HashMap<String, Running>>,
    /// The number of the next flight.
    generations: AtomicU64,
}

/// The flight under way for one key.
struct Running {
    generation: u64,
    outcome: watch::Receiver<Outcome>,
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
    Follower(Follower),
}

/// The leader's side of a flight; dropping it without an outcome abandons the flight.
pub struct Flight {
    flights: Arc<Flights>,
    key: String,
    generation: u64,
    sender: watch::Sender<Outcome>,
}

/// A follower's side of a flight.
pub struct Follower {
    generation: u64,
    outcome: watch::Receiver<Outcome>,
}

impl Flights {
    /// Leads the flight for `key`, or follows the one under way.
    pub fn join(self: &Arc<Self>, key: &str) -> Role {
        self.join_unless(key, None)
    }

    /// Leads a new flight for `key` in place of the one `stalled` follows, if that one is still
    /// under way; follows the flight that already replaced it, if another follower was first.
    pub fn take_over(self: &Arc<Self>, key: &str, stalled: &Follower) -> Role {
        self.join_unless(key, Some(stalled.generation))
    }

    /// Joins the flight for `key` unless it is flight `stalled`, which a new flight replaces.
    fn join_unless(self: &Arc<Self>, key: &str, stalled: Option<u64>) -> Role {
        let mut running = self.running.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(flight) = running.get(key).filter(|flight| Some(flight.generation) != stalled) {
            let (generation, outcome) = (flight.generation, flight.outcome.clone());
            return Role::Follower(Follower { generation, outcome });
        }
        let generation = self.generations.fetch_add(1, Ordering::Relaxed);
        let (sender, outcome) = watch::channel(Outcome::Running);
        running.insert(key.to_owned(), Running { generation, outcome });
        Role::Leader(Flight { flights: Arc::clone(self), key: key.to_owned(), generation, sender })
    }
}

impl Flight {
    pub fn finish(self, outcome: Outcome) {
        self.sender.send_replace(outcome);
    }
}

impl Drop for Flight {
    fn drop(&mut self) {
        let mut running = self.flights.running.lock().unwrap_or_else(PoisonError::into_inner);
        // A flight that replaced this one (a follower took over) is not this one's to end.
        if running.get(&self.key).is_some_and(|flight| flight.generation == self.generation) {
            running.remove(&self.key);
        }
        drop(running);
        self.sender.send_if_modified(|outcome| {
            let running = matches!(outcome, Outcome::Running);
            if running {
                *outcome = Outcome::Abandoned;
            }
            running
        });
    }
}

impl Follower {
    /// Waits for the leader's outcome, at most `patience`: none when the flight is stalled.
    pub async fn wait(&mut self, patience: Duration) -> Option<Outcome> {
        let outcome = self.outcome.wait_for(|outcome| !matches!(outcome, Outcome::Running));
        match tokio::time::timeout(patience, outcome).await {
            Ok(Ok(outcome)) => Some(outcome.clone()),
            Ok(Err(_)) => Some(Outcome::Abandoned),
            Err(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use tokio::time::Instant;

    use super::*;

    const PATIENCE: Duration = Duration::from_secs(5);

    fn leader(role: Role) -> Flight {
        match role {
            Role::Leader(flight) => flight,
            Role::Follower(_) => panic!("expected to lead"),
        }
    }

    fn follower(role: Role) -> Follower {
        match role {
            Role::Follower(follower) => follower,
            Role::Leader(_) => panic!("expected to follow"),
        }
    }

    fn entry() -> Arc<Entry> {
        Arc::new(
            Entry::from_completion(crate::dialect::Api::Chat, br#"{"choices":[]}"#, "p", None)
                .unwrap(),
        )
    }

    #[tokio::test(start_paused = true)]
    async fn a_follower_gets_the_outcome_its_leader_finishes_with() {
        let flights = Arc::new(Flights::default());
        let first = leader(flights.join("k"));
        let mut second = follower(flights.join("k"));
        first.finish(Outcome::Stored(entry()));

        assert!(matches!(second.wait(PATIENCE).await, Some(Outcome::Stored(_))));
        leader(flights.join("k"));
    }

    #[tokio::test(start_paused = true)]
    async fn a_follower_waits_at_most_its_patience_then_takes_over_the_stalled_flight() {
        let flights = Arc::new(Flights::default());
        let stalled = leader(flights.join("k"));
        let mut first = follower(flights.join("k"));
        let mut second = follower(flights.join("k"));

        let started = Instant::now();
        assert!(first.wait(PATIENCE).await.is_none());
        assert_eq!(started.elapsed(), PATIENCE);
        let replacement = leader(flights.take_over("k", &first));
        // The stalled flight's other follower, and newcomers, join the replacement.
        assert!(second.wait(Duration::ZERO).await.is_none());
        let mut second = follower(flights.take_over("k", &second));
        let mut newcomer = follower(flights.join("k"));

        // The stalled leader ends later: the replacement stays the flight for the key.
        stalled.finish(Outcome::Stored(entry()));
        let mut third = follower(flights.join("k"));
        replacement.finish(Outcome::Stored(entry()));
        for follower in [&mut second, &mut newcomer, &mut third] {
            assert!(matches!(follower.wait(PATIENCE).await, Some(Outcome::Stored(_))));
        }
        assert_eq!(started.elapsed(), PATIENCE, "no one waited again");
        leader(flights.join("k"));
    }

    #[tokio::test(start_paused = true)]
    async fn a_leader_that_goes_away_without_an_outcome_releases_its_followers() {
        let flights = Arc::new(Flights::default());
        let gone = leader(flights.join("k"));
        let mut waiting = follower(flights.join("k"));
        drop(gone);

        assert!(matches!(waiting.wait(PATIENCE).await, Some(Outcome::Abandoned)));
        leader(flights.join("k"));
    }
}
