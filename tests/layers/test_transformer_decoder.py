import numpy as np
import pytest
import tensorflow as tf

from tfformer.kv_cache import GrowingCache
from tfformer.layers import TransformerDecoder, TransformerDecoderBlock

B, T, S, D = 2, 6, 5, 16


def _x(*shape, seed=0):
    return np.random.default_rng(seed).normal(size=shape).astype("float32")


def test_block_self_attention_is_causal():
    block = TransformerDecoderBlock(D, 4, 32, dropout=0.0)
    targets, memory = _x(B, T, D), _x(B, S, D, seed=1)
    changed = targets.copy()
    changed[:, 3:] += 2.0
    before = np.asarray(block(targets, memory))
    after = np.asarray(block(changed, memory))
    np.testing.assert_array_equal(before[:, :3], after[:, :3])


def test_cross_attention_ignores_padded_memory():
    block = TransformerDecoderBlock(D, 4, 32, dropout=0.0)
    targets, memory = _x(B, T, D), _x(B, S, D, seed=1)
    memory_mask = np.array([[1, 1, 1, 0, 0], [1] * 5], bool)
    changed = memory.copy()
    changed[0, 3:] = 9.0
    before, scores = block(targets, memory, memory_mask=memory_mask, return_attention_scores=True)
    after = block(targets, changed, memory_mask=memory_mask)
    np.testing.assert_allclose(before, after, atol=1e-6)
    assert np.all(np.asarray(scores["cross"])[0, :, :, 3:] == 0)


@pytest.mark.parametrize("stacked", [True, False, "growing"])
@pytest.mark.parametrize("kwargs", [{}, {"norm_first": True, "use_rotary": True},
                                    {"window": (2, 0)}])
