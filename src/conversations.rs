//! The conversation store (SPEC §4 "Dialects"): every Response the gateway serves is kept, by its
//! id, as the whole conversation up to it (the earlier items, this input, this output), so that
//! a request continuing it (`previous_response_id`) can be sent to any target when the provider
//! that produced it is down.
//!
//! Kept in the cache's store (Redis when configured, so every replica knows every conversation;
//! none with `backend: none`), as long as a cached answer is kept (`ttl + stale_ttl`), in the
//! cache space of the key that made it (another key cannot read it). Not kept: a response the
//! client asked not to be stored (`store: false`, which is also what Codex sends with the whole
//! history every turn), one larger than a cache entry may be (1 MiB), one that continues a
//! response this gateway did not keep (its start is unknown), a `background` one (its output
//! comes later, from OpenAI), and answers from the cache (they were kept when they were made). A store error never fails a request: the
//! conversation is then not known, and its continuation goes as is to OpenAI targets only.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::cache::key::KEY_VERSION;
use crate::cache::{Cache, Entry, Lookup};
use crate::dialect::Request;
use crate::dialect::responses::{EventRole, History, event_role, is_response};
use crate::outcome::Route;
use crate::pipeline::{Observer, Provenance, observe};
use crate::providers::Reply;

pub struct Conversations {
    /// None for `cache.backend: none`: nothing is kept.
    cache: Option<Arc<Cache>>,
}

/// A kept conversation as stored.
#[derive(Serialize, Deserialize)]
struct Kept {
    stored_upstream: bool,
    items: Vec<Value>,
}

impl Conversations {
    pub fn new(cache: Option<Arc<Cache>>) -> Self {
        Self { cache }
    }

    /// The conversation up to the response `id`, as kept in the cache space `scope`.
    pub async fn lookup(&self, scope: &str, id: &str) -> Option<History> {
        let cache = self.cache.as_ref()?;
        let entry = match cache.lookup(&key(scope, id), None).await {
            Lookup::Fresh(entry) | Lookup::Stale(entry) => entry,
            Lookup::Miss | Lookup::Unavailable => return None,
        };
        let kept: Kept = serde_json::from_str(&entry.completion).ok()?;
        Some(History {
            provider: entry.provider.clone(),
            stored_upstream: kept.stored_upstream,
            items: kept.items,
        })
    }

    /// `reply` to `request` (a Responses request), unchanged; the Response it is kept once it is
    /// whole. A whole answer is kept before it is returned, so that the client's next turn finds
    /// it on any replica; a stream is kept as its terminal event passes (in the background: the
    /// event is on its way to the client meanwhile).
    pub async fn keep(
        &self,
        scope: &Arc<str>,
        request: &Arc<Request>,
        provenance: &Provenance,
        reply: Reply,
    ) -> Reply {
        let Request::Responses(responses) = &**request else { return reply };
        let (Some(cache), true) = (&self.cache, responses.may_keep()) else { return reply };
        // A continuation of what this gateway did not keep would be kept without its start, and
        // a `background` response has no output yet.
        let incomplete = responses.request.background
            || (responses.request.previous_response_id.is_some() && responses.history.is_none());
        if incomplete || matches!(provenance.route, Route::Cache | Route::Stale) {
            return reply;
        }
        let keeper = Keeper {
            cache: Arc::clone(cache),
            scope: Arc::clone(scope),
            request: Arc::clone(request),
            provider: provenance.provider.as_deref().unwrap_or("").to_owned(),
            stored_upstream: provenance.native && provenance.route != Route::Degraded,
        };
        match reply {
            Reply::Complete(body) => {
                if let Ok(response) = serde_json::from_slice::<Value>(&body)
                    && let Some((key, entry)) = keeper.entry(&response)
                {
                    keeper.cache.store_now(key, entry).await;
                }
                Reply::Complete(body)
            }
            Reply::Stream(events) => Reply::Stream(observe(events, keeper)),
        }
    }
}

/// One response on its way to being kept.
struct Keeper {
    cache: Arc<Cache>,
    scope: Arc<str>,
    request: Arc<Request>,
    provider: String,
    stored_upstream: bool,
}

impl Keeper {
    /// Where and what to keep for `response`; none when it is not a Response or is too large.
    fn entry(&self, response: &Value) -> Option<(String, Arc<Entry>)> {
        let Request::Responses(responses) = &*self.request else { return None };
        let id = response["id"].as_str().filter(|_| is_response(response))?;
        let kept = Kept {
            stored_upstream: self.stored_upstream,
            items: responses.history_after(response),
        };
        let text = serde_json::to_string(&kept).ok()?;
        let Some(entry) = Entry::holding(text, &self.provider) else {
            tracing::debug!("a conversation larger than a cache entry was not kept");
            return None;
        };
        Some((key(&self.scope, id), Arc::new(entry)))
    }
}

impl Observer for Keeper {
    fn chunk(&mut self, chunk: &str) {
        let terminal = crate::dialect::event_type(chunk)
            .is_some_and(|kind| event_role(&kind) == EventRole::End);
        if terminal && let Ok(mut event) = serde_json::from_str::<Value>(chunk) {
            let response = event["response"].take();
            if let Some((key, entry)) = self.entry(&response) {
                self.cache.store_later(key, entry);
            }
        }
    }
}

/// Where the conversation up to response `id` is kept in the cache space `scope`.
fn key(scope: &str, id: &str) -> String {
    let mut hasher = blake3::Hasher::new();
    hasher.update(scope.as_bytes());
    hasher.update(b"\0");
    hasher.update(id.as_bytes());
    format!("ballast:{KEY_VERSION}:conversation:{}", hasher.finalize().to_hex())
}
