//! The Open Inference Protocol's REST codec: requests from JSON (nested or
//! flat `data`) or from the binary tensor data extension (the first
//! `Inference-Header-Content-Length` bytes are JSON, the rest binary tensor
//! data in input order), and responses either way, as each requested
//! output asks.

use plinth_serving::Error;
use plinth_serving::tensor::{
    DataType, InferRequest, InferResponse, MAX_ELEMENTS, ModelMetadata, Parameter, RequestedOutput, TensorMetadata,
    Values, datatype, elements,
};
use serde_json::{Map, Value, json};

use super::{bad, checked, from_raw, to_raw};

type Result<T, E = Error> = std::result::Result<T, E>;

fn flatten<'a>(v: &'a Value, out: &mut Vec<&'a Value>) {
    match v {
        Value::Array(items) => items.iter().for_each(|i| flatten(i, out)),
        other => out.push(other),
    }
}

fn from_json(name: &str, dt: DataType, data: &Value) -> Result<Values> {
    let mut flat = Vec::new();
    flatten(data, &mut flat);
    let wrong = |v: &Value| bad(format!("input '{name}': {v} is not a valid {dt} element"));
    // JSON has no NaN: `null` (or the string "NaN") is a missing value in a
    // floating-point tensor, as tree models and tabular encodings read NaN.
    let float = |v: &Value| match v {
        Value::Null => Some(f64::NAN),
        Value::String(s) if s.eq_ignore_ascii_case("nan") => Some(f64::NAN),
        other => other.as_f64(),
    };
    let integer = |v: &Value| -> Result<i128> {
        let n = v.as_i64().map(i128::from).or_else(|| v.as_u64().map(i128::from)).ok_or_else(|| wrong(v))?;
        let (lo, hi) = dt.integer_range().unwrap_or((i64::MIN.into(), i64::MAX.into()));
        if n < lo || n > hi { Err(wrong(v)) } else { Ok(n) }
    };
    Ok(match dt {
        DataType::Bool => {
            Values::Bool(flat.iter().map(|v| v.as_bool().ok_or_else(|| wrong(v))).collect::<Result<_>>()?)
        }
        DataType::F32 => {
            Values::F32(flat.iter().map(|v| float(v).map(|x| x as f32).ok_or_else(|| wrong(v))).collect::<Result<_>>()?)
        }
        DataType::F64 => Values::F64(flat.iter().map(|v| float(v).ok_or_else(|| wrong(v))).collect::<Result<_>>()?),
        DataType::Bytes => Values::Bytes(
            flat.iter()
                .map(|v| v.as_str().map(|s| s.as_bytes().to_vec()).ok_or_else(|| wrong(v)))
                .collect::<Result<_>>()?,
        ),
        // In range, so the narrowing casts are exact.
        d if d.is_unsigned() => Values::UInt(flat.iter().map(|v| integer(v).map(|n| n as u64)).collect::<Result<_>>()?),
        _ => Values::Int(flat.iter().map(|v| integer(v).map(|n| n as i64)).collect::<Result<_>>()?),
    })
}

