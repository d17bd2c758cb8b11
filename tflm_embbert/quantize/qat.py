"""Quantization-aware training (tfmot, 8-bit) for the classifiers of keras_models.models.

`quantize_model(model)` wraps every layer of a `build_classifier` model in a tfmot QuantizeWrapper
with the `LayerQuantizeConfig` that `LAYER_QUANTIZE_CONFIGS` gives its class (the Dense head
included). A LayerQuantizeConfig names, by attribute path from the layer, which weights get a
fake-quant (Dense/EinsumDense kernels, depthwise kernels, the token table), which sublayers'
outputs get one, and whether the layer's own output does. Fake-quant points sit only on tensors
that exist in the int8 TFLite graph, so the converter keeps the trained ranges (a fake-quant on a
tensor the converter fuses away, e.g. the attention output before its lambda multiply, would
block the fusion). The remaining internal tensors (scores, softmax, SiLU, norm internals) get
their ranges from the representative dataset at conversion.

Activation ranges start from the first training batch (`ActivationQuantizer`), not from tfmot's
[-6, 6]; `quantize_model(model, calibration_inputs)` sets them (and the weight ranges) at once.

Integer inputs: tfmot's default scheme puts a QuantizeLayer (FakeQuant) after every InputLayer
whose consumer is annotated, which fails on int32 token ids. `IntegerInputsScheme` runs the same
default layout transforms but leaves integer InputLayers out of the transforms' candidate set, so
they are never matched; a float input would still be quantized as before.

Saving: `model.save("x.keras")` as usual; `load_qat_model(path)` loads it (tfmot QAT models do not
load from .keras as they come; see `_canonical_tracking`).
"""

from __future__ import annotations

import functools
import os

from keras_models import layers as L
from keras_models.backend import keras, tf

# isort: split
# tfmot after keras_models.backend, which selects tf_keras before TensorFlow is imported.
import tensorflow_model_optimization as tfmot
from tensorflow_model_optimization.python.core.quantization.keras.default_8bit import (
    default_8bit_quantize_layout_transform as layout_8bit,
)
from tensorflow_model_optimization.python.core.quantization.keras.default_8bit import (
    default_8bit_quantize_scheme as scheme_8bit,
)

quantizers = tfmot.quantization.keras.quantizers
QuantizeWrapper = tfmot.quantization.keras.QuantizeWrapper
_QuantizeWrapperV2 = tfmot.quantization.keras.QuantizeWrapperV2

__all__ = [
    "LAYER_QUANTIZE_CONFIGS",
    "IntegerInputsScheme",
    "LayerQuantizeConfig",
    "custom_objects",
    "load_qat_model",
    "quantize_model",
]


def _weight_quantizer():
    """Kernels: symmetric per-tensor int8 in [-127, 127], as TFLite's int8 weights."""
    return quantizers.LastValueQuantizer(
        num_bits=8, per_axis=False, symmetric=True, narrow_range=True
    )


def _table_quantizer():
    """Embedding tables: asymmetric per-tensor; GATHER's output shares the table's parameters."""
    return quantizers.LastValueQuantizer(
        num_bits=8, per_axis=False, symmetric=False, narrow_range=False
    )


