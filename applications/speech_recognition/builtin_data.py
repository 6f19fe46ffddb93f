"""Built-in speech data: telephone keypad (DTMF) tone sequences, rendered with a seed.

Each clip is a random string of 1 to 6 keypad symbols; each symbol sounds as
its two DTMF frequencies for a random duration, separated by silences of
random length, with random level, twist, frequency drift and background
noise. The transcript names the symbols separated by spaces ("4 2 # 7"), so
WER counts symbol errors. Repeated symbols (separated only by a short gap)
and variable durations make it a real CTC alignment task.
"""

import numpy as np

ROWS = (697.0, 770.0, 852.0, 941.0)
COLUMNS = (1209.0, 1336.0, 1477.0)
KEYPAD = ("123", "456", "789", "*0#")
SYMBOLS = "".join(KEYPAD)


def tone_frequencies(symbol):
    """The (low, high) DTMF frequencies of a keypad symbol."""
    for row, keys in enumerate(KEYPAD):
        if symbol in keys:
            return ROWS[row], COLUMNS[keys.index(symbol)]
    raise ValueError(f"{symbol!r} is not a keypad symbol ({SYMBOLS})")


def render_clip(symbols, sample_rate, rng):
    """One noisy clip sounding `symbols`: float32 waveform in [-1, 1]."""

    def silence(low, high):
        return np.zeros(int(rng.uniform(low, high) * sample_rate), np.float32)

    pieces = [silence(0.05, 0.25)]
    for index, symbol in enumerate(symbols):
        if index:
            pieces.append(silence(0.04, 0.12))
        low, high = tone_frequencies(symbol)
        drift = rng.uniform(0.985, 1.015, size=2)
        time = np.arange(int(rng.uniform(0.06, 0.18) * sample_rate)) / sample_rate
        twist = rng.uniform(0.7, 1.3)
        tone = (np.sin(2 * np.pi * low * drift[0] * time + rng.uniform(0, 2 * np.pi))
                + twist * np.sin(2 * np.pi * high * drift[1] * time + rng.uniform(0, 2 * np.pi)))
        ramp = np.minimum(1.0, np.minimum(time, time[::-1]) / 0.005)  # 5 ms fades, no clicks
        pieces.append((tone * ramp / (1 + twist)).astype(np.float32))
    pieces.append(silence(0.05, 0.25))
    clip = np.concatenate(pieces) * rng.uniform(0.1, 0.8)
    clip += rng.normal(0, rng.uniform(0.002, 0.03), size=clip.shape)
    return np.clip(clip, -1, 1).astype(np.float32)


def generate_split(count, sample_rate, seed):
    """`count` clips and their transcripts, reproducible from `seed`."""
    rng = np.random.default_rng(seed)
    waveforms, transcripts = [], []
    for _ in range(count):
        symbols = rng.choice(list(SYMBOLS), size=rng.integers(1, 7))
        waveforms.append(render_clip(symbols, sample_rate, rng))
        transcripts.append(" ".join(symbols))
    return waveforms, transcripts


def builtin_splits(examples, sample_rate, seed=0):
    """{"train", "val", "test"}: 80/10/10 of `examples` clips, each split from its own seed."""
    held_out = max(1, examples // 10)
    return {
        "train": generate_split(examples - 2 * held_out, sample_rate, seed),
        "val": generate_split(held_out, sample_rate, seed + 1),
        "test": generate_split(held_out, sample_rate, seed + 2),
    }
