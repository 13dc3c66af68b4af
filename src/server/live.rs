//! `Live`: the generation being served (its `AppState` and the two routers built on it), and
//! `Routed`, the service each listener's connections call, which takes the current generation
//! once per request: everything a request does, to the last byte of its stream, is on the
//! config it arrived under.

use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll};

use arc_swap::ArcSwap;
use axum::body::Body;
use axum::routing::future::RouteFuture;
use hyper::body::Incoming;

use crate::http::router::{self, App};
use crate::state::AppState;

/// One generation: the state and the routers built on it.
struct Generation {
    state: AppState,
    public: App,
    operator: App,
}

/// The generation being served; a reload swaps it for new requests.
#[derive(Clone)]
pub struct Live {
    current: Arc<ArcSwap<Generation>>,
}

impl Live {
    pub fn new(state: AppState) -> Self {
        Self { current: Arc::new(ArcSwap::from_pointee(Generation::of(state))) }
    }

    pub fn state(&self) -> AppState {
        self.current.load().state.clone()
    }

    /// From now on new requests are served by `state`.
    pub fn swap(&self, state: AppState) {
        self.current.store(Arc::new(Generation::of(state)));
    }

    /// The service of the public listener (`operator: false`) or of `server.metrics_listen`.
    pub fn service(&self, operator: bool) -> Routed {
        Routed { live: self.clone(), operator }
    }
}

impl Generation {
    fn of(state: AppState) -> Self {
        Self {
            public: router::app(state.clone()),
            operator: router::operator_app(state.clone()),
            state,
        }
    }
}

/// A listener's service: the current generation's router for it.
#[derive(Clone)]
pub struct Routed {
    live: Live,
    operator: bool,
}

impl tower::Service<http::Request<Incoming>> for Routed {
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = RouteFuture<Infallible>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<Incoming>) -> Self::Future {
        let generation = self.live.current.load();
        let router = if self.operator { &generation.operator } else { &generation.public };
        // A router is always ready (its `poll_ready` is `Ready`), so it is called at once.
        router.clone().call(request)
    }
}
