"""tfformer: Keras 3 / TensorFlow Transformer layers."""

__version__ = "0.1.0"
