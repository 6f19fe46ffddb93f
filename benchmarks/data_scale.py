"""Data-scale benchmark: memory and time to the first step as the data set grows tenfold.

    .venv/bin/python benchmarks/data_scale.py image_classification \\
        [--sizes 5000,50000,500000] [--root /tmp/tfformer_data_scale] [--baseline DIR]
    .venv/bin/python benchmarks/data_scale.py translation [--sizes 20000,200000,2000000]
    .venv/bin/python benchmarks/data_scale.py speech_recognition [--sizes 2000,20000,200000]
    .venv/bin/python benchmarks/data_scale.py speech_recognition --data /tmp/spoken_multi30k \
        --name spoken_multi30k [--baseline DIR]   # a real data set already on disk

For each size it writes a synthetic data set once (image classification: class folders of
128x128 JPEGs of the built-in shapes, drawn from a pool of rendered images so that writing
half a million files takes minutes; translation: parallel text files `train.en`/`train.de`
of random sentences over a 20,000-word vocabulary, each German word a fixed spelling of its
English one, reordered in pairs; speech: a manifest of 8 kHz 16-bit WAV files of the built-in
DTMF clips, about 1.2 s each, drawn from a pool of rendered clips, trained with the FSDD
recipe's speed perturbation [0.9, 1.1]), then measures, each in a fresh process, at the
`small` preset:

- peak resident memory of the training process;
- seconds from the start of the process to the end of the first training step (listing,
  pipeline, model, tracing);
- the input pipeline's throughput with the model removed, against the training step rate,
  both in examples per second: the pipeline must keep up on 2 cores.

`--baseline DIR` measures the same with the code checked out in DIR (a `git worktree` of a
commit before streaming: 1bf6ae9 for images, f71b4ff for translation), whose loader reads
every example into memory first;
sizes whose decoded images would not fit in the free memory are reported, not run. Results go
to benchmarks/results/data_scale_<application>.json.
"""

import argparse
import dataclasses
import json
import os
import resource
import subprocess
import sys
import time

STARTED = time.time()
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
FILE_SIZE = 128  # pixels a side of the generated JPEGs


def generate_images(directory, count, seed=0, pool_size=600):
    """`count` JPEGs in class folders (a pool of rendered shapes, written again and again)."""
    import numpy as np
    import tensorflow as tf

    from applications.image_classification import builtin_data

    if os.path.isfile(os.path.join(directory, "done")):
        return
    rng = np.random.default_rng(seed)
    classes = builtin_data.CLASS_NAMES
    pool = []
    for index in range(pool_size):
        image = builtin_data.render(classes[index % len(classes)], FILE_SIZE, rng)
        pool.append(tf.io.encode_jpeg(image, quality=90).numpy())
    for name in classes:
        os.makedirs(os.path.join(directory, name), exist_ok=True)
    for number in range(count):
        index = int(rng.integers(pool_size))
        path = os.path.join(directory, classes[index % len(classes)], f"{number:07d}.jpg")
        with open(path, "wb") as handle:
            handle.write(pool[index])
    with open(os.path.join(directory, "done"), "w") as handle:
        handle.write(str(count))


def generate_text(directory, count, seed=0, words=20000):
    """`count` sentence pairs: random English-like words; German spells each word its own way
    and swaps neighbouring words, so there is something to learn."""
    import numpy as np

    if os.path.isfile(os.path.join(directory, "done")):
        return
    rng = np.random.default_rng(seed)
    syllables = np.array(["ka", "lo", "mi", "ne", "su", "ta", "ri", "po", "va", "de", "bu",
                          "ge", "fi", "ho", "ja", "zu"])
    english = ["".join(syllables[rng.integers(16, size=rng.integers(1, 4))]) + str(i % 7)
               for i in range(words)]
    german = [word[::-1].capitalize() for word in english]
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, "train.en"), "w") as en, \
            open(os.path.join(directory, "train.de"), "w") as de:
        for _ in range(count):
            chosen = rng.zipf(1.3, size=rng.integers(4, 24)) % words
            en.write(" ".join(english[w] for w in chosen) + "\n")
            swapped = [german[w] for w in chosen]
            for i in range(0, len(swapped) - 1, 2):
                swapped[i], swapped[i + 1] = swapped[i + 1], swapped[i]
            de.write(" ".join(swapped) + "\n")
    with open(os.path.join(directory, "done"), "w") as handle:
        handle.write(str(count))


