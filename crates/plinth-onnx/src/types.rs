//! Element types and arrays as Plinth hands them to and from a model, named
//! like the Open Inference Protocol's datatypes; the conversion to tract's
//! tensors lives here so no other crate sees tract.

use std::borrow::Cow;

use tract_onnx::prelude::{Datum, DatumType, PlainView, Tensor, TractError, TractResult, tract_ndarray};

use crate::{Error, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataType {
    Bool,
    U8,
    U16,
    U32,
    U64,
    I8,
    I16,
    I32,
    I64,
    F32,
    F64,
    Bytes,
}

impl DataType {
    /// The Open Inference Protocol's name.
    pub fn oip(self) -> &'static str {
        match self {
            DataType::Bool => "BOOL",
            DataType::U8 => "UINT8",
            DataType::U16 => "UINT16",
            DataType::U32 => "UINT32",
            DataType::U64 => "UINT64",
            DataType::I8 => "INT8",
            DataType::I16 => "INT16",
            DataType::I32 => "INT32",
            DataType::I64 => "INT64",
            DataType::F32 => "FP32",
            DataType::F64 => "FP64",
            DataType::Bytes => "BYTES",
        }
    }

    pub(crate) fn from_datum(dt: DatumType) -> Option<DataType> {
        Some(match dt {
            DatumType::Bool => DataType::Bool,
            DatumType::U8 => DataType::U8,
            DatumType::U16 => DataType::U16,
            DatumType::U32 => DataType::U32,
            DatumType::U64 => DataType::U64,
            DatumType::I8 => DataType::I8,
            DatumType::I16 => DataType::I16,
            DatumType::I32 => DataType::I32,
            // tract's symbolic integers: class labels can come out as these.
            DatumType::I64 | DatumType::TDim => DataType::I64,
            DatumType::F32 => DataType::F32,
            DatumType::F64 => DataType::F64,
            DatumType::String => DataType::Bytes,
            _ => return None,
        })
    }

    pub(crate) fn datum(self) -> DatumType {
        match self {
            DataType::Bool => DatumType::Bool,
            DataType::U8 => DatumType::U8,
            DataType::U16 => DatumType::U16,
            DataType::U32 => DatumType::U32,
            DataType::U64 => DatumType::U64,
            DataType::I8 => DatumType::I8,
            DataType::I16 => DatumType::I16,
            DataType::I32 => DatumType::I32,
            DataType::I64 => DatumType::I64,
            DataType::F32 => DatumType::F32,
            DataType::F64 => DatumType::F64,
            DataType::Bytes => DatumType::String,
        }
    }

    /// The datatype the Open Inference Protocol names `name`, if Plinth
    /// serves it (FP16 and BF16 are not).
    pub fn from_oip(name: &str) -> Option<DataType> {
        Some(match name {
            "BOOL" => DataType::Bool,
            "UINT8" => DataType::U8,
            "UINT16" => DataType::U16,
            "UINT32" => DataType::U32,
            "UINT64" => DataType::U64,
            "INT8" => DataType::I8,
            "INT16" => DataType::I16,
            "INT32" => DataType::I32,
            "INT64" => DataType::I64,
            "FP32" => DataType::F32,
            "FP64" => DataType::F64,
            "BYTES" => DataType::Bytes,
            _ => return None,
        })
    }

    /// Bytes per element; `None` for BYTES (variable length).
    pub fn size(self) -> Option<usize> {
        match self {
            DataType::Bool | DataType::U8 | DataType::I8 => Some(1),
            DataType::U16 | DataType::I16 => Some(2),
            DataType::U32 | DataType::I32 | DataType::F32 => Some(4),
            DataType::U64 | DataType::I64 | DataType::F64 => Some(8),
            DataType::Bytes => None,
        }
    }

    /// The smallest and largest value of an integer datatype; `None` for
    /// the others.
    pub fn integer_range(self) -> Option<(i128, i128)> {
        Some(match self {
            DataType::U8 => (0, u8::MAX.into()),
            DataType::U16 => (0, u16::MAX.into()),
            DataType::U32 => (0, u32::MAX.into()),
            DataType::U64 => (0, u64::MAX.into()),
            DataType::I8 => (i8::MIN.into(), i8::MAX.into()),
            DataType::I16 => (i16::MIN.into(), i16::MAX.into()),
            DataType::I32 => (i32::MIN.into(), i32::MAX.into()),
            DataType::I64 => (i64::MIN.into(), i64::MAX.into()),
            DataType::Bool | DataType::F32 | DataType::F64 | DataType::Bytes => return None,
        })
    }

    pub fn is_integer(self) -> bool {
        self.integer_range().is_some()
    }

    pub fn is_unsigned(self) -> bool {
        matches!(self, DataType::U8 | DataType::U16 | DataType::U32 | DataType::U64)
    }

    /// The empty values of this datatype, to fill.
    pub fn empty_values(self, capacity: usize) -> Values {
        match self {
            DataType::Bool => Values::Bool(Vec::with_capacity(capacity)),
            DataType::F32 => Values::F32(Vec::with_capacity(capacity)),
            DataType::F64 => Values::F64(Vec::with_capacity(capacity)),
            DataType::Bytes => Values::Bytes(Vec::with_capacity(capacity)),
            d if d.is_unsigned() => Values::UInt(Vec::with_capacity(capacity)),
            _ => Values::Int(Vec::with_capacity(capacity)),
        }
    }
}

impl std::fmt::Display for DataType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.oip())
    }
}

/// Elements, row-major. Signed integers of every width travel as `i64`,
/// unsigned ones as `u64`; the array's [`DataType`] says which width.
#[derive(Debug, Clone, PartialEq)]
pub enum Values {
    Bool(Vec<bool>),
    Int(Vec<i64>),
    UInt(Vec<u64>),
    F32(Vec<f32>),
    F64(Vec<f64>),
    Bytes(Vec<Vec<u8>>),
}