class ActivationQuantizer(quantizers.Quantizer):
    """Asymmetric per-tensor 8-bit fake-quant of an activation, range from the data.

    tfmot's MovingAverageQuantizer starts its range at [-6, 6] and moves it by an EMA of decay
    0.999, so for the first thousands of steps a tensor of scale 1e-3 (the embedder's output)
    quantizes to zero. Here the first training batch sets the range (as PyTorch's observers do),
    then an EMA of `ema_decay` follows it. `prefix` keeps the variable names of several quantizers
    in one wrapper distinct (tfmot names every activation quantizer's "post_activation").
    """

    def __init__(self, ema_decay: float = 0.99, prefix: str = ""):
        self.ema_decay = ema_decay
        self.prefix = prefix

    def build(self, tensor_shape, name, layer):
        name = f"{self.prefix}_{name}" if self.prefix else name

        def add(suffix, value):
            return layer.add_weight(
                f"{name}_{suffix}",
                shape=(),
                trainable=False,
                initializer=keras.initializers.Constant(value),
            )

        return {
            "min_var": add("min", -6.0),
            "max_var": add("max", 6.0),
            "seen_var": add("seen", 0.0),
        }

    def __call__(self, inputs, training, weights, **kwargs):
        min_var, max_var, seen = weights["min_var"], weights["max_var"], weights["seen_var"]
        if training:
            batch_min = tf.minimum(tf.reduce_min(inputs), 0.0)  # 0 must be representable
            batch_max = tf.maximum(tf.reduce_max(inputs), 0.0)
            decay = self.ema_decay * seen  # 0 on the first batch: take the batch range

            def ema(var, value):
                return var.assign(decay * var + (1.0 - decay) * value)

            with tf.control_dependencies([ema(min_var, batch_min), ema(max_var, batch_max)]):
                with tf.control_dependencies([seen.assign(1.0)]):
                    return tf.quantization.fake_quant_with_min_max_vars(
                        inputs, min_var.read_value(), max_var.read_value(), num_bits=8
                    )
        return tf.quantization.fake_quant_with_min_max_vars(inputs, min_var, max_var, num_bits=8)

    def get_config(self):
        return {"ema_decay": self.ema_decay, "prefix": self.prefix}

    def __eq__(self, other):
        return isinstance(other, ActivationQuantizer) and self.get_config() == other.get_config()


def _resolve(layer, path: str):
    """`layer.a.b` for path "a.b"; returns (owner, attribute name)."""
    *owners, attribute = path.split(".")
    owner = functools.reduce(getattr, owners, layer)
    return owner, attribute


class LayerQuantizeConfig(tfmot.quantization.keras.QuantizeConfig):
    """QuantizeConfig for a (possibly composite) custom layer, by attribute paths.

    kernels: paths of weights quantized as kernels, e.g. "attention.query_dense.kernel".
    tables: paths of embedding tables, e.g. "token_embedding.embeddings".
    activations: paths of sublayers whose output, after their `activation`, is quantized, e.g.
        "intermediate" (the sublayer must have an `activation` attribute, as Dense has).
    quantize_output: whether the layer's own output gets a fake-quant.
    """

    def __init__(self, kernels=(), tables=(), activations=(), quantize_output=True):
        self.kernels = list(kernels)
        self.tables = list(tables)
        self.activations = list(activations)
        self.quantize_output = bool(quantize_output)

    def get_weights_and_quantizers(self, layer):
        pairs = [(getattr(*_resolve(layer, p)), _weight_quantizer()) for p in self.kernels]
        pairs += [(getattr(*_resolve(layer, p)), _table_quantizer()) for p in self.tables]
        return pairs

    def set_quantize_weights(self, layer, quantize_weights):
        paths = self.kernels + self.tables
        if len(quantize_weights) != len(paths):
            raise ValueError(
                f"{layer.name}: expected {len(paths)} quantized weights, "
                f"got {len(quantize_weights)}"
            )
        for path, weight in zip(paths, quantize_weights, strict=True):
            owner, attribute = _resolve(layer, path)
            setattr(owner, attribute, weight)

    def get_activations_and_quantizers(self, layer):
        return [
            (
                functools.reduce(getattr, path.split("."), layer).activation,
                ActivationQuantizer(prefix=path.replace(".", "_")),
            )
            for path in self.activations
        ]

    def set_quantize_activations(self, layer, quantize_activations):
        for path, activation in zip(self.activations, quantize_activations, strict=True):
            functools.reduce(getattr, path.split("."), layer).activation = activation

    def get_output_quantizers(self, layer):
        return [ActivationQuantizer()] if self.quantize_output else []

    def get_config(self):
        return {
            "kernels": self.kernels,
            "tables": self.tables,
            "activations": self.activations,
            "quantize_output": self.quantize_output,
        }

    def __eq__(self, other):
        return isinstance(other, LayerQuantizeConfig) and self.get_config() == other.get_config()


