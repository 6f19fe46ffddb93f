"""A Hugging Face checkpoint directory's weights as {name: np.ndarray}, whatever the format:
`model.safetensors`, safetensors shards with `model.safetensors.index.json`,
`pytorch_model.bin`, or `.bin` shards with `pytorch_model.bin.index.json`. The first present,
in that order, is read; errors name the file and what is wrong."""

import json
import os
import pickle

from tfformer.pretrained.torch_pickle import UnsafeCheckpointError, read_torch_state_dict


class CheckpointError(ValueError):
    """A checkpoint file is missing, damaged or not what it claims; the message names it."""


def _read_safetensors(path):
    from safetensors import SafetensorError
    from safetensors.numpy import load_file

    try:
        return load_file(path)
    except (SafetensorError, OSError, ValueError) as error:
        raise CheckpointError(f"{path} can't be read as safetensors: {error}") from None


def _read_bin(path):
    try:
        return read_torch_state_dict(path)
    except UnsafeCheckpointError as error:
        raise CheckpointError(f"{path} is refused: {error}") from None
    except (pickle.UnpicklingError, EOFError, OSError, ValueError) as error:
        raise CheckpointError(f"{path} can't be read as a PyTorch state dict: {error}") from None


_FORMATS = [  # (single file, index of shards, reader)
    ("model.safetensors", "model.safetensors.index.json", _read_safetensors),
    ("pytorch_model.bin", "pytorch_model.bin.index.json", _read_bin),
]


def _read_shards(directory, index_name, reader):
    index_path = os.path.join(directory, index_name)
    try:
        with open(index_path, encoding="utf-8") as handle:
            weight_map = json.load(handle)["weight_map"]
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise CheckpointError(f"{index_path} is not a shard index with a weight_map "
                              f"({type(error).__name__}: {error})") from None
    weights = {}
    for shard in sorted(set(weight_map.values())):
        path = os.path.join(directory, shard)
        if os.path.basename(shard) != shard or not os.path.exists(path):
            raise CheckpointError(f"{index_path} names the shard {shard}, which is not in "
                                  f"{directory}")
        weights.update(reader(path))
    missing = sorted(set(weight_map) - set(weights))
    if missing:
        raise CheckpointError(f"{index_path} lists {len(missing)} tensors its shards do not "
                              f"hold, e.g. {missing[:3]}")
    return weights


def read_state_dict(directory):
    """({name: np.ndarray}, the file or index read) for the weights in `directory`."""
    if not os.path.isdir(directory):
        raise CheckpointError(f"{directory} is not a directory")
    for single, index, reader in _FORMATS:
        if os.path.exists(os.path.join(directory, single)):
            return reader(os.path.join(directory, single)), single
        if os.path.exists(os.path.join(directory, index)):
            return _read_shards(directory, index, reader), index
    expected = ", ".join(name for pair in _FORMATS for name in pair[:2])
    raise CheckpointError(f"{directory} holds no weights: expected one of {expected}")
