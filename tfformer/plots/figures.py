"""Figures drawn off screen and written as PNGs; matplotlib is imported only when one is."""

import os


def pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save(figure, path, dpi=100):
    os.makedirs(os.path.dirname(os.path.abspath(path)) or ".", exist_ok=True)
    figure.savefig(path, dpi=dpi)
    pyplot().close(figure)
    return path
