"""Layer behaviour: shapes, masking, causality, lambdas, config round trips."""

import numpy as np
import pytest

from keras_models import layers
from keras_models.backend import keras, tf
from keras_models.models import build_backbone
from tests.conftest import tiny_config


def _ids(batch=2, length=12, real=8, vocab=120, seed=0):
    rng = np.random.default_rng(seed)
    ids = rng.integers(5, vocab, (batch, length)).astype("int32")
    ids[:, 0] = 2
    ids[:, real:] = 0
    segments = np.where(ids > 0, 1, 0).astype("int32")
    return ids, segments


def test_backbone_output_shape():
    config = tiny_config()
    model = build_backbone(config)
    ids, segments = _ids()
    out = model({"token_ids": ids, "segment_ids": segments})
    assert out.shape == (2, 12, config.hidden_dim)


def test_padded_tokens_do_not_change_real_positions():
    """Padding is at the end, keys are masked and the conv is causal: more padding, or garbage
    segment ids under the padding, leaves every real position's output unchanged."""
    for preset_overrides in ({}, {"arch": "bert", "num_heads": 2, "intermediate_dim": 32}):
        model = build_backbone(tiny_config(**preset_overrides))
        ids, segments = _ids(length=12, real=7)
        short = model({"token_ids": ids, "segment_ids": segments}).numpy()
        longer_ids = np.pad(ids, ((0, 0), (0, 9)))
        garbage_segments = np.pad(segments, ((0, 0), (0, 9)), constant_values=2)
        garbage_segments[:, 7:] = 2
        longer = model({"token_ids": longer_ids, "segment_ids": garbage_segments}).numpy()
        np.testing.assert_allclose(longer[:, :7], short[:, :7], atol=1e-5)
        # And the real positions do depend on the real tokens (the test can fail).
        changed = ids.copy()
        changed[:, 3] = (changed[:, 3] + 1 - 5) % 115 + 5
        other = model({"token_ids": changed, "segment_ids": segments}).numpy()
        assert np.abs(other[:, :7] - short[:, :7]).max() > 1e-4


def test_attention_ignores_padded_keys():
    attention = layers.EfficientAttention(16, dropout=0.0)
    x = np.random.default_rng(0).normal(size=(1, 6, 16)).astype("float32")
    mask = np.array([[1, 1, 1, 1, 0, 0]], "float32")
    out = attention((x, mask)).numpy()
    x2 = x.copy()
    x2[:, 4:] = 100.0
    out2 = attention((x2, mask)).numpy()
    np.testing.assert_allclose(out2[:, :4], out[:, :4], atol=1e-5)


def test_conv_branch_is_causal():
    branch = layers.CausalConvBranch(hidden_dim=8, kernel_size=3)
    x = np.random.default_rng(1).normal(size=(1, 10, 8)).astype("float32")
    base = branch(x).numpy()
    x2 = x.copy()
    x2[:, 6] += 1.0
    moved = branch(x2).numpy()
    np.testing.assert_allclose(moved[:, :6], base[:, :6], atol=1e-6)
    # Position i sees i-k+1..i: 6, 7, 8 change, 9 does not.
    assert np.abs(moved[:, 6:9] - base[:, 6:9]).min() > 0
    np.testing.assert_allclose(moved[:, 9], base[:, 9], atol=1e-6)


def test_weighted_difference_uses_exp_lambdas():
    combine = layers.WeightedDifference()
    a = np.ones((1, 2, 4), "float32")
    b = 2 * np.ones((1, 2, 4), "float32")
    out = combine((a, b)).numpy()
    q1, k1, q2, k2 = (w.numpy() for w in combine.weights)
    expected = np.exp(q1 @ k1) * a - np.exp(q2 @ k2) * b
    np.testing.assert_allclose(out, expected, rtol=1e-5)
    assert not np.allclose(q1, q2)  # each vector drawn independently


