"""Image classification with a Vision Transformer."""


def __getattr__(name):
    """`applications.image_classification.load(workdir)`: the trained model of a run directory (see
    `restore.load`), imported on first use so that the config stays light to import."""
    if name == "load":
        from applications.image_classification.restore import load
        return load
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