def generate_clips(directory, count, seed=0, pool_size=400):
    """`count` WAV files and a `train.tsv` manifest (a pool of rendered clips, written again
    and again)."""
    import numpy as np
    import tensorflow as tf

    from applications.speech_recognition import builtin_data

    if os.path.isfile(os.path.join(directory, "done")):
        return
    waves, texts = builtin_data.generate_split(pool_size, 8000, seed)
    pool = [tf.audio.encode_wav(w[:, None], 8000).numpy() for w in waves]
    rng = np.random.default_rng(seed)
    os.makedirs(os.path.join(directory, "audio"), exist_ok=True)
    with open(os.path.join(directory, "train.tsv"), "w") as manifest:
        manifest.write("path\ttranscript\n")
        for number in range(count):
            index = int(rng.integers(pool_size))
            name = f"audio/{number:07d}.wav"
            with open(os.path.join(directory, name), "wb") as handle:
                handle.write(pool[index])
            manifest.write(f"{name}\t{texts[index]}\n")
    with open(os.path.join(directory, "done"), "w") as handle:
        handle.write(str(count))


def measure_clips(data_dir, steps=20, pipeline_batches=60):
    """One speech measurement in this process (see `measure_images`)."""
    import keras

    from applications.common.config import from_preset
    from applications.speech_recognition import data
    from applications.speech_recognition.config import PRESETS, SpeechRecognitionConfig
    from applications.speech_recognition.model import build_recognizer

    config = dataclasses.replace(from_preset(SpeechRecognitionConfig, PRESETS, "small"),
                                 speed_perturbation=(0.9, 1.1))
    keras.utils.set_random_seed(0)
    if hasattr(data, "training_batches"):  # streaming
        from applications.speech_recognition import clips

        splits = clips.list_clips(data_dir, config)
        vocabulary = data.build_vocabulary(splits["train"].all_transcripts())
        data.frame_boundaries(data.sample_lengths(splits["train"], config), config)  # as train.py
        train = data.training_batches(splits["train"], vocabulary, config)
        normalization = data.normalization_features(splits["train"], config)
        count = splits["train"].count
    else:  # the loader before streaming: every clip decoded (and perturbed) in memory
        splits = data.load_speech(data_dir, config)
        vocabulary = data.build_vocabulary(splits["train"][1])
        train = data.make_dataset(*splits["train"], vocabulary, config, training=True)
        normalization = train.map(lambda x, y: x["features"]).take(50)
        train = train.repeat()
        count = len(splits["train"][1]) // 3
    model = build_recognizer(config, len(vocabulary))
    model.adapt_normalization(normalization)
    model.compile(optimizer="adam")
    first_step, training, pipeline = _rates(model, train, config.batch_size, steps,
                                            pipeline_batches)
    return {"training_clips": count, "seconds_to_first_step": round(first_step, 1),
            "pipeline_clips_per_s": round(pipeline), "training_clips_per_s": round(training),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)}


# application -> (unit, default sizes, generate, measure, bytes an example takes in memory
# in the loader before streaming: uint8 images twice over while stacked; a pair's strings
# and ids several times; a clip's float32 samples, three speeds, and its cached features)
APPLICATIONS = {
    "image_classification": ("images", "5000,50000,500000", generate_images, "measure_images",
                             32 * 32 * 3 * 3),
    "translation": ("pairs", "20000,200000,2000000", generate_text, "measure_text", 3000),
    "speech_recognition": ("clips", "2000,20000,200000", generate_clips, "measure_clips",
                           int(1.2 * 8000 * 4 * 3 * 2)),
}


SETTLE = 40  # steps a new stream trains before its rate is timed


