//! Named f32 tensors in safetensors files (checkpoints, optimizer moments, model folders), and
//! a parameter's new value under the same id and autodiff tracking.

use std::collections::HashMap;
use std::path::Path;

use burn::module::{Param, ParamId};
use burn::tensor::Tensor;
use safetensors::tensor::{Dtype, TensorView};

/// A tensor by name: its shape and row-major values.
pub type Named = HashMap<String, (Vec<usize>, Vec<f32>)>;

/// Write `tensors` (name, shape, values) and string `metadata` as one safetensors file.
pub fn write_f32(
    path: &Path,
    tensors: Vec<(String, Vec<usize>, Vec<f32>)>,
    metadata: Option<HashMap<String, String>>,
) -> std::io::Result<()> {
    let bytes: Vec<(String, Vec<usize>, Vec<u8>)> = tensors
        .into_iter()
        .map(|(n, s, v)| (n, s, v.iter().flat_map(|x| x.to_le_bytes()).collect()))
        .collect();
    let views: Vec<(String, TensorView<'_>)> = bytes
        .iter()
        .map(|(n, s, b)| {
            let view = TensorView::new(Dtype::F32, s.clone(), b).expect("shape matches data");
            (n.clone(), view)
        })
        .collect();
    let data = safetensors::serialize(views, metadata).map_err(std::io::Error::other)?;
    std::fs::write(path, data)
}

/// Every f32 tensor of a safetensors file, and its string metadata.
pub fn read_f32(path: &Path) -> std::io::Result<(Named, HashMap<String, String>)> {
    let bytes = std::fs::read(path)?;
    let bad = |e: String| std::io::Error::new(std::io::ErrorKind::InvalidData, e);
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).map_err(|e| bad(e.to_string()))?;
    let st = safetensors::SafeTensors::deserialize(&bytes).map_err(|e| bad(e.to_string()))?;
    let mut out = HashMap::new();
    for (name, view) in st.tensors() {
        if view.dtype() != Dtype::F32 {
            return Err(bad(format!("{name} is {:?}, not F32", view.dtype())));
        }
        let values = view
            .data()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        out.insert(name, (view.shape().to_vec(), values));
    }
    Ok((out, meta.metadata().clone().unwrap_or_default()))
}

/// Parameter `id` holding `value` (a tensor without autodiff), tracked for gradients as
/// `previous` was.
pub fn replaced<const D: usize>(
    id: ParamId,
    previous: &Tensor<D>,
    value: Tensor<D>,
    mapper: burn::module::ParamMapper<Tensor<D>>,
) -> Param<Tensor<D>> {
    let mut tensor = Tensor::from_inner(value);
    if previous.is_require_grad() {
        tensor = tensor.require_grad();
    }
    Param::from_mapped_value(id, tensor, mapper)
}
