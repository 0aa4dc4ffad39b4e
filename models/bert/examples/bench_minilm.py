#!/usr/bin/env python3
"""PyTorch side of `cargo run --release -p bert --example bench_minilm`: sentence-transformers
(eager PyTorch, fp32, CPU) embeddings of the same texts at the same batch size.

    bench_minilm.py MODEL_DIR TEXTS_FILE BATCH OUT_F32

TEXTS_FILE holds one text per line (UTF-8). Prints one JSON line with the timing; writes the
[N, 384] embeddings as little-endian f32 to OUT_F32 so the caller can compare them.
"""

import json
import sys
import time

import torch
from sentence_transformers import SentenceTransformer


def main():
    model_dir, texts_file, batch, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    with open(texts_file, encoding="utf-8") as f:
        texts = f.read().split("\n")[:-1]
    t0 = time.perf_counter()
    model = SentenceTransformer(model_dir, device="cpu")
    load = time.perf_counter() - t0
    t0 = time.perf_counter()
    with torch.inference_mode():
        emb = model.encode(texts, batch_size=batch, convert_to_numpy=True)
    seconds = time.perf_counter() - t0
    emb.astype("<f4").tofile(out)
    print(
        json.dumps(
            {
                "torch": torch.__version__,
                "threads": torch.get_num_threads(),
                "load_s": load,
                "seconds": seconds,
                "n": len(texts),
                "sentences_per_s": len(texts) / seconds,
            }
        )
    )


if __name__ == "__main__":
    main()