def _rates(model, train, batch_size, steps, pipeline_batches):
    """(seconds from the start of the process to the end of the first step, examples/s
    trained, examples/s of the pipeline alone). The training rate is timed step by step
    over `steps` steps, after the first `SETTLE` of the second `fit`. What happens between
    `fit` calls (a new iterator, the old one deleted, which can stall for 30-60 s on TF
    2.21: `iterator_stall.py`) is not the model's speed. Nor are a new stream's first
    steps: its pipeline fills its buffers as fast as it can, on the cores the model needs
    (speech's first 20 steps trained 82 clips/s, steps 21-160 104-147)."""
    import keras

    seconds = []

    class StepTimes(keras.callbacks.Callback):
        def on_train_batch_begin(self, batch, logs=None):
            self.began = time.time()

        def on_train_batch_end(self, batch, logs=None):
            seconds.append(time.time() - self.began)

    model.fit(train, steps_per_epoch=1, epochs=1, verbose=0)
    first_step = time.time() - STARTED
    model.fit(train, steps_per_epoch=SETTLE + steps, epochs=1, verbose=0,
              callbacks=[StepTimes()])
    training = steps * batch_size / sum(seconds[SETTLE:])
    batches = iter(train)
    for _ in range(5):
        next(batches)
    started = time.time()
    for _ in range(pipeline_batches):
        next(batches)
    return first_step, training, batch_size * pipeline_batches / (time.time() - started)


def measure_text(data_dir, steps=20, pipeline_batches=100):
    """One translation measurement in this process (see `measure_images`)."""
    import keras

    from applications.common.config import from_preset
    from applications.translation import data
    from applications.translation.config import PRESETS, TranslationConfig
    from applications.translation.model import build_translator
    from applications.translation.train import MaskedCrossEntropy
    from applications.translation.vocabularies import SentencePieceVocabulary

    config = from_preset(TranslationConfig, PRESETS, "small")
    keras.utils.set_random_seed(0)
    if hasattr(data, "training_batches"):  # streaming
        from applications.translation import corpus

        splits = corpus.list_corpus(data_dir, config)
        sample = data.sample_pairs(splits["train"], data.tokenizer_pairs(config))
        source_proto, target_proto = data.train_tokenizers(sample, config)
        source = SentencePieceVocabulary(source_proto, config.max_source_length)
        target = SentencePieceVocabulary(target_proto)
        train = data.training_batches(splits["train"], source, target, config)
        count = splits["train"].count
    else:  # the loader before streaming: every pair read and tokenized in memory
        pairs = data.load_corpus(data_dir, config)["train"]
        source_proto, target_proto = data.train_tokenizers(pairs, config)
        source = SentencePieceVocabulary(source_proto, config.max_source_length)
        target = SentencePieceVocabulary(target_proto)
        train = data.make_dataset(pairs, source, target, config, training=True)
        count = len(pairs)
    model = build_translator(config, source.size, target.size, target.pad_id)
    model.compile(optimizer="adam", loss=MaskedCrossEntropy(0.1, target.pad_id))
    first_step, training, pipeline = _rates(model, train, config.batch_size, steps,
                                            pipeline_batches)
    return {"training_pairs": count, "seconds_to_first_step": round(first_step, 1),
            "pipeline_pairs_per_s": round(pipeline), "training_pairs_per_s": round(training),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)}


def measure_images(data_dir, steps=30, pipeline_batches=100):
    """One measurement in this process: {peak_rss_mb, seconds_to_first_step, ...}."""
    import keras

    from applications.common.config import from_preset
    from applications.image_classification import data
    from applications.image_classification.config import PRESETS, ImageClassificationConfig
    from applications.image_classification.model import build_vit

    config = from_preset(ImageClassificationConfig, PRESETS, "small")
    keras.utils.set_random_seed(0)
    if hasattr(data, "list_images"):  # streaming
        splits, names = data.list_images(data_dir, config)
        train = data.training_batches(splits["train"], config, len(names))
        count = splits["train"].count
    else:  # the loader before streaming: every image decoded into memory
        splits, names = data.load_images(data_dir, config)
        train = data.make_dataset(*splits["train"], config, True, len(names))
        count = len(splits["train"][1])
    model = build_vit(config, len(names))
    model.compile(optimizer="adam", loss=keras.losses.CategoricalCrossentropy(from_logits=True))
    first_step, training, pipeline = _rates(model, train, config.batch_size, steps,
                                            pipeline_batches)
    return {"training_images": count, "seconds_to_first_step": round(first_step, 1),
            "pipeline_images_per_s": round(pipeline), "training_images_per_s": round(training),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)}


