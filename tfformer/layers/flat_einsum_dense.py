"""An EinsumDense whose projections are one 2-D matmul, forward and backward."""

import keras
from keras import ops


def _flat_split(equation):
    """For "abc,cde->abde": (2, 1), the input's leading and contracted axis counts, when
    the input's trailing axes are the kernel's leading ones, in order, and the output is
    the input's leading axes then the kernel's other axes; else None."""
    operands, output = equation.replace(" ", "").split("->")
    inputs, kernel = operands.split(",")
    contracted = "".join(axis for axis in inputs if axis in kernel and axis not in output)
    lead = inputs[:len(inputs) - len(contracted)]
    if (not contracted or "." in equation or not inputs.endswith(contracted)
            or not kernel.startswith(contracted)
            or output != lead + kernel[len(contracted):]):
        return None
    return len(lead), len(contracted)


@keras.saving.register_keras_serializable(package="tfformer")
class FlatEinsumDense(keras.layers.EinsumDense):
    """`keras.layers.EinsumDense` that runs a projection as one 2-D matmul.

    For equations that contract the input's trailing axes with the kernel's
    leading ones, such as attention's "abc,cde->abde" (B, T, D) -> (B, T, N, H)
    and "abcd,cde->abe" (B, T, N, H) -> (B, T, D), the input is flattened to
    (B * T, D), multiplied by the kernel as a (D, N * H) matrix and reshaped
    back. TensorFlow runs Keras' einsum as a batch matmul that broadcasts the
    kernel over B, and that matmul's kernel gradient is B products of
    (D, T) @ (T, N * H) summed afterwards: at B = 64, T = 64 the sum alone took
    a millisecond per projection (`benchmarks/profile_training.py`). Here the
    gradient is one matmul. The bias is added after the reshape: grappler would
    otherwise fuse it into oneDNN's bfloat16 matmul-plus-bias, which measured
    2.84 ms against 2.08 for the matmul and the add apart. Same weights and
    config as Keras' layer, and its outputs to float rounding; other equations,
    and quantized layers, run Keras' code. Quantization (`Model.quantize` with
    "int8", "float8", "int4") and LoRA (`enable_lora`) work as on Keras' layer:
    the kernel is read through Keras' `kernel` property, which adds the LoRA
    update, and a quantized layer is called through Keras' `quantized_call`.

    Shapes: as `keras.layers.EinsumDense`.

    Example:
        >>> layer = FlatEinsumDense("abc,cde->abde", (None, 2, 4), bias_axes="de")
        >>> tuple(layer(ops.ones((3, 5, 8))).shape)
        (3, 5, 2, 4)
    """

    def __init__(self, equation, output_shape, **kwargs):
        super().__init__(equation, output_shape, **kwargs)
        self._split = _flat_split(equation)

    def quantize(self, mode=None, type_check=True, config=None):
        # Keras quantizes only its exact class unless a subclass opts in, since a subclass
        # may change `call`. This class opts in (it keeps EinsumDense's weights, and
        # quantized layers run Keras' calls); its own subclasses must opt in for themselves.
        super().quantize(mode, type_check=type_check and type(self) is not FlatEinsumDense,
                         config=config)

    def call(self, inputs, training=None):
        if self._split is None:
            return super().call(inputs, training=training)
        lead, contracted = self._split
        kernel = self.kernel
        depth = 1
        for size in kernel.shape[:contracted]:
            depth *= size
        outputs = ops.matmul(ops.reshape(inputs, (-1, depth)), ops.reshape(kernel, (depth, -1)))
        lead_shape = [ops.shape(inputs)[axis] for axis in range(lead)]
        outputs = ops.reshape(outputs, (*lead_shape, *kernel.shape[contracted:]))
        if self.bias is not None:
            outputs = ops.add(outputs, self.bias)
        if self.activation is not None:
            outputs = self.activation(outputs)
        return outputs
