"""The Mamba block (keras_models/mamba.py): shapes, config, the chunked selective scan against a
plain loop, the whole mixer against the paper's equations written out in numpy, causality and the
`mamba_2mb` preset's classifier round trip."""

import numpy as np
import pytest

from keras_models.backend import keras, tf
from keras_models.mamba import MambaMixer, selective_scan
from keras_models.models import build_backbone, build_classifier
from tests.conftest import tiny_config


def _tiny_mamba(**overrides):
    values = dict(
        arch="mamba", hidden_dim=8, embedding_dim=None, num_layers=1, kernel_size=4,
        state_dim=3, pooling="rms",
    )  # fmt: skip
    values.update(overrides)
    return tiny_config(**values)


def _loop_scan(decay, drive):
    """h_t = decay_t * h_{t-1} + drive_t, one position at a time."""
    state, states = np.zeros_like(drive[:, 0]), []
    for t in range(drive.shape[1]):
        state = decay[:, t] * state + drive[:, t]
        states.append(state)
    return np.stack(states, axis=1)


@pytest.mark.parametrize("length,chunk", [(1, 4), (8, 3), (8, 4), (8, 16), (13, 5)])
def test_selective_scan_matches_a_python_loop(length, chunk):
    rng = np.random.default_rng(length * 100 + chunk)
    decay = rng.uniform(0.1, 1.0, (2, length, 3, 4)).astype("float32")
    drive = rng.normal(size=(2, length, 3, 4)).astype("float32")
    got = selective_scan(tf.constant(decay), tf.constant(drive), chunk).numpy()
    np.testing.assert_allclose(got, _loop_scan(decay, drive), rtol=1e-5, atol=1e-5)


def test_selective_scan_rejects_a_bad_chunk():
    with pytest.raises(ValueError, match="chunk must be >= 1"):
        selective_scan(tf.zeros((1, 2, 1, 1)), tf.zeros((1, 2, 1, 1)), 0)


def test_mixer_output_shape_and_config_round_trip():
    layer = MambaMixer(8, 3, 4, expansion=2, dt_rank=2, scan_chunk=3, name="mixer")
    out = layer(tf.random.normal((2, 8, 8)))
    assert out.shape == (2, 8, 8)
    config = layer.get_config()
    arguments = {
        "hidden_dim": 8, "state_dim": 3, "conv_kernel": 4, "expansion": 2, "dt_rank": 2,
        "dt_min": 0.001, "dt_max": 0.1, "dt_floor": 1e-4, "scan_chunk": 3,
    }  # fmt: skip
    assert {k: config[k] for k in arguments} == arguments
    assert set(config) - set(arguments) <= {"name", "trainable", "dtype"}
    assert MambaMixer.from_config(config).get_config() == config
    assert MambaMixer(64, 6, 4).rank == 4  # dt_rank None: ceil(64 / 16)


def test_mixer_initialisation_is_s4d_real():
    layer = MambaMixer(16, 5, 4)
    layer.build((None, None, 16))
    np.testing.assert_allclose(np.exp(layer.a_log.numpy()), np.tile(np.arange(1, 6), (16, 1)))
    np.testing.assert_array_equal(layer.skip.numpy(), np.ones(16))
    dt = tf.nn.softplus(layer.dt_bias).numpy()
    assert dt.min() >= 0.001 * 0.999 and dt.max() <= 0.1 * 1.001 and dt.std() > 0


def _silu(x):
    return x / (1.0 + np.exp(-x))


def _mixer_in_numpy(layer: MambaMixer, x: np.ndarray) -> np.ndarray:
    """The paper's equations, one position at a time, from the layer's weights."""
    w_in = layer.in_projection.kernel.numpy()
    conv_w = layer.conv.conv.depthwise_kernel.numpy()[:, :, 0]  # (k, inner)
    conv_b = layer.conv.conv.bias.numpy()
    w_x, w_dt = layer.x_projection.kernel.numpy(), layer.dt_projection.kernel.numpy()
    a = -np.exp(layer.a_log.numpy())
    skip, w_out = layer.skip.numpy(), layer.out_projection.kernel.numpy()
    inner, rank, n, k = layer.inner_dim, layer.rank, layer.state_dim, layer.conv_kernel
    xz = x @ w_in
    u_raw, z = xz[..., :inner], xz[..., inner:]
    batch, length = x.shape[:2]
    out = np.zeros((batch, length, x.shape[-1]))
    for b in range(batch):
        h = np.zeros((inner, n))
        for t in range(length):
            window = [u_raw[b, t - j] if t - j >= 0 else np.zeros(inner) for j in range(k)]
            u = _silu(sum(conv_w[k - 1 - j] * window[j] for j in range(k)) + conv_b)
            projected = u @ w_x
            dt, b_t, c_t = projected[:rank], projected[rank : rank + n], projected[rank + n :]
            delta = np.log1p(np.exp(dt @ w_dt + layer.dt_bias.numpy()))  # softplus
            h = np.exp(delta[:, None] * a) * h + (delta * u)[:, None] * b_t[None, :]
            y = h @ c_t + skip * u
            out[b, t] = (y * _silu(z[b, t])) @ w_out
    return out


@pytest.mark.parametrize("chunk", [3, 16])
def test_mixer_matches_the_recurrence_written_out(chunk):
    layer = MambaMixer(8, 3, 4, scan_chunk=chunk)
    layer.build((None, None, 8))
    rng = np.random.default_rng(chunk)
    # Random weights everywhere (delta around 1, so the decays are far from 1 and from 0).
    layer.set_weights([rng.normal(0, 0.5, w.shape).astype("float32") for w in layer.get_weights()])
    layer.dt_bias.assign(np.full(layer.inner_dim, 0.5, "float32"))
    x = rng.normal(size=(2, 8, 8)).astype("float32")
    np.testing.assert_allclose(layer(x).numpy(), _mixer_in_numpy(layer, x), rtol=1e-4, atol=1e-5)


def test_backbone_is_causal_a_later_token_changes_no_earlier_output():
    model = build_backbone(_tiny_mamba(num_layers=2))
    rng = np.random.default_rng(0)
    ids = rng.integers(5, 120, (2, 8)).astype("int32")
    changed = ids.copy()
    changed[:, 5] = (ids[:, 5] + 7) % 115 + 5
    segments = np.ones_like(ids)
    before = model({"token_ids": ids, "segment_ids": segments}).numpy()
    after = model({"token_ids": changed, "segment_ids": segments}).numpy()
    np.testing.assert_allclose(after[:, :5], before[:, :5], rtol=0, atol=1e-6)
    assert np.abs(after[:, 5:] - before[:, 5:]).max(axis=-1).min() > 1e-4


def test_mamba_classifier_saves_and_loads(tmp_path):
    model = build_classifier(_tiny_mamba(), 3)
    ids = np.random.default_rng(1).integers(1, 120, (2, 8)).astype("int32")
    inputs = {"token_ids": ids, "segment_ids": np.ones_like(ids)}
    model.save(tmp_path / "model.keras")
    loaded = keras.models.load_model(tmp_path / "model.keras")
    np.testing.assert_allclose(loaded(inputs).numpy(), model(inputs).numpy(), rtol=0, atol=1e-6)
    assert "rms_pooling" in [layer.name for layer in model.layers]


def test_mamba_config_needs_a_state():
    with pytest.raises(ValueError, match="mamba: expected state_dim >= 1"):
        _tiny_mamba(state_dim=0)
