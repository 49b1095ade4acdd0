//! The Open Inference Protocol's two codecs side by side: REST (JSON, with
//! the binary tensor data extension) in [`rest`] and gRPC in [`grpc`]. Both
//! decode into `plinth_serving::tensor::InferRequest`, call the same
//! `Serving::infer`, and encode its typed `InferResponse`. The raw
//! little-endian tensor layout both use is here.

pub mod grpc;
pub mod rest;

use plinth_serving::Error;
use plinth_serving::tensor::{Array, DataType, Values, checked_shape};

fn bad(msg: impl Into<String>) -> Error {
    Error::Invalid(msg.into())
}

/// A tensor from raw little-endian bytes (the binary extension's layout,
/// and gRPC's `raw_input_contents`): fixed-size elements back to back;
/// BYTES elements each a 4-byte little-endian length, then the bytes.
pub fn from_raw(name: &str, datatype: DataType, shape: &[i64], bytes: &[u8]) -> Result<Array, Error> {
    let dims = plinth_serving::tensor::elements(name, shape)?;
    let n: usize = dims.iter().product();
    let fixed = |size: usize| -> Result<std::slice::ChunksExact<'_, u8>, Error> {
        if bytes.len() != n * size {
            return Err(bad(format!(
                "input '{name}': {} bytes of binary data for {n} {datatype} elements (expected {})",
                bytes.len(),
                n * size
            )));
        }
        Ok(bytes.chunks_exact(size))
    };
    fn le<const N: usize>(c: &[u8]) -> [u8; N] {
        let mut a = [0u8; N];
        a.copy_from_slice(&c[..N]);
        a
    }
    let values = match datatype {
        DataType::Bool => Values::Bool(fixed(1)?.map(|c| c[0] != 0).collect()),
        DataType::U8 => Values::UInt(fixed(1)?.map(|c| c[0].into()).collect()),
        DataType::U16 => Values::UInt(fixed(2)?.map(|c| u16::from_le_bytes(le(c)).into()).collect()),
        DataType::U32 => Values::UInt(fixed(4)?.map(|c| u32::from_le_bytes(le(c)).into()).collect()),
        DataType::U64 => Values::UInt(fixed(8)?.map(|c| u64::from_le_bytes(le(c))).collect()),
        DataType::I8 => Values::Int(fixed(1)?.map(|c| (c[0] as i8).into()).collect()),
        DataType::I16 => Values::Int(fixed(2)?.map(|c| i16::from_le_bytes(le(c)).into()).collect()),
        DataType::I32 => Values::Int(fixed(4)?.map(|c| i32::from_le_bytes(le(c)).into()).collect()),
        DataType::I64 => Values::Int(fixed(8)?.map(|c| i64::from_le_bytes(le(c))).collect()),
        DataType::F32 => Values::F32(fixed(4)?.map(|c| f32::from_le_bytes(le(c))).collect()),
        DataType::F64 => Values::F64(fixed(8)?.map(|c| f64::from_le_bytes(le(c))).collect()),
        DataType::Bytes => {
            let mut out = Vec::with_capacity(n.min(1 << 20));
            let mut rest = bytes;
            while !rest.is_empty() {
                if rest.len() < 4 {
                    return Err(bad(format!("input '{name}': truncated BYTES element length")));
                }
                let len = u32::from_le_bytes(le(rest)) as usize;
                rest = &rest[4..];
                if rest.len() < len {
                    return Err(bad(format!("input '{name}': BYTES element longer than the data")));
                }
                out.push(rest[..len].to_vec());
                rest = &rest[len..];
            }
            Values::Bytes(out)
        }
    };
    checked(name, datatype, shape, values)
}

/// An array whose values match its datatype and fill its shape.
pub fn checked(name: &str, datatype: DataType, shape: &[i64], values: Values) -> Result<Array, Error> {
    let fits = matches!(
        (&values, datatype.empty_values(0)),
        (Values::Bool(_), Values::Bool(_))
            | (Values::Int(_), Values::Int(_))
            | (Values::UInt(_), Values::UInt(_))
            | (Values::F32(_), Values::F32(_))
            | (Values::F64(_), Values::F64(_))
            | (Values::Bytes(_), Values::Bytes(_))
    );
    if !fits {
        return Err(bad(format!("input '{name}': its contents are not {datatype} values")));
    }
    let shape = checked_shape(name, shape, values.len())?;
    Ok(Array { name: name.to_string(), datatype, shape, values })
}

/// Raw little-endian bytes of a tensor (the inverse of [`from_raw`]).
pub fn to_raw(a: &Array) -> Vec<u8> {
    match &a.values {
        Values::Bool(v) => v.iter().map(|&b| b as u8).collect(),
        Values::Int(v) => match a.datatype {
            DataType::I8 => v.iter().map(|&x| x as i8 as u8).collect(),
            DataType::I16 => v.iter().flat_map(|&x| (x as i16).to_le_bytes()).collect(),
            DataType::I32 => v.iter().flat_map(|&x| (x as i32).to_le_bytes()).collect(),
            _ => v.iter().flat_map(|&x| x.to_le_bytes()).collect(),
        },
        Values::UInt(v) => match a.datatype {
            DataType::U8 => v.iter().map(|&x| x as u8).collect(),
            DataType::U16 => v.iter().flat_map(|&x| (x as u16).to_le_bytes()).collect(),
            DataType::U32 => v.iter().flat_map(|&x| (x as u32).to_le_bytes()).collect(),
            _ => v.iter().flat_map(|&x| x.to_le_bytes()).collect(),
        },
        Values::F32(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        Values::F64(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        Values::Bytes(v) => {
            let mut out = Vec::with_capacity(v.iter().map(|b| b.len() + 4).sum());
            for b in v {
                out.extend((b.len() as u32).to_le_bytes());
                out.extend(b);
            }
            out
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_roundtrip_for_every_datatype() {
        for (dt, values) in [
            (DataType::Bool, Values::Bool(vec![true, false])),
            (DataType::U8, Values::UInt(vec![0, 255])),
            (DataType::I8, Values::Int(vec![-128, 127])),
            (DataType::U16, Values::UInt(vec![0, 65535])),
            (DataType::I16, Values::Int(vec![-5, 5])),
            (DataType::U32, Values::UInt(vec![0, 4_000_000_000])),
            (DataType::I32, Values::Int(vec![-7, 7])),
            (DataType::I64, Values::Int(vec![-1 << 40, 1 << 40])),
            (DataType::U64, Values::UInt(vec![0, u64::MAX])),
            (DataType::F32, Values::F32(vec![0.5, -2.0])),
            (DataType::F64, Values::F64(vec![0.25, 1e300])),
            (DataType::Bytes, Values::Bytes(vec![b"".to_vec(), "é".as_bytes().to_vec()])),
        ] {
            let t = checked("x", dt, &[2], values).unwrap();
            assert_eq!(from_raw("x", dt, &[2], &to_raw(&t)).unwrap(), t, "{dt}");
        }
    }

    #[test]
    fn contents_of_another_type_are_refused() {
        assert!(checked("x", DataType::I32, &[1], Values::F32(vec![1.0])).is_err());
        assert!(checked("x", DataType::U8, &[1], Values::Int(vec![1])).is_err());
        assert!(checked("x", DataType::F32, &[2], Values::F32(vec![1.0])).is_err(), "shape needs two elements");
    }
}
