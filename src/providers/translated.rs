//! A chat target's answer for a request of another dialect, translated back into that dialect
//! (SPEC §4 "Dialects"). The request's side of the translation is made once per request, by the
//! dialect (`dialect::Messages::as_chat`); the answer's side is made per attempt, here.

use std::sync::Arc;

use futures_util::{StreamExt, stream};

use super::{ChunkStream, Reply, first_chunk_ready};
use crate::dialect::Messages;
use crate::failure::{Failure, FailureClass};
use crate::rate_limit::estimate_prompt_tokens;
use crate::translate::messages_chat::stream::StreamTranslation;
use crate::translate::messages_chat::to_message;

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
        Reply::Complete(body) => match to_message(&body, alias) {
            Some(message) => Ok(Reply::Complete(message.into())),
            None => Err(Failure::new(
                FailureClass::ServerError,
                provider,
                "upstream answered 200 with a body that is not a chat completion",
            )),
        },
        Reply::Stream(chunks) => {
            // The client's body was parsed for the translation already.
            let estimated_input = estimate_prompt_tokens(messages.request.body());
            let translation = StreamTranslation::new(alias, estimated_input);
            first_chunk_ready(provider, events(chunks, translation, Arc::clone(provider))).await
        }
    }
}

/// The Messages events of a chat stream; a chunk that is not one fails the stream.
fn events(chunks: ChunkStream, translation: StreamTranslation, provider: Arc<str>) -> ChunkStream {
    let state = Some((chunks, translation));
    stream::unfold(state, move |state| {
        let provider = Arc::clone(&provider);
        async move {
            let (mut chunks, mut translation) = state?;
            let (batch, next) = match chunks.next().await {
                Some(Ok(chunk)) => match translation.chunk(&chunk) {
                    Some(events) => (events.into_iter().map(|e| Ok(e.data)).collect(), true),
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
                None => (translation.finish().into_iter().map(|e| Ok(e.data)).collect(), false),
            };
            let rest = next.then_some((chunks, translation));
            Some((stream::iter::<Vec<Result<String, Failure>>>(batch), rest))
        }
    })
    .flatten()
    .boxed()
}
