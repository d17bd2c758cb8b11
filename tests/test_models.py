"""Presets' parameter counts, model builders, weight transfer and the .keras round trip."""

import json
import subprocess
import sys

import numpy as np
import pytest

from keras_models.models import (
    build_backbone,
    build_classifier,
    build_pretrainer,
    load_backbone,
    save_backbone,
    transfer_backbone_weights,
)
from keras_models.presets import PRESETS, BackboneConfig, get_config
from tests.conftest import subprocess_env, tiny_config

# The reference's counts (../shared/notes/embbert-reference.md), derived by hand there:
# embbert = 139,648 embedder + 4 x 54,400 blocks. Written out here, not read from PRESETS, so a
# change to either side is caught.
REFERENCE_COUNTS = {
    "embbert": 139_648 + 4 * 54_400,
    "bert_2mb": 288_720,
    "nanobert": 269_898,
    "embedder": 291_776,
    "embedder_conv": 297_216,
    # plain tables 2048*64 + 256*64 + 3*64 = 147,648; per block: RMSNorm 64, W_in 64*128,
    # conv 64*4 + 64, W_x 64*(4 + 2*6), W_dt 4*64 + b_dt 64, A_log 64*6, D 64, W_out 64*64
    # = 14,464; then the final RMSNorm 64.
    "mamba_2mb": 147_648 + 5 * 14_464 + 64,
}


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_preset_backbone_parameter_count(preset):
    assert build_backbone(get_config(preset)).count_params() == REFERENCE_COUNTS[preset]
    assert PRESETS[preset]["params"] == REFERENCE_COUNTS[preset]


def test_embbert_count_is_357248_and_per_layer_54400():
    config = get_config("embbert")
    assert build_backbone(config).count_params() == 357_248
    one_layer = build_backbone(config.replace(num_layers=1)).count_params()
    assert build_backbone(config.replace(num_layers=2)).count_params() - one_layer == 54_400


def test_classifier_and_pretrainer_shapes():
    config = tiny_config()
    ids = np.full((3, 10), 7, "int32")
    segments = np.ones_like(ids)
    logits = build_classifier(config, 5)({"token_ids": ids, "segment_ids": segments})
    assert logits.shape == (3, 5)
    pretrainer = build_pretrainer(config, 10, 2)
    out = pretrainer({"token_ids": ids, "segment_ids": segments,
                      "mask_positions": np.zeros((3, 2), "int32")})
    assert out["mlm"].shape == (3, 2, config.vocabulary_size)
    assert out["nsp"].shape == (3, 2)


def test_rms_pooling_preset_builds_classifier():
    config = tiny_config(arch="embedder", num_layers=0, kernel_size=3, pooling="rms")
    model = build_classifier(config, 2)
    assert "rms_pooling" in [layer.name for layer in model.layers]


def test_transfer_backbone_weights_copies_all_backbone_layers(tmp_path):
    config = tiny_config()
    pretrainer = build_pretrainer(config)
    save_backbone(pretrainer, config, tmp_path)
    backbone, loaded_config = load_backbone(tmp_path)
    assert loaded_config == config
    classifier = build_classifier(config, 3)
    copied = transfer_backbone_weights(backbone, classifier)
    assert set(copied) == {layer.name for layer in backbone.layers if layer.weights}
    for name in copied:
        for a, b in zip(pretrainer.get_layer(name).get_weights(),
                        classifier.get_layer(name).get_weights(), strict=True):
            np.testing.assert_array_equal(a, b)


def test_transfer_rejects_shape_mismatch():
    source = build_backbone(tiny_config(hidden_dim=16))
    target = build_classifier(tiny_config(hidden_dim=24), 2)
    with pytest.raises(ValueError, match="expected weight shapes"):
        transfer_backbone_weights(source, target)


def test_config_rejects_bad_values():
    with pytest.raises(ValueError, match="arch"):
        BackboneConfig(arch="lstm")
    with pytest.raises(ValueError, match="unknown keys"):
        BackboneConfig.from_dict({"hidden": 3})
    with pytest.raises(ValueError, match="preset"):
        get_config("gpt")


RELOAD_SCRIPT = """
import json, sys
import numpy as np
from keras_models.backend import keras
import keras_models.layers  # registers the custom layers
model = keras.models.load_model(sys.argv[1])
data = np.load(sys.argv[2])
out = model.predict({"token_ids": data["ids"], "segment_ids": data["segments"]}, verbose=0)
np.save(sys.argv[3], out)
"""


@pytest.mark.parametrize("overrides", [{}, {"arch": "bert", "num_heads": 2, "intermediate_dim": 32},
                                       {"arch": "embedder", "num_layers": 0, "kernel_size": 3,
                                        "pooling": "rms"}], ids=["embbert", "bert", "embedder"])
def test_keras_round_trip_in_fresh_process(tmp_path, overrides):
    model = build_classifier(tiny_config(**overrides), 4)
    rng = np.random.default_rng(0)
    ids = rng.integers(5, 120, (4, 12)).astype("int32")
    ids[:, 9:] = 0
    segments = (ids > 0).astype("int32")
    expected = model.predict({"token_ids": ids, "segment_ids": segments}, verbose=0)
    model.save(tmp_path / "model.keras")
    np.savez(tmp_path / "inputs.npz", ids=ids, segments=segments)
    subprocess.run(
        [sys.executable, "-c", RELOAD_SCRIPT, str(tmp_path / "model.keras"),
         str(tmp_path / "inputs.npz"), str(tmp_path / "out.npy")],
        check=True, env=subprocess_env(), capture_output=True,
    )
    np.testing.assert_array_equal(np.load(tmp_path / "out.npy"), expected)
    assert json.loads(json.dumps(model.get_config()))  # config is plain JSON
