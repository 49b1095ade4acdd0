//! Plinth's domain: the nouns of tracking and the model registry, their
//! rules (names, limits, state machines) and the search grammar.
//!
//! No IO lives here: storage, HTTP and the CLI build on these types.

pub mod access;
pub mod audit;
pub mod auth;
pub mod clock;
pub mod deployments;
pub mod error;
pub mod experiments;
pub mod ids;
pub mod jobs;
pub mod logged_models;
pub mod model_dir;
pub mod policy;
pub mod query;
pub mod registry;
pub mod rules;
pub mod runs;
pub mod search;
pub mod sources;
pub mod usage;
pub mod validation;
pub mod workspaces;

pub use error::{Error, ErrorKind, Result};
