"""Decoding speed: tfformer's cached search vs KerasHub's cached samplers vs prefix recomputation.

    .venv/bin/pip install -e ".[bench]"      # keras-hub, for this benchmark only
    .venv/bin/python benchmarks/speed_decoding.py [--repeats 5] [--batches 1,32]

The encoder-decoder of `speed_training.py` (d_model 256, 4 heads, FFN 1024,
3+3 layers, vocabulary 8000, source length 64), untrained, generates
exactly 64 tokens (no end token can stop it early):
- `tfformer_greedy` / `tfformer_beam4`: `tfformer.decoding.greedy_search` and
  `beam_search` over `Translator.decode_step` (a self-attention cache that
  grows by one position a step, preallocated for the XLA variant; cross-
  attention keys and values computed once and, in beam search, read once
  per example for all of its hypotheses);
- `keras_hub_greedy` / `keras_hub_beam4`: `keras_hub.samplers.GreedySampler`
  and `BeamSampler` over KerasHub's `TransformerDecoder` caches (cross
  caches computed once too);
- `recompute_greedy`: greedy search whose step reruns the whole decoder on
  the fixed-length target buffer (what decoding costs without a cache);
- `*_xla`: the same greedy decoders compiled with `jit_compile=True`.
Each is one `tf.function`, timed in turns after a warm-up. Reports
generated tokens/s (batch x 64 / seconds) and the ratios the issue asks for.
Writes benchmarks/results/speed_decoding.json.
"""

import argparse

import keras
import numpy as np
import tensorflow as tf
from speed import interleaved, write_record
from speed_training import FFN, HEADS, LAYERS, LENGTH, VOCAB, D

from applications.translation.model import Translator
from tfformer import decoding

NEW_TOKENS, START, NO_END = 64, 1, -1


def _source(batch):
    return tf.constant(np.random.default_rng(0).integers(2, VOCAB, (batch, LENGTH)), tf.int32)


def tfformer_decoders():
    model = Translator(VOCAB, VOCAB, num_layers=LAYERS, d_model=D, num_heads=HEADS,
                       intermediate_dim=FFN, dropout=0.0, tie_embeddings=False,
                       shared_vocabulary=False)
    model.build()

    def greedy(source, static_cache=False):
        state, shared = model.initial_state(source, NEW_TOKENS, static_cache=static_cache)
        start = tf.fill([tf.shape(source)[0]], START)
        return decoding.greedy_search(model.decode_step, start, state, NEW_TOKENS, NO_END,
                                      shared=shared)

    @tf.function
    def beam(source):
        state, shared = model.initial_state(source, NEW_TOKENS)
        start = tf.fill([tf.shape(source)[0]], START)
        return decoding.beam_search(model.decode_step, start, state, NEW_TOKENS, NO_END,
                                    beam_size=4, shared=shared)[0]

    @tf.function
    def recompute(source):
        memory, source_mask = model.encode(source)
        batch = tf.shape(source)[0]
        state = {"memory": memory, "source_mask": source_mask,
                 "targets": tf.zeros([batch, NEW_TOKENS + 1], tf.int32)}

        def step(token_ids, state, index):
            targets = tf.tensor_scatter_nd_update(
                state["targets"], tf.stack([tf.range(batch), tf.fill([batch], index)], 1),
                token_ids)
            x = model.target_embedding(targets)
            x = model.decoder(x, state["memory"], memory_mask=state["source_mask"])
            logits = model.logits(tf.gather(x, index, axis=1)[:, None])[:, 0]
            return logits, {**state, "targets": targets}

        return decoding.greedy_search(step, tf.fill([batch], START), state, NEW_TOKENS, NO_END)

    return {"tfformer_greedy": tf.function(greedy),
            "tfformer_greedy_xla": tf.function(lambda source: greedy(source, static_cache=True),
                                               jit_compile=True),
            "tfformer_beam4": beam, "recompute_greedy": recompute}


