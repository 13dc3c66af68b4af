//! The closed vocabularies ballast reports: which client API a request spoke (`Api`) and how a
//! target carries it (`Carriage`), how it was answered (`Route`), which check an answer failed
//! (`AnswerCheck`), how a hedge's race ended (`HedgeOutcome`) and how its stream ended
//! (`StreamEnding`), what the cache did (`CacheStatus`) and where a provider's circuit stands
//! (`CircuitState`).
//!
//! One enum per fact, shared by the pipeline that decides it, the headers and `/status` that show
//! it and `metrics.rs` that counts it, so a value cannot be spelled two ways. It is a leaf module
//! (it imports nothing of the crate), which lets `metrics.rs` take these types without a cycle.

/// A client API (SPEC §4 "Dialects"): the route a request came in on, and the dialect an upstream
/// speaks natively. The `api` label of SPEC §5.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Api {
    /// OpenAI chat completions.
    Chat,
    /// Anthropic Messages.
    Messages,
    /// OpenAI Responses.
    Responses,
    /// OpenAI embeddings.
    Embeddings,
}

impl Api {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Chat => "chat",
            Self::Messages => "messages",
            Self::Responses => "responses",
            Self::Embeddings => "embeddings",
        }
    }
}

impl Api {
    /// Every API, in the order `ballast check` lists them.
    pub const ALL: [Api; 4] = [Api::Chat, Api::Messages, Api::Responses, Api::Embeddings];
}

/// How a target carries a request of one API (SPEC §4 "Dialects"): as it is, translated (through
/// chat; chat itself, on an Anthropic target, to Messages), or not at all.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Carriage {
    Native,
    Translated,
    /// The target cannot serve the API (embeddings on Anthropic): skipped, not a failure.
    Not,
}

/// How the answer was obtained (SPEC §3 `x-ballast-route`, the `route` label of SPEC §5).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route {
    /// A fresh cache entry.
    Cache,
    /// From the first target in this request's routing order.
    Primary,
    /// From a later target, after the ones before it failed or were skipped.
    Failover,
    /// Every target failed: a stale cache entry.
    Stale,
    /// Every target failed and nothing stale: the model's `degraded_response`.
    Degraded,
}

/// An answer check (SPEC §4 "Answer checks"): what makes a 200 useless. The `answer_checks`
/// values of a model and the `check` label of `ballast_answer_check_failures_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AnswerCheck {
    /// No text, no tool call and no refusal.
    Empty,
    /// JSON was asked for (`json_object` or `json_schema`) and the text is not, or does not
    /// validate against the schema.
    InvalidJson,
    /// The model refused, or a content filter stopped it.
    Refusal,
}

impl AnswerCheck {
    pub const ALL: [AnswerCheck; 3] = [Self::Empty, Self::InvalidJson, Self::Refusal];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Empty => "empty",
            Self::InvalidJson => "invalid_json",
            Self::Refusal => "refusal",
        }
    }
}

/// How a hedge's race ended (the `outcome` label of `ballast_hedges_total`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HedgeOutcome {
    /// The hedge answered first.
    Won,
    /// The first attempt answered first.
    Lost,
    /// Both failed.
    Failed,
}

impl HedgeOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Won => "won",
            Self::Lost => "lost",
            Self::Failed => "failed",
        }
    }
}

/// How a stream sent to a client ended (the `ending` label of `ballast_stream_endings_total`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StreamEnding {
    /// After the upstream's terminal event (or a replay's last event).
    Complete,
    /// The upstream broke off after content: the client got the dialect's error event.
    UpstreamError,
    /// The client went away before the end.
    ClientGone,
    /// The shutdown grace ran out.
    Shutdown,
}

impl StreamEnding {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Complete => "complete",
            Self::UpstreamError => "upstream_error",
            Self::ClientGone => "client_gone",
            Self::Shutdown => "shutdown",
        }
    }
}

/// What the cache did for a request (SPEC §3 `x-ballast-cache`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CacheStatus {
    /// A fresh entry answered.
    Hit,
    /// No fresh entry: the upstream answered (and the answer was stored).
    Miss,
    /// Every target failed; an entry within `stale_ttl` answered.
    Stale,
    /// The request's `Cache-Control` skipped the cache.
    Bypass,
    /// No cache for this model (`cache: false` or `backend: none`).
    Off,
}

/// A provider's circuit, as `/status`, `/readyz` and `ballast_circuit_state` report it.
/// Conventional meaning: `Open` means calls are skipped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CircuitState {
    Closed,
    HalfOpen,
    Open,
}

impl Route {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Cache => "cache",
            Self::Primary => "primary",
            Self::Failover => "failover",
            Self::Stale => "stale",
            Self::Degraded => "degraded",
        }
    }
}

impl CacheStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Hit => "hit",
            Self::Miss => "miss",
            Self::Stale => "stale",
            Self::Bypass => "bypass",
            Self::Off => "off",
        }
    }
}

impl CircuitState {
    /// The `circuit` field of `/status`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Closed => "closed",
            Self::HalfOpen => "half_open",
            Self::Open => "open",
        }
    }
}
