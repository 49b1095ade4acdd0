//! The model registry: registered models, their numbered versions, aliases
//! (champion/challenger) and the legacy stages older clients still use.

use crate::experiments::Tag;
use crate::{Error, Result};

#[derive(Debug, Clone, PartialEq)]
pub struct RegisteredModel {
    pub name: String,
    pub creation_timestamp: i64,
    pub last_updated_timestamp: i64,
    pub description: Option<String>,
    pub tags: Vec<Tag>,
    pub aliases: Vec<Alias>,
    /// The newest version in each stage, as MLflow reports `latest_versions`.
    pub latest_versions: Vec<ModelVersion>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Alias {
    pub alias: String,
    pub version: i64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ModelVersion {
    pub name: String,
    pub version: i64,
    pub creation_timestamp: i64,
    pub last_updated_timestamp: i64,
    pub user_id: Option<String>,
    pub current_stage: Stage,
    pub description: Option<String>,
    pub source: String,
    pub run_id: Option<String>,
    pub run_link: Option<String>,
    pub status: String,
    pub status_message: Option<String>,
    pub tags: Vec<Tag>,
    pub aliases: Vec<String>,
    pub model_id: Option<String>,
    /// Where the bytes are, resolved at creation (the logged model's or run's
    /// artifact location); what `get-download-uri` answers.
    pub storage_location: String,
}

#[derive(Debug, Clone, Default)]
pub struct NewModelVersion {
    pub name: String,
    pub source: String,
    pub run_id: Option<String>,
    pub run_link: Option<String>,
    pub description: Option<String>,
    pub tags: Vec<Tag>,
    pub model_id: Option<String>,
    pub storage_location: String,
}

/// Legacy registry stages (deprecated in MLflow, still sent by older clients).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    None,
    Staging,
    Production,
    Archived,
}

impl Stage {
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::None => "None",
            Stage::Staging => "Staging",
            Stage::Production => "Production",
            Stage::Archived => "Archived",
        }
    }
    /// Case-insensitive, as MLflow's.
    pub fn parse(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "none" => Ok(Stage::None),
            "staging" => Ok(Stage::Staging),
            "production" => Ok(Stage::Production),
            "archived" => Ok(Stage::Archived),
            _ => Err(Error::invalid(format!(
                "Invalid Model Version stage: {s}. Value must be one of None, Staging, Production, Archived."
            ))),
        }
    }
}

/// Alias names: MLflow forbids `latest` and version-like names (`v1`, `V12`).
pub fn validate_alias(alias: &str) -> Result<()> {
    crate::validation::validate_name("alias", alias, 255)?;
    let lower = alias.to_ascii_lowercase();
    if lower == "latest" {
        return Err(Error::invalid("'latest' alias name (case insensitive) is reserved."));
    }
    if lower.len() > 1 && lower.starts_with('v') && lower[1..].bytes().all(|b| b.is_ascii_digit()) {
        return Err(Error::invalid(format!(
            "Version alias name '{alias}' is reserved. Choose an alias that is not of the form v<number>."
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserved_aliases_are_rejected() {
        assert!(validate_alias("champion").is_ok());
        assert!(validate_alias("Latest").is_err());
        assert!(validate_alias("v3").is_err());
        assert!(validate_alias("").is_err());
    }

    #[test]
    fn stages_are_case_insensitive() {
        assert_eq!(Stage::parse("production").ok(), Some(Stage::Production));
        assert!(Stage::parse("prod").is_err());
    }
}
