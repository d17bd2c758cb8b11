"""MLM (15%, 80/10/10) + NSP examples drawn from one token stream.

The corpus is tokenized once into a flat int16 stream (no special tokens). The batch for global
step `s` depends only on (seed, s), so a resumed run sees exactly the batches it would have seen
without the interruption, and a tf.data pipeline can start at any step.

Example layout: [CLS] A [SEP] B [SEP] [PAD]...; B follows A in the stream (is_next = 1) or comes
from a random place (is_next = 0), each with probability 1/2. Document boundaries are not
tracked, so a "next" pair can straddle two documents (rare in books; common among short task
texts, which are concatenated one after another).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from tflm_embbert.data.tokenizer import CLS_ID, MASK_ID, PAD_ID, SEP_ID, Tokenizer

NUM_SPECIAL = 5  # ids below this are special tokens and are never drawn as random replacements


def build_token_stream(
    tokenizer: Tokenizer,
    texts: Iterable[str],
    batch_size: int = 20_000,
    progress=None,
) -> np.ndarray:
    """Tokenizes texts (no special tokens) and concatenates them into one int16/int32 stream."""
    dtype = np.int16 if tokenizer.vocab_size <= np.iinfo(np.int16).max else np.int32
    chunks: list[np.ndarray] = []
    batch: list[str] = []
    total = 0

    def flush():
        nonlocal total
        ids, _ = tokenizer.encode_batch(batch, add_special_tokens=False)
        for row in ids:
            chunks.append(np.asarray(row, dtype=dtype))
        total += sum(len(row) for row in ids)
        if progress:
            progress(total)
        batch.clear()

    for text in texts:
        batch.append(text)
        if len(batch) >= batch_size:
            flush()
    if batch:
        flush()
    if not chunks:
        raise ValueError("corpus: expected some text, got none")
    return np.concatenate(chunks)


def load_or_build_stream(cache_path: str | os.PathLike, build) -> np.ndarray:
    """Loads `cache_path` (.npy) if present, else calls `build()` and saves it atomically."""
    cache_path = Path(cache_path)
    if cache_path.is_file():
        return np.load(cache_path)
    stream = build()
    cache_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache_path.with_suffix(".tmp.npy")
    np.save(tmp, stream)
    os.replace(tmp, cache_path)
    return stream


def split_held_out(stream: np.ndarray, block: int = 10_000, every: int = 100):
    """(train, held_out): every `every`-th block of `block` tokens is held out, so the held-out
    text is spread over the whole corpus (its sources are concatenated one after another)."""
    num_blocks = len(stream) // block
    if num_blocks < every:
        raise ValueError(
            f"token stream: expected at least {every * block} tokens for a held-out split, "
            f"got {len(stream)}"
        )
    blocks = stream[: num_blocks * block].reshape(num_blocks, block)
    held = np.arange(num_blocks) % every == every // 2
    train = np.concatenate([blocks[~held].ravel(), stream[num_blocks * block :]])
    return train, blocks[held].ravel()


class MLMBatcher:
    """Deterministic MLM + NSP batches: `batch(step)` is a pure function of (seed, step)."""

    def __init__(
        self,
        stream: np.ndarray,
        seq_len: int,
        batch_size: int,
        vocab_size: int,
        seed: int = 0,
        mask_rate: float = 0.15,
        short_seq_prob: float = 0.1,
    ):
        if seq_len < 8:
            raise ValueError(f"seq_len: expected at least 8, got {seq_len}")
        if len(stream) < 4 * seq_len:
            raise ValueError(
                f"token stream: expected at least {4 * seq_len} tokens, got {len(stream)}"
            )
        self.stream = stream
        self.seq_len = seq_len
        self.batch_size = batch_size
        self.vocab_size = vocab_size
        self.seed = seed
        self.mask_rate = mask_rate
        self.short_seq_prob = short_seq_prob
        self.num_predictions = max(1, int(round(mask_rate * seq_len)))

    def _example(self, rng: np.random.Generator):
        seq_len, stream = self.seq_len, self.stream
        target = seq_len if rng.random() >= self.short_seq_prob else int(rng.integers(8, seq_len))
        text_len = target - 3
        len_a = int(rng.integers(1, text_len))
        len_b = text_len - len_a
        start = int(rng.integers(0, len(stream) - text_len))
        a = stream[start : start + len_a]
        is_next = rng.random() < 0.5
        if is_next:
            b = stream[start + len_a : start + text_len]
        else:
            # A random place at least one window away from A.
            while True:
                other = int(rng.integers(0, len(stream) - len_b))
                if abs(other - start) > text_len:
                    break
            b = stream[other : other + len_b]
        token_ids = np.full(seq_len, PAD_ID, np.int32)
        segment_ids = np.zeros(seq_len, np.int32)
        token_ids[0] = CLS_ID
        token_ids[1 : 1 + len_a] = a
        token_ids[1 + len_a] = SEP_ID
        token_ids[2 + len_a : 2 + text_len] = b
        token_ids[2 + text_len] = SEP_ID
        segment_ids[: 2 + len_a] = 1
        segment_ids[2 + len_a : 3 + text_len] = 2

        # Mask 15% of the text tokens (never [CLS]/[SEP]/[PAD]): 80% [MASK], 10% random, 10% kept.
        candidates = np.flatnonzero(token_ids >= NUM_SPECIAL)
        count = min(self.num_predictions, max(1, int(round(self.mask_rate * len(candidates)))))
        positions = np.sort(rng.choice(candidates, size=count, replace=False))
        labels = token_ids[positions].copy()
        action = rng.random(count)
        masked = token_ids.copy()
        masked[positions[action < 0.8]] = MASK_ID
        random_slots = positions[(action >= 0.8) & (action < 0.9)]
        masked[random_slots] = rng.integers(NUM_SPECIAL, self.vocab_size, len(random_slots))
        mask_positions = np.zeros(self.num_predictions, np.int32)
        mask_labels = np.zeros(self.num_predictions, np.int32)
        mask_weights = np.zeros(self.num_predictions, np.float32)
        mask_positions[:count] = positions
        mask_labels[:count] = labels
        mask_weights[:count] = 1.0
        return masked, segment_ids, mask_positions, mask_labels, mask_weights, int(is_next)

    def batch(self, step: int):
        """Arrays for one global step: token_ids, segment_ids, mask_positions (B, L / P) int32,
        mask_labels (B, P) int32, mask_weights (B, P) float32, nsp_labels (B,) int32."""
        rng = np.random.default_rng([self.seed, int(step)])
        rows = [self._example(rng) for _ in range(self.batch_size)]
        columns = list(zip(*rows, strict=True))
        out = [np.stack(c) for c in columns[:5]]
        out.append(np.asarray(columns[5], np.int32))
        return tuple(out)

    def dataset(self, start_step: int, end_step: int):
        """tf.data over steps [start_step, end_step): ((inputs), (labels), (sample weights))."""
        from keras_models.backend import tf

        batch_size, seq_len, preds = self.batch_size, self.seq_len, self.num_predictions

        def make(step):
            values = tf.numpy_function(
                self.batch,
                [step],
                [tf.int32, tf.int32, tf.int32, tf.int32, tf.float32, tf.int32],
                stateful=False,
            )
            shapes = [(batch_size, seq_len)] * 2 + [(batch_size, preds)] * 3 + [(batch_size,)]
            for value, shape in zip(values, shapes, strict=True):
                value.set_shape(shape)
            token_ids, segment_ids, positions, labels, weights, nsp = values
            inputs = {
                "token_ids": token_ids,
                "segment_ids": segment_ids,
                "mask_positions": positions,
            }
            targets = {"mlm": labels, "nsp": nsp}
            sample_weights = {"mlm": weights, "nsp": tf.ones((batch_size,), tf.float32)}
            return inputs, targets, sample_weights

        steps = tf.data.Dataset.range(start_step, end_step)
        options = tf.data.Options()
        options.experimental_distribute.auto_shard_policy = (
            tf.data.experimental.AutoShardPolicy.DATA
        )
        return (
            steps.map(make, num_parallel_calls=2, deterministic=True)
            .prefetch(4)
            .with_options(options)
        )
