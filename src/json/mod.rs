//! JSON as the gateway reads clients' bodies: checked as strictly as a parse into values would,
//! within bounds of what a parse may cost (`scan`), and kept as the client's own text
//! (`object::RawObject`), whatever API the body is for. Also the one-pass reading of a few
//! members (`walk`) that every stream chunk gets, and how much text a value holds (`text_size`).
//! No I/O, nothing else of the crate.

pub mod object;
pub mod scan;
pub mod text_size;
pub mod walk;

pub use object::{InvalidRequest, RawObject};