/// Parses an infer request; `header_len` is `Inference-Header-Content-Length`.
pub fn decode_request(body: &[u8], header_len: Option<usize>) -> Result<InferRequest> {
    let (json_part, mut binary) = match header_len {
        Some(n) if n > body.len() => {
            return Err(bad(format!("Inference-Header-Content-Length {n} exceeds the body ({} bytes)", body.len())));
        }
        Some(n) => body.split_at(n),
        None => (body, &[][..]),
    };
    let v: Value = serde_json::from_slice(json_part).map_err(|e| bad(format!("invalid JSON request: {e}")))?;
    let obj = v.as_object().ok_or_else(|| bad("the request must be a JSON object"))?;
    let id = match obj.get("id") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(other) => return Err(bad(format!("'id' must be a string, got {other}"))),
    };
    let binary_output_default =
        obj.get("parameters").and_then(|p| p.get("binary_data_output")).and_then(Value::as_bool).unwrap_or(false);
    let raw_inputs = obj.get("inputs").and_then(Value::as_array).ok_or_else(|| bad("'inputs' must be a list"))?;
    let mut inputs = Vec::with_capacity(raw_inputs.len());
    let mut total = 0usize;
    for raw in raw_inputs {
        let name = raw["name"].as_str().filter(|s| !s.is_empty()).ok_or_else(|| bad("every input needs a 'name'"))?;
        let dt = datatype(raw["datatype"].as_str().ok_or_else(|| bad(format!("input '{name}' needs a 'datatype'")))?)?;
        let shape: Vec<i64> = raw["shape"]
            .as_array()
            .ok_or_else(|| bad(format!("input '{name}' needs a 'shape' list")))?
            .iter()
            .map(|d| d.as_i64().ok_or_else(|| bad(format!("input '{name}': shape entries must be integers"))))
            .collect::<Result<_>>()?;
        let n: usize = elements(name, &shape)?.iter().product();
        total = total.saturating_add(n);
        if total > MAX_ELEMENTS {
            return Err(bad(format!("the request holds more than {MAX_ELEMENTS} elements")));
        }
        let binary_size = raw["parameters"]["binary_data_size"].as_u64();
        let array = match (binary_size, raw.get("data")) {
            (Some(size), None) => {
                let size = usize::try_from(size).unwrap_or(usize::MAX);
                if size > binary.len() {
                    return Err(bad(format!("input '{name}': binary_data_size {size} exceeds the binary data left")));
                }
                let (mine, rest) = binary.split_at(size);
                binary = rest;
                from_raw(name, dt, &shape, mine)?
            }
            (None, Some(data)) => checked(name, dt, &shape, from_json(name, dt, data)?)?,
            (Some(_), Some(_)) => return Err(bad(format!("input '{name}' has both 'data' and binary_data_size"))),
            (None, None) => return Err(bad(format!("input '{name}' has no 'data'"))),
        };
        inputs.push(array);
    }
    if !binary.is_empty() {
        return Err(bad(format!("{} bytes of binary data belong to no input", binary.len())));
    }
    let mut outputs = Vec::new();
    for o in obj.get("outputs").and_then(Value::as_array).into_iter().flatten() {
        let name = o["name"].as_str().ok_or_else(|| bad("every requested output needs a 'name'"))?;
        let binary = o["parameters"]["binary_data"].as_bool().unwrap_or(binary_output_default);
        outputs.push(RequestedOutput { name: name.to_string(), binary });
    }
    Ok(InferRequest { id, inputs, outputs, binary_output_default })
}

/// JSON has no NaN or infinity: those travel as text ("NaN", "inf").
fn finite_or_text<T: Into<f64> + Copy + ToString + serde::Serialize>(x: T) -> Value {
    if x.into().is_finite() { json!(x) } else { json!(x.to_string()) }
}

fn to_json(values: &Values) -> Value {
    match values {
        Values::Bool(v) => json!(v),
        Values::Int(v) => json!(v),
        Values::UInt(v) => json!(v),
        Values::F32(v) => Value::Array(v.iter().map(|&x| finite_or_text(x)).collect()),
        Values::F64(v) => Value::Array(v.iter().map(|&x| finite_or_text(x)).collect()),
        Values::Bytes(v) => Value::Array(v.iter().map(|b| json!(String::from_utf8_lossy(b))).collect()),
    }
}

pub fn parameter(p: &Parameter) -> Value {
    match p {
        Parameter::Str(s) => json!(s),
        Parameter::Int(n) => json!(n),
        Parameter::Bool(b) => json!(b),
    }
}

/// A response body, and the JSON header length when it carries binary data.
pub struct EncodedResponse {
    pub body: Vec<u8>,
    pub header_len: Option<usize>,
}

/// Encodes the outputs the request asked for (all if it named none), each
/// in JSON or binary as asked.
pub fn encode_response(response: InferResponse, req: &InferRequestShape) -> Result<EncodedResponse> {
    let (model_name, model_version, id) =
        (response.model_name.clone(), response.model_version.clone(), response.id.clone());
    let parameters: Map<String, Value> = response.parameters.iter().map(|(k, v)| (k.clone(), parameter(v))).collect();
    let mut binary = Vec::new();
    let mut list = Vec::new();
    for (t, asked) in response.chosen(&req.outputs)? {
        let as_binary = asked.map_or(req.binary_output_default, |r| r.binary);
        let mut o = json!({"name": t.name, "datatype": t.datatype.oip(), "shape": t.shape});
        if as_binary {
            let bytes = to_raw(&t);
            o["parameters"] = json!({"binary_data_size": bytes.len()});
            binary.extend(bytes);
        } else {
            o["data"] = to_json(&t.values);
        }
        list.push(o);
    }
    let mut head = json!({"model_name": model_name, "model_version": model_version, "outputs": list});
    if let Some(id) = id {
        head["id"] = json!(id);
    }
    if !parameters.is_empty() {
        head["parameters"] = Value::Object(parameters);
    }
    let mut body = serde_json::to_vec(&head).map_err(|e| Error::Internal(e.to_string()))?;
    if binary.is_empty() {
        return Ok(EncodedResponse { body, header_len: None });
    }
    let header_len = body.len();
    body.extend(binary);
    Ok(EncodedResponse { body, header_len: Some(header_len) })
}