def test_cached_decoding_equals_one_full_pass(kwargs, stacked):
    decoder = TransformerDecoder(2, D, 4, 32, dropout=0.0, **kwargs)
    targets, memory = _x(B, T, D), _x(B, S, D, seed=1)
    memory_mask = np.array([[1, 1, 1, 1, 0], [1] * 5], bool)
    full, full_scores = decoder(targets, memory, memory_mask=memory_mask,
                                return_attention_scores=True)
    if stacked == "growing":  # per-layer pairs that start empty
        cache, stacked = decoder.initial_cache(B, None, stacked=False), False
        assert all(isinstance(pair, GrowingCache) and pair.keys.shape[2] == 0 for pair in cache)
    else:
        cache = decoder.initial_cache(B, T, stacked=stacked)
    cross = decoder.precompute_cross_attention_cache(memory, stacked=stacked)
    steps, cross_rows = [], []
    for i in range(T):
        out, scores, cache = decoder.step(
            targets[:, i:i + 1], cache, cache_update_index=i, memory_mask=memory_mask,
            cross_attention_cache=cross)
        steps.append(np.asarray(out))
        cross_rows.append(np.asarray(scores[-1]["cross"]))
    error = np.max(np.abs(np.concatenate(steps, axis=1) - np.asarray(full)))
    assert error <= 1e-5, error
    np.testing.assert_allclose(np.concatenate(cross_rows, axis=2),
                               np.asarray(full_scores[-1]["cross"]), atol=1e-5)
    # The final cache holds every layer's keys and values, in the form it was given.
    per_layer = np.asarray(cache) if stacked else np.stack(
        [np.stack(pair, axis=1).transpose(0, 1, 3, 2, 4) for pair in cache], axis=1)
    assert per_layer.shape == (B, 2, 2, T, 4, D // 4)
    assert np.all(np.any(per_layer != 0, axis=(2, 4, 5)))  # every position written


def test_a_fresh_decoder_can_decode_from_cached_memory_before_any_full_call():
    decoder = TransformerDecoder(2, D, 4, 32, dropout=0.0)
    targets, memory = _x(B, 1, D), _x(B, S, D, seed=1)
    cross = decoder.precompute_cross_attention_cache(memory, stacked=False)  # builds it
    out, _, _ = decoder.step(targets, decoder.initial_cache(B, 2, stacked=False),
                             cache_update_index=0, cross_attention_cache=cross)
    np.testing.assert_allclose(out, decoder(targets, memory), atol=1e-5)


def test_per_layer_and_stacked_caches_decode_alike():
    decoder = TransformerDecoder(2, D, 4, 32, dropout=0.0, norm_first=True)
    memory = _x(B, S, D, seed=1)
    decoder(_x(B, T, D), memory)  # builds the layers
    outputs = {}
    for stacked in (True, False):
        cache = decoder.initial_cache(B, T, stacked=stacked)
        cross = decoder.precompute_cross_attention_cache(memory, stacked=stacked)
        steps = []
        for i in range(T):
            out, _, cache = decoder.step(_x(B, T, D)[:, i:i + 1], cache, cache_update_index=i,
                                         cross_attention_cache=cross)
            steps.append(np.asarray(out))
        outputs[stacked] = (np.concatenate(steps, axis=1), cache)
    np.testing.assert_allclose(outputs[True][0], outputs[False][0], atol=1e-6)
    stacked_cache, pairs = np.asarray(outputs[True][1]), outputs[False][1]
    assert isinstance(pairs, tuple) and len(pairs) == 2
    for layer, (keys, values) in enumerate(pairs):  # (B, N, T, H) against (B, T, N, H)
        assert keys.shape == (B, 4, T, D // 4)
        np.testing.assert_allclose(stacked_cache[:, layer, 0], np.transpose(keys, (0, 2, 1, 3)),
                                   atol=1e-6)
        np.testing.assert_allclose(stacked_cache[:, layer, 1],
                                   np.transpose(values, (0, 2, 1, 3)), atol=1e-6)


@pytest.mark.parametrize("stacked", [True, False])
def test_cached_decoding_runs_in_a_compiled_while_loop(stacked):
    decoder = TransformerDecoder(2, D, 4, 32, dropout=0.0)
    targets, memory = tf.constant(_x(B, T, D)), tf.constant(_x(B, S, D, seed=1))
    full = decoder(targets, memory)

    @tf.function(jit_compile=True)
    def decode(targets, memory):
        cross = decoder.precompute_cross_attention_cache(memory, stacked=stacked)

        def body(i, cache, outputs):
            step = tf.expand_dims(tf.gather(targets, i, axis=1), 1)
            out, _, cache = decoder.step(step, cache, cache_update_index=i,
                                         cross_attention_cache=cross)
            return i + 1, cache, outputs.write(i, out[:, 0])

        outputs = tf.TensorArray(tf.float32, size=T)
        _, _, outputs = tf.while_loop(
            lambda i, *_: i < T, body, (0, decoder.initial_cache(B, T, stacked=stacked), outputs))
        return tf.transpose(outputs.stack(), (1, 0, 2))

    np.testing.assert_allclose(decode(targets, memory), full, atol=1e-5)


def test_decoder_only_block_needs_no_memory_and_cross_blocks_do():
    gpt = TransformerDecoderBlock(D, 4, 32, dropout=0.0, cross_attention=False)
    assert tuple(gpt(_x(B, T, D)).shape) == (B, T, D)
    with pytest.raises(ValueError, match="pass `memory`"):
        TransformerDecoderBlock(D, 4, 32)(_x(B, T, D))


def test_a_growing_cache_must_be_per_layer():
    with pytest.raises(ValueError, match="stacked=False"):
        TransformerDecoder(1, D, 4, 32).initial_cache(B, None)


def test_cache_without_index_is_refused():
    decoder = TransformerDecoder(1, D, 4, 32)
    with pytest.raises(ValueError, match="cache_update_index"):
        decoder.step(_x(B, 1, D), decoder.initial_cache(B, T), None, memory=_x(B, S, D))