impl Values {
    pub fn len(&self) -> usize {
        match self {
            Values::Bool(v) => v.len(),
            Values::Int(v) => v.len(),
            Values::UInt(v) => v.len(),
            Values::F32(v) => v.len(),
            Values::F64(v) => v.len(),
            Values::Bytes(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A named array in or out of a model.
#[derive(Debug, Clone, PartialEq)]
pub struct Array {
    pub name: String,
    pub datatype: DataType,
    pub shape: Vec<usize>,
    pub values: Values,
}

fn ints<T, W>(name: &str, dt: DataType, v: &[W]) -> Result<Vec<T>>
where
    T: TryFrom<W>,
    W: Copy + std::fmt::Display,
{
    v.iter()
        .map(|&x| T::try_from(x).map_err(|_| Error::Input(format!("input '{name}': {x} does not fit {}", dt.oip()))))
        .collect()
}

fn shaped<T>(shape: &[usize], v: Vec<T>) -> Result<Tensor>
where
    T: Datum,
{
    tract_ndarray::ArrayD::from_shape_vec(tract_ndarray::IxDyn(shape), v)
        .map(Tensor::from)
        .map_err(|e| Error::Input(e.to_string()))
}

impl Array {
    /// The tract tensor of this array as `dt`, the type the model declares.
    pub(crate) fn to_tensor(&self, dt: DataType) -> Result<Tensor> {
        let (name, shape) = (self.name.as_str(), self.shape.as_slice());
        let mismatch = || {
            Error::Input(format!("input '{name}' has datatype {}, the model takes {}", self.datatype.oip(), dt.oip()))
        };
        if self.datatype != dt {
            return Err(mismatch());
        }
        match (&self.values, dt) {
            (Values::Bool(v), DataType::Bool) => shaped(shape, v.clone()),
            (Values::F32(v), DataType::F32) => shaped(shape, v.clone()),
            (Values::F64(v), DataType::F64) => shaped(shape, v.clone()),
            (Values::UInt(v), DataType::U8) => shaped(shape, ints::<u8, _>(name, dt, v)?),
            (Values::UInt(v), DataType::U16) => shaped(shape, ints::<u16, _>(name, dt, v)?),
            (Values::UInt(v), DataType::U32) => shaped(shape, ints::<u32, _>(name, dt, v)?),
            (Values::UInt(v), DataType::U64) => shaped(shape, v.clone()),
            (Values::Int(v), DataType::I8) => shaped(shape, ints::<i8, _>(name, dt, v)?),
            (Values::Int(v), DataType::I16) => shaped(shape, ints::<i16, _>(name, dt, v)?),
            (Values::Int(v), DataType::I32) => shaped(shape, ints::<i32, _>(name, dt, v)?),
            (Values::Int(v), DataType::I64) => shaped(shape, v.clone()),
            (Values::Bytes(v), DataType::Bytes) => {
                let strings = v
                    .iter()
                    .map(|b| {
                        String::from_utf8(b.clone())
                            .map_err(|_| Error::Input(format!("input '{name}': BYTES elements must be UTF-8 text")))
                    })
                    .collect::<Result<Vec<String>>>()?;
                shaped(shape, strings)
            }
            _ => Err(mismatch()),
        }
    }

    /// An output tensor as an array.
    pub(crate) fn from_tensor(name: &str, t: &Tensor) -> Result<Array> {
        let dt = DataType::from_datum(t.datum_type()).ok_or_else(|| {
            Error::Run(format!("output '{name}' has type {:?}, which cannot be served", t.datum_type()))
        })?;
        let run = |e: TractError| Error::Run(format!("output '{name}': {e}"));
        let t = if t.datum_type() == DatumType::TDim { t.cast_to::<i64>().map_err(run)? } else { Cow::Borrowed(t) };
        let view = t.try_as_plain_ram().map_err(run)?;
        fn widen<T: Copy + Into<i64> + Datum>(v: &PlainView<'_>) -> TractResult<Values> {
            Ok(Values::Int(v.as_slice::<T>()?.iter().map(|&x| x.into()).collect()))
        }
        fn widen_unsigned<T: Copy + Into<u64> + Datum>(v: &PlainView<'_>) -> TractResult<Values> {
            Ok(Values::UInt(v.as_slice::<T>()?.iter().map(|&x| x.into()).collect()))
        }
        let values = match dt {
            DataType::Bool => Values::Bool(view.as_slice::<bool>().map_err(run)?.to_vec()),
            DataType::F32 => Values::F32(view.as_slice::<f32>().map_err(run)?.to_vec()),
            DataType::F64 => Values::F64(view.as_slice::<f64>().map_err(run)?.to_vec()),
            DataType::U8 => widen_unsigned::<u8>(&view).map_err(run)?,
            DataType::U16 => widen_unsigned::<u16>(&view).map_err(run)?,
            DataType::U32 => widen_unsigned::<u32>(&view).map_err(run)?,
            DataType::U64 => widen_unsigned::<u64>(&view).map_err(run)?,
            DataType::I8 => widen::<i8>(&view).map_err(run)?,
            DataType::I16 => widen::<i16>(&view).map_err(run)?,
            DataType::I32 => widen::<i32>(&view).map_err(run)?,
            DataType::I64 => widen::<i64>(&view).map_err(run)?,
            DataType::Bytes => {
                Values::Bytes(view.as_slice::<String>().map_err(run)?.iter().map(|s| s.as_bytes().to_vec()).collect())
            }
        };
        Ok(Array { name: name.to_string(), datatype: dt, shape: t.shape().to_vec(), values })
    }
}
