"""A Hugging Face BERT checkpoint as a Keras model built from tfformer's public layers.

BERT, as `transformers`' `modeling_bert.py` computes it: token + learned position + segment
embeddings, then a layer norm (epsilon `layer_norm_eps`, 1e-12) and dropout; post-LN encoder
blocks with exact GELU; the pooler, a tanh dense layer on the `[CLS]` state.

>>> encoder = bert_encoder("bert-base-uncased")  # doctest: +SKIP
>>> tokenizer = BertTokenizer.from_directory("bert-base-uncased")  # doctest: +SKIP
>>> outputs = encoder(tokenizer(tf.constant(["Hello world!"])))  # doctest: +SKIP
>>> outputs["sequence_output"].shape, outputs["pooled_output"].shape  # doctest: +SKIP
(TensorShape([1, 5, 768]), TensorShape([1, 768]))
"""

import json
import os

import keras

from tfformer import layers
from tfformer.pretrained import weight_mapping as mapping
from tfformer.pretrained.checkpoint_files import CheckpointError, read_state_dict


def _read_config(directory):
    path = os.path.join(directory, "config.json")
    try:
        with open(path, encoding="utf-8") as handle:
            config = json.load(handle)
    except FileNotFoundError:
        raise CheckpointError(f"{directory} has no config.json: a BERT directory holds "
                              "config.json, the weights and vocab.txt") from None
    except (OSError, ValueError) as error:
        raise CheckpointError(f"{path} can't be read as JSON: {error}") from None
    if config.get("model_type") != "bert":
        raise CheckpointError(f"{path} describes a {config.get('model_type')!r} model, not a "
                              "BERT (model_type 'bert')")
    if config.get("hidden_act", "gelu") != "gelu":
        raise CheckpointError(f"{path}'s hidden_act {config['hidden_act']!r} is not supported "
                              "(BERT uses 'gelu', exact)")
    if config.get("position_embedding_type", "absolute") != "absolute":
        raise CheckpointError(f"{path}'s position_embedding_type "
                              f"{config['position_embedding_type']!r} is not supported "
                              "(absolute)")
    return config


def build_bert(config, name="bert"):
    """The (untrained) Keras model of a BERT `config.json` (a dict).

    Inputs {"token_ids": int32 (B, T), "segment_ids": int32 (B, T), "padding_mask": bool
    (B, T)}; outputs {"sequence_output": (B, T, D), "pooled_output": (B, D)}."""
    width, epsilon = config["hidden_size"], config.get("layer_norm_eps", 1e-12)
    dropout = config.get("hidden_dropout_prob", 0.1)
    token_ids = keras.Input((None,), dtype="int32", name="token_ids")
    segment_ids = keras.Input((None,), dtype="int32", name="segment_ids")
    padding_mask = keras.Input((None,), dtype="bool", name="padding_mask")
    tokens = layers.TokenAndPositionEmbedding(
        config["vocab_size"], width, sequence_length=config["max_position_embeddings"],
        position="learned", scale_embeddings=False, name="embeddings")(token_ids)
    segments = keras.layers.Embedding(config.get("type_vocab_size", 2), width,
                                      name="segment_embedding")(segment_ids)
    x = layers.LayerNormalization(epsilon=epsilon, name="embeddings_norm")(
        keras.layers.Add()([tokens, segments]))
    x = layers.Dropout(dropout, name="embeddings_dropout")(x)
    x = layers.TransformerEncoder(
        config["num_hidden_layers"], width, config["num_attention_heads"],
        config["intermediate_size"], dropout=dropout, activation="gelu", norm_first=False,
        layer_norm_epsilon=epsilon, name="encoder")(x, padding_mask=padding_mask)
    pooled = keras.layers.Dense(width, activation="tanh", name="pooler")(x[:, 0])
    return keras.Model({"token_ids": token_ids, "segment_ids": segment_ids,
                        "padding_mask": padding_mask},
                       {"sequence_output": x, "pooled_output": pooled}, name=name)


def weight_table(num_layers, num_heads):
    """{our weight path: (checkpoint name, transform or None)}, names without "bert."."""
    table = {
        "embeddings/token_embedding/embeddings": ("embeddings.word_embeddings.weight", None),
        "embeddings/position_embedding/embeddings": (
            "embeddings.position_embeddings.weight", None),
        "segment_embedding/embeddings": ("embeddings.token_type_embeddings.weight", None),
        **mapping.norm("embeddings_norm", "embeddings.LayerNorm"),
        "pooler/kernel": ("pooler.dense.weight", mapping.linear_kernel),
        "pooler/bias": ("pooler.dense.bias", None),
    }
    for index in range(num_layers):
        theirs, ours = f"encoder.layer.{index}", f"encoder/layer_{index}"
        table.update(mapping.attention(
            f"{ours}/self_attention", f"{theirs}.attention.self.query",
            f"{theirs}.attention.self.key", f"{theirs}.attention.self.value",
            f"{theirs}.attention.output.dense", num_heads))
        table.update(mapping.norm(f"{ours}/self_attention_norm",
                                  f"{theirs}.attention.output.LayerNorm"))
        table.update(mapping.feed_forward(f"{ours}/feed_forward", f"{theirs}.intermediate.dense",
                                          f"{theirs}.output.dense"))
        table.update(mapping.norm(f"{ours}/feed_forward_norm", f"{theirs}.output.LayerNorm"))
    return table


def _backbone_names(state_dict):
    """The encoder's tensors under the names `BertModel` uses: without the "bert." of task
    models (BertForMaskedLM, ...), with old checkpoints' LayerNorm gamma/beta as
    weight/bias; task heads ("cls.", "classifier.", ...) left out."""
    names = {}
    for name, value in state_dict.items():
        if name.startswith("bert."):
            name = name[len("bert."):]
        elif not name.startswith(("embeddings.", "encoder.", "pooler.")):
            continue  # a task head
        if ".LayerNorm." in name:
            name = name.replace(".gamma", ".weight").replace(".beta", ".bias")
        names[name] = value
    return names


def bert_encoder(directory, name="bert"):
    """The BERT in a Hugging Face directory (`config.json`, `model.safetensors` or
    `pytorch_model.bin`, as `read_state_dict` reads them) as a built Keras model with its
    weights (see `build_bert` for inputs and outputs); `BertTokenizer.from_directory` makes
    its inputs from strings. A checkpoint without a pooler (`add_pooling_layer=False`) keeps
    the pooler's initial weights: its `pooled_output` is untrained."""
    config = _read_config(directory)
    state_dict, weights_file = read_state_dict(directory)
    weights = _backbone_names(state_dict)
    model = build_bert(config, name=name)
    table = weight_table(config["num_hidden_layers"], config["num_attention_heads"])
    if "pooler.dense.weight" not in weights:
        table = {path: entry for path, entry in table.items() if not path.startswith("pooler/")}
    mapping.assign_weights(model, table, weights, os.path.join(directory, weights_file),
                           skip=["embeddings.position_ids"], partial=True)
    return model
