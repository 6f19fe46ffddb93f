"""Pictures of a model's insides: position encodings, attention maps, training curves.

Each function computes the numbers it draws, returns them, and writes a PNG,
so a test can check the picture's content and a user can reuse the numbers.
matplotlib is imported only when a picture is drawn. One module per kind of
picture; an application's own pictures (of its export's outputs) live in
the application.
"""

from tfformer.plots.attention_maps import plot_attention, plot_rollout, plot_self_attention
from tfformer.plots.positions import POSITION_KINDS, plot_positions, position_encoding
from tfformer.plots.recorded_attention import attention_weights
from tfformer.plots.training_curves import plot_training_curves, read_scalars

__all__ = [
    "POSITION_KINDS", "attention_weights", "plot_attention", "plot_positions", "plot_rollout",
    "plot_self_attention", "plot_training_curves", "position_encoding", "read_scalars",
]
