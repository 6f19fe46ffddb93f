"""A checkpoint directory's weights, whatever the format (safetensors, sharded safetensors,
`.bin`, sharded `.bin`), come back the same; a missing, damaged or inconsistent file is
named with what is wrong."""

import json
import pathlib
import shutil

import numpy as np
import pytest
from safetensors.numpy import save_file

from tfformer.pretrained import CheckpointError, read_state_dict

FIXTURES = pathlib.Path(__file__).resolve().parents[1] / "fixtures" / "pretrained"
WEIGHTS = {"embed.weight": np.arange(12, dtype=np.float32).reshape(3, 4),
           "layer.bias": np.array([1.5, -2.0], np.float32),
           "positions": np.arange(5, dtype=np.int64)}


def _shards(directory, names_per_shard, extension, write):
    weight_map = {}
    for index, names in enumerate(names_per_shard):
        shard = f"model-{index + 1:05d}-of-{len(names_per_shard):05d}.{extension}"
        write({name: WEIGHTS[name] for name in names}, directory / shard)
        weight_map.update({name: shard for name in names})
    return weight_map


def _equal(weights):
    assert sorted(weights) == sorted(WEIGHTS)
    for name, value in WEIGHTS.items():
        np.testing.assert_array_equal(weights[name], value)


def test_single_and_sharded_safetensors_read_the_same(tmp_path):
    save_file(WEIGHTS, str(tmp_path / "model.safetensors"))
    weights, source = read_state_dict(str(tmp_path))
    assert source == "model.safetensors"
    _equal(weights)

    sharded = tmp_path / "sharded"
    sharded.mkdir()
    weight_map = _shards(sharded, [["embed.weight"], ["layer.bias", "positions"]],
                         "safetensors", lambda arrays, path: save_file(arrays, str(path)))
    (sharded / "model.safetensors.index.json").write_text(json.dumps(
        {"metadata": {}, "weight_map": weight_map}))
    weights, source = read_state_dict(str(sharded))
    assert source == "model.safetensors.index.json"
    _equal(weights)


def test_a_bin_checkpoint_and_bin_shards_read_as_torch_saved_them(tmp_path):
    shutil.copy(FIXTURES / "state_dict.bin", tmp_path / "pytorch_model.bin")
    weights, source = read_state_dict(str(tmp_path))
    assert source == "pytorch_model.bin"
    with np.load(FIXTURES / "state_dict.npz") as expected:
        np.testing.assert_array_equal(weights["encoder.weight"], expected["encoder.weight"])

    sharded = tmp_path / "sharded"
    sharded.mkdir()
    shutil.copy(FIXTURES / "state_dict.bin", sharded / "pytorch_model-00001-of-00001.bin")
    (sharded / "pytorch_model.bin.index.json").write_text(json.dumps(
        {"weight_map": {name: "pytorch_model-00001-of-00001.bin" for name in weights}}))
    assert read_state_dict(str(sharded))[0].keys() == weights.keys()


def test_bad_checkpoint_directories_are_named(tmp_path):
    with pytest.raises(CheckpointError, match=rf"{tmp_path} holds no weights: expected one of "
                                              r"model.safetensors, model.safetensors.index"):
        read_state_dict(str(tmp_path))
    with pytest.raises(CheckpointError, match="is not a directory"):
        read_state_dict(str(tmp_path / "nowhere"))

    save_file(WEIGHTS, str(tmp_path / "model.safetensors"))
    contents = (tmp_path / "model.safetensors").read_bytes()
    (tmp_path / "model.safetensors").write_bytes(contents[: len(contents) // 2])
    with pytest.raises(CheckpointError, match=r"model.safetensors can't be read as safetensors"):
        read_state_dict(str(tmp_path))

    sharded = tmp_path / "sharded"
    sharded.mkdir()
    index = sharded / "model.safetensors.index.json"
    index.write_text(json.dumps({"weight_map": {"a": "model-00001-of-00002.safetensors"}}))
    with pytest.raises(CheckpointError, match=r"names the shard model-00001-of-00002"
                                              r".safetensors, which is not in"):
        read_state_dict(str(sharded))
    save_file({"b": WEIGHTS["layer.bias"]}, str(sharded / "model-00001-of-00002.safetensors"))
    with pytest.raises(CheckpointError, match=r"lists 1 tensors its shards do not hold"):
        read_state_dict(str(sharded))
    index.write_text("{not json")
    with pytest.raises(CheckpointError, match="is not a shard index with a weight_map"):
        read_state_dict(str(sharded))

    binary = tmp_path / "binary"
    binary.mkdir()
    (binary / "pytorch_model.bin").write_bytes(b"\x80\x02 not a zip")
    with pytest.raises(CheckpointError, match=r"pytorch_model.bin can't be read as a PyTorch "
                                              r"state dict: not a zip archive"):
        read_state_dict(str(binary))
