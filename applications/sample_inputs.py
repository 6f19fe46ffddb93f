"""Writes one input for each client command and README's serving examples, from the built-in
data's generators: `star.png` (a built-in shape) and `clip.wav` (DTMF tones of "4 2 # 7" at
8 kHz, the built-in speech's rate).

    python -m applications.sample_inputs [DIRECTORY]
"""

import os
import sys

import numpy as np


def write_sample_inputs(directory="."):
    """Writes `star.png` and `clip.wav` into `directory`; returns their paths."""
    import tensorflow as tf

    from applications.image_classification.builtin_data import render
    from applications.speech_recognition.builtin_data import render_clip
    from applications.speech_recognition.evaluate import wav_bytes

    os.makedirs(directory, exist_ok=True)
    image, clip = os.path.join(directory, "star.png"), os.path.join(directory, "clip.wav")
    rng = np.random.default_rng(7)
    tf.io.write_file(image, tf.io.encode_png(render("star", 64, rng)))
    with open(clip, "wb") as handle:
        handle.write(wav_bytes(render_clip(list("42#7"), 8000, rng), 8000))
    return image, clip


if __name__ == "__main__":
    for path in write_sample_inputs(*sys.argv[1:2]):
        print(f"wrote {path}")
