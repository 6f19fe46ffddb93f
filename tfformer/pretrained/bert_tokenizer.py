"""BERT's WordPiece tokenization as TensorFlow ops (tf-text's `BertTokenizer`), for graphs,
`tf.data` and SavedModels, with `transformers.BertTokenizer`'s ids.

`vocab.txt` (one piece per line; the line number is the id) and `tokenizer_config.json`
(`do_lower_case`) as the checkpoint ships them: text is split on whitespace, punctuation and
CJK characters, lowercased and stripped of accents when the checkpoint lowercases, and cut
into the vocabulary's longest-match pieces ("##" marks a piece inside a word; a word that
can't be cut is `[UNK]`). Then `[CLS] a [SEP]` or, for pairs, `[CLS] a [SEP] b [SEP]` with
segment ids 0 and 1, truncated as `transformers` truncates (`longest_first`).
"""

import json
import os

import tensorflow as tf
import tensorflow_text as tf_text

SPECIAL = ("[PAD]", "[UNK]", "[CLS]", "[SEP]")


class BertTokenizer(tf.Module):
    """A BERT checkpoint's tokenizer, as TensorFlow ops.

    Args:
        vocabulary: list of str, the pieces in id order (`vocab.txt`), with `[PAD]`,
            `[UNK]`, `[CLS]` and `[SEP]`.
        lower_case: bool, default True (`do_lower_case`): lowercase and strip accents.
        sequence_length: int, default 512. Ids per input, specials included.

    Call arguments:
        text: string [B]; `pair`: optional string [B], the second segments.

    Returns:
        {"token_ids": int32 [B, T], "segment_ids": int32 [B, T], "padding_mask": bool
        [B, T]}, padded to the longest input of the batch with `[PAD]`: what
        `bert_encoder`'s model takes.

    Example:
        >>> tokenizer = BertTokenizer.from_directory("bert-base-uncased")  # doctest: +SKIP
        >>> tokenizer(tf.constant(["Hello world!"]))["token_ids"]  # doctest: +SKIP
        <tf.Tensor: shape=(1, 5), dtype=int32, numpy=array([[ 101, 7592, 2088,  999,  102]]...>
    """

    def __init__(self, vocabulary, lower_case=True, sequence_length=512):
        super().__init__(name="bert_tokenizer")
        index = {piece: i for i, piece in enumerate(vocabulary)}
        missing = [token for token in SPECIAL if token not in index]
        if missing:
            raise ValueError(f"the vocabulary has no {', '.join(missing)}")
        if sequence_length < 3:
            raise ValueError(f"sequence_length must be at least 3, got {sequence_length}")
        self.sequence_length = sequence_length
        self.pad_id, self.unk_id, self.cls_id, self.sep_id = (index[t] for t in SPECIAL)
        self.vocabulary_size = len(vocabulary)
        table = tf.lookup.StaticHashTable(  # a repeated piece maps to its last line, as HF's
            tf.lookup.KeyValueTensorInitializer(
                tf.constant(list(index), tf.string),
                tf.constant(list(index.values()), tf.int64)), -1)
        self.tokenizer = tf_text.BertTokenizer(
            table, suffix_indicator="##", max_bytes_per_word=100, token_out_type=tf.int64,
            unknown_token="[UNK]", lower_case=lower_case)

    @classmethod
    def from_directory(cls, directory, **kwargs):
        """The tokenizer of a Hugging Face BERT directory: `vocab.txt`, and
        `tokenizer_config.json` for `do_lower_case` and `model_max_length` when present."""
        path = os.path.join(directory, "vocab.txt")
        try:
            with open(path, encoding="utf-8") as handle:
                vocabulary = handle.read().splitlines()
        except OSError as error:
            raise ValueError(f"{path} can't be read: {error.strerror or error}") from None
        settings_path = os.path.join(directory, "tokenizer_config.json")
        if os.path.exists(settings_path):
            with open(settings_path, encoding="utf-8") as handle:
                settings = json.load(handle)
            kwargs.setdefault("lower_case", bool(settings.get("do_lower_case", True)))
            length = settings.get("model_max_length")
            if isinstance(length, int) and length < 10**6:  # "no limit" is stored as 1e30
                kwargs.setdefault("sequence_length", length)
        return cls(vocabulary, **kwargs)

    def pieces(self, text):
        """string [B] -> int64 ragged [B, (n)]: the WordPiece ids, no specials."""
        return self.tokenizer.tokenize(tf.convert_to_tensor(text, tf.string)).merge_dims(-2, -1)

    def __call__(self, text, pair=None):
        segments = [self.pieces(text)]
        if pair is not None:
            segments.append(self.pieces(pair))
        budget = self.sequence_length - 1 - len(segments)  # [CLS] and one [SEP] each
        if len(segments) == 1:
            segments = [segments[0][:, :budget]]
        else:
            segments = _longest_first(segments, budget)
        ids, segment_ids = tf_text.combine_segments(
            segments, start_of_sequence_id=self.cls_id, end_of_segment_id=self.sep_id)
        token_ids = tf.cast(ids.to_tensor(default_value=self.pad_id), tf.int32)
        mask = tf.sequence_mask(ids.row_lengths(), tf.shape(token_ids)[1])
        return {"token_ids": token_ids,
                "segment_ids": tf.cast(segment_ids.to_tensor(default_value=0), tf.int32),
                "padding_mask": mask}


def _longest_first(segments, budget):
    """Pairs cut to `budget` ids as `transformers`' `longest_first`: one id at a time from
    the longer segment, from the second on ties. Written out because tf-text's
    `ShrinkLongestTrimmer` takes ties from the first segment."""
    first, second = segments
    a = tf.cast(first.row_lengths(), tf.int64)
    b = tf.cast(second.row_lengths(), tf.int64)
    excess = tf.maximum(a + b - budget, 0)
    # Removing from the longer until both are equal, then alternately (second first):
    # the second keeps min(b, max(budget - a, floor(budget / 2))).
    keep_b = tf.where(excess > 0, tf.minimum(b, tf.maximum(budget - a, budget // 2)), b)
    keep_a = tf.where(excess > 0, tf.minimum(a, budget - keep_b), a)
    return [_keep(first, keep_a), _keep(second, keep_b)]


def _keep(ragged, lengths):
    """The first `lengths[i]` ids of each row."""
    positions = tf.ragged.range(ragged.row_lengths())
    return tf.ragged.boolean_mask(ragged, positions < lengths[:, None])
