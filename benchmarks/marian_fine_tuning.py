"""Fine-tuning speed of a Marian model of opus-mt-en-de's shape against training the
translation `small` preset, in the same run: target tokens per second of Keras `fit` with the
application's own compile (Adam, label-smoothed masked cross-entropy).

    .venv/bin/python benchmarks/marian_fine_tuning.py [--steps 5 --batch 32 --length 32]

Both models train on the same random batches (source and target `--length` ids, no
padding), float32, after one warm-up step that traces. The opus-mt shape is
`marian_import.py`'s (d 512, 6+6 layers, vocabulary 58,101, swish, tied embeddings with
`final_logits_bias`); `small` is d 256, 3+3 layers, vocabulary 8,000, pre-LN. Writes
benchmarks/results/marian_fine_tuning.json.
"""

import argparse
import time

import numpy as np
from marian_import import OPUS_MT_EN_DE
from speed import write_record


def _speed(config, vocabulary, padding_id, steps, batch, length):
    import tensorflow as tf

    from applications.translation.model import build_translator
    from applications.translation.train import MaskedAccuracy, MaskedCrossEntropy
    from tfformer.optimizers import Adam
    from tfformer.schedules import TransformerSchedule

    model = build_translator(config, vocabulary, vocabulary, padding_id)
    model.compile(optimizer=Adam(TransformerSchedule(config.d_model, config.warmup_steps,
                                                     config.learning_rate_scale),
                                 beta_1=0.9, beta_2=0.98, epsilon=1e-9),
                  loss=MaskedCrossEntropy(config.label_smoothing, padding_id),
                  metrics=[MaskedAccuracy(padding_id)])
    rng = np.random.default_rng(0)
    low, high = 4, padding_id if padding_id > 4 else vocabulary  # no specials, no padding

    def ids():
        return rng.integers(low, high, (batch, length)).astype(np.int32)

    inputs = {"source_ids": ids(), "target_ids": ids()}
    data = tf.data.Dataset.from_tensors((inputs, ids())).repeat()
    model.fit(data, steps_per_epoch=1, epochs=1, verbose=0)  # traces the step
    started = time.perf_counter()
    model.fit(data, steps_per_epoch=steps, epochs=1, verbose=0)
    seconds = time.perf_counter() - started
    return {"parameters": model.count_params(), "step_s": round(seconds / steps, 3),
            "target_tokens_per_s": round(steps * batch * length / seconds, 1)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--length", type=int, default=32)
    args = parser.parse_args()
    from applications.common.config import from_preset
    from applications.translation.config import PRESETS, TranslationConfig
    from applications.translation.marian_checkpoint import marian_config

    opus = _speed(marian_config(OPUS_MT_EN_DE), OPUS_MT_EN_DE["vocab_size"],
                  OPUS_MT_EN_DE["pad_token_id"], args.steps, args.batch, args.length)
    small_config = from_preset(TranslationConfig, PRESETS, "small")
    small = _speed(small_config, small_config.vocabulary_size, 0, args.steps, args.batch,
                   args.length)
    record = {
        "command": f"python benchmarks/marian_fine_tuning.py --steps {args.steps} "
                   f"--batch {args.batch} --length {args.length}",
        "opus_mt_en_de_shape": opus, "small_preset": small,
        "opus_over_small_tokens_per_s": round(
            opus["target_tokens_per_s"] / small["target_tokens_per_s"], 2),
    }
    print(record)
    write_record("marian_fine_tuning", record)


if __name__ == "__main__":
    main()