def keras_hub_decoders():
    import keras_hub

    source_embedding = keras_hub.layers.TokenAndPositionEmbedding(VOCAB, LENGTH, D)
    target_embedding = keras_hub.layers.TokenAndPositionEmbedding(VOCAB, NEW_TOKENS + 1, D)
    encoders = [keras_hub.layers.TransformerEncoder(FFN, HEADS) for _ in range(LAYERS)]
    decoders = [keras_hub.layers.TransformerDecoder(FFN, HEADS) for _ in range(LAYERS)]
    head = keras.layers.Dense(VOCAB)
    head_dim = D // HEADS

    def prepare(source):
        """Encoder memory, then every layer's cross cache (computed once) and empty self cache."""
        x = source_embedding(source)
        for encoder in encoders:
            x = encoder(x)
        batch = tf.shape(source)[0]
        first = target_embedding(tf.fill([batch, 1], START))
        self_caches, cross_caches = [], []
        for decoder in decoders:
            empty_self = tf.zeros([batch, 2, NEW_TOKENS + 1, HEADS, head_dim])
            empty_cross = tf.zeros([batch, 2, LENGTH, HEADS, head_dim])
            _, self_cache, cross_cache = decoder(
                first, x, self_attention_cache=empty_self, self_attention_cache_update_index=0,
                cross_attention_cache=empty_cross, cross_attention_cache_update_index=0)
            self_caches.append(tf.zeros_like(self_cache))
            cross_caches.append(cross_cache)
        prompt = tf.concat([tf.fill([batch, 1], START),
                            tf.zeros([batch, NEW_TOKENS], tf.int32)], axis=1)
        # The memory rides along: KerasHub's decoder wants it even when its cross cache is used.
        cache = (tf.stack(self_caches, axis=1), tf.stack(cross_caches, axis=1), x)
        return prompt, cache

    def next_token(prompt, cache, index):
        self_caches, cross_caches, memory = cache
        x = target_embedding(prompt[:, index - 1:index], start_index=index - 1)
        updated = []
        for i, decoder in enumerate(decoders):
            x, self_cache, _ = decoder(
                x, memory, self_attention_cache=self_caches[:, i],
                self_attention_cache_update_index=index - 1,
                cross_attention_cache=cross_caches[:, i], cross_attention_cache_update_index=None)
            updated.append(self_cache)
        return head(x)[:, 0], None, (tf.stack(updated, axis=1), cross_caches, memory)

    def sampler_decoder(sampler, jit_compile=False):
        def decode(source):
            prompt, cache = prepare(source)
            return sampler(next_token, prompt, cache=cache, index=1)

        return tf.function(decode, jit_compile=jit_compile)

    return {"keras_hub_greedy": sampler_decoder(keras_hub.samplers.GreedySampler()),
            "keras_hub_greedy_xla": sampler_decoder(keras_hub.samplers.GreedySampler(), True),
            "keras_hub_beam4": sampler_decoder(keras_hub.samplers.BeamSampler(num_beams=4))}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--batches", default="1,32")
    args = parser.parse_args()
    decoders = {**tfformer_decoders(), **keras_hub_decoders()}
    results = {}
    for batch in [int(b) for b in args.batches.split(",")]:
        source = _source(batch)

        def runner(decode, source=source, batch=batch):
            def run():
                np.asarray(decode(source))
                return batch * NEW_TOKENS
            return run

        timings = interleaved({name: runner(fn) for name, fn in decoders.items()},
                              repeats=args.repeats)
        entry = {name: {"tokens_per_s": round(1 / t["median"], 1),
                        "tokens_per_s_range": [round(1 / t["max"], 1), round(1 / t["min"], 1)]}
                 for name, t in timings.items()}
        median = {name: t["median"] for name, t in timings.items()}
        entry["ratios"] = {
            "greedy_tfformer_over_keras_hub": round(
                median["keras_hub_greedy"] / median["tfformer_greedy"], 2),
            "greedy_xla_tfformer_over_keras_hub": round(
                median["keras_hub_greedy_xla"] / median["tfformer_greedy_xla"], 2),
            "greedy_tfformer_over_recompute": round(
                median["recompute_greedy"] / median["tfformer_greedy"], 2),
            "beam4_tfformer_over_keras_hub": round(
                median["keras_hub_beam4"] / median["tfformer_beam4"], 2),
            "beam4_cost_over_greedy_tfformer": round(
                median["tfformer_beam4"] / median["tfformer_greedy"], 2),
        }
        results[f"batch_{batch}"] = entry
        print(batch, entry, flush=True)
    write_record("speed_decoding", {
        "command": "python benchmarks/speed_decoding.py",
        "config": dict(vocab=VOCAB, d_model=D, heads=HEADS, ffn=FFN, layers=LAYERS,
                       source_length=LENGTH, new_tokens=NEW_TOKENS),
        "repeats": args.repeats, "results": results,
    })


if __name__ == "__main__":
    main()