def _embbert_block_config(layer):
    # No fake-quant on the attention and conv-branch outputs: the converter folds lambda1 and
    # lambda2 into Wo/bo and Wc/bc, and a fake-quant between the Dense and the multiply would
    # block that fold. The block's output (after the subtraction) is quantized.
    return LayerQuantizeConfig(
        kernels=[
            "attention.query_dense.kernel",
            "attention.output_dense.kernel",
            "conv_branch.conv.conv.depthwise_kernel",
            "conv_branch.contract.kernel",
        ],
    )


def _transformer_config(layer):
    return LayerQuantizeConfig(
        kernels=[
            "self_attention._query_dense.kernel",
            "self_attention._key_dense.kernel",
            "self_attention._value_dense.kernel",
            "self_attention._output_dense.kernel",
            "intermediate.kernel",
            "ff_output.kernel",
        ],
        activations=["intermediate"],  # FC + ReLU: one int8 tensor after the fused ReLU
    )


def _embedder_config(layer):
    # The position table and its projection fold into one constant for a fixed length: no
    # fake-quant there, or the converter could not fold them.
    factorised = layer.token_projection is not None
    return LayerQuantizeConfig(
        kernels=["token_projection.kernel"] if factorised else [],
        tables=["token_embedding.embeddings"],
    )


def _no_output_config(layer):
    return LayerQuantizeConfig(quantize_output=False)


# Class name -> function(layer) -> its QuantizeConfig.
# - PaddingMask (exact 0/1) and FirstToken (a slice keeps its input's parameters): no fake-quant.
# - CausalDepthwiseConv: its output is the RESHAPE after DEPTHWISE_CONV_2D, which must keep the
#   conv's parameters; a fake-quant there made the converter fail ("quantization parameters
#   violate the same scale constraint"), so only its kernel is quantized.
LAYER_QUANTIZE_CONFIGS = {
    "PaddingMask": _no_output_config,
    "FirstToken": _no_output_config,
    "NanoEmbedder": _embedder_config,
    "RMSNorm": lambda layer: LayerQuantizeConfig(),
    "EmbBERTBlock": _embbert_block_config,
    "TransformerEncoderLayer": _transformer_config,
    "CausalDepthwiseConv": lambda layer: LayerQuantizeConfig(
        kernels=["conv.depthwise_kernel"], quantize_output=False
    ),
    "RMSPooling": lambda layer: LayerQuantizeConfig(),
    # Keras' Dense (the classifier head): as tfmot's default config, with ActivationQuantizer.
    "Dense": lambda layer: LayerQuantizeConfig(kernels=["kernel"]),
}


class _IntegerInputsLayoutTransform(layout_8bit.Default8BitQuantizeLayoutTransform):
    """tfmot's default 8-bit transforms, with integer InputLayers out of the candidate set."""

    def apply(self, model, layer_quantize_map):
        integer_inputs = {
            layer.name for layer in model._input_layers if tf.as_dtype(layer.dtype).is_integer
        }
        kept = {k: v for k, v in layer_quantize_map.items() if k not in integer_inputs}
        return super().apply(model, kept)


class IntegerInputsScheme(scheme_8bit.Default8BitQuantizeScheme):
    """Default 8-bit scheme that does not fake-quantize integer model inputs (token ids)."""

    def get_layout_transformer(self):
        return _IntegerInputsLayoutTransform()


def custom_objects() -> dict:
    """Objects a QAT model needs to deserialize (inside tfmot's quantize_scope)."""
    objects = {
        "LayerQuantizeConfig": LayerQuantizeConfig,
        "ActivationQuantizer": ActivationQuantizer,
    }
    objects.update(
        {
            name: getattr(L, name)
            for name in dir(L)
            if isinstance(getattr(L, name), type)
            and issubclass(getattr(L, name), keras.layers.Layer)
        }
    )
    return objects


