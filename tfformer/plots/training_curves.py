"""Training curves from a run's TensorBoard logs."""

import os

from tfformer.plots.figures import pyplot, save


def read_scalars(logdir):
    """{"train/epoch_loss": [(step, value), ...], ...} from TensorBoard logs under `logdir`."""
    import tensorflow as tf
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    curves = {}
    for root, _, files in os.walk(logdir):
        if not any(name.startswith("events.out.tfevents") for name in files):
            continue
        run = os.path.relpath(root, logdir)
        accumulator = EventAccumulator(root, size_guidance={"tensors": 0, "scalars": 0})
        accumulator.Reload()
        for tag in accumulator.Tags().get("tensors", []):
            events = accumulator.Tensors(tag)
            values = [(e.step, float(tf.make_ndarray(e.tensor_proto))) for e in events]
            if values:
                curves[f"{run}/{tag}"] = values
        for tag in accumulator.Tags().get("scalars", []):
            curves[f"{run}/{tag}"] = [(e.step, e.value) for e in accumulator.Scalars(tag)]
    if not curves:
        raise FileNotFoundError(f"no TensorBoard scalars under {logdir}")
    return curves


def plot_training_curves(logdir, path="training_curves.png"):
    """One panel per metric (loss, learning rate, accuracy, ...), train and validation
    together. Returns the curves drawn."""
    curves = {name: values for name, values in read_scalars(logdir).items()
              if name.split("/")[-1].startswith("epoch_")}
    metrics = sorted({name.split("/")[-1] for name in curves})
    plt = pyplot()
    figure, axes = plt.subplots(1, len(metrics), figsize=(4.5 * len(metrics), 3.8),
                                squeeze=False)
    for axis, metric in zip(axes[0], metrics):
        for name, values in sorted(curves.items()):
            if name.split("/")[-1] == metric:
                steps, ys = zip(*values)
                axis.plot(steps, ys, marker="o", label=name.split("/")[0])
        axis.set(title=metric.removeprefix("epoch_"), xlabel="epoch")
        axis.legend()
    figure.tight_layout()
    save(figure, path)
    return curves
