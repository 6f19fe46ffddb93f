"""Training the speech recognizer: data, fit with CTC, evaluation, export."""

import math
import os

import keras

from applications.common import bad_examples, distributed_fit, training_run
from applications.common.callbacks import progress_verbosity, standard_callbacks, use_export_weights
from applications.common.config import to_json
from applications.common.data_service import offloaded
from applications.common.precision import precision_policy
from applications.common.quantization import quantize_for_export
from applications.common.restore import write_run_info
from applications.common.schedules import warmup_cosine_schedule
from applications.common.strategy import input_worker
from applications.speech_recognition import clips, data, evaluate, serving
from applications.speech_recognition.decoding import check_decoding
from applications.speech_recognition.model import build_recognizer
from tfformer.optimizers import AdamW


def train(config, data_dir=None, workdir="runs/speech_recognition",
          export_dir="saved_models/speech_recognition", strategy="auto", verbose="auto",
          mixed_precision="none", jit_compile=False, examples=5, resume="auto",
          data_service=None):
    """Trains, evaluates and exports; returns history, scores, export path, server.
    `data_service`: a tf.data service dispatcher ("grpc://HOST:PORT") whose workers run the
    training input pipeline (`applications.common.data_service`)."""
    return training_run.run_training(
        _train, config, data_dir, workdir, export_dir, strategy, resume=resume, verbose=verbose,
        mixed_precision=mixed_precision, jit_compile=jit_compile, examples=examples,
        data_service=data_service)


def _train(config, data_dir, workdir, export_dir, strategy, backup_dir, verbose,
           mixed_precision, jit_compile, examples, data_service):
    keras.utils.set_random_seed(config.seed)
    check_decoding(config.beam_size, config.lexicon_decoding)
    splits = clips.list_clips(data_dir, config)
    os.makedirs(workdir, exist_ok=True)  # only once the data listed: a run's config stays
    with open(os.path.join(workdir, "config.json"), "w") as handle:
        handle.write(to_json(config))
    print("data: " + ", ".join(f"{name} {split.count} clips" for name, split in splits.items()))
    transcripts = splits["train"].all_transcripts()  # text only: one pass at most
    vocabulary = data.training_vocabulary(transcripts, config)
    lexicon = data.build_vocabulary(transcripts, "words") if config.lexicon_decoding else None
    write_run_info(workdir, vocabulary=list(vocabulary), lexicon=lexicon)
    with bad_examples.bad_data_errors():
        boundaries = data.frame_boundaries(data.sample_lengths(splits["train"], config),
                                           config)
    worker = input_worker(strategy)
    if worker[1] > 1:
        share, how = splits["train"].share(*worker)
        print(f"worker {worker[0]} of {worker[1]} reads {share.count} of the "
              f"{splits['train'].count} training clips (sharded {how})")
    streamed = data.source(splits["train"], config, training=True).count
    steps = config.steps_per_epoch or math.ceil(streamed / config.batch_size)
    os.makedirs(backup_dir, exist_ok=True)
    skipped_log = os.path.join(backup_dir, bad_examples.LOG_NAME)  # read back on resuming

    def train_data(resume_at):
        consumed = resume_at * steps * (config.batch_size // worker[1])
        start = data.training_start(splits["train"], config, consumed, worker, skipped_log)
        if start[0]:
            print(f"resuming at epoch {resume_at + 1}: the training stream starts at clip "
                  f"{start[0]} (counting every pass over the training clips)")
        return offloaded(data.training_batches(
            splits["train"], vocabulary, config, start, worker, skipped_log,
            offloaded=bool(data_service)), data_service)

    val_data = data.batches(splits["val"], vocabulary, config, boundaries)

    schedule = warmup_cosine_schedule(config.learning_rate, config.warmup_fraction,
                                      steps * config.epochs)
    with strategy.scope(), precision_policy(mixed_precision):
        model = build_recognizer(config, len(vocabulary))
        with bad_examples.bad_data_errors():
            model.adapt_normalization(data.normalization_features(splits["train"], config))
        model.compile(
            optimizer=AdamW(schedule, weight_decay=config.weight_decay,
                            clipnorm=config.gradient_clip_norm),
            jit_compile=jit_compile)
    print(f"model: {model.count_params():,} parameters; vocabulary {vocabulary}")
    callbacks = standard_callbacks(workdir, backup_dir=backup_dir)
    with bad_examples.bad_data_errors():
        history = distributed_fit.fit(
            model, strategy, train_data, epochs=config.epochs, steps_per_epoch=steps,
            validation_data=val_data,
            callbacks=callbacks, verbose=progress_verbosity(verbose), backup_dir=backup_dir)
    use_export_weights(model, workdir, config.export_weights)
    quantize_for_export(model, config.quantize, strategy)

    server = serving.SpeechServer(model, vocabulary, config, lexicon=lexicon)
    split = "test" if splits["test"].count else "val"
    with bad_examples.bad_data_errors():
        waveforms, references = data.read_split(splits[split], config)
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
