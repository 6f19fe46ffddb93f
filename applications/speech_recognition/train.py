"""Training the speech recognizer: data, fit with CTC, evaluation, export."""

import os

import keras
import tensorflow as tf

from applications.common import distributed_fit, training_run
from applications.common.callbacks import progress_verbosity, standard_callbacks, use_export_weights
from applications.common.config import to_json
from applications.common.precision import precision_policy
from applications.common.quantization import quantize_for_export
from applications.common.restore import write_run_info
from applications.common.sampling import evenly_spread
from applications.common.schedules import warmup_cosine_schedule
from applications.speech_recognition import data, evaluate, serving
from applications.speech_recognition.decoding import check_decoding
from applications.speech_recognition.model import build_recognizer
from tfformer.optimizers import AdamW


def train(config, data_dir=None, workdir="runs/speech_recognition",
          export_dir="saved_models/speech_recognition", strategy="auto", verbose="auto",
          mixed_precision="none", jit_compile=False, examples=5, resume="auto"):
    """Trains, evaluates and exports; returns history, scores, export path, server."""
    return training_run.run_training(
        _train, config, data_dir, workdir, export_dir, strategy, resume=resume, verbose=verbose,
        mixed_precision=mixed_precision, jit_compile=jit_compile, examples=examples)


def _normalization_sample(split, count):
    """(waveforms, transcripts) of at most `count` clips, evenly spread (`evenly_spread`):
    the global statistics need a sample, not the whole data set."""
    waveforms, transcripts = split
    chosen = evenly_spread(list(range(len(transcripts))), count)
    return [waveforms[i] for i in chosen], [transcripts[i] for i in chosen]


def _train(config, data_dir, workdir, export_dir, strategy, backup_dir, verbose,
           mixed_precision, jit_compile, examples):
    keras.utils.set_random_seed(config.seed)
    check_decoding(config.beam_size, config.lexicon_decoding)
    splits = data.load_speech(data_dir, config)
    os.makedirs(workdir, exist_ok=True)  # only once the data loaded: a run's config stays
    with open(os.path.join(workdir, "config.json"), "w") as handle:
        handle.write(to_json(config))
    print("data: " + ", ".join(
        f"{split} {len(waves)} clips ({sum(len(w) for w in waves) / config.sample_rate / 60:.1f} min)"
        for split, (waves, _) in splits.items()))
    vocabulary = data.build_vocabulary(splits["train"][1], config.output_units)
    lexicon = (data.build_vocabulary(splits["train"][1], "words")
               if config.lexicon_decoding else None)
    write_run_info(workdir, vocabulary=list(vocabulary), lexicon=lexicon)
    train_data = data.make_dataset(*splits["train"], vocabulary, config, training=True)
    val_data = data.make_dataset(*splits["val"], vocabulary, config, training=False)
    # Bucketing hides the batch count; stating it keeps Keras from warning that data ran out.
    val_data = val_data.apply(
        tf.data.experimental.assert_cardinality(distributed_fit.count_batches(val_data)))
    steps = config.steps_per_epoch or distributed_fit.count_batches(train_data)
    train_data = train_data.repeat()

    schedule = warmup_cosine_schedule(config.learning_rate, config.warmup_fraction,
                                      steps * config.epochs)
    with strategy.scope(), precision_policy(mixed_precision):
        model = build_recognizer(config, len(vocabulary))
        model.adapt_normalization(data.make_dataset(
            *_normalization_sample(splits["train"], config.normalization_sample), vocabulary,
            config, False).map(lambda x, y: x["features"]))
        model.compile(
            optimizer=AdamW(schedule, weight_decay=config.weight_decay,
                            clipnorm=config.gradient_clip_norm),
            jit_compile=jit_compile)
    print(f"model: {model.count_params():,} parameters; vocabulary {vocabulary}")
    callbacks = standard_callbacks(workdir, backup_dir=backup_dir)
    history = distributed_fit.fit(
        model, strategy, train_data, epochs=config.epochs, steps_per_epoch=steps,
        validation_data=val_data,
        callbacks=callbacks, verbose=progress_verbosity(verbose), backup_dir=backup_dir)
    use_export_weights(model, workdir, config.export_weights)
    quantize_for_export(model, config.quantize, strategy)

    server = serving.SpeechServer(model, vocabulary, config, lexicon=lexicon)
    split = "test" if splits["test"][0] else "val"
    waveforms, references = splits[split]
    hypotheses = evaluate.transcribe_batches(server.serve, waveforms, config.sample_rate)
    scores = evaluate.score(hypotheses, references)
    print(f"{split}: WER {scores['wer']:.2f}%, CER {scores['cer']:.2f}%, "
          f"exact {scores['exact']:.1f}% ({len(references)} clips)")
    export_path = training_run.export_trained(serving.export, server, export_dir,
                                                 backup_dir)
    print(f"exported to {export_path}")
    if server.streaming_refusal:
        print("this model cannot stream live audio, so the export has no stream_start and "
              f"stream_step signatures: {server.streaming_refusal}")
    for reference, hypothesis in list(zip(references, hypotheses))[:examples]:
        print(f"  {reference!r} -> {hypothesis!r}")
    return {"history": history.history, "scores": scores, "export_path": export_path,
            "server": server, "model": model, "vocabulary": vocabulary}
