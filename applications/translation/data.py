"""Translation data: corpora on disk or built in, SentencePiece tokenizers, tf.data.

Layouts read by `load_corpus(directory, config)`:

- plain parallel files, one sentence per line, optionally gzipped:
  `train.<src>` + `train.<tgt>`, then `val|valid|dev.*` and `test.*`
  (the Multi30k layout);
- tab-separated pairs: `train.tsv`, `val.tsv`, `test.tsv` (optionally .gz),
  `source<TAB>target` per line;
- a TFDS dataset directory already on disk (with `dataset_info.json`) whose
  features are named by the language codes, as TFDS' translation sets are.
"""

import io
import os

import sentencepiece
import tensorflow as tf
import tensorflow_text as tf_text

from applications.common.sampling import evenly_spread
from applications.common.text_files import (
    DataError,
    find_file,
    find_tfds_directory,
    read_lines,
)
from applications.translation import builtin_data

PAD_ID, UNK_ID, BOS_ID, EOS_ID = 0, 1, 2, 3
_SPLIT_NAMES = {"train": ("train",), "val": ("val", "valid", "dev", "validation"),
                "test": ("test", "test2016", "test_2016_flickr")}


def _parallel_files(directory, names, source, target):
    for name in names:
        source_path = find_file(directory, f"{name}.{source}")
        target_path = find_file(directory, f"{name}.{target}")
        if source_path and target_path:
            source_lines, target_lines = read_lines(source_path), read_lines(target_path)
            if len(source_lines) != len(target_lines):
                raise DataError(
                    f"{source_path} has {len(source_lines)} lines but {target_path} has "
                    f"{len(target_lines)}; parallel files must align line by line")
            return list(zip(source_lines, target_lines))
    return None


def _tsv_file(directory, names):
    for name in names:
        path = find_file(directory, f"{name}.tsv")
        if path:
            pairs = []
            for number, line in enumerate(read_lines(path), start=1):
                if not line.strip():
                    continue
                fields = line.split("\t")
                if len(fields) != 2:
                    raise DataError(
                        f"{path}, line {number}: expected 'source<TAB>target', found "
                        f"{len(fields)} tab-separated fields")
                pairs.append((fields[0], fields[1]))
            return pairs
    return None


def _load_tfds(directory, source, target):
    import tensorflow_datasets as tfds  # only needed for this layout

    builder = tfds.builder_from_directory(directory)
    corpus = {}
    for split, names in _SPLIT_NAMES.items():
        for name in names:
            if name in builder.info.splits:
                dataset = builder.as_dataset(split=name)
                corpus[split] = [
                    (example[source].decode("utf-8"), example[target].decode("utf-8"))
                    for example in tfds.as_numpy(dataset)
                ]
                break
    return corpus


def load_corpus(directory, config):
    """{"train", "val", "test"} -> [(source, target)]; built in when `directory` is None.

    A missing validation split is carved from training (2%); a missing test
    split is left empty.
    """
    if directory is None:
        if (config.source_language, config.target_language) != ("en", "de"):
            raise DataError(
                f"the built-in data is English to German; source_language="
                f"{config.source_language!r} and target_language={config.target_language!r} "
                "choose the files of a corpus given with --data")
        return builtin_data.generate(config.builtin_examples, seed=config.seed)
    if not os.path.isdir(directory):
        raise DataError(f"data directory {directory} does not exist")
    source, target = config.source_language, config.target_language
    tfds_root = find_tfds_directory(directory)
    if tfds_root and not find_file(directory, f"train.{source}"):
        corpus = _load_tfds(tfds_root, source, target)
    else:
        corpus = {}
        for split, names in _SPLIT_NAMES.items():
            pairs = _parallel_files(directory, names, source, target)
            if pairs is None:
                pairs = _tsv_file(directory, names)
            if pairs is not None:
                corpus[split] = pairs
    if not corpus.get("train"):
        raise DataError(
            f"no training data in {directory}: expected train.{source}[.gz] and "
            f"train.{target}[.gz], train.tsv[.gz], or a TFDS dataset directory")
    if not corpus.get("val"):
        held_out = max(1, len(corpus["train"]) // 50)
        corpus["val"], corpus["train"] = corpus["train"][:held_out], corpus["train"][held_out:]
    corpus.setdefault("test", [])
    return corpus


def train_sentencepiece(sentences, vocabulary_size, model_type="unigram", seed=0):
    """Serialized SentencePiece model trained on `sentences` (pad 0, unk 1, bos 2, eos 3)."""
    model = io.BytesIO()
    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=iter(sentences),
        model_writer=model,
        vocab_size=vocabulary_size,
        model_type=model_type,
        character_coverage=1.0,
        pad_id=PAD_ID, unk_id=UNK_ID, bos_id=BOS_ID, eos_id=EOS_ID,
        hard_vocab_limit=False,
        num_threads=2,
        minloglevel=2,
    )
    return model.getvalue()


