"""A Mamba (selective state-space) block as a tf_keras layer, for the paper's MAMBA baseline.

From the Mamba paper (Gu and Dao, 2023, "Mamba: Linear-Time Sequence Modeling with Selective State
Spaces", Algorithm 2 and section 3.4), for an input x of shape (batch, length, d):

    u, z  = split(x W_in)                        2 * d_inner features, d_inner = expand * d
    u     = SiLU(causal depthwise conv1d(u))     kernel d_conv, with bias
    dt, B, C = split(u W_x)                      dt_rank, d_state, d_state features
    delta = softplus(dt W_dt + b_dt)             (batch, length, d_inner)
    A     = -exp(A_log)                          (d_inner, d_state), A_log = log(1..d_state)
    h_t   = exp(delta_t A) * h_{t-1} + delta_t B_t u_t        (d_inner, d_state) per position
    y_t   = h_t C_t + D * u_t
    out   = (y * SiLU(z)) W_out

The backbone (keras_models.models) wraps each block as x + MambaMixer(RMSNorm(x)). The recurrence
is run by `selective_scan`, a chunked scan: a Python-unrolled loop inside fixed-size chunks (every
chunk at once), then a `tf.scan` over the chunks that carries the state from one chunk to the next;
`length / chunk + chunk` sequential steps instead of `length`. Every factor it multiplies is a
decay in (0, 1], so nothing overflows. Float only: no int8 or TFLM path.
"""

from __future__ import annotations

import math

from keras_models.backend import keras, register, tf
from keras_models.layers import ArgumentsLayer, CausalDepthwiseConv


def selective_scan(decay, drive, chunk: int = 16):
    """h_t = decay_t * h_{t-1} + drive_t along axis 1, from h_{-1} = 0.

    decay, drive: (batch, length, d_inner, d_state), length may be dynamic. Returns h, same shape.
    """
    if chunk < 1:
        raise ValueError(f"selective_scan: chunk must be >= 1, got {chunk}")
    batch, length = tf.shape(drive)[0], tf.shape(drive)[1]
    inner, state = drive.shape[2], drive.shape[3]
    chunks = (length + chunk - 1) // chunk
    pad = [[0, 0], [0, chunks * chunk - length], [0, 0], [0, 0]]
    blocked = [batch, chunks, chunk, inner, state]
    # Padding at the end with the identity step (decay 1, drive 0) changes no real position.
    decay = tf.reshape(tf.pad(decay, pad, constant_values=1.0), blocked)
    drive = tf.reshape(tf.pad(drive, pad), blocked)

    # Inside every chunk at once, from a zero state: the local states and the running product of
    # the decays since the chunk began. unstack/stack (not slicing) keeps the gradient small.
    local, decayed = [], []
    steps = zip(tf.unstack(decay, axis=2), tf.unstack(drive, axis=2), strict=True)
    for step_decay, step_drive in steps:
        if local:
            local.append(step_decay * local[-1] + step_drive)
            decayed.append(step_decay * decayed[-1])
        else:
            local.append(step_drive)
            decayed.append(step_decay)
    local = tf.stack(local, axis=2)  # (batch, chunks, chunk, inner, state)
    decayed = tf.stack(decayed, axis=2)

    # Across chunks (time-major for tf.scan): the state leaving chunk c is
    # decayed[c, last] * (the state entering c) + local[c, last].
    def carry(state_in, ends):
        end_decay, end_state = ends
        return end_decay * state_in + end_state

    def chunk_major(x):
        return tf.transpose(x[:, :, -1], [1, 0, 2, 3])

    initial = tf.zeros_like(local[:, 0, 0])
    leaving = tf.scan(carry, (chunk_major(decayed), chunk_major(local)), initializer=initial)
    entering = tf.concat([initial[tf.newaxis], leaving[:-1]], axis=0)
    entering = tf.transpose(entering, [1, 0, 2, 3])[:, :, tf.newaxis]  # (batch, chunks, 1, ...)
    states = local + decayed * entering
    return tf.reshape(states, [batch, chunks * chunk, inner, state])[:, :length]


def dt_rank_for(hidden_dim: int, dt_rank: int | None) -> int:
    """The rank of the delta projection: `dt_rank`, or ceil(hidden_dim / 16) when None."""
    return dt_rank if dt_rank is not None else math.ceil(hidden_dim / 16)


