//! The encodings of MLflow's JSON that both sides of the wire share (the
//! server's answers and the CLI's remote client): a double is a JSON number
//! when finite, else protobuf JSON's `"NaN"`, `"Infinity"`, `"-Infinity"`,
//! which MLflow's server and client both accept.

use serde_json::Value;

/// A double as MLflow's JSON writes it.
pub fn double(v: f64) -> Value {
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

/// A double read back: a number, or one of the spellings clients send for
/// non-finite values (protobuf's, and Python's `str(float)`), or a numeric string.
pub fn read_double(v: &Value) -> Option<f64> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_double_reads_back() {
        for v in [0.5, -3.0, f64::INFINITY, f64::NEG_INFINITY, 1e300] {
            assert_eq!(read_double(&double(v)), Some(v));
        }
        assert!(read_double(&double(f64::NAN)).is_some_and(f64::is_nan));
        assert_eq!(double(f64::INFINITY), Value::from("Infinity"));
    }
}
