//! MLflow's JSON encoding of a double, the one both sides of the wire use: a
//! JSON number when finite, else protobuf JSON's `"NaN"`, `"Infinity"`,
//! `"-Infinity"`, which MLflow's server and client both accept. Reading also
//! takes Python's spellings (`"nan"`, `"inf"`) and numeric strings.
//!
//! Use it on a field with `#[serde(with = "plinth_mlflow::double")]`.

use serde::{Deserialize, Deserializer, Serializer};
use serde_json::Value;

/// A double as MLflow's JSON writes it.
pub fn to_value(v: f64) -> Value {
    if v.is_nan() {
        Value::from("NaN")
    } else if v == f64::INFINITY {
        Value::from("Infinity")
    } else if v == f64::NEG_INFINITY {
        Value::from("-Infinity")
    } else {
        Value::from(v)
    }
}

/// A double read back, or `None` if `v` is not one.
pub fn from_value(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => match s.as_str() {
            "NaN" | "nan" => Some(f64::NAN),
            "Infinity" | "inf" => Some(f64::INFINITY),
            "-Infinity" | "-inf" => Some(f64::NEG_INFINITY),
            other => other.trim().parse().ok(),
        },
        _ => None,
    }
}

pub fn serialize<S: Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
    if v.is_finite() {
        s.serialize_f64(*v)
    } else if v.is_nan() {
        s.serialize_str("NaN")
    } else if *v > 0.0 {
        s.serialize_str("Infinity")
    } else {
        s.serialize_str("-Infinity")
    }
}

pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    let v = Value::deserialize(d)?;
    from_value(&v).ok_or_else(|| serde::de::Error::custom(format!("expected a double, found {v}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Serialize, serde::Deserialize)]
    struct Wrapped(#[serde(with = "super")] f64);

    #[test]
    fn every_double_reads_back() {
        for v in [0.5, -3.0, f64::INFINITY, f64::NEG_INFINITY, 1e300] {
            assert_eq!(from_value(&to_value(v)), Some(v));
            let text = serde_json::to_string(&Wrapped(v)).unwrap_or_default();
            assert_eq!(serde_json::from_str::<Wrapped>(&text).ok().map(|w| w.0), Some(v), "{text}");
            assert_eq!(serde_json::from_str::<Value>(&text).ok(), Some(to_value(v)));
        }
        assert!(from_value(&to_value(f64::NAN)).is_some_and(f64::is_nan));
        assert_eq!(to_value(f64::INFINITY), Value::from("Infinity"));
        assert_eq!(serde_json::to_string(&Wrapped(f64::NAN)).ok().as_deref(), Some("\"NaN\""));
        assert!(serde_json::from_str::<Wrapped>("\"inf\"").is_ok_and(|w| w.0 == f64::INFINITY));
        assert!(serde_json::from_str::<Wrapped>("true").is_err());
    }
}
