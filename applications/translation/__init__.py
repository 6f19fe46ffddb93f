"""Text translation (Transformer encoder-decoder, SentencePiece in the graph)."""


def __getattr__(name):
    """`applications.translation.load(workdir)`: the trained model of a run directory (see
    `restore.load`), imported on first use so that the config stays light to import."""
    if name == "load":
        from applications.translation.restore import load
        return load
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
