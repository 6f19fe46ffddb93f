"""The Vision Transformer (Dosovitskiy et al., 2021), built only from tfformer layers."""

import keras

from tfformer import layers

# Pixels are scaled to [-1, 1] inside the model, so training data, the uint8
# serving signature and the image-bytes signature all feed raw 0-255 values.
_SCALE, _OFFSET = 1.0 / 127.5, -1.0


def build_vit(config, num_classes):
    """uint8 or float images (B, S, S, 3) in [0, 255] -> class logits (B, C) float32."""
    size = config.image_size
    images = keras.Input((size, size, 3), name="images")
    x = keras.layers.Rescaling(_SCALE, _OFFSET, name="rescale")(images)
    embedding = layers.ShiftedPatchEmbedding if config.shifted_patches else layers.PatchEmbedding
    x = embedding(
        config.d_model, patch_size=config.patch_size, image_size=size,
        use_class_token=config.pooling == "class_token", name="patch_embedding")(x)
    x = layers.Dropout(config.dropout)(x)
    x = layers.TransformerEncoder(
        config.num_layers, config.d_model, config.num_heads, config.intermediate_dim,
        dropout=config.dropout, activation="gelu", norm_first=True, name="encoder")(x)
    if config.pooling == "class_token":
        x = x[:, 0]
    elif config.pooling == "mean":
        x = keras.layers.GlobalAveragePooling1D()(x)
    else:
        raise ValueError(f"pooling must be 'class_token' or 'mean', got {config.pooling!r}")
    logits = keras.layers.Dense(num_classes, dtype="float32", name="head")(x)
    return keras.Model(images, logits, name="vit")
