"""What a training command may ask for, and how a run fails, without importing TensorFlow
(so `tfformer --help` and config errors answer at once)."""

STRATEGIES = ("auto", "one_device", "mirrored", "multi_worker", "tpu")
PRECISIONS = {"none": "float32", "bf16": "mixed_bfloat16", "fp16": "mixed_float16"}


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the message names the step."""
