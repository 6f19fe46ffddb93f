"""Text to ids and back for one side of a translation run, in the graph.

A run's `tokenizer` setting picks the kind, and every consumer (the training data, the
loss's padding, decoding's start and end, the served signatures) reads the ids from here:

- "sentencepiece": a SentencePiece model that `tfformer train` trained on the data; its
  ids are pad 0, unk 1, start 2, end 3 (`data.train_sentencepiece`);
- "marian": a Marian checkpoint's (`tfformer import`): `<side>.spm` pieces mapped through
  `vocab.json` (`tfformer.pretrained.MarianTokenizer`); `</s>` ends, `<pad>` pads and
  starts decoding, as Marian starts with its pad id.

Both give int32 ids whose rows end with the end id, and skip the special ids when
decoding.
"""

import json
import os

import tensorflow as tf

from applications.common.text_files import DataError
from applications.translation import data
from tfformer.pretrained import MarianTokenizer

KINDS = ("sentencepiece", "marian")
MARIAN_FILES = ("source.spm", "target.spm", "vocab.json")
NO_LIMIT = 2**31 - 1  # targets are measured, then dropped when too long (never truncated)


class SentencePieceVocabulary(tf.Module):
    """A SentencePiece model trained by `tfformer train`.

    Args:
        model_proto: bytes, the serialized SentencePiece model.
        max_length: ids per row, the end id included; longer rows are truncated.
    """

    pad_id, unk_id, start_id, end_id = data.PAD_ID, data.UNK_ID, data.BOS_ID, data.EOS_ID

    def __init__(self, model_proto, max_length=NO_LIMIT):
        super().__init__(name="sentencepiece_vocabulary")
        self.sentencepiece = data.tokenizer(model_proto)
        self.size = data.vocabulary_size(model_proto)
        self.max_length = max_length

    def tokenize(self, text):
        """string [B] -> int32 ragged [B, (n)], the end id last."""
        return data.encode_source(self.sentencepiece.tokenize(text), self.max_length)

    def detokenize(self, ids):
        """int32 ids [B, T] -> string [B], without the special ids."""
        keep = tf.logical_and(ids > self.end_id, tf.not_equal(ids, self.unk_id))
        return self.sentencepiece.detokenize(tf.ragged.boolean_mask(ids, keep))

    def id_to_string(self, ids):
        return self.sentencepiece.id_to_string(ids)


class MarianVocabulary(tf.Module):
    """A Marian checkpoint's tokenizer for one side (see `MarianTokenizer`).

    Args:
        spm_model: bytes, the side's SentencePiece model.
        vocabulary: dict {piece: id} (`vocab.json`).
        max_length: ids per row, `</s>` included; longer rows are truncated.
    """

    def __init__(self, spm_model, vocabulary, max_length=NO_LIMIT):
        super().__init__(name="marian_vocabulary")
        self.tokenizer = MarianTokenizer(spm_model, vocabulary, max_length)
        self.size = self.tokenizer.vocabulary_size
        self.pad_id, self.unk_id = self.tokenizer.pad_id, self.tokenizer.unk_id
        self.start_id, self.end_id = self.tokenizer.pad_id, self.tokenizer.eos_id

    def tokenize(self, text):
        return tf.cast(self.tokenizer.tokenize(text), tf.int32)

    def detokenize(self, ids):
        return self.tokenizer.detokenize(ids)

    def id_to_string(self, ids):
        return self.tokenizer.id_to_piece.lookup(tf.cast(ids, tf.int64))


def tokenizer_files(workdir, config):
    """(directory, file names) of the run's tokenizer in `workdir/tokenizer/`."""
    if config.tokenizer == "marian":
        names = MARIAN_FILES
    elif config.shared_vocabulary:
        names = ("spm.model",)
    else:
        names = ("source.spm.model", "target.spm.model")
    return os.path.join(workdir, "tokenizer"), names


def _read(path, mode="rb"):
    try:
        with open(path, mode, **({} if "b" in mode else {"encoding": "utf-8"})) as handle:
            return handle.read()
    except OSError as error:
        raise DataError(f"{path} can't be read ({error.strerror or error}): the run's "
                        "tokenizer is incomplete") from None


def load_vocabularies(workdir, config, max_target_length=NO_LIMIT):
    """(source, target) vocabularies of the run in `workdir`; sources are truncated to
    `config.max_source_length`, targets to `max_target_length`."""
    directory, names = tokenizer_files(workdir, config)
    if config.tokenizer == "marian":
        source_spm, target_spm, vocabulary = (
            _read(os.path.join(directory, name)) for name in names)
        vocabulary = json.loads(vocabulary)
        return (MarianVocabulary(source_spm, vocabulary, config.max_source_length),
                MarianVocabulary(target_spm, vocabulary, max_target_length))
    protos = [_read(os.path.join(directory, name)) for name in names]
    return (SentencePieceVocabulary(protos[0], config.max_source_length),
            SentencePieceVocabulary(protos[-1], max_target_length))
