"""`bert_encoder` and `BertTokenizer` against what `transformers` computed on a tiny random
BERT (`tests/fixtures/pretrained/make_bert.py`): the same ids, the same hidden states and
pooled outputs; the model saves, loads and serves through TF Serving's session path."""

import json
import pathlib

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfformer.pretrained import BertTokenizer, CheckpointError, bert_encoder, read_state_dict

BERT = pathlib.Path(__file__).resolve().parents[1] / "fixtures" / "pretrained" / "bert"
REFERENCE = json.loads((BERT / "reference.json").read_text(encoding="utf-8"))
OUTPUTS = np.load(BERT / "reference.npz")


@pytest.fixture(scope="module")
def tokenizer():
    return BertTokenizer.from_directory(str(BERT), sequence_length=REFERENCE["max_length"])


@pytest.fixture(scope="module")
def encoder():
    return bert_encoder(str(BERT))


def _inputs(tokenizer, kind):
    if kind == "single":
        return tokenizer(tf.constant(REFERENCE["sentences"]))
    first, second = zip(*REFERENCE["pairs"])
    return tokenizer(tf.constant(first), tf.constant(second))


@pytest.mark.parametrize("kind", ["single", "pair"])
def test_token_ids_equal_bert_tokenizers(tokenizer, kind):
    inputs, expected = _inputs(tokenizer, kind), REFERENCE[f"{kind}_inputs"]
    assert inputs["token_ids"].numpy().tolist() == expected["input_ids"]
    assert inputs["segment_ids"].numpy().tolist() == expected["token_type_ids"]
    assert inputs["padding_mask"].numpy().astype(int).tolist() == expected["attention_mask"]


def test_pieces_equal_bert_tokenizers(tokenizer):
    vocabulary = (BERT / "vocab.txt").read_text(encoding="utf-8").splitlines()
    for row, expected in zip(tokenizer.pieces(tf.constant(REFERENCE["sentences"])).to_list(),
                             REFERENCE["pieces"]):
        assert [vocabulary[i] for i in row] == expected


@pytest.mark.parametrize("kind", ["single", "pair"])
def test_outputs_equal_bert_models(tokenizer, encoder, kind):
    inputs = _inputs(tokenizer, kind)
    outputs = encoder(inputs)
    real = inputs["padding_mask"].numpy()
    np.testing.assert_allclose(outputs["sequence_output"].numpy()[real],
                               OUTPUTS[f"{kind}_last_hidden_state"][real], atol=1e-4, rtol=0)
    np.testing.assert_allclose(outputs["pooled_output"], OUTPUTS[f"{kind}_pooler_output"],
                               atol=1e-4, rtol=0)


def test_padding_changes_nothing_and_the_model_round_trips(tokenizer, encoder, tmp_path):
    """More padding leaves every real position's output as it was; `model.save` and
    `keras.models.load_model` give the same outputs."""
    inputs = tokenizer(tf.constant(REFERENCE["sentences"][:2]))
    padded = {name: tf.pad(value, [[0, 0], [0, 5]]) for name, value in inputs.items()}
    real = inputs["padding_mask"].numpy()
    length = real.shape[1]
    np.testing.assert_allclose(encoder(padded)["sequence_output"].numpy()[:, :length][real],
                               encoder(inputs)["sequence_output"].numpy()[real], atol=1e-5)
    path = str(tmp_path / "bert.keras")
    encoder.save(path)
    loaded = keras.models.load_model(path)
    np.testing.assert_allclose(loaded(inputs)["pooled_output"], encoder(inputs)["pooled_output"],
                               atol=1e-6)


def test_strings_in_served_through_tf_servings_loader(tokenizer, encoder, tmp_path):
    """Tokenizer and encoder in one SavedModel (`tfformer.export`): raw strings in, the
    reference's pooled output out, through the session path in a fresh process."""
    from tests.support.serving_checks import serve_in_session
    from tfformer.export import export_saved_model

    class Served(tf.Module):
        def __init__(self):
            super().__init__()
            self.tokenizer, self.encoder = tokenizer, encoder

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text")])
        def serve(self, text):
            return {"pooled_output": self.encoder(self.tokenizer(text))["pooled_output"]}

    module = Served()
    path = export_saved_model(module, str(tmp_path / "served"), {"serving_default": module.serve})
    (served,) = serve_in_session(path, [("serving_default",
                                         {"text": REFERENCE["sentences"]})])
    np.testing.assert_allclose(served["pooled_output"], OUTPUTS["single_pooler_output"],
                               atol=1e-4)


def test_a_task_models_names_and_old_layer_norm_names_load(tmp_path):
    """BertForMaskedLM-style names ("bert." prefix, LayerNorm gamma/beta, a "cls." head)
    give the same model."""
    from safetensors.numpy import save_file

    state_dict, _ = read_state_dict(str(BERT))
    renamed = {"bert." + name.replace("LayerNorm.weight", "LayerNorm.gamma")
               .replace("LayerNorm.bias", "LayerNorm.beta"): value
               for name, value in state_dict.items()}
    renamed["cls.predictions.bias"] = np.zeros(3, np.float32)
    directory = tmp_path / "masked_lm"
    directory.mkdir()
    save_file(renamed, str(directory / "model.safetensors"))
    (directory / "config.json").write_bytes((BERT / "config.json").read_bytes())
    ids = {"token_ids": np.array([[2, 40, 3]]), "segment_ids": np.zeros((1, 3), "int32"),
           "padding_mask": np.ones((1, 3), bool)}
    np.testing.assert_allclose(bert_encoder(str(directory))(ids)["pooled_output"],
                               bert_encoder(str(BERT))(ids)["pooled_output"], atol=1e-6)


def test_bad_directories_are_named(tmp_path):
    with pytest.raises(CheckpointError, match="has no config.json"):
        bert_encoder(str(tmp_path))
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "roberta"}))
    with pytest.raises(CheckpointError, match="describes a 'roberta' model, not a BERT"):
        bert_encoder(str(tmp_path))
    config = json.loads((BERT / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**config, "hidden_size": 64}))
    (tmp_path / "model.safetensors").write_bytes((BERT / "model.safetensors").read_bytes())
    with pytest.raises(CheckpointError, match=r"word_embeddings.weight has shape \(110, 32\), "
                                              r"which does not fit \(110, 64\)"):
        bert_encoder(str(tmp_path))
    with pytest.raises(ValueError, match="vocab.txt can't be read"):
        BertTokenizer.from_directory(str(tmp_path))
