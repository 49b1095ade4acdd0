//! Open Inference Protocol (KServe v2) tensors: decoding request inputs from
//! JSON (nested or flat `data`) or from the binary tensor data extension,
//! and encoding outputs either way. No HTTP here: the server hands over the
//! body and the `Inference-Header-Content-Length` value.

use serde_json::{Map, Value, json};

use crate::{Error, Result};

/// Elements a request may carry at most (all inputs together).
const MAX_ELEMENTS: usize = 64 << 20;

#[derive(Debug, Clone, PartialEq)]
pub enum Data {
    Bool(Vec<bool>),
    /// Every integer type (UINT8..UINT64, INT8..INT64), widened.
    Int(Vec<i128>),
    Fp32(Vec<f32>),
    Fp64(Vec<f64>),
    Bytes(Vec<Vec<u8>>),
}

impl Data {
    pub fn len(&self) -> usize {
        match self {
            Data::Bool(v) => v.len(),
            Data::Int(v) => v.len(),
            Data::Fp32(v) => v.len(),
            Data::Fp64(v) => v.len(),
            Data::Bytes(v) => v.len(),
        }
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Tensor {
    pub name: String,
    pub datatype: String,
    pub shape: Vec<i64>,
    pub data: Data,
}

/// What the client asked for back.
#[derive(Debug, Clone, Default)]
pub struct RequestedOutput {
    pub name: String,
    pub binary: bool,
}

#[derive(Debug, Clone, Default)]
pub struct InferRequest {
    pub id: Option<String>,
    pub inputs: Vec<Tensor>,
    /// Empty: every output, in JSON unless `binary_data_output` was set.
    pub outputs: Vec<RequestedOutput>,
    pub binary_output_default: bool,
    pub parameters: Map<String, Value>,
}

impl InferRequest {
    pub fn input(&self, name: &str) -> Option<&Tensor> {
        self.inputs.iter().find(|t| t.name == name)
    }
}

fn bad(msg: impl Into<String>) -> Error {
    Error::Invalid(msg.into())
}

/// Bytes per element of fixed-size datatypes; `None` for BYTES.
fn element_size(datatype: &str) -> Result<Option<usize>> {
    Ok(match datatype {
        "BOOL" | "UINT8" | "INT8" => Some(1),
        "UINT16" | "INT16" => Some(2),
        "UINT32" | "INT32" | "FP32" => Some(4),
        "UINT64" | "INT64" | "FP64" => Some(8),
        "BYTES" => None,
        "FP16" | "BF16" => return Err(bad(format!("datatype {datatype} is not supported; send FP32"))),
        other => return Err(bad(format!("unknown datatype '{other}'"))),
    })
}

fn int_range(datatype: &str) -> (i128, i128) {
    match datatype {
        "UINT8" => (0, u8::MAX as i128),
        "UINT16" => (0, u16::MAX as i128),
        "UINT32" => (0, u32::MAX as i128),
        "UINT64" => (0, u64::MAX as i128),
        "INT8" => (i8::MIN as i128, i8::MAX as i128),
        "INT16" => (i16::MIN as i128, i16::MAX as i128),
        "INT32" => (i32::MIN as i128, i32::MAX as i128),
        _ => (i64::MIN as i128, i64::MAX as i128),
    }
}

fn elements(shape: &[i64], name: &str) -> Result<usize> {
    let mut n: usize = 1;
    for &d in shape {
        if d < 0 {
            return Err(bad(format!("input '{name}': shape {shape:?} has a negative dimension")));
        }
        n = n
            .checked_mul(d as usize)
            .filter(|&n| n <= MAX_ELEMENTS)
            .ok_or_else(|| bad(format!("input '{name}': shape {shape:?} holds more than {MAX_ELEMENTS} elements")))?;
    }
    Ok(n)
}

fn flatten<'a>(v: &'a Value, out: &mut Vec<&'a Value>) {
    match v {
        Value::Array(items) => items.iter().for_each(|i| flatten(i, out)),
        other => out.push(other),
    }
}

fn from_json(name: &str, datatype: &str, data: &Value) -> Result<Data> {
    let mut flat = Vec::new();
    flatten(data, &mut flat);
    let wrong = |v: &Value| bad(format!("input '{name}': {v} is not a valid {datatype} element"));
    // JSON has no NaN: `null` (or the string "NaN") is a missing value in a
    // floating-point tensor, as tree models and tabular encodings read NaN.
    let float = |v: &Value| match v {
        Value::Null => Some(f64::NAN),
        Value::String(s) if s.eq_ignore_ascii_case("nan") => Some(f64::NAN),
        other => other.as_f64(),
    };
    Ok(match datatype {
        "BOOL" => Data::Bool(flat.iter().map(|v| v.as_bool().ok_or_else(|| wrong(v))).collect::<Result<_>>()?),
        "FP32" => {
            Data::Fp32(flat.iter().map(|v| float(v).map(|x| x as f32).ok_or_else(|| wrong(v))).collect::<Result<_>>()?)
        }
        "FP64" => Data::Fp64(flat.iter().map(|v| float(v).ok_or_else(|| wrong(v))).collect::<Result<_>>()?),
        "BYTES" => Data::Bytes(
            flat.iter()
                .map(|v| v.as_str().map(|s| s.as_bytes().to_vec()).ok_or_else(|| wrong(v)))
                .collect::<Result<_>>()?,
        ),
        _ => {
            let (lo, hi) = int_range(datatype);
            Data::Int(
                flat.iter()
                    .map(|v| {
                        let n = v
                            .as_i64()
                            .map(i128::from)
                            .or_else(|| v.as_u64().map(i128::from))
                            .ok_or_else(|| wrong(v))?;
                        if n < lo || n > hi { Err(wrong(v)) } else { Ok(n) }
                    })
                    .collect::<Result<_>>()?,
            )
        }
    })
}

fn from_binary(name: &str, datatype: &str, bytes: &[u8], n: usize) -> Result<Data> {
    let fixed = |size: usize| -> Result<std::slice::ChunksExact<'_, u8>> {
        if bytes.len() != n * size {
            return Err(bad(format!(
                "input '{name}': {} bytes of binary data for {n} {datatype} elements (expected {})",
                bytes.len(),
                n * size
            )));
        }
        Ok(bytes.chunks_exact(size))
    };
    let arr = |c: &[u8]| -> [u8; 8] {
        let mut a = [0u8; 8];
        a[..c.len()].copy_from_slice(c);
        a
    };
    Ok(match datatype {
        "BOOL" => Data::Bool(fixed(1)?.map(|c| c[0] != 0).collect()),
        "UINT8" => Data::Int(fixed(1)?.map(|c| c[0] as i128).collect()),
        "INT8" => Data::Int(fixed(1)?.map(|c| c[0] as i8 as i128).collect()),
        "UINT16" => Data::Int(fixed(2)?.map(|c| u16::from_le_bytes([c[0], c[1]]) as i128).collect()),
        "INT16" => Data::Int(fixed(2)?.map(|c| i16::from_le_bytes([c[0], c[1]]) as i128).collect()),
        "UINT32" => Data::Int(fixed(4)?.map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]) as i128).collect()),
        "INT32" => Data::Int(fixed(4)?.map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]) as i128).collect()),
        "UINT64" => Data::Int(fixed(8)?.map(|c| u64::from_le_bytes(arr(c)) as i128).collect()),
        "INT64" => Data::Int(fixed(8)?.map(|c| i64::from_le_bytes(arr(c)) as i128).collect()),
        "FP32" => Data::Fp32(fixed(4)?.map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()),
        "FP64" => Data::Fp64(fixed(8)?.map(|c| f64::from_le_bytes(arr(c))).collect()),
        _ => {
            // BYTES: each element is a 4-byte little-endian length, then the bytes.
            let mut out = Vec::with_capacity(n.min(1 << 20));
            let mut rest = bytes;
            while !rest.is_empty() {
                if rest.len() < 4 {
                    return Err(bad(format!("input '{name}': truncated BYTES element length")));
                }
                let len = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
                rest = &rest[4..];
                if rest.len() < len {
                    return Err(bad(format!("input '{name}': BYTES element longer than the data")));
                }
                out.push(rest[..len].to_vec());
                rest = &rest[len..];
            }
            Data::Bytes(out)
        }
    })
}