def _annotate(layer):
    if isinstance(layer, keras.layers.InputLayer):
        return layer
    annotate = tfmot.quantization.keras.quantize_annotate_layer
    name = type(layer).__name__
    if name in LAYER_QUANTIZE_CONFIGS:
        return annotate(layer, quantize_config=LAYER_QUANTIZE_CONFIGS[name](layer))
    if type(layer).__module__.startswith(("tf_keras", "keras")):
        return annotate(layer)  # tfmot's default registry (Dense, Add, ...) or its own clear error
    raise ValueError(
        f"quantize_model: layer {layer.name!r} ({name}) has no QuantizeConfig; add one to "
        "tflm_embbert.quantize.qat.LAYER_QUANTIZE_CONFIGS"
    )


def _variables_of(layer) -> list:
    """Every variable a layer tracks, itself and its sublayers, including ones a quantize config
    has since replaced by fake-quantized tensors (held in the wrapper's `_weight_vars`)."""
    found = list(layer._trainable_weights) + list(layer._non_trainable_weights)
    for sub in layer._flatten_layers(include_self=False):
        found += list(sub._trainable_weights) + list(sub._non_trainable_weights)
    return found


def _canonical_tracking(wrapper) -> None:
    """Makes a wrapper's own variable lists canonical: its quantized weights, then the variables it
    created (optimizer step, quantizer ranges); the inner layer's variables stay tracked (and saved)
    by the inner layer only.

    Which inner variables QuantizeWrapper.build also lists among its own depends on how the wrapper
    came to be: quantize_apply wraps built layers, a .keras load wraps unbuilt ones, and a composite
    layer that builds its sublayers differs again. The .keras format saves each layer's own list by
    position, so loading failed ("expected 7 variables, but received 9"; tfmot's own QAT models
    fail the same way). With both sides canonical the lists, and the model's weight order that the
    optimizer's slots follow, agree.
    """
    quantized = [weight for weight, _, _ in wrapper._weight_vars]
    quantized_ids = {id(v) for v in quantized}
    inner_ids = {id(v) for v in _variables_of(wrapper.layer)} | quantized_ids

    def own(variables):
        return [v for v in variables if id(v) not in inner_ids]

    wrapper._trainable_weights = quantized + own(wrapper._trainable_weights)
    wrapper._non_trainable_weights = own(wrapper._non_trainable_weights)


class QuantizeWrapperV2(_QuantizeWrapperV2):
    """tfmot's QuantizeWrapperV2 with canonical variable tracking (see `_canonical_tracking`).

    `load_qat_model` deserializes QuantizeWrapperV2 layers as this class. It keeps tfmot's class
    name because the .keras format files each layer's weights under its snake-cased class name.
    """

    def build(self, input_shape):
        super().build(input_shape)
        _canonical_tracking(self)


def quantize_model(model: keras.Model, calibration_inputs=None) -> keras.Model:
    """QAT version of a flat functional classifier (weights copied; `model` is not modified).

    Every layer is wrapped; integer inputs stay unquantized. `calibration_inputs` (a batch of model
    inputs), if given, is run once in training mode to set every fake-quant range from the data, so
    the model predicts sensibly before its first training step. Compile the result before training.
    """
    if not model._is_graph_network:
        raise ValueError(f"quantize_model: {model.name} is not a functional model")
    with tfmot.quantization.keras.quantize_scope(custom_objects()):
        annotated = keras.models.clone_model(model, clone_function=_annotate)
        annotated.set_weights(model.get_weights())
        qat = tfmot.quantization.keras.quantize_apply(annotated, scheme=IntegerInputsScheme())
    for layer in qat.layers:
        if isinstance(layer, QuantizeWrapper):
            _canonical_tracking(layer)
    if calibration_inputs is not None:
        qat(calibration_inputs, training=True)
    return qat


def load_qat_model(path: str | os.PathLike, compile: bool = True) -> keras.Model:
    """Loads a QAT model saved with `model.save(path)` (.keras), optimizer state included."""
    # quantize_scope's own QuantizeWrapperV2 would win over ours: override it in an inner scope.
    with (
        tfmot.quantization.keras.quantize_scope(custom_objects()),
        keras.utils.custom_object_scope({"QuantizeWrapperV2": QuantizeWrapperV2}),
    ):
        return keras.models.load_model(path, compile=compile)
