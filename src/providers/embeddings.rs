//! Embeddings requests to an OpenAI-shaped target (`openai`, `azure`): a passthrough, the
//! client's body with `model` swapped. The answer goes back as the upstream sent it, unless the
//! upstream ignored `encoding_format` (OpenAI-compatible servers that only write floats): then
//! its vectors are converted to what the client asked for. A 200 that is not an embeddings list
//! is a failure of the provider.

use super::Reply;
use super::transport::{Endpoint, MAX_ANSWER_BYTES, Transport};
use crate::failure::{Failure, FailureClass};
use crate::openai::embeddings::{Encoding, conform, is_embeddings};

/// One embeddings exchange on `transport`; the answer in `encoding`.
pub(super) async fn exchange(
    transport: &Transport,
    to: &Endpoint,
    body: Vec<u8>,
    encoding: Encoding,
    request_id: &str,
) -> Result<Reply, Failure> {
    let response = transport.post(to, body, false, request_id).await?;
    let body = transport.read(response, MAX_ANSWER_BYTES).await?;
    if !is_embeddings(&body) {
        let problem = "upstream answered 200 with something other than an embeddings list";
        return Err(Failure::new(FailureClass::ServerError, &transport.name, problem));
    }
    Ok(Reply::Complete(conform(&body, encoding).map_or(body, Into::into)))
}