def test_rms_norm_matches_formula():
    norm = layers.RMSNorm(epsilon=1e-6)
    x = np.random.default_rng(2).normal(size=(2, 3, 5)).astype("float32")
    out = norm(x).numpy()
    expected = x / np.sqrt(np.mean(x**2, axis=-1, keepdims=True) + 1e-6)
    np.testing.assert_allclose(out, expected, rtol=1e-5)


def test_rms_pooling_ignores_padding():
    pool = layers.RMSPooling()
    x = np.random.default_rng(3).normal(size=(1, 5, 4)).astype("float32")
    mask = np.array([[1, 1, 1, 0, 0]], "float32")
    out = pool((x, mask)).numpy()
    np.testing.assert_allclose(out[0], np.sqrt(np.mean(x[0, :3] ** 2, axis=0) + 1e-6), rtol=1e-5)


def test_rms_pooling_caps_rsqrt_of_a_nearly_silent_feature():
    pool = layers.RMSPooling(max_rsqrt=16.0)
    x = np.full((1, 4, 2), 0.5, "float32")
    x[..., 1] = 1e-3  # total 4e-6: rsqrt would be ~500
    out = pool((x, np.ones((1, 4), "float32"))).numpy()[0]
    assert out[0] == pytest.approx(0.5, rel=1e-5)  # total 1.0: rsqrt 1, not capped
    total = 4 * 1e-6 + 4 * 1e-6  # x^2 summed + epsilon * count
    assert out[1] == pytest.approx(total * 16.0 / 2.0, rel=1e-4)  # total * cap * rsqrt(4)


LAYER_CASES = [
    (layers.PaddingMask, {"pad_id": 0}),
    (layers.NanoEmbedder, {"vocabulary_size": 50, "hidden_dim": 8, "embedding_dim": 4,
                           "max_sequence_length": 16, "num_segments": 3}),
    (layers.RMSNorm, {"epsilon": 1e-5}),
    (layers.EfficientAttention, {"hidden_dim": 8, "dropout": 0.1}),
    (layers.CausalDepthwiseConv, {"kernel_size": 3, "depth_multiplier": 2, "activation": "silu"}),
    (layers.CausalConvBranch, {"hidden_dim": 8, "kernel_size": 3, "expansion": 2}),
    (layers.WeightedDifference, {"init_std": 0.2, "folded": True}),
    (layers.EmbBERTBlock, {"hidden_dim": 8, "kernel_size": 3, "expansion": 1, "dropout": 0.1,
                           "lambda_init_std": 0.1, "folded": False}),
    (layers.TransformerEncoderLayer, {"hidden_dim": 8, "num_heads": 2, "intermediate_dim": 16,
                                      "dropout": 0.1, "layer_norm_epsilon": 1e-12}),
    (layers.FirstToken, {}),
    (layers.RMSPooling, {"epsilon": 1e-6, "max_rsqrt": 8.0}),
    (layers.GatherPositions, {}),
]


@pytest.mark.parametrize("cls,kwargs", LAYER_CASES, ids=[c.__name__ for c, _ in LAYER_CASES])
def test_get_config_is_constructor_arguments(cls, kwargs):
    layer = cls(name="probe", **kwargs)
    config = layer.get_config()
    base = {"name", "trainable", "dtype"}
    assert set(config) - base == set(kwargs)
    assert {k: config[k] for k in kwargs} == kwargs
    clone = cls.from_config(config)
    assert clone.get_config() == config
    registered = keras.saving.get_registered_object(f"embbert>{cls.__name__}")
    assert registered is cls


def test_embedder_position_slice_follows_length():
    embedder = layers.NanoEmbedder(50, 8, 4, 16)
    ids = tf.constant([[2, 7, 9, 4, 0]])
    out = embedder((ids, tf.constant([[1, 1, 1, 1, 0]])))
    assert out.shape == (1, 5, 8)
    with pytest.raises((tf.errors.InvalidArgumentError, ValueError)):
        embedder((tf.ones((1, 17), tf.int32), tf.ones((1, 17), tf.int32)))
