//! The contract of a model directory Plinth trains: `plinth_model.json`
//! names the flavor and the model file; trainers write it, serving reads it.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The metadata file every Plinth model directory carries.
pub const META_FILE: &str = "plinth_model.json";

/// What kind of Plinth model a directory holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Flavor {
    /// A recommender (`plinth_ml::model::RecModel`'s file).
    #[serde(rename = "plinth-recommender")]
    Recommender,
    /// A tabular model (`plinth_ml::tabular::model::TabularFile` as JSON).
    #[serde(rename = "plinth-tabular")]
    Tabular,
}

impl Flavor {
    pub const fn as_str(self) -> &'static str {
        match self {
            Flavor::Recommender => "plinth-recommender",
            Flavor::Tabular => "plinth-tabular",
        }
    }
}

/// `plinth_model.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelMeta {
    pub flavor: Flavor,
    /// The model file, relative to the directory.
    pub file: String,
    /// What the trainer adds for people (algorithm, parameters, metrics, data).
    #[serde(flatten)]
    pub details: Map<String, Value>,
}

impl ModelMeta {
    pub fn to_bytes(&self) -> serde_json::Result<Vec<u8>> {
        serde_json::to_vec(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_what_it_writes_and_refuses_unknown_flavors() {
        let mut details = Map::new();
        details.insert("algo".into(), Value::from("als"));
        let meta = ModelMeta { flavor: Flavor::Recommender, file: "model.plinthrec".into(), details };
        let bytes = meta.to_bytes().unwrap();
        let text = String::from_utf8(bytes.clone()).unwrap();
        assert!(text.contains(r#""flavor":"plinth-recommender""#) && text.contains(r#""algo":"als""#), "{text}");
        assert_eq!(serde_json::from_slice::<ModelMeta>(&bytes).unwrap(), meta);
        assert!(serde_json::from_str::<ModelMeta>(r#"{"flavor": "sklearn", "file": "m"}"#).is_err());
        assert!(serde_json::from_str::<ModelMeta>(r#"{"flavor": "plinth-tabular"}"#).is_err(), "names no file");
    }
}