/// What of a request its response's encoding needs (the request itself is
/// consumed by inference).
pub struct InferRequestShape {
    pub outputs: Vec<RequestedOutput>,
    pub binary_output_default: bool,
}

impl InferRequestShape {
    pub fn of(req: &InferRequest) -> InferRequestShape {
        InferRequestShape { outputs: req.outputs.clone(), binary_output_default: req.binary_output_default }
    }
}

fn tensor_json(t: &TensorMetadata) -> Value {
    json!({"name": t.name, "datatype": t.datatype.oip(), "shape": t.shape})
}

/// `GET /v2/models/{name}`.
pub fn metadata_json(m: &ModelMetadata) -> Value {
    let mut v = json!({
        "name": m.name,
        "versions": m.versions,
        "platform": m.platform,
        "inputs": m.signature.inputs.iter().map(tensor_json).collect::<Vec<_>>(),
        "outputs": m.signature.outputs.iter().map(tensor_json).collect::<Vec<_>>(),
    });
    if !m.signature.parameters.is_empty() {
        v["parameters"] = Value::Object(m.signature.parameters.clone());
    }
    v
}

/// Triton's model-configuration call (`tritonclient`'s `get_model_config`),
/// derived from the metadata: `TYPE_<datatype>` tensors (`TYPE_STRING` for
/// BYTES), no implicit batching (`max_batch_size` 0, so `dims` include the
/// batch dimension).
pub fn triton_config(m: &ModelMetadata) -> Value {
    let tensors = |list: &[TensorMetadata]| -> Vec<Value> {
        list.iter()
            .map(|t| {
                let datatype = match t.datatype {
                    DataType::Bytes => "STRING",
                    other => other.oip(),
                };
                json!({"name": t.name, "data_type": format!("TYPE_{datatype}"), "dims": t.shape})
            })
            .collect()
    };
    json!({
        "name": m.name,
        "platform": m.platform,
        "backend": "plinth",
        "max_batch_size": 0,
        "input": tensors(&m.signature.inputs),
        "output": tensors(&m.signature.outputs),
    })
}

#[cfg(test)]
mod tests {
    use plinth_serving::tensor::Array;

    use super::*;

    fn array(name: &str, datatype: DataType, values: Values) -> Array {
        Array { name: name.into(), datatype, shape: vec![values.len()], values }
    }

    #[test]
    fn json_inputs_nested_or_flat() {
        let body = json!({"id": "r1", "inputs": [
            {"name": "x", "datatype": "FP32", "shape": [2, 2], "data": [[1, 2], [3, 4.5]]},
            {"name": "u", "datatype": "BYTES", "shape": [2], "data": ["a", "b"]},
            {"name": "k", "datatype": "INT32", "shape": [1], "data": [5]},
            {"name": "n", "datatype": "UINT64", "shape": [1], "data": [18446744073709551615u64]}]});
        let r = decode_request(&serde_json::to_vec(&body).unwrap(), None).unwrap();
        assert_eq!(r.id.as_deref(), Some("r1"));
        assert_eq!(r.input("x").unwrap().values, Values::F32(vec![1.0, 2.0, 3.0, 4.5]));
        assert_eq!(r.input("x").unwrap().shape, vec![2, 2]);
        assert_eq!(r.input("u").unwrap().values, Values::Bytes(vec![b"a".to_vec(), b"b".to_vec()]));
        assert_eq!(r.input("k").unwrap().values, Values::Int(vec![5]));
        assert_eq!(r.input("n").unwrap().values, Values::UInt(vec![u64::MAX]));
    }

    #[test]
    fn json_null_is_a_missing_float() {
        let body = json!({"inputs": [{"name": "x", "datatype": "FP64", "shape": [3], "data": [1.5, null, "NaN"]}]});
        let r = decode_request(&serde_json::to_vec(&body).unwrap(), None).unwrap();
        let Values::F64(v) = &r.input("x").unwrap().values else { panic!("not FP64") };
        assert_eq!(v[0], 1.5);
        assert!(v[1].is_nan() && v[2].is_nan());
        let body = json!({"inputs": [{"name": "k", "datatype": "INT32", "shape": [1], "data": [null]}]});
        assert!(decode_request(&serde_json::to_vec(&body).unwrap(), None).is_err());
    }

