"""Spoken Multi30k: Multi30k's English sentences spoken by espeak-ng, as a speech data set.

    python benchmarks/make_spoken_sentences.py [--multi30k ../shared/data/multi30k] \\
        [--output /tmp/spoken_multi30k] [--limit N] [--jobs 2]

Open-vocabulary speech that this machine can make: about 28 hours from the 29,000 training
sentences, 1,014 more for validation. Each sentence gets, drawn from its index and the
seed, one of espeak-ng's English voices (British, American, Scottish, Caribbean, Received
Pronunciation, Lancaster, West Midlands), a voice variant (male, female, whispery, croaky,
...), a speed of 130-210 words a minute, a pitch of 20-80, and white noise at 15-40 dB SNR.
Written as 16-bit mono WAV at espeak-ng's 22,050 Hz (the recognizer resamples as it reads)
under `audio/<split>/`, with `train.tsv` and `val.tsv` manifests (path, transcript) that
`tfformer train speech_recognition --data` reads. Transcripts are lowercase words and
apostrophes: punctuation is not spoken.

Resumable: each WAV is written to a temporary name and renamed, a finished one is not made
again, and the manifests are written last. Needs Debian's `espeak-ng` package.
"""

import argparse
import gzip
import os
import re
import subprocess
import sys
import wave
from concurrent.futures import ThreadPoolExecutor

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_MULTI30K = os.path.join(HERE, "..", "..", "shared", "data", "multi30k")
VOICES = ("en-gb", "en-us", "en-gb-scotland", "en-029", "en-gb-x-rp", "en-gb-x-gbclan",
          "en-gb-x-gbcwmd")
VARIANTS = ("", "m1", "m2", "m3", "m4", "m5", "m6", "m7", "f1", "f2", "f3", "f4", "f5",
            "croak", "whisper", "klatt", "klatt2")
SPLITS = {"train": "train.en.gz", "val": "val.en.gz"}


def transcript(sentence):
    """What the recognizer should write: lowercase words, apostrophes kept."""
    return " ".join(re.sub(r"[^a-z0-9']+", " ", sentence.lower()).split())


def settings(split, index, seed=0):
    """The voice, variant, speed, pitch and SNR of sentence `index` of `split`."""
    rng = np.random.default_rng([seed, index, list(SPLITS).index(split)])
    variant = VARIANTS[rng.integers(len(VARIANTS))]
    voice = VOICES[rng.integers(len(VOICES))] + (f"+{variant}" if variant else "")
    return {"voice": voice, "speed": int(rng.integers(130, 211)),
            "pitch": int(rng.integers(20, 81)), "snr_db": float(rng.uniform(15, 40)),
            "noise_seed": int(rng.integers(2**31))}


def speak(sentence, path, chosen):
    """Writes `sentence` spoken with `chosen` settings, noise added, to `path` (atomically)."""
    temporary = path + ".partial"
    subprocess.run(["espeak-ng", "-v", chosen["voice"], "-s", str(chosen["speed"]),
                    "-p", str(chosen["pitch"]), "-w", temporary, "--", sentence],
                   check=True, capture_output=True)
    with wave.open(temporary, "rb") as clean:
        rate = clean.getframerate()
        samples = np.frombuffer(clean.readframes(clean.getnframes()), np.int16)
    signal = samples.astype(np.float64)
    power = np.mean(signal ** 2) if len(signal) else 0.0
    noise = np.random.default_rng(chosen["noise_seed"]).standard_normal(len(signal))
    noisy = signal + noise * np.sqrt(power / 10 ** (chosen["snr_db"] / 10))
    with wave.open(temporary, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(np.clip(np.round(noisy), -32768, 32767).astype(np.int16).tobytes())
    os.replace(temporary, path)
    return len(samples) / rate


def make_split(multi30k, output, split, limit, jobs):
    """Speaks one split; returns (sentences, seconds of audio made now)."""
    with gzip.open(os.path.join(multi30k, SPLITS[split]), "rt", encoding="utf-8") as handle:
        sentences = [line.strip() for line in handle][:limit]
    folder = os.path.join(output, "audio", split)
    os.makedirs(folder, exist_ok=True)
    names = [os.path.join("audio", split, f"{index:05d}.wav") for index in range(len(sentences))]

    def one(index):
        path = os.path.join(output, names[index])
        if os.path.exists(path):
            return 0.0
        return speak(sentences[index], path, settings(split, index))

    with ThreadPoolExecutor(jobs) as pool:  # each call waits on an espeak-ng process
        seconds = sum(pool.map(one, range(len(sentences))))
    manifest = os.path.join(output, f"{split}.tsv")
    with open(manifest + ".partial", "w", encoding="utf-8") as handle:
        handle.write("path\ttranscript\n")
        for name, sentence in zip(names, sentences):
            handle.write(f"{name}\t{transcript(sentence)}\n")
    os.replace(manifest + ".partial", manifest)
    return len(sentences), seconds


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--multi30k", default=DEFAULT_MULTI30K)
    parser.add_argument("--output", default="/tmp/spoken_multi30k")
    parser.add_argument("--limit", type=int, help="the first N sentences of each split")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    if subprocess.run(["which", "espeak-ng"], capture_output=True).returncode:
        sys.exit("espeak-ng is not installed: apt-get install espeak-ng")
    for split in SPLITS:
        count, seconds = make_split(args.multi30k, args.output, split, args.limit, args.jobs)
        print(f"{split}: {count} sentences, {seconds / 3600:.2f} hours made now", flush=True)


if __name__ == "__main__":
    main()