def _free_memory_bytes():
    with open("/proc/meminfo") as handle:
        for line in handle:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    return 0


def _measure_in_subprocess(application, data_dir, code_dir):
    environment = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=code_dir)
    result = subprocess.run(
        [sys.executable, os.path.abspath(__file__), application, "--measure", data_dir],
        cwd=code_dir, env=environment, capture_output=True, text=True)
    if result.returncode:
        return {"error": (result.stdout + result.stderr).strip().splitlines()[-1][:300]}
    return json.loads(result.stdout.strip().splitlines()[-1])


def _measure_named(args, path):
    """Measures the data set in --data and keeps its figures in the results file under
    "data_sets" / --name, beside the generated sizes."""
    if not args.name:
        sys.exit("--data needs --name, the name its figures are kept under")
    started = time.time()
    record = {"data": os.path.abspath(args.data),
              "streaming": _measure_in_subprocess(args.application, args.data, ROOT)}
    if args.baseline:
        record["in_memory"] = _measure_in_subprocess(args.application, args.data,
                                                     os.path.abspath(args.baseline))
    record["measured_in_s"] = round(time.time() - started)
    print(json.dumps(record), flush=True)
    kept = {}
    if os.path.exists(path):
        with open(path) as handle:
            kept = json.load(handle)
    kept.setdefault("data_sets", {})[args.name] = record
    with open(path, "w") as handle:
        json.dump(kept, handle, indent=1)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("application", choices=sorted(APPLICATIONS))
    parser.add_argument("--sizes", help="default 5000,50000,500000 images, "
                        "20000,200000,2000000 pairs or 2000,20000,200000 clips")
    parser.add_argument("--root", default="/tmp/tfformer_data_scale")
    parser.add_argument("--baseline", help="a checkout of the code before streaming")
    parser.add_argument("--data", help="measure this existing data set instead (e.g. the "
                        "spoken Multi30k of make_spoken_sentences.py), kept under --name")
    parser.add_argument("--name", help="the name --data's figures are kept under")
    parser.add_argument("--measure", metavar="DATA_DIR", help=argparse.SUPPRESS)
    args = parser.parse_args()
    unit, default_sizes, generate, measure, in_memory_bytes = APPLICATIONS[args.application]
    images = args.application == "image_classification"
    if args.measure:
        print(json.dumps(globals()[measure](args.measure)))
        return
    path = os.path.join(HERE, "results", f"data_scale_{args.application}.json")
    if args.data:
        _measure_named(args, path)
        return
    records = []
    for size in [int(s) for s in (args.sizes or default_sizes).split(",")]:
        directory = os.path.join(args.root, f"{unit}_{size}")
        started = time.time()
        generate(directory, size)
        record = {unit: size, "generated_in_s": round(time.time() - started),
                  "streaming": _measure_in_subprocess(args.application, directory, ROOT)}
        if args.baseline:
            needed = size * in_memory_bytes
            if needed > _free_memory_bytes():
                record["in_memory"] = {"not run": f"needs about {needed / 2**30:.1f} GiB"}
            else:
                record["in_memory"] = _measure_in_subprocess(
                    args.application, directory, os.path.abspath(args.baseline))
        print(json.dumps(record), flush=True)
        records.append(record)
    os.makedirs(os.path.join(HERE, "results"), exist_ok=True)
    earlier, kept = {}, {}
    if os.path.exists(path):  # sizes measured in another run are kept
        with open(path) as handle:
            kept = json.load(handle)
        earlier = {r[unit]: r for r in kept.pop("sizes")}
    for record in records:  # a size measured again without --baseline keeps its baseline
        if "in_memory" in earlier.get(record[unit], {}) and "in_memory" not in record:
            record["in_memory"] = earlier[record[unit]]["in_memory"]
    earlier.update({r[unit]: r for r in records})
    with open(path, "w") as handle:
        json.dump({**kept, "benchmark": "data_scale", "application": args.application,
                   "preset": "small", **({"file_size": FILE_SIZE} if images else {}),
                   "sizes": [earlier[size] for size in sorted(earlier)]}, handle, indent=1)


if __name__ == "__main__":
    main()
