"""`tfformer prepare speech_recognition`: any layout `--data` reads, as TFRecord shards.

Each example holds a clip as 16-bit WAV bytes at the config's `sample_rate` (decoded,
mixed to mono and resampled once, here) and its transcript. Clips that do not decode are
left out and named, as in training. The training split is shuffled whole as it is written
(`shards.write_shuffled`); the others keep their order. Speed perturbation and connected
utterances are not stored: training makes them from the shards' clips as it reads them.
"""

import dataclasses
import os

import tensorflow as tf

from applications.common import bad_examples, shards
from applications.speech_recognition import clips, data


def _serialized(split, config):
    """(position, serialized example) of every clip of `split` that decodes, in order."""
    plain = dataclasses.replace(config, speed_perturbation=(), connected_digits=0)
    src = data.source(split, plain, training=False)
    decoded = data.waveforms(src, src.records, plain, src.count)
    for position, example in enumerate(decoded.as_numpy_iterator()):
        audio = tf.audio.encode_wav(example["waveform"][:, None], config.sample_rate)
        yield position, shards.serialize(audio=shards.bytes_feature(audio.numpy()),
                                         transcript=shards.bytes_feature(example["transcript"]))


def prepare(data_dir, output, config, num_shards=8):
    """Writes the splits of `data_dir` as shards under `output`; returns a summary line.
    Run again after an interruption, it goes on from the first shard not written."""
    if data_dir is None:
        raise ValueError("prepare needs --data: the built-in clips are made when training")
    if os.path.abspath(data_dir) == os.path.abspath(output):
        raise ValueError("--output must be another directory than --data")
    splits = clips.list_clips(data_dir, config)
    os.makedirs(output, exist_ok=True)
    with bad_examples.bad_data_errors():
        written, summary = shards.write_splits(
            output, splits, lambda split: _serialized(split, config), config.seed, num_shards,
            "clips")
    shards.write_metadata(output, clips.APPLICATION, written, sample_rate=config.sample_rate)
    return f"prepared {data_dir} in {output}: {summary}"
