"""Importing, serving and fine-tuning a ViT of ViT-B/16's exact shape: import time, export
time and size, served latency through TF Serving's session path, and fine-tuning
throughput at 224x224.

    .venv/bin/python benchmarks/vit_import.py [--train-steps 4 --train-batch 16]

Nothing here downloads: the checkpoint is made at random with `google/vit-base-patch16-224`'s
config (224x224 in 16x16 patches, d 768, 12 layers, 12 heads, MLP 3072, layer-norm eps
1e-12, 1000 labels) as a Hugging Face directory (`config.json`, `preprocessor_config.json`,
`model.safetensors`), so `tfformer import image_classification` reads what it would read from
the real one. Latency is `serving_speed.py`'s measurement (fresh process, warm-up replayed,
p50/p99 and images/s at batch 1 and 32 on PNG bytes). Fine-tuning throughput is Keras `fit`
on the imported model with a new 10-class head (AdamW, float32, the application's own
compile), after one warm-up step; images are random uint8. Writes
benchmarks/results/vit_import.json. `--keep DIR` keeps the checkpoint, the run, the export
and the PNG files timed (`images/`); `--engines-python PYTHON` (a venv with torch and
transformers) also times `vit_engines.py` on them and reports tfformer's speed ratios.
"""

import argparse
import json
import os
import tempfile
import time

import numpy as np
from serving_speed import in_fresh_process, png_images
from speed import import_and_export, run_engines, write_record

VIT_B16 = {  # config.json of google/vit-base-patch16-224, the fields that shape it
    "model_type": "vit", "architectures": ["ViTForImageClassification"], "hidden_size": 768,
    "num_hidden_layers": 12, "num_attention_heads": 12, "intermediate_size": 3072,
    "hidden_act": "gelu", "layer_norm_eps": 1e-12, "image_size": 224, "patch_size": 16,
    "num_channels": 3, "qkv_bias": True,
    "id2label": {str(i): f"label_{i}" for i in range(1000)},
}
PREPROCESSOR = {"do_resize": True, "size": {"height": 224, "width": 224}, "resample": 2,
                "do_rescale": True, "rescale_factor": 1 / 255, "do_normalize": True,
                "image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5]}


def _random_state_dict(config, rng):
    """ViTForImageClassification's names and PyTorch shapes, normal(0, 0.02) weights."""
    d, mlp, patch = config["hidden_size"], config["intermediate_size"], config["patch_size"]
    grid = config["image_size"] // patch

    def normal(*shape):
        return rng.normal(0, 0.02, shape).astype(np.float32)

    zeros, ones = (lambda n: np.zeros(n, np.float32)), (lambda n: np.ones(n, np.float32))
    weights = {
        "vit.embeddings.cls_token": normal(1, 1, d),
        "vit.embeddings.position_embeddings": normal(1, grid * grid + 1, d),
        "vit.embeddings.patch_embeddings.projection.weight": normal(d, 3, patch, patch),
        "vit.embeddings.patch_embeddings.projection.bias": zeros(d),
        "vit.layernorm.weight": ones(d), "vit.layernorm.bias": zeros(d),
        "classifier.weight": normal(len(config["id2label"]), d),
        "classifier.bias": zeros(len(config["id2label"])),
    }
    for index in range(config["num_hidden_layers"]):
        prefix = f"vit.encoder.layer.{index}"
        for name in ("attention.attention.query", "attention.attention.key",
                     "attention.attention.value", "attention.output.dense"):
            weights[f"{prefix}.{name}.weight"], weights[f"{prefix}.{name}.bias"] = (
                normal(d, d), zeros(d))
        weights[f"{prefix}.intermediate.dense.weight"] = normal(mlp, d)
        weights[f"{prefix}.intermediate.dense.bias"] = zeros(mlp)
        weights[f"{prefix}.output.dense.weight"] = normal(d, mlp)
        weights[f"{prefix}.output.dense.bias"] = zeros(d)
        for name in ("layernorm_before", "layernorm_after"):
            weights[f"{prefix}.{name}.weight"], weights[f"{prefix}.{name}.bias"] = (
                ones(d), zeros(d))
    return weights


def make_checkpoint(directory, seed=0):
    from safetensors.numpy import save_file

    os.makedirs(directory, exist_ok=True)
    for name, value in (("config.json", VIT_B16), ("preprocessor_config.json", PREPROCESSOR)):
        with open(os.path.join(directory, name), "w") as handle:
            json.dump(value, handle)
    save_file(_random_state_dict(VIT_B16, np.random.default_rng(seed)),
              os.path.join(directory, "model.safetensors"))


def fine_tuning_speed(run, steps, batch):
    """Images per second of `fit` on the imported model with a new 10-class head."""
    import dataclasses

    import keras
    import tensorflow as tf

    from applications.common.restore import read_run
    from applications.image_classification import fine_tuning
    from applications.image_classification.config import ImageClassificationConfig
    from applications.image_classification.model import build_vit
    from tfformer.optimizers import AdamW

    config, _ = read_run(run, ImageClassificationConfig)
    config = dataclasses.replace(config, batch_size=batch)
    classes = [f"class_{i}" for i in range(10)]
    model = build_vit(config, len(classes))
    fine_tuning.start_from(model, config, classes, run)
    model.compile(optimizer=AdamW(config.learning_rate, weight_decay=config.weight_decay),
                  loss=keras.losses.CategoricalCrossentropy(from_logits=True))
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (batch, 224, 224, 3), np.uint8)
    labels = keras.utils.to_categorical(rng.integers(0, 10, batch), 10)
    data = tf.data.Dataset.from_tensors((images, labels)).repeat()
    model.fit(data, steps_per_epoch=1, epochs=1, verbose=0)  # traces the step
    started = time.perf_counter()
    model.fit(data, steps_per_epoch=steps, epochs=1, verbose=0)
    seconds = time.perf_counter() - started
    return {"batch": batch, "steps": steps, "step_s": round(seconds / steps, 2),
            "images_per_s": round(steps * batch / seconds, 2)}



