"""Argument checks shared by the encoder and decoder blocks and stacks: each names the bad value."""


def check_block_args(d_model, num_heads, intermediate_dim, dropout):
    for name, value in (("d_model", d_model), ("num_heads", num_heads),
                        ("intermediate_dim", intermediate_dim)):
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            raise ValueError(f"{name} must be a positive integer, got {name}={value!r}")
    if d_model % num_heads:
        raise ValueError(f"d_model={d_model} is not divisible by num_heads={num_heads}")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must be in [0, 1), got dropout={dropout!r}")


def check_activation_dropout(activation_dropout):
    if activation_dropout is not None and not 0.0 <= activation_dropout < 1.0:
        raise ValueError(
            f"activation_dropout must be None or in [0, 1), got {activation_dropout!r}")


def check_input_width(layer, input_shape):
    if input_shape[-1] != layer.d_model:
        raise ValueError(
            f"{layer.name} expects inputs of width d_model={layer.d_model}, "
            f"got shape {tuple(input_shape)}"
        )
