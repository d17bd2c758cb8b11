"""EmbBERT building blocks as tf_keras layers.

Every layer is registered for serialization and its `get_config` returns exactly its constructor
arguments (plus the base layer's name/trainable/dtype), so a `.keras` file loads back anywhere the
package is importable. Activations are limited to what TFLM runs in int8 (ReLU, SiLU = x*sigmoid).
Tensors are (batch, length, features); `padding_mask` is float (batch, length), 1 for real tokens.
"""

from __future__ import annotations

import math

from keras_models.backend import keras, register, tf

# Padded keys get the score min(row) - MASK_MARGIN, which replaces their own score: at least
# MASK_MARGIN below every real score of the row, so each padded key's weight is below
# exp(-MASK_MARGIN) = 2e-9 of the largest real weight. A constant would not do for int8: the
# score tensor is quantized over [lowest score, highest score], and the former additive -1e4
# made its int8 step about 40, flattening all real scores to one value.
MASK_MARGIN = 20.0


def mask_scores(scores, keep):
    """Scores with padded keys (keep == 0; keep broadcasts over the query axis) pushed
    MASK_MARGIN below the row's lowest score."""
    floor = tf.stop_gradient(tf.reduce_min(scores, axis=-1, keepdims=True)) - MASK_MARGIN
    return scores * keep + (1.0 - keep) * floor


class ArgumentsLayer(keras.layers.Layer):
    """A layer whose `get_config` is exactly its constructor arguments: `__init__` calls
    `self.keep_arguments(locals())` first, which sets each argument as an attribute."""

    def keep_arguments(self, arguments: dict) -> None:
        """`arguments`: the constructor's locals() before anything else is assigned (self,
        **kwargs and __class__ are left out: Keras' own arguments reach get_config through
        super())."""
        names = [n for n in arguments if n not in ("self", "kwargs", "__class__")]
        for name in names:
            setattr(self, name, arguments[name])
        self._argument_names = tuple(names)

    def get_config(self):
        names = self._argument_names
        return {**super().get_config(), **{name: getattr(self, name) for name in names}}


@register
class PaddingMask(keras.layers.Layer):
    """float mask (batch, length): 1.0 where token_ids != pad_id."""

    def __init__(self, pad_id: int = 0, **kwargs):
        super().__init__(**kwargs)
        self.pad_id = pad_id

    def call(self, token_ids):
        # A lookup in a two-entry table, not cast(not_equal): the converter makes it an int8 GATHER
        # with int32 indices, where a cast from bool would leave a float tensor and a QUANTIZE.
        is_real = tf.minimum(tf.abs(token_ids - self.pad_id) if self.pad_id else token_ids, 1)
        return tf.gather(tf.constant([0.0, 1.0], self.compute_dtype), is_real)

    def get_config(self):
        return {**super().get_config(), "pad_id": self.pad_id}


