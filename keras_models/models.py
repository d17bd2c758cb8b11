"""Builds backbones, classifiers and the pretraining model as flat functional tf_keras models.

Flat (no nested models) on purpose: tfmot's quantize_apply and the TFLite converter both want one
functional graph. A classifier reuses a pretrained backbone by layer name
(`transfer_backbone_weights`), since its backbone layers carry the same names.

Inputs are int32 `token_ids` and `segment_ids` of shape (batch, length); the padding mask is derived
from token_ids (PAD id 0).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from keras_models import layers
from keras_models.backend import keras
from keras_models.mamba import MambaMixer
from keras_models.presets import BACKBONE_CONFIG_FILE, BackboneConfig, read_backbone_config

MAMBA_NORM_EPSILON = 1e-5  # the Mamba paper's RMSNorm epsilon
TASK_HEAD_LAYERS = ("classifier_head", "mlm", "nsp")  # not part of the backbone


def _inputs(sequence_length: int | None):
    token_ids = keras.Input((sequence_length,), dtype="int32", name="token_ids")
    segment_ids = keras.Input((sequence_length,), dtype="int32", name="segment_ids")
    return token_ids, segment_ids


def _embbert_layer(config: BackboneConfig, i: int, x, padding_mask):
    x = layers.RMSNorm(name=f"norm_{i}")(x)
    block = layers.EmbBERTBlock(
        config.hidden_dim, config.kernel_size, config.expansion, config.dropout, name=f"block_{i}"
    )
    return block((x, padding_mask))


def _bert_layer(config: BackboneConfig, i: int, x, padding_mask):
    encoder = layers.TransformerEncoderLayer(
        config.hidden_dim,
        config.num_heads,
        config.intermediate_dim,
        config.dropout,
        name=f"encoder_{i}",
    )
    return encoder((x, padding_mask))


def _mamba_layer(config: BackboneConfig, i: int, x, padding_mask):
    """Pre-norm residual block. Causal: with right padding no real position sees a pad, and
    RMS pooling skips the pads."""
    del padding_mask
    normed = layers.RMSNorm(MAMBA_NORM_EPSILON, name=f"norm_{i}")(x)
    mixer = MambaMixer(
        config.hidden_dim,
        config.state_dim,
        config.kernel_size,
        config.expansion,
        name=f"mamba_{i}",
    )
    return keras.layers.Add(name=f"residual_{i}")([x, mixer(normed)])


# arch -> one layer of its stack, applied num_layers times (the embedders have no stack)
_LAYER_STACKS = {"embbert": _embbert_layer, "bert": _bert_layer, "mamba": _mamba_layer}


def _encode(config: BackboneConfig, token_ids, segment_ids):
    """Applies the backbone's layers; returns (sequence_output, padding_mask)."""
    padding_mask = layers.PaddingMask(name="padding_mask")(token_ids)
    x = layers.NanoEmbedder(
        config.vocabulary_size,
        config.hidden_dim,
        config.embedding_dim,
        config.max_sequence_length,
        name="embedder",
    )((token_ids, segment_ids))
    if config.arch in _LAYER_STACKS:
        for i in range(config.num_layers):
            x = _LAYER_STACKS[config.arch](config, i, x, padding_mask)
        if config.arch == "mamba":
            x = layers.RMSNorm(MAMBA_NORM_EPSILON, name="final_norm")(x)
    elif config.kernel_size:  # embedder + conv
        x = layers.CausalDepthwiseConv(config.kernel_size, name="embedder_conv")(x)
    return x, padding_mask


def build_backbone(config: BackboneConfig, sequence_length: int | None = None) -> keras.Model:
    """(token_ids, segment_ids) -> sequence output (batch, length, hidden_dim)."""
    token_ids, segment_ids = _inputs(sequence_length)
    x, _ = _encode(config, token_ids, segment_ids)
    return keras.Model(
        {"token_ids": token_ids, "segment_ids": segment_ids}, x, name=f"{config.arch}_backbone"
    )


