//! One module per page family.

pub mod analysis;
pub mod compare;
pub mod deployments;
pub mod experiments;
pub(crate) mod history;
pub mod jobs;
pub mod login;
pub mod models;
pub mod platform;
pub mod run;
pub mod runs;
pub mod workspaces;
