"""The served translation model: raw strings in, translations out.

`serving_default(text: string [B]) -> {translation: string [B], score: float [B]}`;
`greedy` the same with greedy search; `attention(text) -> {translation, score,
source_tokens string [B, S], target_tokens string [B, T], cross_attention
float [B, L, N, T, S]}`, the cross-attention weights the beam search used
for each generated target subword (what `tfformer plot attention` draws).
Tokenization (the run's vocabularies: tf-text SentencePiece, or a Marian
checkpoint's pieces and vocab.json), beam search over the cached decoder,
and detokenization all run in the graph, with only TensorFlow and tf-text
ops, so stock TF Serving runs the export as it is.

Input handling: invalid UTF-8 bytes are replaced by U+FFFD; inputs longer
than `max_source_length - 1` subword tokens are truncated to it; an empty
string translates to an empty string; an empty batch returns empty outputs.
Every export carries TF Serving warm-up requests for each signature.
"""

import os

import tensorflow as tf

from applications.translation import vocabularies
from tfformer import decoding
from tfformer.export import export_saved_model

# Replayed by TF Serving before a new version answers (`assets.extra/`), in the source
# language or not: what warm-up needs is the graph run once at a few batch sizes.
WARMUP_TEXT = ["twenty-one", "one big cat", "on March third", "", "seven hundred two",
               "A man in an orange hat staring at something.", "three red apples", "ok"]


class TranslationServer(tf.Module):
    """The served signatures of `model`, with the tokenizer of the run in `workdir`."""

    def __init__(self, model, config, workdir):
        super().__init__(name="translation")
        self.model = model
        self.source_vocabulary, self.target_vocabulary = vocabularies.load_vocabularies(
            workdir, config)
        self.max_source_length = config.max_source_length
        self.max_target_length = config.max_target_length
        self.beam_size = config.beam_size
        self.length_penalty = config.length_penalty
        self.max_decode_ratio = config.max_decode_ratio
        self.max_decode_extra = config.max_decode_extra
        self.translate_empty = config.translate_empty
        # The tokenizer's files travel with the export, for reference.
        directory, names = vocabularies.tokenizer_files(workdir, config)
        self.tokenizer_assets = [tf.saved_model.Asset(os.path.join(directory, name))
                                 for name in names]

    def source_ids(self, text):
        """string [B] -> source ids (B, S) int32, end-terminated, padded."""
        text = tf.strings.unicode_transcode(
            text, "UTF-8", "UTF-8", errors="replace", replacement_char=0xFFFD)
        vocabulary = self.source_vocabulary
        return vocabulary.tokenize(text).to_tensor(vocabulary.pad_id)

    def _decode(self, source_ids, source_lengths, beam_size, record_attention=False):
        """ids (B, T + 1), scores (B,) and the final decoding state of each result."""
        limits = tf.cast(
            tf.cast(source_lengths, tf.float32) * self.max_decode_ratio, tf.int32
        ) + self.max_decode_extra
        state, shared = self.model.initial_state(source_ids, self.max_target_length,
                                                 record_attention)
        target = self.target_vocabulary
        start = tf.fill([tf.shape(source_ids)[0]], target.start_id)
        if beam_size == 1:
            return decoding.greedy_search_with_state(
                self.model.decode_step, start, state, self.max_target_length, target.end_id,
                pad_id=target.pad_id, max_lengths=limits, shared=shared,
                alpha=self.length_penalty)
        return decoding.beam_search_with_state(
            self.model.decode_step, start, state, self.max_target_length, target.end_id,
            beam_size=beam_size, alpha=self.length_penalty, pad_id=target.pad_id,
            max_lengths=limits, shared=shared)

    def translate_with(self, text, beam_size, record_attention=False):
        source_ids = self.source_ids(text)
        source_lengths = tf.reduce_sum(
            tf.cast(self.model.source_mask(source_ids), tf.int32), axis=1)  # (B,)
        ids, scores, state = self._decode(source_ids, source_lengths, beam_size,
                                          record_attention)
        translation = self.target_vocabulary.detokenize(ids[:, 1:])  # without the start
        # Only an end token means there was nothing to translate (unless the run decodes
        # those too, as Marian's generate does).
        empty = tf.logical_and(source_lengths <= 1, not self.translate_empty)
        translation = tf.where(empty, tf.constant(""), translation)
        outputs = {"translation": translation, "score": scores}
        if record_attention:
            # row t of the attention predicted target token t + 1; nothing for empty inputs
            target_ids = tf.where(empty[:, None], self.target_vocabulary.pad_id, ids[:, 1:])
            outputs.update(
                source_tokens=self._token_strings(self.source_vocabulary, source_ids),
                target_tokens=self._token_strings(self.target_vocabulary, target_ids),
                cross_attention=state["cross_attention"][:, :, :, :-1])  # (B, L, N, T, S)
        return outputs

    @staticmethod
    def _token_strings(vocabulary, ids):
        """Subword strings of ids (B, T), "</s>" for the end token, "" for padding."""
        strings = vocabulary.id_to_string(ids)
        strings = tf.where(tf.equal(ids, vocabulary.end_id), tf.constant("</s>"), strings)
        return tf.where(tf.equal(ids, vocabulary.pad_id), tf.constant(""), strings)

    # No AutoGraph in any served function: they use TensorFlow's control flow, and converting
    # every layer's source made each trace 4x slower (7 s instead of 1.6 s for beam search).
    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text")], autograph=False)
    def serve(self, text):
        return self.translate_with(text, self.beam_size)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text")], autograph=False)
    def serve_greedy(self, text):
        return self.translate_with(text, 1)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text")], autograph=False)
    def serve_attention(self, text):
        return self.translate_with(text, self.beam_size, record_attention=True)

    def signatures(self):
        return {"serving_default": self.serve, "greedy": self.serve_greedy,
                "attention": self.serve_attention}

    def warmup_requests(self):
        """A batch of one and a batch of eight for every signature."""
        return [(name, {"text": text}) for name in self.signatures()
                for text in (WARMUP_TEXT[:1], WARMUP_TEXT)]


def export(server, base_dir):
    """Writes the server to `base_dir/<next version>/` atomically; returns the path."""
    return export_saved_model(server, base_dir, server.signatures(),
                              warmup_requests=server.warmup_requests())