def build_classifier(
    config: BackboneConfig, num_labels: int, sequence_length: int | None = None
) -> keras.Model:
    """(token_ids, segment_ids) -> logits (batch, num_labels); num_labels=1 is regression."""
    token_ids, segment_ids = _inputs(sequence_length)
    x, padding_mask = _encode(config, token_ids, segment_ids)
    if config.pooling == "first":
        pooled = layers.FirstToken(name="cls_token")(x)
    else:
        pooled = layers.RMSPooling(name="rms_pooling")((x, padding_mask))
    logits = keras.layers.Dense(num_labels, name="classifier_head")(pooled)
    return keras.Model(
        {"token_ids": token_ids, "segment_ids": segment_ids},
        logits,
        name=f"{config.arch}_classifier",
    )


def build_pretrainer(
    config: BackboneConfig, sequence_length: int | None = None, num_predictions: int | None = None
) -> keras.Model:
    """MLM on the masked slots + NSP on [CLS].

    Inputs: token_ids, segment_ids, mask_positions (batch, num_predictions) int32.
    Outputs: {"mlm": (batch, num_predictions, V) logits, "nsp": (batch, 2) logits}.
    """
    token_ids, segment_ids = _inputs(sequence_length)
    mask_positions = keras.Input((num_predictions,), dtype="int32", name="mask_positions")
    x, _ = _encode(config, token_ids, segment_ids)
    masked = layers.GatherPositions(name="gather_masked")((x, mask_positions))
    mlm = keras.layers.Dense(config.vocabulary_size, name="mlm")(masked)
    nsp = keras.layers.Dense(2, name="nsp")(layers.FirstToken(name="cls_token")(x))
    return keras.Model(
        {"token_ids": token_ids, "segment_ids": segment_ids, "mask_positions": mask_positions},
        {"mlm": mlm, "nsp": nsp},
        name=f"{config.arch}_pretrainer",
    )


def transfer_backbone_weights(source: keras.Model, target: keras.Model) -> list[str]:
    """Copies every backbone layer's weights from `source` to the same-named layer of `target`.

    Returns the copied layer names; raises ValueError naming the first layer that is missing or
    whose weight shapes differ.
    """
    copied = []
    target_layers = {layer.name: layer for layer in target.layers}
    for layer in source.layers:
        if not layer.weights or layer.name in TASK_HEAD_LAYERS:
            continue
        if layer.name not in target_layers:
            raise ValueError(f"backbone layer {layer.name!r} not found in {target.name}")
        source_shapes = [tuple(w.shape) for w in layer.weights]
        target_shapes = [tuple(w.shape) for w in target_layers[layer.name].weights]
        if source_shapes != target_shapes:
            raise ValueError(
                f"backbone layer {layer.name!r}: expected weight shapes {target_shapes}, "
                f"got {source_shapes}"
            )
        target_layers[layer.name].set_weights(layer.get_weights())
        copied.append(layer.name)
    return copied


def save_backbone(model: keras.Model, config: BackboneConfig, directory: str | os.PathLike) -> Path:
    """Writes backbone.keras + backbone_config.json (the backbone part of any model built here)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    backbone = build_backbone(config)
    transfer_backbone_weights(model, backbone)
    path = directory / "backbone.keras"
    backbone.save(path)
    (directory / BACKBONE_CONFIG_FILE).write_text(json.dumps(config.to_dict(), indent=2) + "\n")
    return path


def load_backbone(directory: str | os.PathLike) -> tuple[keras.Model, BackboneConfig]:
    directory = Path(directory)
    config = read_backbone_config(directory)
    model_path = directory / "backbone.keras"
    if not model_path.is_file():
        raise FileNotFoundError(f"{model_path}: backbone file not found")
    return keras.models.load_model(model_path), config
