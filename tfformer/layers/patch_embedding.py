import keras
from keras import ops

from tfformer.layers.flat_einsum_dense import FlatEinsumDense


@keras.saving.register_keras_serializable(package="tfformer")
class PatchEmbedding(keras.layers.Layer):
    """Non-overlapping image patches projected to D, with learned positions (ViT).

    Each patch is projected linearly, as a Conv2D with kernel = stride =
    `patch_size` would, with the same (p, p, C, D) kernel and (D,) bias; it
    runs as a `FlatEinsumDense` over the cut patches, which Keras can
    quantize and give LoRA weights (it cannot a Conv2D). An
    optional class token is prepended; learned positions are added. The
    position grid is built for `image_size`; an image of another size gets
    the grid resized bilinearly (as ViT does when fine-tuning at a new
    resolution), the class token's position unchanged.

    Args:
        d_model: int, D.
        patch_size: int, default 16.
        image_size: int or (height, width); defaults to the build shape.
        use_class_token: bool, default True.

    Call arguments:
        images: (B, height, width, C) float; height and width must be
            multiples of `patch_size`.

    Returns:
        (B, P (+1), D) with P = (height/patch) * (width/patch), the class
        token first.

    Example:

    >>> import numpy as np
    >>> layer = PatchEmbedding(d_model=32, patch_size=16)
    >>> tuple(layer(np.zeros((2, 64, 48, 3), "float32")).shape)
    (2, 13, 32)
    """

    def __init__(self, d_model, patch_size=16, image_size=None, use_class_token=True, **kwargs):
        super().__init__(**kwargs)
        for name, value in (("d_model", d_model), ("patch_size", patch_size)):
            if not isinstance(value, int) or value <= 0:
                raise ValueError(f"{name} must be a positive int, got {name}={value!r}")
        if isinstance(image_size, int):
            image_size = (image_size, image_size)
        if image_size is not None:
            image_size = tuple(image_size)
            if any(side % patch_size for side in image_size):
                raise ValueError(
                    f"image_size={image_size} is not a multiple of patch_size={patch_size}"
                )
        self.d_model = d_model
        self.patch_size = patch_size
        self.image_size = image_size
        self.use_class_token = use_class_token
        self._projection = self._make_projection()

    def _check_image_shape(self, shape):
        if len(shape) != 4:
            raise ValueError(f"PatchEmbedding expects images (B, height, width, C), got {tuple(shape)}")
        for side in shape[1:3]:
            if side is not None and side % self.patch_size:
                raise ValueError(
                    f"Image shape {tuple(shape)} is not a multiple of patch_size={self.patch_size}"
                )

    def build(self, input_shape):
        self._check_image_shape(input_shape)
        image_size = self.image_size or tuple(input_shape[1:3])
        if None in image_size:
            raise ValueError("PatchEmbedding needs image_size when images have unknown size")
        self._grid = (image_size[0] // self.patch_size, image_size[1] // self.patch_size)
        self._build_projection(input_shape)
        self.position_embeddings = self.add_weight(
            name="position_embeddings",
            shape=(self._grid[0] * self._grid[1], self.d_model),
            initializer=keras.initializers.TruncatedNormal(stddev=0.02),
        )
        if self.use_class_token:
            self.class_token = self.add_weight(
                name="class_token", shape=(1, 1, self.d_model), initializer="zeros")
            self.class_position = self.add_weight(
                name="class_position", shape=(1, 1, self.d_model),
                initializer=keras.initializers.TruncatedNormal(stddev=0.02))
        self.built = True

    def _make_projection(self):
        return FlatEinsumDense(
            "abcdef,defg->abcg", output_shape=(None, None, self.d_model), bias_axes="g",
            dtype=self.dtype_policy, name="projection")

    def _build_projection(self, input_shape):
        patch = self.patch_size
        self._projection.build((None, None, None, patch, patch, input_shape[-1]))

    def _embed_patches(self, images):
        """(B, height, width, C) -> (B, height/p, width/p, D)."""
        patch = self.patch_size
        grid_height, grid_width = images.shape[1] // patch, images.shape[2] // patch
        patches = ops.reshape(images, (-1, grid_height, patch, grid_width, patch, images.shape[-1]))
        return self._projection(ops.transpose(patches, (0, 1, 3, 2, 4, 5)))  # (B, H/p, W/p, p, p, C)

    def _positions(self, grid_height, grid_width):
        """(1, P, D) positions for a grid, resized from the trained grid if needed."""
        table = ops.cast(self.position_embeddings, "float32")
        table = ops.reshape(table, (1, self._grid[0], self._grid[1], self.d_model))
        if (grid_height, grid_width) != self._grid:
            table = ops.image.resize(
                table, (grid_height, grid_width), interpolation="bilinear", antialias=False)
        return ops.cast(ops.reshape(table, (1, -1, self.d_model)), self.compute_dtype)

    def call(self, images):
        self._check_image_shape(images.shape)
        patches = self._embed_patches(images)  # (B, H/p, W/p, D)
        grid_height, grid_width = images.shape[1] // self.patch_size, images.shape[2] // self.patch_size
        batch = ops.shape(patches)[0]
        x = ops.reshape(patches, (batch, -1, self.d_model))  # (B, P, D)
        x = x + self._positions(grid_height, grid_width)
        if self.use_class_token:
            token = ops.cast(self.class_token + self.class_position, x.dtype)
            x = ops.concatenate([ops.tile(token, (batch, 1, 1)), x], axis=1)  # (B, P+1, D)
        return x

    def compute_output_shape(self, input_shape):
        patches = (input_shape[1] // self.patch_size) * (input_shape[2] // self.patch_size)
        return (input_shape[0], patches + int(self.use_class_token), self.d_model)

    def get_config(self):
        config = super().get_config()
        config.update(
            d_model=self.d_model, patch_size=self.patch_size, image_size=self.image_size,
            use_class_token=self.use_class_token,
        )
        return config

