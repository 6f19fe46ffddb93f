"""What a training command may ask for, and how a run fails, without importing TensorFlow
(so `tfformer --help` and config errors answer at once)."""

STRATEGIES = ("auto", "one_device", "mirrored", "multi_worker", "tpu")
PRECISIONS = {"none": "float32", "bf16": "mixed_bfloat16", "fp16": "mixed_float16"}


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the message names the step."""


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C during a run; the message says what the same command will do. `epoch` and
    `step` (1-based) say where training stood, when it had started."""

    def __init__(self, message="", epoch=None, step=None):
        super().__init__(message)
        self.epoch, self.step = epoch, step


class ExportFailed(OSError):
    """Writing an export failed after training (a full disk, a directory made read-only);
    the message names the directory, the error, and that the trained run is kept."""
