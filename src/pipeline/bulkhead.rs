//! `Bulkhead`: at most `max_concurrency` calls in flight to one provider. When it is full the
//! target is skipped at once (the next target is tried) instead of queueing behind a slow
//! provider. A streamed answer holds its place until the stream ends.

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::call::{Answer, Call};
use super::observe::{Observer, observe};
use super::stage::{Inner, Next, Stage};
use crate::failure::{Failure, FailureClass};
use crate::providers::Reply;

pub struct Bulkhead {
    provider: Arc<str>,
    slots: Arc<Semaphore>,
}

impl Bulkhead {
    pub fn new(provider: Arc<str>, slots: Arc<Semaphore>) -> Self {
        Self { provider, slots }
    }
}

impl Stage for Bulkhead {
    async fn around<S: Inner>(
        self: Arc<Self>,
        call: Call,
        next: Next<S>,
    ) -> Result<Answer, Failure> {
        let Ok(slot) = Arc::clone(&self.slots).try_acquire_owned() else {
            return Err(Failure::new(
                FailureClass::BulkheadFull,
                &self.provider,
                "max_concurrency reached: skipped",
            ));
        };
        let mut answer = next.run(call).await?;
        if let Reply::Stream(chunks) = answer.reply {
            // The slot is released when the client's stream is done or dropped.
            answer.reply = Reply::Stream(observe(chunks, HeldSlot(slot)));
        }
        Ok(answer)
    }
}

/// A slot held for as long as the stream lives.
struct HeldSlot(#[expect(dead_code, reason = "held for its drop")] OwnedSemaphorePermit);

impl Observer for HeldSlot {}
