//! `RequestRecord`: the route-level metrics of one client request (`ballast_requests_total`,
//! `ballast_request_duration_seconds`), recorded when it is dropped: at the end of the handler
//! for a whole answer, at the end of the stream (or the client's disconnect) for a stream.
//! While it lives, the request counts in `ballast_inflight_requests`. A stream's record also
//! says how it ended (`ballast_stream_endings_total`): as the relay saw it, or `client_gone`
//! when it was dropped before its end.

use std::sync::Arc;

use tokio::time::Instant;

use crate::metrics::Metrics;
use crate::outcome::{Api, Route, StreamEnding};

pub struct RequestRecord {
    metrics: Arc<Metrics>,
    api: Api,
    model: Arc<str>,
    stream: bool,
    started: Instant,
    /// How it was answered (none: with an error) and the status sent.
    outcome: Option<(Option<Route>, u16)>,
    /// How its stream ended, once it did; a stream dropped without one lost its client.
    ending: Option<StreamEnding>,
}

impl RequestRecord {
    pub fn new(
        metrics: &Arc<Metrics>,
        api: Api,
        model: &Arc<str>,
        stream: bool,
        started: Instant,
    ) -> Self {
        metrics.inflight().inc();
        Self {
            metrics: Arc::clone(metrics),
            api,
            model: Arc::clone(model),
            stream,
            started,
            outcome: None,
            ending: None,
        }
    }

    /// How the request was answered (none: with an error); recorded when the record is dropped.
    pub fn answered(&mut self, route: Option<Route>, status: u16) {
        self.outcome = Some((route, status));
    }

    /// How the stream sent ended (`ballast_stream_endings_total`, recorded on drop).
    pub fn ended(&mut self, ending: StreamEnding) {
        self.ending = Some(ending);
    }
}

impl Drop for RequestRecord {
    fn drop(&mut self) {
        self.metrics.inflight().dec();
        if let Some((route, status)) = self.outcome {
            let elapsed = self.started.elapsed();
            self.metrics.record_request(self.api, &self.model, route, status, self.stream, elapsed);
            if self.stream && route.is_some() {
                let ending = self.ending.unwrap_or(StreamEnding::ClientGone);
                self.metrics.record_stream_ending(self.api, &self.model, ending);
            }
        }
    }
}