    #[test]
    fn binary_inputs_follow_the_json_header() {
        let head = json!({"inputs": [
            {"name": "x", "datatype": "FP32", "shape": [2], "parameters": {"binary_data_size": 8}},
            {"name": "u", "datatype": "BYTES", "shape": [1], "parameters": {"binary_data_size": 7}}]});
        let mut body = serde_json::to_vec(&head).unwrap();
        let n = body.len();
        body.extend(1.5f32.to_le_bytes());
        body.extend(2.5f32.to_le_bytes());
        body.extend(3u32.to_le_bytes());
        body.extend(b"abc");
        let r = decode_request(&body, Some(n)).unwrap();
        assert_eq!(r.input("x").unwrap().values, Values::F32(vec![1.5, 2.5]));
        assert_eq!(r.input("u").unwrap().values, Values::Bytes(vec![b"abc".to_vec()]));
    }

    #[test]
    fn bad_tensors_are_refused_with_a_message() {
        for (body, header) in [
            (json!({"inputs": [{"name": "x", "datatype": "FP32", "shape": [3], "data": [1, 2]}]}), None),
            (json!({"inputs": [{"name": "x", "datatype": "FP32", "shape": [1], "data": ["a"]}]}), None),
            (json!({"inputs": [{"name": "x", "datatype": "INT8", "shape": [1], "data": [300]}]}), None),
            (json!({"inputs": [{"name": "x", "datatype": "UINT8", "shape": [1], "data": [-1]}]}), None),
            (json!({"inputs": [{"name": "x", "datatype": "NOPE", "shape": [1], "data": [1]}]}), None),
            (json!({"inputs": [{"name": "x", "datatype": "FP16", "shape": [1], "data": [1]}]}), None),
            (json!({"inputs": [{"name": "x", "datatype": "FP32", "shape": [-1], "data": [1]}]}), None),
            (json!({"inputs": [{"name": "x", "datatype": "FP32", "shape": [1000000, 1000000], "data": [1]}]}), None),
            (json!({"inputs": [{"name": "x", "datatype": "FP32", "shape": [1]}]}), None),
            (json!({"inputs": [{"datatype": "FP32", "shape": [1], "data": [1]}]}), None),
            (json!({"inputs": "x"}), None),
            (
                json!({"inputs": [{"name": "x", "datatype": "FP32", "shape": [1], "parameters": {"binary_data_size": 4}}]}),
                Some(10_000),
            ),
        ] {
            let bytes = serde_json::to_vec(&body).unwrap();
            let err = decode_request(&bytes, header).unwrap_err();
            assert!(matches!(err, Error::Invalid(ref m) if !m.is_empty()), "{body}: {err:?}");
        }
        let head = serde_json::to_vec(&json!({"inputs": [{"name": "x", "datatype": "FP32", "shape": [2], "parameters": {"binary_data_size": 8}}]})).unwrap();
        let n = head.len();
        let mut short = head.clone();
        short.extend([0u8; 4]);
        assert!(decode_request(&short, Some(n)).is_err(), "too little binary data");
        let mut long = head;
        long.extend([0u8; 12]);
        assert!(decode_request(&long, Some(n)).is_err(), "binary data left over");
    }

    #[test]
    fn outputs_encode_as_json_or_binary() {
        let shape = InferRequestShape {
            outputs: vec![
                RequestedOutput { name: "s".into(), binary: true },
                RequestedOutput { name: "i".into(), binary: false },
            ],
            binary_output_default: false,
        };
        let response = InferResponse {
            model_name: "m".into(),
            model_version: "1".into(),
            id: Some("r".into()),
            outputs: vec![
                array("i", DataType::Bytes, Values::Bytes(vec![b"x".to_vec()])),
                array("s", DataType::F32, Values::F32(vec![0.5])),
            ],
            parameters: [("unseen".to_string(), Parameter::Int(2))].into(),
        };
        let enc = encode_response(response, &shape).unwrap();
        let n = enc.header_len.unwrap();
        let head: Value = serde_json::from_slice(&enc.body[..n]).unwrap();
        assert_eq!(head["id"], "r");
        assert_eq!(head["parameters"]["unseen"], 2);
        assert_eq!(head["outputs"][0]["parameters"]["binary_data_size"], 4);
        assert_eq!(head["outputs"][1]["data"], json!(["x"]));
        assert_eq!(&enc.body[n..], &0.5f32.to_le_bytes());
    }
}
