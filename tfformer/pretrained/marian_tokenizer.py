"""Marian's (opus-mt's) tokenization as TensorFlow ops, for graphs and SavedModels.

What `transformers.MarianTokenizer` does in Python, here with tf-text's SentencePiece op and
lookup tables, so a served model takes and returns strings: a side's SentencePiece model
(`source.spm` for inputs, `target.spm` for training targets) splits text into pieces;
`vocab.json` maps pieces to ids (not SentencePiece's ids: a piece missing from it is
`<unk>`); a leading language code such as `>>fr<<` is one token; at most
`max_length - 1` ids are kept and `</s>` appended. Decoding maps ids back through the inverse
vocabulary, drops the special tokens and joins the pieces' text.
"""

import json
import os

import tensorflow as tf
import tensorflow_text as tf_text

SPECIAL = ("</s>", "<unk>", "<pad>")


class MarianTokenizer(tf.Module):
    """Marian's tokenizer for one side (source or target), as TensorFlow ops.

    Args:
        spm_model: bytes, the side's SentencePiece model (`source.spm` or `target.spm`).
        vocabulary: dict {piece: id} (`vocab.json`), with `</s>`, `<unk>` and `<pad>`.
        max_length: int, default 512. Ids per sentence, `</s>` included
            (`model_max_length` in `tokenizer_config.json`).

    Example:
        >>> tokenizer = MarianTokenizer.from_directory(directory)  # doctest: +SKIP
        >>> tokenizer.tokenize(tf.constant(["Hello world."]))  # doctest: +SKIP
        <tf.RaggedTensor [[552, 188, 3, 0]]>
    """

    def __init__(self, spm_model, vocabulary, max_length=512):
        super().__init__(name="marian_tokenizer")
        missing = [token for token in SPECIAL if token not in vocabulary]
        if missing:
            raise ValueError(f"the vocabulary has no {', '.join(missing)}")
        if max_length < 1:
            raise ValueError(f"max_length must be at least 1, got {max_length}")
        self.max_length = max_length
        self.eos_id, self.unk_id, self.pad_id = (vocabulary[token] for token in SPECIAL)
        self.vocabulary_size = max(vocabulary.values()) + 1
        self.pieces = tf_text.SentencepieceTokenizer(model=spm_model, out_type=tf.string)
        pieces = list(vocabulary)
        ids = [vocabulary[piece] for piece in pieces]
        self.piece_to_id = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(
                tf.constant(pieces, tf.string), tf.constant(ids, tf.int64)), self.unk_id)
        self.id_to_piece = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(
                tf.constant(ids, tf.int64), tf.constant(pieces, tf.string)), "<unk>")
        self.special_ids = tf.constant(sorted({vocabulary[token] for token in SPECIAL}),
                                       tf.int64)

    @classmethod
    def from_directory(cls, directory, side="source", **kwargs):
        """The `side` ("source" or "target") tokenizer of a Hugging Face Marian directory
        (`<side>.spm`, `vocab.json`, and `tokenizer_config.json` for `model_max_length`)."""
        if side not in ("source", "target"):
            raise ValueError(f"side must be 'source' or 'target', got {side!r}")

        def read(name, mode="rb"):
            path = os.path.join(directory, name)
            try:
                with open(path, mode, **({} if "b" in mode else {"encoding": "utf-8"})) as f:
                    return f.read()
            except OSError as error:
                raise ValueError(f"{path} can't be read: {error.strerror or error}") from None

        try:
            vocabulary = json.loads(read("vocab.json", "r"))
        except json.JSONDecodeError as error:
            raise ValueError(f"{os.path.join(directory, 'vocab.json')} is not JSON: "
                             f"{error}") from None
        if os.path.exists(os.path.join(directory, "tokenizer_config.json")):
            settings = json.loads(read("tokenizer_config.json", "r"))
            kwargs.setdefault("max_length", int(settings.get("model_max_length", 512)))
        return cls(read(f"{side}.spm"), vocabulary, **kwargs)

    def tokenize(self, text):
        """string [B] -> int64 ragged [B, (n)]: Marian ids, `</s>` last."""
        text = tf.convert_to_tensor(text, tf.string)
        code_pattern = r"^(>>.*?<<)"  # a multilingual model's target-language token
        has_code = tf.strings.regex_full_match(text, code_pattern + r"(?s:.*)")
        code = tf.where(has_code, tf.strings.regex_replace(text, code_pattern + r"(?s:.*)",
                                                           r"\1"), "")
        rest = tf.where(has_code, tf.strings.regex_replace(text, code_pattern, ""), text)
        pieces = self.pieces.tokenize(rest)  # (B, (n)) strings
        code_pieces = tf.ragged.boolean_mask(code[:, None], has_code[:, None])  # (B, (0|1))
        pieces = tf.concat([code_pieces, pieces], axis=1)
        ids = tf.ragged.map_flat_values(self.piece_to_id.lookup, pieces)
        ids = ids[:, : self.max_length - 1]
        eos = tf.fill([tf.shape(text)[0], 1], tf.constant(self.eos_id, tf.int64))
        return tf.concat([ids, tf.RaggedTensor.from_tensor(eos)], axis=1)

    def detokenize(self, ids):
        """int ids [B, T] (dense or ragged) -> string [B], the special tokens skipped, as
        `MarianTokenizer.batch_decode(ids, skip_special_tokens=True)`."""
        if not isinstance(ids, tf.RaggedTensor):
            ids = tf.RaggedTensor.from_tensor(tf.convert_to_tensor(ids))
        ids = tf.cast(ids, tf.int64)
        special = tf.reduce_any(ids[..., None] == self.special_ids, axis=-1)
        kept = tf.ragged.boolean_mask(ids, tf.logical_not(special))
        pieces = tf.ragged.map_flat_values(self.id_to_piece.lookup, kept)
        # Joined by hand, not with SentencePiece's decoder: a shared vocabulary holds pieces
        # of both sides' models, which one model's ids can't name (they would decode as
        # "⁇"); MarianTokenizer joins the pieces' text, "▁" standing for a space.
        text = tf.strings.reduce_join(pieces, axis=-1)
        return tf.strings.strip(tf.strings.regex_replace(text, "\u2581", " "))
