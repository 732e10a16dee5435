//! A column-oriented table written as one Parquet file (Snappy), with the file writer's column
//! API: the few column shapes the export needs, lists in the standard three-level form pyarrow
//! and Hugging Face `datasets` read.

use std::io::Write;
use std::ops::Range;
use std::sync::Arc;

use parquet::basic::{Compression, LogicalType, Repetition, Type as Physical};
use parquet::data_type::{
    BoolType, ByteArray, ByteArrayType, DoubleType, FloatType, Int32Type, Int64Type,
};
use parquet::errors::ParquetError;
use parquet::file::metadata::KeyValue;
use parquet::file::properties::WriterProperties;
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::types::{Type, TypePtr};

/// One column's values, one per row.
#[derive(Debug, Clone, PartialEq)]
pub enum Values {
    I64(Vec<i64>),
    I32(Vec<i32>),
    F32(Vec<f32>),
    F64(Vec<f64>),
    /// Nullable.
    OptF64(Vec<Option<f64>>),
    Bool(Vec<bool>),
    Str(Vec<String>),
    /// Nullable.
    OptStr(Vec<Option<String>>),
    ListF32(Vec<Vec<f32>>),
    ListStr(Vec<Vec<String>>),
}

impl Values {
    pub fn len(&self) -> usize {
        match self {
            Values::I64(v) => v.len(),
            Values::I32(v) => v.len(),
            Values::F32(v) => v.len(),
            Values::F64(v) => v.len(),
            Values::OptF64(v) => v.len(),
            Values::Bool(v) => v.len(),
            Values::Str(v) => v.len(),
            Values::OptStr(v) => v.len(),
            Values::ListF32(v) => v.len(),
            Values::ListStr(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn parquet_type(&self, name: &str) -> Result<TypePtr, ParquetError> {
        let primitive = |name: &str, physical, repetition, logical: Option<LogicalType>| {
            Type::primitive_type_builder(name, physical)
                .with_repetition(repetition)
                .with_logical_type(logical)
                .build()
        };
        let list = |element: Type| -> Result<Type, ParquetError> {
            let repeated = Type::group_type_builder("list")
                .with_repetition(Repetition::REPEATED)
                .with_fields(vec![Arc::new(element)])
                .build()?;
            Type::group_type_builder(name)
                .with_repetition(Repetition::REQUIRED)
                .with_logical_type(Some(LogicalType::List))
                .with_fields(vec![Arc::new(repeated)])
                .build()
        };
        let string = Some(LogicalType::String);
        let ty = match self {
            Values::I64(_) => primitive(name, Physical::INT64, Repetition::REQUIRED, None)?,
            Values::I32(_) => primitive(name, Physical::INT32, Repetition::REQUIRED, None)?,
            Values::F32(_) => primitive(name, Physical::FLOAT, Repetition::REQUIRED, None)?,
            Values::F64(_) => primitive(name, Physical::DOUBLE, Repetition::REQUIRED, None)?,
            Values::OptF64(_) => primitive(name, Physical::DOUBLE, Repetition::OPTIONAL, None)?,
            Values::Bool(_) => primitive(name, Physical::BOOLEAN, Repetition::REQUIRED, None)?,
            Values::Str(_) => primitive(name, Physical::BYTE_ARRAY, Repetition::REQUIRED, string)?,
            Values::OptStr(_) => {
                primitive(name, Physical::BYTE_ARRAY, Repetition::OPTIONAL, string)?
            }
            Values::ListF32(_) => list(primitive(
                "element",
                Physical::FLOAT,
                Repetition::REQUIRED,
                None,
            )?)?,
            Values::ListStr(_) => list(primitive(
                "element",
                Physical::BYTE_ARRAY,
                Repetition::REQUIRED,
                string,
            )?)?,
        };
        Ok(Arc::new(ty))
    }
}

/// A table: named columns of equal length.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Table {
    pub columns: Vec<(String, Values)>,
}

impl Table {
    pub fn push(&mut self, name: &str, values: Values) {
        self.columns.push((name.to_owned(), values));
    }

    pub fn rows(&self) -> usize {
        self.columns.first().map_or(0, |(_, values)| values.len())
    }

    /// Writes the table with one row group per range of `groups` (every row in one group when
    /// empty), and `metadata` as the file's key-value metadata.
    pub fn write<W: Write + Send>(
        &self,
        out: W,
        groups: &[Range<usize>],
        metadata: Vec<(String, String)>,
    ) -> Result<(), ParquetError> {
        let rows = self.rows();
        if let Some((name, _)) = self.columns.iter().find(|(_, v)| v.len() != rows) {
            return Err(ParquetError::General(format!(
                "column {name} has another length than the table's {rows} rows"
            )));
        }
        let fields = self
            .columns
            .iter()
            .map(|(name, values)| values.parquet_type(name))
            .collect::<Result<Vec<_>, _>>()?;
        let schema = Arc::new(
            Type::group_type_builder("schema")
                .with_fields(fields)
                .build()?,
        );
        let metadata = (!metadata.is_empty()).then(|| {
            metadata
                .into_iter()
                .map(|(key, value)| KeyValue::new(key, value))
                .collect()
        });
        let props = WriterProperties::builder()
            .set_compression(Compression::SNAPPY)
            .set_created_by(format!(
                "scale-diffusion export {}",
                env!("CARGO_PKG_VERSION")
            ))
            .set_key_value_metadata(metadata)
            .build();
        let mut writer = SerializedFileWriter::new(out, schema, Arc::new(props))?;
        let all = std::iter::once(0..rows);
        let groups: Vec<Range<usize>> = if groups.is_empty() {
            all.collect()
        } else {
            groups.to_vec()
        };
        for range in &groups {
            let mut group = writer.next_row_group()?;
            for (_, values) in &self.columns {
                let Some(mut column) = group.next_column()? else {
                    return Err(ParquetError::General(
                        "fewer columns than the schema".into(),
                    ));
                };
                write_column(&mut column, values, range.clone())?;
                column.close()?;
            }
            group.close()?;
        }
        writer.close()?;
        Ok(())
    }
}

fn write_column(
    column: &mut parquet::file::writer::SerializedColumnWriter<'_>,
    values: &Values,
    range: Range<usize>,
) -> Result<(), ParquetError> {
    match values {
        Values::I64(v) => {
            column
                .typed::<Int64Type>()
                .write_batch(&v[range], None, None)?;
        }
        Values::I32(v) => {
            column
                .typed::<Int32Type>()
                .write_batch(&v[range], None, None)?;
        }
        Values::F32(v) => {
            column
                .typed::<FloatType>()
                .write_batch(&v[range], None, None)?;
        }
        Values::F64(v) => {
            column
                .typed::<DoubleType>()
                .write_batch(&v[range], None, None)?;
        }
        Values::Bool(v) => {
            column
                .typed::<BoolType>()
                .write_batch(&v[range], None, None)?;
        }
        Values::Str(v) => {
            let bytes: Vec<ByteArray> = v[range]
                .iter()
                .map(|s| ByteArray::from(s.as_str()))
                .collect();
            column
                .typed::<ByteArrayType>()
                .write_batch(&bytes, None, None)?;
        }
        Values::OptF64(v) => {
            let slice = &v[range];
            let present: Vec<f64> = slice.iter().flatten().copied().collect();
            let defs: Vec<i16> = slice.iter().map(|x| i16::from(x.is_some())).collect();
            column
                .typed::<DoubleType>()
                .write_batch(&present, Some(&defs), None)?;
        }
        Values::OptStr(v) => {
            let slice = &v[range];
            let present: Vec<ByteArray> = slice
                .iter()
                .flatten()
                .map(|s| ByteArray::from(s.as_str()))
                .collect();
            let defs: Vec<i16> = slice.iter().map(|x| i16::from(x.is_some())).collect();
            column
                .typed::<ByteArrayType>()
                .write_batch(&present, Some(&defs), None)?;
        }
        Values::ListF32(v) => {
            let (flat, defs, reps) = list_levels(&v[range]);
            column
                .typed::<FloatType>()
                .write_batch(&flat, Some(&defs), Some(&reps))?;
        }
        Values::ListStr(v) => {
            let (flat, defs, reps) = list_levels(&v[range]);
            let bytes: Vec<ByteArray> = flat.iter().map(|s| ByteArray::from(s.as_str())).collect();
            column
                .typed::<ByteArrayType>()
                .write_batch(&bytes, Some(&defs), Some(&reps))?;
        }
    }
    Ok(())
}

/// A required list of required elements: definition level 1 per element (0 for an empty list),
/// repetition level 0 at each list's start.
fn list_levels<T: Clone>(lists: &[Vec<T>]) -> (Vec<T>, Vec<i16>, Vec<i16>) {
    let mut flat = Vec::new();
    let mut defs = Vec::new();
    let mut reps = Vec::new();
    for list in lists {
        if list.is_empty() {
            defs.push(0);
            reps.push(0);
            continue;
        }
        for (i, value) in list.iter().enumerate() {
            flat.push(value.clone());
            defs.push(1);
            reps.push(i16::from(i > 0));
        }
    }
    (flat, defs, reps)
}

#[cfg(test)]
mod tests {
    use super::*;
    use parquet::file::reader::{FileReader as _, SerializedFileReader};
    use parquet::record::Field;

    #[test]
    fn lists_nulls_and_row_groups_read_back_as_written() {
        let mut table = Table::default();
        table.push("id", Values::I64(vec![1, 2, 3]));
        table.push(
            "v",
            Values::ListF32(vec![vec![1.0, 2.0], vec![], vec![f32::NAN]]),
        );
        table.push(
            "t",
            Values::ListStr(vec![vec!["a".into()], vec!["b".into(), "c".into()], vec![]]),
        );
        table.push("o", Values::OptF64(vec![Some(0.5), None, Some(2.0)]));
        table.push("s", Values::OptStr(vec![None, Some("x".into()), None]));
        let mut bytes = Vec::new();
        table
            .write(&mut bytes, &[0..2, 2..3], vec![("k".into(), "v".into())])
            .expect("write");
        let reader = SerializedFileReader::new(bytes::Bytes::from(bytes)).expect("read");
        assert_eq!(reader.metadata().num_row_groups(), 2);
        let kv = reader
            .metadata()
            .file_metadata()
            .key_value_metadata()
            .cloned();
        assert_eq!(kv.and_then(|kv| kv[0].value.clone()).as_deref(), Some("v"));
        let rows: Vec<String> = reader
            .get_row_iter(None)
            .expect("rows")
            .map(|row| {
                let row = row.expect("row");
                row.get_column_iter()
                    .map(|(_, field)| match field {
                        Field::Null => "null".to_owned(),
                        other => other.to_string(),
                    })
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect();
        assert_eq!(
            rows,
            [
                r#"1 [1.0, 2.0] ["a"] 0.5 null"#,
                r#"2 [] ["b", "c"] null "x""#,
                r#"3 [NaN] [] 2.0 null"#,
            ]
        );
    }

    #[test]
    fn a_short_column_is_refused() {
        let mut table = Table::default();
        table.push("a", Values::I64(vec![1, 2]));
        table.push("b", Values::I64(vec![1]));
        assert!(table.write(Vec::new(), &[], Vec::new()).is_err());
    }
}
