"""A Marian checkpoint read into a Translator computes what `transformers`' MarianMTModel
computed (`tests/fixtures/pretrained/make_marian.py`): encoder outputs and teacher-forced
logits within 1e-4 in float32, for both fixtures (safetensors and pytorch_model.bin, an odd
head width)."""

import json
import pathlib

import numpy as np
import pytest

from applications.translation.marian_checkpoint import (
    build_marian_translator,
    load_marian_weights,
)
from tfformer.pretrained import CheckpointError, read_state_dict

FIXTURES = pathlib.Path(__file__).resolve().parents[2] / "fixtures" / "pretrained"


def _imported(name):
    directory = FIXTURES / name
    config = json.loads((directory / "config.json").read_text())
    model = build_marian_translator(config)
    state_dict, source = read_state_dict(str(directory))
    load_marian_weights(model, state_dict, source)
    return model


@pytest.mark.parametrize("name", ["marian_shared", "marian_separate"])
def test_encoder_outputs_and_logits_equal_the_reference(name):
    model = _imported(name)
    with np.load(FIXTURES / name / "reference.npz") as reference:
        memory, _ = model.encode(reference["input_ids"])
        real = reference["attention_mask"].astype(bool)
        np.testing.assert_allclose(np.asarray(memory)[real], reference["encoder_output"][real],
                                   atol=1e-4)
        logits = model({"source_ids": reference["input_ids"],
                        "target_ids": reference["decoder_input_ids"]})
        np.testing.assert_allclose(np.asarray(logits), reference["logits"], atol=1e-4)


def test_shapes_that_do_not_fit_the_config_are_named():
    directory = FIXTURES / "marian_shared"
    config = json.loads((directory / "config.json").read_text())
    model = build_marian_translator({**config, "d_model": 32, "encoder_ffn_dim": 32})
    state_dict, source = read_state_dict(str(directory))
    with pytest.raises(CheckpointError, match=r"model.safetensors's model.shared.weight has "
                                              r"shape \(88, 16\), which does not fit"):
        load_marian_weights(model, state_dict, source)
    with pytest.raises(CheckpointError, match="describes a 'bert' model, not a Marian one"):
        build_marian_translator({**config, "model_type": "bert"})
