"""Speech recognition with a truncated-attention Transformer and CTC."""


def __getattr__(name):
    """`applications.speech_recognition.load(workdir)`: the trained model of a run directory (see
    `restore.load`), imported on first use so that the config stays light to import."""
    if name == "load":
        from applications.speech_recognition.restore import load
        return load
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