def train_tokenizers(pairs, config):
    """(source_model, target_model) serialized SentencePiece protos; one shared model
    when `config.shared_vocabulary`. Each language's sentences are sampled down to
    `config.tokenizer_sample` (`evenly_spread`): SentencePiece's time grows with its input."""
    pairs = evenly_spread(pairs, config.tokenizer_sample)
    sources = [s for s, _ in pairs]
    targets = [t for _, t in pairs]
    size, kind = config.vocabulary_size, config.tokenizer_model_type
    if config.shared_vocabulary:
        model = train_sentencepiece(sources + targets, size, kind, config.seed)
        return model, model
    return (train_sentencepiece(sources, size, kind, config.seed),
            train_sentencepiece(targets, size, kind, config.seed))


def tokenizer(model_proto):
    """The in-graph tf-text tokenizer for a serialized SentencePiece model."""
    return tf_text.SentencepieceTokenizer(model=model_proto, out_type=tf.int32)


def vocabulary_size(model_proto):
    return int(tokenizer(model_proto).vocab_size())


def encode_source(tokens, max_length):
    """Ragged token ids (B, None) -> source ids: truncated, EOS appended."""
    tokens = tokens[:, : max_length - 1]
    eos = tf.fill([tokens.nrows(), 1], EOS_ID)
    return tf.concat([tokens, tf.RaggedTensor.from_tensor(eos)], axis=1)


def _tokenize_split(pairs, source_vocabulary, target_vocabulary, config):
    """Source and target (start ... end) ids as ragged tensors, long targets dropped."""
    sources = source_vocabulary.tokenize(tf.constant([s for s, _ in pairs]))
    targets = target_vocabulary.tokenize(tf.constant([t for _, t in pairs]))  # end last
    keep = targets.row_lengths().numpy() <= config.max_target_length
    dropped = int((~keep).sum())
    start = tf.RaggedTensor.from_tensor(
        tf.fill([targets.nrows(), 1], target_vocabulary.start_id))
    targets = tf.concat([start, targets], axis=1)
    return tf.ragged.boolean_mask(sources, keep), tf.ragged.boolean_mask(targets, keep), dropped


def make_dataset(pairs, source_vocabulary, target_vocabulary, config, training, name="data"):
    """tf.data of ({"source_ids", "target_ids"}, labels), batched by similar length.

    The vocabularies are `applications.translation.vocabularies`' (the target's without a
    length limit). `target_ids` is start + target, labels are target + end, both padded
    with the vocabularies' pad ids. Training data is shuffled and repeated. Prints how
    many pairs were dropped for exceeding `max_target_length` (sources are truncated, not
    dropped).
    """
    if not pairs:
        raise DataError(f"the {name} split is empty")
    sources, targets, dropped = _tokenize_split(pairs, source_vocabulary, target_vocabulary,
                                                config)
    if dropped:
        print(f"{name}: dropped {dropped} of {len(pairs)} pairs whose target is longer than "
              f"max_target_length={config.max_target_length} tokens")
    count = int(sources.nrows())
    if count == 0:
        raise DataError(f"every pair of the {name} split is longer than max_target_length")
    dataset = tf.data.Dataset.from_tensor_slices((sources, targets)).map(
        lambda s, t: (tf.convert_to_tensor(s), tf.convert_to_tensor(t)))  # rows as dense 1-D
    if training:
        dataset = dataset.shuffle(min(count, config.shuffle_buffer), seed=config.seed,
                                  reshuffle_each_iteration=True).repeat()
    # Padding to bucket boundaries keeps the number of shapes (and retraces) small.
    longest = max(config.max_source_length, config.max_target_length + 1)
    boundaries = [b for b in (8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256) if b < longest]
    boundaries.append(longest + 1)
    dataset = dataset.bucket_by_sequence_length(
        element_length_func=lambda s, t: tf.maximum(tf.shape(s)[0], tf.shape(t)[0]),
        bucket_boundaries=boundaries,
        bucket_batch_sizes=[config.batch_size] * (len(boundaries) + 1),
        pad_to_bucket_boundary=True,
        padding_values=(source_vocabulary.pad_id, target_vocabulary.pad_id),
        drop_remainder=training,
    )

    def split_target(source, target):
        # Teacher forcing: the decoder reads start + target, predicts target + end.
        return {"source_ids": source, "target_ids": target[:, :-1]}, target[:, 1:]

    return dataset.map(split_target, num_parallel_calls=tf.data.AUTOTUNE).prefetch(
        tf.data.AUTOTUNE)

