"""The Vision Transformer (Dosovitskiy et al., 2021), built only from tfformer layers."""

import keras
from keras import ops

from tfformer import layers
from tfformer.attention_rollout import attention_rollout
from tfformer.lora import enable_lora

POOLINGS = ("class_token", "mean")


@keras.saving.register_keras_serializable(package="tfformer_applications")
class VisionTransformer(keras.Model):
    """Patches of an image -> a Transformer encoder -> class logits.

    Args:
        num_classes: int, C.
        image_size: int, S; images are (B, S, S, 3).
        patch_size: int, p; S must be a multiple of it. P = (S / p)^2 patches.
        num_layers, d_model, num_heads, intermediate_dim, dropout: the
            encoder's shape (pre-LN, GELU).
        pooling: "class_token" (the head reads a prepended class token) or
            "mean" (the head reads the patches' mean).
        shifted_patches: bool, `ShiftedPatchEmbedding` instead of
            `PatchEmbedding`.
        layer_norm_epsilon: float, of every layer norm (1e-6 as timm; Hugging
            Face's ViT checkpoints use 1e-12).
        image_mean, image_std: 3 floats each; pixels x in [0, 255] enter the
            patch embedding as (x / 255 - mean) / std per channel, inside the
            model, so training data and every served signature feed raw
            0-255 values. The defaults give [-1, 1].

    Call arguments:
        images: (B, S, S, 3) uint8 or float in [0, 255].
        training: bool.

    Returns:
        logits (B, C) float32. `classify_with_rollout(images)` returns them
        with the attention rollout from the pooled token to each patch, from
        the same forward pass.

    Example:

    >>> import numpy as np
    >>> vit = VisionTransformer(3, image_size=32, patch_size=16, num_layers=1, d_model=8,
    ...                         num_heads=2, intermediate_dim=16)
    >>> logits, rollout = vit.classify_with_rollout(np.zeros((2, 32, 32, 3), "uint8"))
    >>> tuple(logits.shape), tuple(rollout.shape)
    ((2, 3), (2, 4))
    """

    def __init__(self, num_classes, image_size=224, patch_size=16, num_layers=12, d_model=768,
                 num_heads=12, intermediate_dim=3072, dropout=0.1, pooling="class_token",
                 shifted_patches=False, layer_norm_epsilon=1e-6, image_mean=(0.5, 0.5, 0.5),
                 image_std=(0.5, 0.5, 0.5), **kwargs):
        super().__init__(**kwargs)
        if pooling not in POOLINGS:
            raise ValueError(f"pooling must be 'class_token' or 'mean', got {pooling!r}")
        self.num_classes = num_classes
        self.image_size = image_size
        self.patch_size = patch_size
        self.num_layers = num_layers
        self.d_model = d_model
        self.num_heads = num_heads
        self.intermediate_dim = intermediate_dim
        self.dropout = dropout
        self.pooling = pooling
        self.shifted_patches = shifted_patches
        self.layer_norm_epsilon = layer_norm_epsilon
        self.image_mean, self.image_std = tuple(image_mean), tuple(image_std)
        if len(self.image_mean) != 3 or len(self.image_std) != 3:
            raise ValueError(f"image_mean and image_std need 3 values (RGB), got "
                             f"{image_mean} and {image_std}")
        self.rescale = keras.layers.Rescaling(
            [1.0 / (255.0 * std) for std in self.image_std],
            [-mean / std for mean, std in zip(self.image_mean, self.image_std)], name="rescale")
        embedding = layers.ShiftedPatchEmbedding if shifted_patches else layers.PatchEmbedding
        self.patch_embedding = embedding(
            d_model, patch_size=patch_size, image_size=image_size,
            use_class_token=pooling == "class_token", name="patch_embedding")
        self.embedding_dropout = layers.Dropout(dropout, name="embedding_dropout")
        self.encoder = layers.TransformerEncoder(
            num_layers, d_model, num_heads, intermediate_dim, dropout=dropout,
            activation="gelu", norm_first=True, layer_norm_epsilon=layer_norm_epsilon,
            name="encoder")
        self.head = keras.layers.Dense(num_classes, dtype="float32", name="head")

    def build(self, images_shape=None):
        images_shape = images_shape or (None, self.image_size, self.image_size, 3)
        self.rescale.build(images_shape)
        self.patch_embedding.build(images_shape)
        tokens = self.patch_embedding.compute_output_shape(images_shape)  # (B, T, D)
        self.encoder.build(tokens)
        self.head.build((tokens[0], self.d_model))
        self.built = True

    def call(self, images, training=None):
        encoded = self.encoder(self._tokens(images, training), training=training)
        return self.head(self._pool(encoded))

    def classify_with_rollout(self, images, training=False):
        """One pass that also keeps every layer's attention weights: logits (B, C)
        float32 and the rollout (B, P) float32, how much each patch reaches what the
        head reads (the class token, or the mean over tokens)."""
        encoded, scores = self.encoder(self._tokens(images, training), training=training,
                                       return_attention_scores=True)
        rollout = attention_rollout(scores)  # (B, T, T)
        if self.pooling == "class_token":
            reach = rollout[:, 0, 1:]  # (B, P)
        else:
            reach = ops.mean(rollout, axis=1)  # (B, P)
        return self.head(self._pool(encoded)), reach

    def _tokens(self, images, training):
        x = self.patch_embedding(self.rescale(images))  # (B, T, D)
        return self.embedding_dropout(x, training=training)

    def _pool(self, encoded):
        if self.pooling == "class_token":
            return encoded[:, 0]  # (B, D)
        return ops.mean(encoded, axis=1)  # (B, D)

    def get_config(self):
        config = super().get_config()
        config.update(
            num_classes=self.num_classes, image_size=self.image_size,
            patch_size=self.patch_size, num_layers=self.num_layers, d_model=self.d_model,
            num_heads=self.num_heads, intermediate_dim=self.intermediate_dim,
            dropout=self.dropout, pooling=self.pooling, shifted_patches=self.shifted_patches,
            layer_norm_epsilon=self.layer_norm_epsilon, image_mean=self.image_mean,
            image_std=self.image_std)
        return config


def build_vit(config, num_classes):
    """A built `VisionTransformer` of an `ImageClassificationConfig`'s shape (with LoRA
    factors when `lora_rank` > 0: training, restoring and exporting all build the same
    weights)."""
    model = VisionTransformer(
        num_classes, image_size=config.image_size, patch_size=config.patch_size,
        num_layers=config.num_layers, d_model=config.d_model, num_heads=config.num_heads,
        intermediate_dim=config.intermediate_dim, dropout=config.dropout,
        pooling=config.pooling, shifted_patches=config.shifted_patches,
        layer_norm_epsilon=config.layer_norm_epsilon, image_mean=config.image_mean,
        image_std=config.image_std, name="vit")
    model.build()
    if config.lora_rank:
        enable_lora(model, config.lora_rank, target_names=("query", "value"))
        model.head.trainable = True
    return model
