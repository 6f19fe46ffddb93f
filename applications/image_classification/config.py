"""Image classification (ViT) config and its presets."""

import dataclasses
import typing

from applications.common.config import above, at_least, check_config, fraction, one_of
from applications.common.quantization import MODES as QUANTIZATION_MODES


@dataclasses.dataclass(frozen=True)
class ImageClassificationConfig:
    # Data
    image_size: int = 224  # training and serving resolution (square)
    # How an image of any size becomes image_size x image_size (served, evaluated, and read
    # from image folders), as Hugging Face's ViTImageProcessor (center_crop None) or timm.
    resize_method: str = "bilinear"  # the resize kernel, antialiased as PIL's: or bicubic
    # center_crop f: the shorter side resized to floor(image_size / f), then the center.
    center_crop: float | None = None  # None stretches the image; f crops (timm's crop_pct)
    # Inside the model pixels / 255 become (x - image_mean) / image_std (defaults: [-1, 1]).
    image_mean: tuple[float, ...] = (0.5, 0.5, 0.5)  # per RGB channel, subtracted
    image_std: tuple[float, ...] = (0.5, 0.5, 0.5)  # per RGB channel, divided by
    builtin_examples: int = 6000
    val_fraction: float = 0.1  # held out from training when there is no val split
    shuffle_buffer: int = 20000  # encoded images a pass shuffles at a time (paths: all)
    max_bad_share: float = 0.001  # images that fail to decode are skipped; more stop the run
    # Model (ViT)
    patch_size: int = 16  # side of the square patches (divides image_size)
    shifted_patches: bool = False  # shifted patch tokenization (tfformer ShiftedPatchEmbedding)
    num_layers: int = 12
    d_model: int = 768
    num_heads: int = 12
    intermediate_dim: int = 3072
    dropout: float = 0.0
    layer_norm_epsilon: float = 1e-6  # of every layer norm (Hugging Face's ViTs: 1e-12)
    pooling: str = "class_token"  # what the head reads: "class_token" or "mean" of the patches
    # Training
    batch_size: int = 64
    epochs: int = 10
    steps_per_epoch: int | None = None
    learning_rate: float = 1e-3
    weight_decay: float = 0.05
    warmup_fraction: float = 0.1
    label_smoothing: float = 0.1
    # LoRA (tfformer.lora): rank-r factors on every query and value projection and the head
    # train; the rest is frozen.
    lora_rank: int = 0  # > 0: LoRA fine-tuning at this rank
    augment: bool = True  # augment training batches (flip, shift, zoom, RandAugment)
    augment_crop_padding: int = 0  # pad by this many black pixels, crop back at random
    augment_translate: float = 0.08  # random shift, a fraction of the side; 0 disables it
    augment_zoom: float = 0.1  # random zoom in or out by up to this fraction; 0 disables it
    augment_fill: str = "nearest"  # how shifted/zoomed borders are filled: nearest, constant,
    # reflect or wrap ("constant" = black, right for objects on a black background)
    rand_augment_magnitude: float = 0.2  # 0 disables RandAugment
    seed: int = 0
    # Which weights are evaluated and exported: "best" (the epoch with the best validation
    # score, as Keras' restore_best_weights) or "last" (those training ended with).
    export_weights: str = "best"
    # Post-training weight quantization before evaluation and export: "none", "int8", "int4".
    quantize: str = "none"
    # Serving
    top_k: int = 5  # labels (with scores) each served answer lists

    LIMITS: typing.ClassVar = {
        "export_weights": one_of("best", "last"), "quantize": one_of(*QUANTIZATION_MODES),
        "image_size": at_least(1), "builtin_examples": at_least(12),
        "val_fraction": fraction(), "shuffle_buffer": at_least(1),
        "max_bad_share": fraction(high_included=True),
        "resize_method": one_of("bilinear", "bicubic"),
        "center_crop": fraction(high_included=True), "image_std": above(0),
        "layer_norm_epsilon": above(0), "patch_size": at_least(1), "num_layers": at_least(1),
        "d_model": at_least(1), "num_heads": at_least(1), "intermediate_dim": at_least(1),
        "dropout": fraction(), "pooling": one_of("class_token", "mean"),
        "batch_size": at_least(1), "epochs": at_least(1), "steps_per_epoch": at_least(1),
        "learning_rate": above(0), "weight_decay": at_least(0),
        "warmup_fraction": fraction(high_included=True), "label_smoothing": fraction(),
        "lora_rank": at_least(0),
        "augment_crop_padding": at_least(0), "augment_translate": fraction(high_included=True),
        "augment_zoom": fraction(),
        "augment_fill": one_of("nearest", "constant", "reflect", "wrap"),
        "rand_augment_magnitude": fraction(high_included=True), "top_k": at_least(1),
    }
    RULES: typing.ClassVar = [
        (lambda c: c.image_size % c.patch_size == 0,
         "image_size={config.image_size} is not a multiple of patch_size={config.patch_size}"),
        (lambda c: len(c.image_mean) == len(c.image_std) == 3,
         "image_mean={config.image_mean} and image_std={config.image_std} need one value per "
         "RGB channel (3 each)"),
    ]

    def __post_init__(self):
        for name in ("image_mean", "image_std"):  # JSON gives lists
            object.__setattr__(self, name, tuple(getattr(self, name)))
        check_config(self)


# The fields a run's weights fix: `train --init-from RUN` keeps them (the image size, the
# number of classes and all training settings may change).
ARCHITECTURE = ("patch_size", "shifted_patches", "num_layers", "d_model", "num_heads",
                "intermediate_dim", "layer_norm_epsilon", "pooling", "image_mean", "image_std")


PRESETS = {
    # Shifted patches and mean pooling: 59% -> 84% on the built-in shapes after 6 epochs
    # (each alone: 79% after 12); 14 epochs reach 95% and more (benchmarks/README.md).
    "tiny": dict(image_size=32, patch_size=8, shifted_patches=True, pooling="mean",
                 num_layers=3, d_model=96, num_heads=4, intermediate_dim=192, batch_size=64,
                 epochs=14, learning_rate=2e-3, builtin_examples=30000,
                 rand_augment_magnitude=0.0, top_k=3),
    "small": dict(image_size=32, patch_size=4, num_layers=6, d_model=192, num_heads=6,
                  intermediate_dim=384, dropout=0.1, batch_size=128, epochs=30,
                  learning_rate=1e-3),
    "base": dict(),  # ViT-B/16 at 224x224, the defaults above
}
