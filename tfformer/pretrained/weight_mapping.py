"""Assigning a PyTorch-layout checkpoint ({name: array}) to a model built from tfformer
layers, through a table {our weight path: (checkpoint name, transform or None)}.

The pieces every Transformer checkpoint shares are here, each transpose and reshape beside
its name: PyTorch `nn.Linear` kernels are (out, in) where ours are (in, out), and tfformer's
attention keeps heads as their own axis (query/key/value kernels (D, N, H), biases (N, H),
output kernel (N, H, D)).
"""

import numpy as np

from tfformer.pretrained.checkpoint_files import CheckpointError


def linear_kernel(weight):
    """(out, in) -> (in, out)."""
    return np.transpose(weight)


def heads_in(heads):
    """q/k/v kernel (N*H, D) -> (D, N, H)."""
    return lambda weight: weight.T.reshape(weight.shape[1], heads, -1)


def heads_bias(heads):
    """q/k/v bias (N*H,) -> (N, H)."""
    return lambda bias: bias.reshape(heads, -1)


def heads_out(heads):
    """output kernel (D, N*H) -> (N, H, D)."""
    return lambda weight: weight.T.reshape(heads, -1, weight.shape[0])


def third(index, then):
    """One of a fused q|k|v tensor's three equal parts along its first axis, then `then`."""
    return lambda value: then(np.split(value, 3, axis=0)[index])


def attention(ours, query, key, value, output, heads):
    """A tfformer `MultiHeadAttention` at `ours` from four checkpoint `nn.Linear` prefixes
    (each with .weight and .bias)."""
    table = {}
    for mine, theirs in (("query", query), ("key", key), ("value", value)):
        table[f"{ours}/{mine}/kernel"] = (f"{theirs}.weight", heads_in(heads))
        table[f"{ours}/{mine}/bias"] = (f"{theirs}.bias", heads_bias(heads))
    table[f"{ours}/attention_output/kernel"] = (f"{output}.weight", heads_out(heads))
    table[f"{ours}/attention_output/bias"] = (f"{output}.bias", None)
    return table


def fused_attention(ours, qkv, output, heads):
    """As `attention`, from one fused `qkv` projection ((3 N*H, D) weight, (3 N*H,) bias),
    as timm stores it."""
    table = {}
    for index, mine in enumerate(("query", "key", "value")):
        table[f"{ours}/{mine}/kernel"] = (f"{qkv}.weight", third(index, heads_in(heads)))
        table[f"{ours}/{mine}/bias"] = (f"{qkv}.bias", third(index, heads_bias(heads)))
    table[f"{ours}/attention_output/kernel"] = (f"{output}.weight", heads_out(heads))
    table[f"{ours}/attention_output/bias"] = (f"{output}.bias", None)
    return table


def norm(ours, theirs):
    """A layer norm: gamma/beta from weight/bias."""
    return {f"{ours}/gamma": (f"{theirs}.weight", None), f"{ours}/beta": (f"{theirs}.bias", None)}


def feed_forward(ours, first, second):
    """A tfformer `FeedForward` from two `nn.Linear` prefixes."""
    return {f"{ours}/intermediate/kernel": (f"{first}.weight", linear_kernel),
            f"{ours}/intermediate/bias": (f"{first}.bias", None),
            f"{ours}/output/kernel": (f"{second}.weight", linear_kernel),
            f"{ours}/output/bias": (f"{second}.bias", None)}


def model_paths(model):
    """{weight path inside `model` (without the model's own name, which a subclassed model's
    paths start with and a functional model's do not): weight}."""
    prefix = model.name + "/"
    return {w.path[len(prefix):] if w.path.startswith(prefix) else w.path: w
            for w in model.weights}


def assign_weights(model, table, state_dict, source="the checkpoint", skip=(), partial=False):
    """Assigns `state_dict` to `model` through `table`. Every model weight (its path after
    the model's own name) must have an entry (unless `partial`: those without keep their
    values), every entry's name must be in the checkpoint, with a shape that fits; the
    checkpoint must hold nothing else but the names in `skip`. Errors name the tensor and
    `source`."""
    weights = model_paths(model)
    unmapped = sorted(set(weights) - set(table))
    if unmapped and not partial:
        raise CheckpointError(f"no checkpoint name for {unmapped[:3]}")
    unused = sorted(set(state_dict) - {name for name, _ in table.values()} - set(skip))
    if unused:
        raise CheckpointError(f"{source} holds {len(unused)} tensors this architecture does "
                              f"not have, e.g. {unused[:3]}: it is another variant of the "
                              "model, which is not supported")
    absent = sorted(set(table) - set(weights))
    if absent:
        raise CheckpointError(f"{model.name} has no weight {absent[0]} (of {len(absent)} the "
                              "table names): the model and the table disagree")
    for path, (name, transform) in table.items():
        if name not in state_dict:
            raise CheckpointError(f"{source} has no {name}")
        value = np.asarray(state_dict[name], np.float32)
        value = transform(value) if transform else value
        if tuple(value.shape) != tuple(weights[path].shape):
            raise CheckpointError(f"{source}'s {name} has shape {state_dict[name].shape}, "
                                  f"which does not fit {tuple(weights[path].shape)} (the config "
                                  "and the weights disagree)")
        weights[path].assign(value)