/// Parses an infer request. `header_len` is `Inference-Header-Content-Length`
/// when present: the first `header_len` bytes are JSON, the rest binary
/// tensor data in input order.
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
    let parameters = obj.get("parameters").and_then(Value::as_object).cloned().unwrap_or_default();
    let binary_output_default = parameters.get("binary_data_output").and_then(Value::as_bool).unwrap_or(false);
    let raw_inputs = obj.get("inputs").and_then(Value::as_array).ok_or_else(|| bad("'inputs' must be a list"))?;
    let mut inputs = Vec::with_capacity(raw_inputs.len());
    let mut total = 0usize;
    for raw in raw_inputs {
        let name = raw["name"].as_str().filter(|s| !s.is_empty()).ok_or_else(|| bad("every input needs a 'name'"))?;
        let datatype = raw["datatype"].as_str().ok_or_else(|| bad(format!("input '{name}' needs a 'datatype'")))?;
        element_size(datatype)?;
        let shape: Vec<i64> = raw["shape"]
            .as_array()
            .ok_or_else(|| bad(format!("input '{name}' needs a 'shape' list")))?
            .iter()
            .map(|d| d.as_i64().ok_or_else(|| bad(format!("input '{name}': shape entries must be integers"))))
            .collect::<Result<_>>()?;
        let n = elements(&shape, name)?;
        total = total.saturating_add(n);
        if total > MAX_ELEMENTS {
            return Err(bad(format!("the request holds more than {MAX_ELEMENTS} elements")));
        }
        let binary_size = raw["parameters"]["binary_data_size"].as_u64();
        let data = match (binary_size, raw.get("data")) {
            (Some(size), None) => {
                let size = size as usize;
                if size > binary.len() {
                    return Err(bad(format!("input '{name}': binary_data_size {size} exceeds the binary data left")));
                }
                let (mine, rest) = binary.split_at(size);
                binary = rest;
                from_binary(name, datatype, mine, n)?
            }
            (None, Some(data)) => from_json(name, datatype, data)?,
            (Some(_), Some(_)) => return Err(bad(format!("input '{name}' has both 'data' and binary_data_size"))),
            (None, None) => return Err(bad(format!("input '{name}' has no 'data'"))),
        };
        if data.len() != n {
            return Err(bad(format!("input '{name}': shape {shape:?} needs {n} elements, got {}", data.len())));
        }
        inputs.push(Tensor { name: name.to_string(), datatype: datatype.to_string(), shape, data });
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
    Ok(InferRequest { id, inputs, outputs, binary_output_default, parameters })
}

