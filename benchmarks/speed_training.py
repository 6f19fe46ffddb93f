"""Training throughput: tfformer vs KerasHub (and Keras' MultiHeadAttention), same config, same run.

    .venv/bin/pip install -e ".[bench]"      # keras-hub, for this benchmark only
    .venv/bin/python benchmarks/speed_training.py [--repeats 5] [--modes f32,bf16,f32_xla,bf16_xla]

Model: encoder-decoder, d_model 256, 4 heads, FFN 1024, 3+3 post-LN layers,
vocabulary 8000, source and target length 64, batch 64, Adam, dropout 0.1.
tfformer's side is `Translator` (our embedding, encoder and cached decoder
stacks, `activation_dropout=0` as KerasHub has no dropout inside its
feed-forward), trained with `tfformer.losses.SparseCategoricalCrossentropy`
and `tfformer.optimizers.Adam` and, to compare the layers alone, with Keras'
sparse cross-entropy and Adam; KerasHub's is `TokenAndPositionEmbedding` +
`TransformerEncoder` + `TransformerDecoder` + a Dense head, trained with
Keras' loss and Adam. Also one causal self-attention layer
(B 64, T 64, D 256) forward and backward: tfformer's vs `keras.layers.MultiHeadAttention`.

For each precision mode the candidates take turns (A B A B ...) after a
warm-up; each reports target tokens/s (median of the repeats, with min and
max) and model-FLOP utilisation against a matmul measured in the same run.
Writes benchmarks/results/speed_training.json.
"""

import argparse
import contextlib

import keras
import numpy as np
import tensorflow as tf
from speed import interleaved, matmul_ceiling, write_record

from applications.translation.model import Translator
from tfformer import layers
from tfformer.losses import SparseCategoricalCrossentropy
from tfformer.optimizers import Adam

VOCAB, D, HEADS, FFN, LAYERS, LENGTH, BATCH, DROPOUT = 8000, 256, 4, 1024, 3, 64, 64, 0.1
MODES = {"f32": ("float32", False), "bf16": ("mixed_bfloat16", False),
         "f32_xla": ("float32", True), "bf16_xla": ("mixed_bfloat16", True)}
STEPS_PER_REPEAT = 3


def training_flops_per_target_token(d=D, f=FFN, layers=LAYERS, length=LENGTH, vocab=VOCAB):
    """Model FLOPs (forward x 3) per target token; source length = target length.

    Counted: every projection, attention's two matmuls over the full length
    (as the dense kernels compute them), the output layer. Not counted:
    embeddings, softmax, norms.
    """
    encoder = 8 * d * d + 4 * d * f + 4 * length * d
    decoder = 16 * d * d + 4 * d * f + 8 * length * d  # self + cross attention, FFN
    return 3 * (layers * (encoder + decoder) + 2 * d * vocab)


@contextlib.contextmanager
def dtype_policy(name):
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(name)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def tfformer_model():
    return Translator(VOCAB, VOCAB, num_layers=LAYERS, d_model=D, num_heads=HEADS,
                      intermediate_dim=FFN, dropout=DROPOUT, tie_embeddings=False,
                      shared_vocabulary=False, activation_dropout=0.0)  # as KerasHub's FFN


def keras_hub_model():
    import keras_hub

    source = keras.Input((None,), dtype="int32", name="source_ids")
    target = keras.Input((None,), dtype="int32", name="target_ids")
    x = keras_hub.layers.TokenAndPositionEmbedding(VOCAB, LENGTH, D, mask_zero=True)(source)
    for _ in range(LAYERS):
        x = keras_hub.layers.TransformerEncoder(FFN, HEADS, dropout=DROPOUT)(x)
    y = keras_hub.layers.TokenAndPositionEmbedding(VOCAB, LENGTH, D, mask_zero=True)(target)
    for _ in range(LAYERS):
        y = keras_hub.layers.TransformerDecoder(FFN, HEADS, dropout=DROPOUT)(y, x)
    # The head in the policy's dtype, then float32 logits: what tfformer's Translator does.
    logits = keras.layers.Activation("linear", dtype="float32")(keras.layers.Dense(VOCAB)(y))
    return keras.Model({"source_ids": source, "target_ids": target}, logits)


