"""ViT classification speed in the engine users run these checkpoints with: transformers'
`ViTImageProcessor` and `ViTForImageClassification` on PyTorch. It times the directory that
`vit_import.py --keep DIR` wrote, on the same PNG files. It runs in a separate venv, because
PyTorch is not a dependency of tfformer:

    python3 -m venv /tmp/engines && /tmp/engines/bin/pip install torch torchvision \\
        transformers safetensors pillow
    .venv/bin/python benchmarks/vit_import.py --keep /tmp/vit \\
        --engines-python /tmp/engines/bin/python

Timed end to end as tfformer's export is: PNG bytes decoded (PIL), preprocessed and
classified, top-5 labels out; 2 threads, batch 1 and 32. It prints one JSON line.
"""

import io
import json
import os
import sys

from marian_engines import BATCHES, time_calls


def main(directory):
    import PIL.Image
    import torch
    import transformers

    torch.set_num_threads(2)
    checkpoint = os.path.join(directory, "vit-base-patch16-224-shaped")
    images = sorted(os.listdir(os.path.join(directory, "images")))
    encoded = []
    for name in images:
        with open(os.path.join(directory, "images", name), "rb") as handle:
            encoded.append(handle.read())
    processor = transformers.ViTImageProcessor.from_pretrained(checkpoint)
    model = transformers.ViTForImageClassification.from_pretrained(checkpoint).eval()

    def classify(batch):
        pictures = [PIL.Image.open(io.BytesIO(data)).convert("RGB") for data in batch]
        with torch.inference_mode():
            logits = model(**processor(images=pictures, return_tensors="pt")).logits
        return [[model.config.id2label[int(i)] for i in row]
                for row in torch.topk(logits, 5).indices]

    results = {"versions": {"torch": torch.__version__, "transformers": transformers.__version__},
               "transformers": {f"batch_{batch}": time_calls(classify, encoded, batch, calls)
                                for batch, calls in BATCHES.items()}}
    print(json.dumps(results))


if __name__ == "__main__":
    main(sys.argv[1])