def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--train-steps", type=int, default=4)
    parser.add_argument("--train-batch", type=int, default=16)
    parser.add_argument("--keep", metavar="DIR", help="write everything to DIR (kept)")
    parser.add_argument("--engines-python", metavar="PYTHON",
                        help="a venv's python with torch and transformers: time them too "
                        "(vit_engines.py) and report tfformer's ratios")
    args = parser.parse_args()
    from applications.image_classification.import_vit import import_checkpoint
    from applications.image_classification.restore import load

    with tempfile.TemporaryDirectory() as temporary:
        root = args.keep or temporary
        os.makedirs(os.path.join(root, "images"), exist_ok=True)
        for index, image in enumerate(png_images(64)):  # what serving_speed.py times
            with open(os.path.join(root, "images", f"{index:02d}.png"), "wb") as handle:
                handle.write(image)
        checkpoint = os.path.join(root, "vit-base-patch16-224-shaped")
        make_checkpoint(checkpoint)
        path, sizes_and_times = import_and_export(import_checkpoint, load, checkpoint, root)
        record = {
            "command": f"python benchmarks/vit_import.py --train-steps {args.train_steps} "
                       f"--train-batch {args.train_batch}",
            "shape": {key: VIT_B16[key] for key in (
                "image_size", "patch_size", "hidden_size", "num_hidden_layers",
                "num_attention_heads", "intermediate_size")},
            **sizes_and_times,
            "served": in_fresh_process("image_classification", path, warm=True),
            "fine_tuning": fine_tuning_speed(os.path.join(root, "run"), args.train_steps,
                                             args.train_batch),
        }
        if args.engines_python:
            record["engines"] = run_engines("vit_engines.py", args.engines_python, root)
            ours = record["served"]["serving_default"]
            record["tfformer_speed_ratio"] = {  # transformers' median over ours: > 1 = faster
                batch: round(timing["p50_ms"] / ours[batch]["p50_ms"], 2)
                for batch, timing in record["engines"]["transformers"].items()}
    print(json.dumps(record, indent=1))
    write_record("vit_import", record)


if __name__ == "__main__":
    main()