@register
class NanoEmbedder(ArgumentsLayer):
    """Factorised token + position embeddings and a segment embedding.

    x = tok_up(E_tok[ids]) + pos_up(E_pos[0..L-1]) + E_seg[segments]. With `embedding_dim=None`
    the token and position tables are d wide and there are no up-projections (plain BERT).
    """

    def __init__(
        self,
        vocabulary_size: int,
        hidden_dim: int,
        embedding_dim: int | None,
        max_sequence_length: int,
        num_segments: int = 3,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.keep_arguments(locals())
        width = embedding_dim or hidden_dim
        self.token_embedding = keras.layers.Embedding(
            vocabulary_size, width, name="token_embedding"
        )
        self.position_embedding = keras.layers.Embedding(
            max_sequence_length, width, name="position_embedding"
        )
        self.segment_embedding = keras.layers.Embedding(
            num_segments, hidden_dim, name="segment_embedding"
        )
        if embedding_dim is None:
            self.token_projection = self.position_projection = None
        else:
            self.token_projection = keras.layers.Dense(
                hidden_dim, use_bias=False, name="token_projection"
            )
            self.position_projection = keras.layers.Dense(
                hidden_dim, use_bias=False, name="position_projection"
            )

    def build(self, input_shape):
        width = self.embedding_dim or self.hidden_dim
        self.token_embedding.build(None)
        self.position_embedding.build(None)
        self.segment_embedding.build(None)
        if self.token_projection is not None:
            self.token_projection.build((None, width))
            self.position_projection.build((None, width))
        super().build(input_shape)

    def call(self, inputs):
        token_ids, segment_ids = inputs
        length = tf.shape(token_ids)[1]
        tokens = self.token_embedding(token_ids)
        positions = self.position_embedding.embeddings[:length]  # (L, width)
        if self.token_projection is not None:
            tokens = self.token_projection(tokens)
            positions = self.position_projection(positions)
        return tokens + positions[tf.newaxis] + self.segment_embedding(segment_ids)


@register
class RMSNorm(keras.layers.Layer):
    """y = x / sqrt(mean(x^2) + epsilon) * scale (no bias, no centring)."""

    def __init__(self, epsilon: float = 1e-6, **kwargs):
        super().__init__(**kwargs)
        self.epsilon = epsilon

    def build(self, input_shape):
        self.scale = self.add_weight(
            name="scale", shape=(input_shape[-1],), initializer="ones", trainable=True
        )
        super().build(input_shape)

    def call(self, x):
        mean_square = tf.reduce_mean(x * x, axis=-1, keepdims=True)  # SQUARE is float-only in TFLM
        return x * tf.math.rsqrt(mean_square + self.epsilon) * self.scale

    def get_config(self):
        return {**super().get_config(), "epsilon": self.epsilon}


@register
class EfficientAttention(ArgumentsLayer):
    """One-head attention whose keys and values are the input itself (K = V = x).

    Q = x Wq + bq; A = softmax(Q x^T / sqrt(d) + mask); out = (A x) Wo + bo.
    """

    def __init__(self, hidden_dim: int, dropout: float = 0.1, **kwargs):
        super().__init__(**kwargs)
        self.keep_arguments(locals())
        self.query_dense = keras.layers.Dense(hidden_dim, name="query")
        self.output_dense = keras.layers.Dense(hidden_dim, name="output")
        self.attention_dropout = keras.layers.Dropout(dropout)

    def build(self, input_shape):
        x_shape = input_shape[0]
        self.query_dense.build(x_shape)
        self.output_dense.build(x_shape)
        super().build(input_shape)

    def call(self, inputs, training=None):
        x, padding_mask = inputs
        # Scaling the query (not the scores) lets the converter fold 1/sqrt(d) into Wq and bq.
        query = self.query_dense(x) * (1.0 / math.sqrt(self.hidden_dim))
        scores = mask_scores(tf.matmul(query, x, transpose_b=True), padding_mask[:, tf.newaxis, :])
        weights = tf.nn.softmax(scores, axis=-1)
        weights = self.attention_dropout(weights, training=training)
        return self.output_dense(tf.matmul(weights, x))


@register
class CausalDepthwiseConv(ArgumentsLayer):
    """Depthwise Conv1D over the sequence, left-padded by k-1 so position i sees i-k+1..i."""

    def __init__(
        self, kernel_size: int, depth_multiplier: int = 1, activation: str | None = None, **kwargs
    ):
        super().__init__(**kwargs)
        self.keep_arguments(locals())
        self.conv = keras.layers.DepthwiseConv1D(
            kernel_size, depth_multiplier=depth_multiplier, padding="valid", name="depthwise"
        )

    def build(self, input_shape):
        self.conv.build(input_shape)
        super().build(input_shape)

    def call(self, x):
        x = tf.pad(x, [[0, 0], [self.kernel_size - 1, 0], [0, 0]])
        y = self.conv(x)
        if self.activation == "silu":
            y = y * tf.sigmoid(y)
        elif self.activation is not None:
            y = keras.activations.get(self.activation)(y)
        return y


@register
class CausalConvBranch(ArgumentsLayer):
    """Causal depthwise conv over d*e channels, SiLU, then a Dense contracting back to d."""

    def __init__(self, hidden_dim: int, kernel_size: int, expansion: int = 1, **kwargs):
        super().__init__(**kwargs)
        self.keep_arguments(locals())
        self.conv = CausalDepthwiseConv(
            kernel_size, depth_multiplier=expansion, activation="silu", name="causal_conv"
        )
        self.contract = keras.layers.Dense(hidden_dim, name="contract")

    def build(self, input_shape):
        self.conv.build(input_shape)
        self.contract.build(tuple(input_shape[:-1]) + (self.hidden_dim * self.expansion,))
        super().build(input_shape)

    def call(self, x):
        return self.contract(self.conv(x))


@register
class WeightedDifference(ArgumentsLayer):
    """exp(<lq1, lk1>) * a - exp(<lq2, lk2>) * b with four learned d-vectors, N(0, init_std^2).

    folded=True: a - b, no weights; the two factors already live in the layers that made a and b
    (an export-time fold, see tflm_embbert.quantize.rewrites).
    """

    def __init__(self, init_std: float = 0.1, folded: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.keep_arguments(locals())

    def build(self, input_shape):
        if self.folded:
            super().build(input_shape)
            return
        dim = input_shape[0][-1]
        # One initializer per vector: a shared unseeded one returns the same values each call.
        self.lambda_q1, self.lambda_k1, self.lambda_q2, self.lambda_k2 = (
            self.add_weight(
                name=name,
                shape=(dim,),
                initializer=keras.initializers.RandomNormal(stddev=self.init_std),
            )
            for name in ("lambda_q1", "lambda_k1", "lambda_q2", "lambda_k2")
        )
        super().build(input_shape)

    def lambdas(self):
        """(lambda1, lambda2) as scalar tensors."""
        if self.folded:
            return tf.constant(1.0), tf.constant(1.0)
        lambda1 = tf.exp(tf.reduce_sum(self.lambda_q1 * self.lambda_k1))
        lambda2 = tf.exp(tf.reduce_sum(self.lambda_q2 * self.lambda_k2))
        return lambda1, lambda2

    def call(self, inputs):
        first, second = inputs
        if self.folded:
            return first - second
        lambda1, lambda2 = self.lambdas()
        return lambda1 * first - lambda2 * second


@register
class EmbBERTBlock(ArgumentsLayer):
    """lambda1 * EfficientAttention(x) - lambda2 * CausalConvBranch(x); x is the normed input.

    folded=True: the export form, where lambda1 and lambda2 already live in Wo/bo and Wc/bc
    (tflm_embbert.quantize.rewrites.fold_constants); same outputs, no lambda weights or multiplies.
    """

    def __init__(
        self,
        hidden_dim: int,
        kernel_size: int,
        expansion: int = 1,
        dropout: float = 0.1,
        lambda_init_std: float = 0.1,
        folded: bool = False,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.keep_arguments(locals())
        self.attention = EfficientAttention(hidden_dim, dropout, name="attention")
        self.conv_branch = CausalConvBranch(hidden_dim, kernel_size, expansion, name="conv_branch")
        self.combine = WeightedDifference(lambda_init_std, folded=folded, name="combine")

    def build(self, input_shape):
        x_shape, mask_shape = input_shape
        self.attention.build((x_shape, mask_shape))
        self.conv_branch.build(x_shape)
        self.combine.build((x_shape, x_shape))
        super().build(input_shape)

    def call(self, inputs, training=None):
        x, padding_mask = inputs
        attended = self.attention((x, padding_mask), training=training)
        convolved = self.conv_branch(x)
        return self.combine((attended, convolved))


class PaddingMaskedAttention(keras.layers.MultiHeadAttention):
    """MultiHeadAttention whose `attention_mask` is a float keep-mask (1 = real key), applied with
    `mask_scores`. Keras' masked softmax adds -1e9 to masked scores from a bool mask, which in an
    int8 model is a bool->float cast, a QUANTIZE and a score range of 1e9."""

    def _masked_softmax(self, attention_scores, attention_mask=None):
        if attention_mask is not None:
            while len(attention_mask.shape) < len(attention_scores.shape):
                attention_mask = tf.expand_dims(attention_mask, axis=-3)  # the heads axis
            attention_scores = mask_scores(attention_scores, attention_mask)
        return self._softmax(attention_scores)


@register
class TransformerEncoderLayer(ArgumentsLayer):
    """Post-LN BERT layer: LN(x + MHA(x)), then LN(x + FF(x)) with a ReLU feed-forward."""

    def __init__(
        self,
        hidden_dim: int,
        num_heads: int,
        intermediate_dim: int,
        dropout: float = 0.1,
        layer_norm_epsilon: float = 1e-12,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.keep_arguments(locals())
        self.self_attention = PaddingMaskedAttention(
            num_heads, hidden_dim // num_heads, dropout=dropout, name="self_attention"
        )
        self.attention_norm = keras.layers.LayerNormalization(
            epsilon=layer_norm_epsilon, name="attention_norm"
        )
        self.intermediate = keras.layers.Dense(intermediate_dim, activation="relu", name="ff_in")
        self.ff_output = keras.layers.Dense(hidden_dim, name="ff_out")
        self.ff_norm = keras.layers.LayerNormalization(epsilon=layer_norm_epsilon, name="ff_norm")
        self.dropout_layer = keras.layers.Dropout(dropout)

    def build(self, input_shape):
        x_shape = input_shape[0]
        self.self_attention._build_from_signature(query=x_shape, value=x_shape)
        self.attention_norm.build(x_shape)
        self.intermediate.build(x_shape)
        self.ff_output.build(tuple(x_shape[:-1]) + (self.intermediate_dim,))
        self.ff_norm.build(x_shape)
        super().build(input_shape)

    def call(self, inputs, training=None):
        x, padding_mask = inputs
        attention_mask = padding_mask[:, tf.newaxis, :]  # (batch, 1, keys), float
        attended = self.self_attention(x, x, attention_mask=attention_mask, training=training)
        x = self.attention_norm(x + self.dropout_layer(attended, training=training))
        ff = self.ff_output(self.intermediate(x))
        return self.ff_norm(x + self.dropout_layer(ff, training=training))


@register
class FirstToken(keras.layers.Layer):
    """x[:, 0, :]: the [CLS] position."""

    def call(self, x):
        return x[:, 0, :]


@register
class RMSPooling(ArgumentsLayer):
    """sqrt(mean over real tokens of x^2) per feature: (batch, length, d) -> (batch, d).

    In int8 the square root is total * rsqrt(total) * rsqrt(count) (TFLM's SQRT is float-only),
    and rsqrt(total) is one per-tensor int8 tensor: a nearly silent feature (total ~ 1e-5) makes
    its calibrated range hundreds wide, and every normal feature's rsqrt then rounds to one or
    two steps (measured: `embedder_conv` on SST-2 lost 4.8 pp from QAT Keras to int8 TFLM).
    `max_rsqrt` caps rsqrt(total), in float as in int8, so its range stays [0, max_rsqrt]; only
    features with total < 1 / max_rsqrt^2 change (total * max_rsqrt instead of sqrt(total)).
    """

    def __init__(self, epsilon: float = 1e-6, max_rsqrt: float = 16.0, **kwargs):
        super().__init__(**kwargs)
        self.keep_arguments(locals())

    def call(self, inputs):
        x, padding_mask = inputs
        mask = padding_mask[:, :, tf.newaxis]
        count = tf.maximum(tf.reduce_sum(mask, axis=1), 1.0)
        total = tf.reduce_sum(x * x * mask, axis=1) + self.epsilon * count
        # sqrt(total / count) as total * rsqrt(total) * rsqrt(count): TFLM's SQRT and SQUARE are
        # float-only, RSQRT has int8, and an int8 DIV by the count tripped TFLite's divide-by-zero
        # check (it tests the raw int8 value, which is 0 for a count near the middle of its range).
        inverse_root = tf.minimum(tf.math.rsqrt(total), self.max_rsqrt)
        return total * inverse_root * tf.math.rsqrt(count)


@register
class GatherPositions(keras.layers.Layer):
    """x[b, positions[b, p], :] -> (batch, num_positions, d): MLM reads the masked slots only."""

    def call(self, inputs):
        x, positions = inputs
        return tf.gather(x, positions, batch_dims=1)