impl Tensor {
    /// A tensor from raw little-endian bytes (gRPC `raw_input_contents`).
    pub fn from_raw(name: &str, datatype: &str, shape: Vec<i64>, bytes: &[u8]) -> Result<Tensor> {
        element_size(datatype)?;
        let n = elements(&shape, name)?;
        let data = from_binary(name, datatype, bytes, n)?;
        Tensor::checked(name, datatype, shape, data)
    }

    /// A tensor whose element count must match its shape.
    pub fn checked(name: &str, datatype: &str, shape: Vec<i64>, data: Data) -> Result<Tensor> {
        element_size(datatype)?;
        let n = elements(&shape, name)?;
        if data.len() != n {
            return Err(bad(format!("input '{name}': shape {shape:?} needs {n} elements, got {}", data.len())));
        }
        Ok(Tensor { name: name.to_string(), datatype: datatype.to_string(), shape, data })
    }

    /// Raw little-endian bytes (gRPC `raw_output_contents`).
    pub fn to_raw(&self) -> Vec<u8> {
        to_binary(&self.data, &self.datatype)
    }
}

fn to_binary(data: &Data, datatype: &str) -> Vec<u8> {
    match data {
        Data::Bool(v) => v.iter().map(|&b| b as u8).collect(),
        Data::Int(v) => match datatype {
            "INT8" | "UINT8" => v.iter().map(|&x| x as u8).collect(),
            "INT16" | "UINT16" => v.iter().flat_map(|&x| (x as u16).to_le_bytes()).collect(),
            "INT32" | "UINT32" => v.iter().flat_map(|&x| (x as u32).to_le_bytes()).collect(),
            _ => v.iter().flat_map(|&x| (x as u64).to_le_bytes()).collect(),
        },
        Data::Fp32(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        Data::Fp64(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        Data::Bytes(v) => {
            let mut out = Vec::new();
            for b in v {
                out.extend((b.len() as u32).to_le_bytes());
                out.extend(b);
            }
            out
        }
    }
}

fn to_json(data: &Data) -> Value {
    match data {
        Data::Bool(v) => json!(v),
        Data::Int(v) => Value::Array(v.iter().map(|&x| json!(x as i64)).collect()),
        Data::Fp32(v) => {
            Value::Array(v.iter().map(|&x| if x.is_finite() { json!(x) } else { json!(x.to_string()) }).collect())
        }
        Data::Fp64(v) => {
            Value::Array(v.iter().map(|&x| if x.is_finite() { json!(x) } else { json!(x.to_string()) }).collect())
        }
        Data::Bytes(v) => Value::Array(v.iter().map(|b| json!(String::from_utf8_lossy(b))).collect()),
    }
}

/// A response body, and the JSON header length when it carries binary data.
pub struct EncodedResponse {
    pub body: Vec<u8>,
    pub header_len: Option<usize>,
}

/// Encodes outputs as the request asked: those named (all if none named),
/// each in JSON or binary.
pub fn encode_response(
    model_name: &str,
    model_version: &str,
    id: Option<&str>,
    outputs: Vec<Tensor>,
    req: &InferRequest,
    parameters: Map<String, Value>,
) -> Result<EncodedResponse> {
    let mut chosen = Vec::new();
    if req.outputs.is_empty() {
        chosen.extend(outputs.into_iter().map(|t| (t, req.binary_output_default)));
    } else {
        let mut outputs = outputs;
        for r in &req.outputs {
            let i = outputs
                .iter()
                .position(|t| t.name == r.name)
                .ok_or_else(|| bad(format!("unknown output '{}'", r.name)))?;
            chosen.push((outputs.swap_remove(i), r.binary));
        }
    }
    let mut binary = Vec::new();
    let mut list = Vec::new();
    for (t, as_binary) in chosen {
        let mut o = json!({"name": t.name, "datatype": t.datatype, "shape": t.shape});
        if as_binary {
            let bytes = to_binary(&t.data, &t.datatype);
            o["parameters"] = json!({"binary_data_size": bytes.len()});
            binary.extend(bytes);
        } else {
            o["data"] = to_json(&t.data);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_inputs_nested_or_flat() {
        let body = json!({"id": "r1", "inputs": [
            {"name": "x", "datatype": "FP32", "shape": [2, 2], "data": [[1, 2], [3, 4.5]]},
            {"name": "u", "datatype": "BYTES", "shape": [2], "data": ["a", "b"]},
            {"name": "k", "datatype": "INT32", "shape": [1], "data": [5]}]});
        let r = decode_request(&serde_json::to_vec(&body).unwrap(), None).unwrap();
        assert_eq!(r.id.as_deref(), Some("r1"));
        assert_eq!(r.input("x").unwrap().data, Data::Fp32(vec![1.0, 2.0, 3.0, 4.5]));
        assert_eq!(r.input("u").unwrap().data, Data::Bytes(vec![b"a".to_vec(), b"b".to_vec()]));
        assert_eq!(r.input("k").unwrap().data, Data::Int(vec![5]));
    }

    #[test]
    fn json_null_is_a_missing_float() {
        let body = json!({"inputs": [{"name": "x", "datatype": "FP64", "shape": [3], "data": [1.5, null, "NaN"]}]});
        let r = decode_request(&serde_json::to_vec(&body).unwrap(), None).unwrap();
        let Data::Fp64(v) = &r.input("x").unwrap().data else { panic!("not FP64") };
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
        assert_eq!(r.input("x").unwrap().data, Data::Fp32(vec![1.5, 2.5]));
        assert_eq!(r.input("u").unwrap().data, Data::Bytes(vec![b"abc".to_vec()]));
    }

    #[test]
    fn bad_tensors_are_refused_with_a_message() {
        for (body, header) in [
            (json!({"inputs": [{"name": "x", "datatype": "FP32", "shape": [3], "data": [1, 2]}]}), None),
            (json!({"inputs": [{"name": "x", "datatype": "FP32", "shape": [1], "data": ["a"]}]}), None),
            (json!({"inputs": [{"name": "x", "datatype": "INT8", "shape": [1], "data": [300]}]}), None),
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
    fn raw_roundtrip_for_every_datatype() {
        for (dt, data) in [
            ("BOOL", Data::Bool(vec![true, false])),
            ("UINT8", Data::Int(vec![0, 255])),
            ("INT8", Data::Int(vec![-128, 127])),
            ("UINT16", Data::Int(vec![0, 65535])),
            ("INT16", Data::Int(vec![-5, 5])),
            ("UINT32", Data::Int(vec![0, 4_000_000_000])),
            ("INT32", Data::Int(vec![-7, 7])),
            ("INT64", Data::Int(vec![-1 << 40, 1 << 40])),
            ("UINT64", Data::Int(vec![0, u64::MAX as i128])),
            ("FP32", Data::Fp32(vec![0.5, -2.0])),
            ("FP64", Data::Fp64(vec![0.25, 1e300])),
            ("BYTES", Data::Bytes(vec![b"".to_vec(), "é".as_bytes().to_vec()])),
        ] {
            let t = Tensor::checked("x", dt, vec![2], data).unwrap();
            assert_eq!(Tensor::from_raw("x", dt, vec![2], &t.to_raw()).unwrap(), t, "{dt}");
        }
    }

    #[test]
    fn outputs_encode_as_json_or_binary() {
        let req = InferRequest {
            outputs: vec![
                RequestedOutput { name: "s".into(), binary: true },
                RequestedOutput { name: "i".into(), binary: false },
            ],
            ..Default::default()
        };
        let outs = vec![
            Tensor {
                name: "i".into(),
                datatype: "BYTES".into(),
                shape: vec![1],
                data: Data::Bytes(vec![b"x".to_vec()]),
            },
            Tensor { name: "s".into(), datatype: "FP32".into(), shape: vec![1], data: Data::Fp32(vec![0.5]) },
        ];
        let enc = encode_response("m", "1", Some("r"), outs, &req, Map::new()).unwrap();
        let n = enc.header_len.unwrap();
        let head: Value = serde_json::from_slice(&enc.body[..n]).unwrap();
        assert_eq!(head["id"], "r");
        assert_eq!(head["outputs"][0]["parameters"]["binary_data_size"], 4);
        assert_eq!(head["outputs"][1]["data"], json!(["x"]));
        assert_eq!(&enc.body[n..], &0.5f32.to_le_bytes());
    }
}
