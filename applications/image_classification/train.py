"""Training the ViT classifier: data, fit, evaluation, export."""

import math
import os

import keras
import numpy as np

from applications.common import bad_examples, distributed_fit, training_run
from applications.common.callbacks import progress_verbosity, standard_callbacks, use_export_weights
from applications.common.config import to_json
from applications.common.data_service import offloaded
from applications.common.precision import precision_policy
from applications.common.quantization import quantize_for_export
from applications.common.restore import write_run_info
from applications.common.schedules import warmup_cosine_schedule
from applications.common.strategy import input_worker
from applications.image_classification import data, evaluate, fine_tuning, serving
from applications.image_classification.model import build_vit
from tfformer.optimizers import AdamW


def train(config, data_dir=None, workdir="runs/image_classification",
          export_dir="saved_models/image_classification", strategy="auto", verbose="auto",
          mixed_precision="none", jit_compile=False, examples=5, resume="auto",
          init_from=None, data_service=None):
    """Trains, evaluates and exports; returns history, scores, export path, server.

    `init_from`: the directory of a finished or imported run (`tfformer import`) to start
    from: fine-tuning (see `fine_tuning`). `config` must have its architecture
    (`config.ARCHITECTURE`); the image size and the classes may change. `data_service`: a
    tf.data service dispatcher ("grpc://HOST:PORT") whose workers run the training input
    pipeline (`applications.common.data_service`)."""
    return training_run.run_training(
        _train, config, data_dir, workdir, export_dir, strategy, resume=resume, verbose=verbose,
        mixed_precision=mixed_precision, jit_compile=jit_compile, examples=examples,
        init_from=init_from, data_service=data_service)


def _train(config, data_dir, workdir, export_dir, strategy, backup_dir, verbose,
           mixed_precision, jit_compile, examples, init_from, data_service):
    keras.utils.set_random_seed(config.seed)
    splits, class_names = data.list_images(data_dir, config)
    os.makedirs(workdir, exist_ok=True)  # only once the data listed: a run's config stays
    with open(os.path.join(workdir, "config.json"), "w") as handle:
        handle.write(to_json(config))
    write_run_info(workdir, class_names=list(class_names), **fine_tuning.origin(init_from))
    print("data: " + ", ".join(f"{name} {split.count} images" for name, split in splits.items())
          + f"; {len(class_names)} classes at {config.image_size}x{config.image_size}")
    num_classes = len(class_names)
    worker = input_worker(strategy)
    if worker[1] > 1:
        share, how = splits["train"].share(*worker)
        print(f"worker {worker[0]} of {worker[1]} reads {share.count} of the "
              f"{splits['train'].count} training images (sharded {how})")
    steps = config.steps_per_epoch or math.ceil(splits["train"].count / config.batch_size)
    os.makedirs(backup_dir, exist_ok=True)
    bad_log = os.path.join(backup_dir, bad_examples.LOG_NAME)  # read back on resuming

    def train_data(resume_at):
        consumed = resume_at * steps * (config.batch_size // worker[1])
        start = data.training_start(splits["train"], config, consumed, worker, bad_log)
        if start:
            print(f"resuming at epoch {resume_at + 1}: the training stream starts at image "
                  f"{start} (counting every pass over the training images)")
        return offloaded(data.training_batches(
            splits["train"], config, num_classes, start, worker, bad_log,
            first_batch=consumed // config.batch_size, offloaded=bool(data_service)),
            data_service)

    val_data = data.one_hot(data.batches(splits["val"], config), num_classes)

    schedule = warmup_cosine_schedule(config.learning_rate, config.warmup_fraction,
                                      steps * config.epochs)
    with strategy.scope(), precision_policy(mixed_precision):
        model = build_vit(config, num_classes)
        if init_from:  # before compiling (no optimizer state to load); a backup is resumed over
            for note in fine_tuning.start_from(model, config, list(class_names), init_from):
                print(note)
        model.compile(
            optimizer=AdamW(schedule, weight_decay=config.weight_decay),
            loss=keras.losses.CategoricalCrossentropy(
                from_logits=True, label_smoothing=config.label_smoothing),
            metrics=[keras.metrics.CategoricalAccuracy(name="accuracy"),
                     keras.metrics.TopKCategoricalAccuracy(min(5, num_classes), name="top5")],
            jit_compile=jit_compile,
        )
    print(f"model: {model.count_params():,} parameters")
    verbose = progress_verbosity(verbose)
    callbacks = standard_callbacks(workdir, monitor="val_accuracy", mode="max",
                                   backup_dir=backup_dir)
    with bad_examples.bad_data_errors():
        history = distributed_fit.fit(
            model, strategy, train_data, epochs=config.epochs, steps_per_epoch=steps,
            validation_data=val_data, callbacks=callbacks, verbose=verbose,
            backup_dir=backup_dir)
    use_export_weights(model, workdir, config.export_weights)
    quantize_for_export(model, config.quantize, strategy)

    server = serving.ImageClassificationServer(model, class_names, config)
    split = "test" if "test" in splits and splits["test"].count else "val"
    with bad_examples.bad_data_errors():
        probabilities, labels = evaluate.classify_split(server.serve_pixels, splits[split],
                                                        config)
    scores = evaluate.scores(probabilities, labels)
    print(f"{split}: top-1 {scores['top1']:.1f}%, top-5 {scores['top5']:.1f}% "
          f"({len(labels)} images)")
    export_path = training_run.export_trained(serving.export, server, export_dir,
                                                 backup_dir)
    print(f"exported to {export_path}")
    for index in range(min(examples, len(labels))):
        predicted = int(np.argmax(probabilities[index]))
        print(f"  image {index}: {class_names[predicted]} "
              f"({probabilities[index, predicted]:.2f}), truly {class_names[labels[index]]}")
    return {"history": history.history, "scores": scores, "export_path": export_path,
            "server": server, "model": model, "class_names": class_names}