@register
class MambaMixer(ArgumentsLayer):
    """The Mamba block's mixer (see the module docstring): (batch, length, d) -> same shape.

    Initialisation as in the paper: A_log = log(1..d_state) per channel (S4D-real), D = 1,
    W_dt ~ U(-dt_rank^-0.5, dt_rank^-0.5), and b_dt = softplus^-1(dt) with dt log-uniform in
    [dt_min, dt_max] (at least dt_floor), so delta starts in that range.
    """

    def __init__(
        self,
        hidden_dim: int,
        state_dim: int,
        conv_kernel: int,
        expansion: int = 1,
        dt_rank: int | None = None,
        dt_min: float = 0.001,
        dt_max: float = 0.1,
        dt_floor: float = 1e-4,
        scan_chunk: int = 16,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.keep_arguments(locals())
        self.inner_dim = hidden_dim * expansion
        self.rank = dt_rank_for(hidden_dim, dt_rank)
        self.in_projection = keras.layers.Dense(
            2 * self.inner_dim, use_bias=False, name="in_projection"
        )
        self.conv = CausalDepthwiseConv(conv_kernel, activation="silu", name="causal_conv")
        self.x_projection = keras.layers.Dense(
            self.rank + 2 * state_dim, use_bias=False, name="x_projection"
        )
        bound = self.rank**-0.5
        self.dt_projection = keras.layers.Dense(
            self.inner_dim,
            use_bias=False,
            kernel_initializer=keras.initializers.RandomUniform(-bound, bound),
            name="dt_projection",
        )
        self.out_projection = keras.layers.Dense(hidden_dim, use_bias=False, name="out_projection")

    def _dt_bias_initializer(self, shape, dtype=None):
        log_dt = keras.initializers.RandomUniform(math.log(self.dt_min), math.log(self.dt_max))
        dt = tf.maximum(tf.exp(log_dt(shape, dtype)), self.dt_floor)
        return dt + tf.math.log(-tf.math.expm1(-dt))  # softplus^-1(dt)

    def _a_log_initializer(self, shape, dtype=None):
        inner, state = shape
        row = tf.math.log(tf.range(1, state + 1, dtype=dtype or "float32"))
        return tf.tile(row[tf.newaxis], [inner, 1])

    def build(self, input_shape):
        inner_shape = tuple(input_shape[:-1]) + (self.inner_dim,)
        self.in_projection.build(input_shape)
        self.conv.build(inner_shape)
        self.x_projection.build(inner_shape)
        self.dt_projection.build(tuple(input_shape[:-1]) + (self.rank,))
        self.out_projection.build(inner_shape)
        self.dt_bias = self.add_weight(
            name="dt_bias", shape=(self.inner_dim,), initializer=self._dt_bias_initializer
        )
        self.a_log = self.add_weight(
            name="a_log",
            shape=(self.inner_dim, self.state_dim),
            initializer=self._a_log_initializer,
        )
        self.skip = self.add_weight(name="d_skip", shape=(self.inner_dim,), initializer="ones")
        super().build(input_shape)

    def scan_inputs(self, x):
        """(u, delta, B, C, z) of the block for an input x (the scan's inputs, for tests)."""
        u, z = tf.split(self.in_projection(x), 2, axis=-1)
        u = self.conv(u)
        dt, b, c = tf.split(self.x_projection(u), [self.rank, self.state_dim, self.state_dim], -1)
        delta = tf.nn.softplus(self.dt_projection(dt) + self.dt_bias)
        return u, delta, b, c, z

    def call(self, x):
        u, delta, b, c, z = self.scan_inputs(x)
        a = -tf.exp(self.a_log)  # (inner, state)
        decay = tf.exp(delta[..., tf.newaxis] * a)  # A_bar = exp(delta A)
        drive = (delta * u)[..., tf.newaxis] * b[:, :, tf.newaxis, :]  # B_bar u = delta B u
        states = selective_scan(decay, drive, self.scan_chunk)
        y = tf.einsum("blin,bln->bli", states, c) + u * self.skip
        return self.out_projection(y * (z * tf.sigmoid(z)))
