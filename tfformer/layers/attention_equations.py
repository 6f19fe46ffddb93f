"""Einsum equations for attention over any axes, laid out as Keras' MultiHeadAttention's.

Projected queries, keys and values are (B, <other axes>, <attention axes>, N, H).
The equations keep Keras' conventions (the dot product takes the keys first), so
subclasses written against `keras.layers.MultiHeadAttention`'s attributes work
on ours. Letters: the input's axes first, then the projection's new ones.
Keras builds the same equations in private module functions, which a Keras
release may rename; these few lines are ours so that the layer does not import them.
"""

import string

_LETTERS = string.ascii_lowercase


def projection_equation(free_dims, bound_dims, output_dims):
    """`(equation, bias_axes, output_rank)` of a projection that keeps the first
    `free_dims` axes, contracts the next `bound_dims` and makes `output_dims`
    new ones: (2, 1, 2) is "abc,cde->abde" (B, T, D) -> (B, T, N, H)."""
    free = _LETTERS[:free_dims]
    bound = _LETTERS[free_dims:free_dims + bound_dims]
    new = _LETTERS[free_dims + bound_dims:free_dims + bound_dims + output_dims]
    return f"{free}{bound},{bound}{new}->{free}{new}", new, free_dims + output_dims


def attention_equations(rank, attention_axes):
    """`(dot_product, combine, scores_rank)` for projected tensors of `rank` attending
    over `attention_axes`: dot_product maps (keys, queries) to scores laid out as
    (<other axes>, N, <query attention axes>, <key attention axes>); combine maps
    (weights, values) back to the queries' layout. Rank 4 over axis 1 gives
    "bsnh,btnh->bnts" written in this module's letters."""
    query = _LETTERS[:rank]
    key = list(query)
    for i, axis in enumerate(attention_axes):
        key[axis] = _LETTERS[rank + i]
    key = "".join(key)
    others = [query[axis] for axis in range(rank - 1) if axis not in attention_axes]
    scores = "".join(others + [query[axis] for axis in attention_axes]
                     + [key[axis] for axis in attention_axes])
    return f"{key},{query}->{scores}", f"{scores},{key}->{query}", len(scores)
