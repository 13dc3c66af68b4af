//! A model's pipeline: what happens to a `Call` between the HTTP handler and the upstream.
//! No HTTP types here; failures are classified `Failure`s, answers carry their `Provenance`.

mod call;
mod deadline;
mod target;

use std::collections::HashMap;
use std::sync::Arc;

use tower::util::BoxCloneSyncService;
use tower::{ServiceBuilder, ServiceExt};

pub use call::{Answer, Call, Provenance, Route};
use deadline::DeadlineLayer;
use target::TargetService;

use crate::config::ModelConfig;
use crate::failure::Failure;
use crate::providers::Provider;

/// The built stack of one model, cheap to clone.
#[derive(Clone)]
pub struct Pipeline {
    service: BoxCloneSyncService<Call, Answer, Failure>,
}

impl Pipeline {
    /// Builds the stack for `model`. The order, outermost first:
    ///
    /// 1. `DeadlineLayer`: `request_timeout` bounds everything below; when it passes the call
    ///    fails with `Deadline` (504). It is outermost so that no later step can outlive it.
    /// 2. `TargetService`: one attempt on the model's first target, under that provider's
    ///    per-attempt timeouts (`first_byte` for streams, `total` otherwise), then
    ///    `providers::Provider::send`. A stream is returned once its first chunk arrived.
    pub fn build(model: &ModelConfig, providers: &HashMap<String, Arc<Provider>>) -> Option<Self> {
        let primary = model.targets.first()?;
        let provider = providers.get(&primary.provider.name)?;
        let service = ServiceBuilder::new()
            .layer(DeadlineLayer)
            .service(TargetService::new(Arc::clone(provider), &primary.model));
        Some(Self {
            service: BoxCloneSyncService::new(service),
        })
    }

    pub async fn call(&self, call: Call) -> Result<Answer, Failure> {
        self.service.clone().oneshot(call).await
    }
}