def batch(seed=0):
    rng = np.random.default_rng(seed)
    ids = lambda: rng.integers(1, VOCAB, (BATCH, LENGTH)).astype("int32")
    return {"source_ids": ids(), "target_ids": ids()}, ids()


def keras_loss():
    return keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def model_runner(build, policy, jit_compile, loss=keras_loss, optimizer=keras.optimizers.Adam):
    with dtype_policy(policy):
        model = build()
        model.compile(optimizer(1e-4), loss(), jit_compile=jit_compile)
    x, y = batch()

    def run():
        for _ in range(STEPS_PER_REPEAT):
            model.train_on_batch(x, y)
        return STEPS_PER_REPEAT * BATCH * LENGTH  # target tokens

    return run


def attention_runner(layer_class, policy, jit_compile):
    with dtype_policy(policy):
        layer = layer_class(num_heads=HEADS, key_dim=D // HEADS)
        x = tf.random.normal([BATCH, LENGTH, D])
        layer(x, x, use_causal_mask=True)

    def step(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            loss = tf.reduce_sum(tf.cast(layer(x, x, use_causal_mask=True), tf.float32))
        return tape.gradient(loss, [x, *layer.trainable_variables])

    step = tf.function(step, jit_compile=jit_compile)

    def run():
        for _ in range(10):
            grads = step(x)
        grads[0].numpy()
        return 10 * BATCH * LENGTH

    return run


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--modes", default=",".join(MODES))
    args = parser.parse_args()

    ceilings = {"float32": matmul_ceiling(tf.float32), "bfloat16": matmul_ceiling(tf.bfloat16)}
    print(f"matmul ceiling: {ceilings}", flush=True)
    flops = training_flops_per_target_token()
    results = {}
    for mode in args.modes.split(","):
        policy, jit_compile = MODES[mode]
        ceiling = ceilings["bfloat16" if "bfloat16" in policy else "float32"]
        timings = interleaved({
            "tfformer": model_runner(tfformer_model, policy, jit_compile,
                                     loss=SparseCategoricalCrossentropy, optimizer=Adam),
            "tfformer_layers_only": model_runner(tfformer_model, policy, jit_compile),
            "keras_hub": model_runner(keras_hub_model, policy, jit_compile),
        }, repeats=args.repeats)
        attention = interleaved({
            "tfformer_attention": attention_runner(layers.MultiHeadAttention, policy, jit_compile),
            "keras_attention": attention_runner(keras.layers.MultiHeadAttention, policy,
                                                jit_compile),
        }, repeats=args.repeats)
        entry = {}
        for name, timing in {**timings, **attention}.items():
            entry[name] = {"tokens_per_s": round(1 / timing["median"]),
                           "tokens_per_s_range": [round(1 / timing["max"]),
                                                  round(1 / timing["min"])]}
            if name in timings:
                entry[name]["model_flop_utilisation"] = round(
                    flops / timing["median"] / 1e9 / ceiling, 3)
        for name in ("tfformer", "tfformer_layers_only"):
            entry[f"ratio_{name}_over_keras_hub"] = round(
                timings["keras_hub"]["median"] / timings[name]["median"], 3)
        entry["ratio_attention_tfformer_over_keras"] = round(
            attention["keras_attention"]["median"] / attention["tfformer_attention"]["median"], 3)
        results[mode] = entry
        print(mode, entry, flush=True)
    write_record("speed_training", {
        "command": "python benchmarks/speed_training.py",
        "config": dict(vocab=VOCAB, d_model=D, heads=HEADS, ffn=FFN, layers=LAYERS,
                       length=LENGTH, batch=BATCH, dropout=DROPOUT, optimizer="adam"),
        "repeats": args.repeats, "steps_per_repeat": STEPS_PER_REPEAT,
        "matmul_ceiling_gflops": {k: round(v, 1) for k, v in ceilings.items()},
        "model_gflop_per_target_token": round(flops / 1e9, 4),
        "results": results,
    })


if __name__ == "__main__":
    main()
