//! `Deadline`: nothing below it runs past the call's deadline (`request_timeout`).
//!
//! Because the stack below returns a stream as soon as its first chunk arrived, the deadline
//! bounds a non-streamed answer to its last byte and a streamed one to its first (SPEC §4).

use std::sync::Arc;

use super::call::{Answer, Call};
use super::stage::{Inner, Next, Stage};
use crate::failure::Failure;

#[derive(Clone, Copy, Debug, Default)]
pub struct Deadline;

impl Stage for Deadline {
    async fn around<S: Inner>(
        self: Arc<Self>,
        call: Call,
        next: Next<S>,
    ) -> Result<Answer, Failure> {
        let deadline = call.deadline;
        tokio::time::timeout_at(deadline, next.run(call))
            .await
            .unwrap_or_else(|_| Err(Failure::deadline()))
    }
}
