//! Class logits of a sequence-classification checkpoint for the lines of a text file, as JSON
//! (`{"texts": [...], "logits": [[...], ...]}`), for checking a model folder against
//! transformers (`crates/finetune/fixtures/check_hf_folder.py`).
//!
//! `cargo run --release -p bert --example logits -- MODEL_DIR TEXTS.txt > logits.json`

use bert::TextEncoder;
use burn::tensor::Device;
use model_hub::ModelRef;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [model, texts] = &args[..] else {
        return Err("usage: logits MODEL_DIR TEXTS.txt".into());
    };
    let encoder = TextEncoder::load(&ModelRef::parse(model)?, &Device::flex())?;
    let texts = bert::read_lines(texts)?;
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let logits = encoder.logits(&refs, 32)?;
    let rows: Vec<&[f32]> = (0..texts.len()).map(|i| logits.row(i)).collect();
    println!("{}", serde_json::json!({ "texts": texts, "logits": rows }));
    Ok(())
}
