//! OpenAI's chat completions: the request as the gateway reads it, the answer as it writes it.
//!
//! The items are used through this module (`openai::chat::ChatRequest`); the files split
//! them by concern.

mod request;
mod response;

pub use crate::json::InvalidRequest;
pub use request::ChatRequest;
pub use response::{
    AN_ERROR_OBJECT, AssistantMessage, ChatCompletion, Choice, FunctionCall, NO_CHOICES, ToolCall,
    Usage, completion_problem,
};
