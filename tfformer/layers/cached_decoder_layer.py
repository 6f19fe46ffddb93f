"""The call and step of a decoder layer, shared by the decoder block and the decoder stack."""

import keras
from keras import ops


class CachedDecoderLayer(keras.layers.Layer):
    """A decoder layer with Keras' `call` and a `step` for decoding over a KV cache.

    Both run the subclass's one forward pass, `_forward(targets, memory,
    targets_mask, memory_mask, self_attention_mask, cross_attention_mask,
    training, cache=None, cross_attention_cache=None, cache_update_index=None)
    -> (outputs, scores, cache)`, so training, serving and decoding cannot
    drift apart. Not registered for serialization: it has no layer of its own.
    """

    def call(
        self,
        targets,
        memory=None,
        targets_mask=None,
        memory_mask=None,
        self_attention_mask=None,
        cross_attention_mask=None,
        training=None,
        return_attention_scores=False,
    ):
        outputs, scores, _ = self._forward(
            targets, memory, targets_mask, memory_mask, self_attention_mask,
            cross_attention_mask, training)
        return (outputs, scores) if return_attention_scores else outputs

    def step(
        self,
        targets,
        cache,
        cache_update_index,
        memory=None,
        memory_mask=None,
        cross_attention_cache=None,
        targets_mask=None,
        self_attention_mask=None,
        cross_attention_mask=None,
        training=None,
    ):
        """One decoding step over the self-attention KV cache: `(outputs, scores, cache)`.

        Args:
            targets: (B, T, D), the step's positions (T is usually 1).
            cache: the self-attention cache, in a form the layer's docstring
                lists; the step's keys and values are written at (appended
                after, for a growing cache) `cache_update_index`, and it is
                returned in the same form.
            cache_update_index: int or scalar int tensor.
            memory: (B, S, D), or None with a `cross_attention_cache` (from
                `precompute_cross_attention_cache(memory)`), which may have
                fewer rows than `targets` (see `MultiHeadAttention.step`).
            memory_mask, targets_mask, self_attention_mask,
            cross_attention_mask, training: as in `call`.

        Returns:
            `outputs` (B, T, D), the scores as `call` returns them, and the
            updated cache.
        """
        if cache_update_index is None:
            raise ValueError("A decoder cache needs cache_update_index (the position to write)")
        if not self.built:
            self.build(tuple(targets.shape), None if memory is None else tuple(memory.shape))
        return self._forward(
            ops.cast(targets, self.compute_dtype), memory, targets_mask, memory_mask,
            self_attention_mask, cross_attention_mask, training, cache, cross_attention_cache,
            cache_update_index)

    def _forward(self, targets, memory, targets_mask, memory_mask, self_attention_mask,
                 cross_attention_mask, training, cache=None, cross_attention_cache=None,
                 cache_update_index=None):
        raise NotImplementedError(f"{type(self).__name__} must define _forward")
