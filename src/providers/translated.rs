//! A chat target's answer for a request of another dialect, translated back into that dialect
//! (SPEC §4 "Dialects"). The request's side of the translation is made once per request, by the
//! dialect (`dialect::Messages::as_chat`, `dialect::Responses::as_chat`); the answer's side is
//! made per attempt, here.

use std::sync::Arc;

use futures_util::{StreamExt, stream};

use super::{ChunkStream, Reply, content_ready};
use crate::dialect::responses::carries_content;
use crate::dialect::{Messages, Responses, messages};
use crate::failure::{Failure, FailureClass};
use crate::openai::chat::completion_problem;
use crate::tokens::rough_prompt_tokens;
use crate::translate::messages_chat::stream::{Event, StreamTranslation};
use crate::translate::messages_chat::to_message;
use crate::translate::responses_chat::stream::StreamTranslation as ResponsesStream;
use crate::translate::responses_chat::{head, new_response_id, to_response};

/// The chat `reply` to `messages` as a Message, or as Messages events. Nothing is sent of a
/// stream before its first content (the translation opens the message there), so the stream is
/// held until then, like a native one.
pub(super) async fn messages_from_chat(
    reply: Reply,
    messages: &Messages,
    provider: &Arc<str>,
) -> Result<Reply, Failure> {
    let alias = &messages.request.model;
    match reply {
        Reply::Complete(body) => {
            check_completion(&body, provider)?;
            match to_message(&body, alias) {
                Some(message) => Ok(Reply::Complete(message.into())),
                None => Err(not_a_completion(provider)),
            }
        }
        Reply::Stream(chunks) => {
            // The client's body was parsed for the translation already.
            let estimated_input = rough_prompt_tokens(messages.request.body());
            let mut translation = StreamTranslation::new(alias, estimated_input);
            let data = |events: Vec<Event>| events.into_iter().map(|event| event.data).collect();
            let events = translated(chunks, Arc::clone(provider), move |step| match step {
                Some(chunk) => translation.chunk(chunk).map(data),
                None => Some(data(translation.finish())),
            });
            content_ready(provider, events, messages::carries_content).await
        }
    }
}

/// The chat `reply` to `responses` as a Response, or as Responses events, held until their first
/// content like a native stream (`response.created` and `response.in_progress` wait with it).
pub(super) async fn responses_from_chat(
    reply: Reply,
    responses: &Responses,
    provider: &Arc<str>,
) -> Result<Reply, Failure> {
    let request = responses.request.body();
    let head = head(request, &responses.request.model, &new_response_id(), super::unix_now());
    match reply {
        Reply::Complete(body) => {
            check_completion(&body, provider)?;
            match to_response(&body, &head) {
                Some(response) => Ok(Reply::Complete(response.into())),
                None => Err(not_a_completion(provider)),
            }
        }
        Reply::Stream(chunks) => {
            let mut translation = ResponsesStream::new(head);
            let events = translated(chunks, Arc::clone(provider), move |step| match step {
                Some(chunk) => translation.chunk(chunk),
                None => Some(translation.finish()),
            });
            content_ready(provider, events, carries_content).await
        }
    }
}

/// A 200 that is not a chat completion is a failed attempt, saying why (as a chat answer's is:
/// `pipeline::attempt`).
fn check_completion(body: &[u8], provider: &Arc<str>) -> Result<(), Failure> {
    match completion_problem(body) {
        Some(problem) => Err(Failure::new(FailureClass::ServerError, provider, problem)),
        None => Ok(()),
    }
}

fn not_a_completion(provider: &Arc<str>) -> Failure {
    Failure::new(
        FailureClass::ServerError,
        provider,
        "upstream answered 200 with a body that is not a chat completion",
    )
}

/// A chat stream's chunks through a translation: `step(Some(chunk))` gives the events of one
/// chunk (`None` when it is not a chat chunk, which fails the stream), `step(None)` the events
/// that end it after the upstream's clean end.
fn translated<F>(chunks: ChunkStream, provider: Arc<str>, step: F) -> ChunkStream
where
    F: FnMut(Option<&str>) -> Option<Vec<String>> + Send + 'static,
{
    let state = Some((chunks, step));
    stream::unfold(state, move |state| {
        let provider = Arc::clone(&provider);
        async move {
            let (mut chunks, mut step) = state?;
            let (batch, next) = match chunks.next().await {
                Some(Ok(chunk)) => match step(Some(&chunk)) {
                    Some(events) => (events.into_iter().map(Ok).collect(), true),
                    None => {
                        let failure = Failure::new(
                            FailureClass::ServerError,
                            &provider,
                            "upstream sent a stream event that is not a chat chunk",
                        );
                        (vec![Err(failure)], false)
                    }
                },
                Some(Err(failure)) => (vec![Err(failure)], false),
                None => (step(None).unwrap_or_default().into_iter().map(Ok).collect(), false),
            };
            let rest = next.then_some((chunks, step));
            Some((stream::iter::<Vec<Result<String, Failure>>>(batch), rest))
        }
    })
    .flatten()
    .boxed()
}
