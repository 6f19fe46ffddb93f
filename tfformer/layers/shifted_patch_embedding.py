import keras
from keras import ops

from tfformer.layers.layer_normalization import LayerNormalization
from tfformer.layers.patch_embedding import PatchEmbedding


@keras.saving.register_keras_serializable(package="tfformer")
class ShiftedPatchEmbedding(PatchEmbedding):
    """Shifted patch tokenization (Lee et al., 2021): ViT patches that see their neighbours.

    The image is stacked, along channels, with four copies shifted
    diagonally by half a patch (zeros fill the borders), so each patch also
    holds the pixels around it. Each patch of the stack is flattened,
    layer-normalised and projected to D; the class token and learned
    positions are `PatchEmbedding`'s. It costs little more than a plain
    patch embedding and helps ViTs trained from scratch on small data sets
    (on Fashion-MNIST with 4x4 patches, benchmarks/README.md).

    Args:
        As `PatchEmbedding`, plus `layer_norm_epsilon` (default 1e-6).

    Call arguments:
        images: (B, height, width, C) float; height and width must be
            multiples of `patch_size`.

    Returns:
        (B, P (+1), D), as `PatchEmbedding`.

    Example:

    >>> import numpy as np
    >>> layer = ShiftedPatchEmbedding(d_model=32, patch_size=4)
    >>> tuple(layer(np.zeros((2, 28, 28, 3), "float32")).shape)
    (2, 50, 32)
    """

    # (rows, columns) each copy moves by, in half patches: up-left, up-right, down-left,
    # down-right, as in the paper.
    DIRECTIONS = ((-1, -1), (-1, 1), (1, -1), (1, 1))

    def __init__(self, d_model, patch_size=16, image_size=None, use_class_token=True,
                 layer_norm_epsilon=1e-6, **kwargs):
        if isinstance(patch_size, int) and patch_size < 2:
            raise ValueError(f"ShiftedPatchEmbedding shifts by half a patch, so patch_size must "
                             f"be at least 2, got patch_size={patch_size}")
        self.layer_norm_epsilon = layer_norm_epsilon
        super().__init__(d_model, patch_size, image_size, use_class_token, **kwargs)
        self._patch_norm = LayerNormalization(
            epsilon=layer_norm_epsilon, dtype=self.dtype_policy, name="patch_norm")

    def _make_projection(self):
        return keras.layers.Dense(self.d_model, dtype=self.dtype_policy, name="projection")

    def _build_projection(self, input_shape):
        features = self.patch_size ** 2 * input_shape[-1] * (1 + len(self.DIRECTIONS))
        self._patch_norm.build((None, features))
        self._projection.build((None, features))

    def _shifted_stack(self, images):
        """(B, H, W, C) -> (B, H, W, 5C): the image, then its four shifted copies."""
        shift = self.patch_size // 2
        size = ops.shape(images)
        padded = ops.pad(images, [[0, 0], [shift, shift], [shift, shift], [0, 0]])
        copies = [images]
        for rows, columns in self.DIRECTIONS:
            # A copy moved down by `shift` starts `shift` rows above the image in `padded`.
            top, left = shift - rows * shift, shift - columns * shift
            copies.append(ops.slice(padded, [0, top, left, 0], size))
        return ops.concatenate(copies, axis=-1)

    def _embed_patches(self, images):
        stack = self._shifted_stack(images)
        patch = self.patch_size
        grid_height, grid_width = images.shape[1] // patch, images.shape[2] // patch
        channels = stack.shape[-1]
        patches = ops.reshape(stack, (-1, grid_height, patch, grid_width, patch, channels))
        patches = ops.transpose(patches, (0, 1, 3, 2, 4, 5))
        patches = ops.reshape(patches, (-1, grid_height, grid_width, patch * patch * channels))
        return self._projection(self._patch_norm(patches))

    def get_config(self):
        config = super().get_config()
        config.update(layer_norm_epsilon=self.layer_norm_epsilon)
        return config
