"""Text to model inputs: token/segment id arrays of a fixed length, and the length to use."""

from __future__ import annotations

import math

import numpy as np

from tflm_embbert.data.examples import Example
from tflm_embbert.data.tokenizer import Tokenizer


def encode(tokenizer: Tokenizer, examples: list[Example], seq_len: int):
    """(inputs dict of int32 (n, seq_len) arrays, labels array)."""
    texts_b = None
    if any(e.text_b is not None for e in examples):
        texts_b = [e.text_b for e in examples]
    token_ids, segment_ids = tokenizer.encode_batch(
        [e.text_a for e in examples], texts_b, seq_len=seq_len
    )
    labels = np.asarray([e.label for e in examples])
    labels = labels.astype(np.float32 if labels.dtype.kind == "f" else np.int32)
    return {"token_ids": token_ids, "segment_ids": segment_ids}, labels


def auto_seq_len(tokenizer: Tokenizer, examples: list[Example], percentile=99.0, cap=256) -> int:
    """The `percentile` of train token lengths ([CLS]/[SEP] included), rounded up to a multiple
    of 16 and capped at `cap`."""
    texts_b = None
    if any(e.text_b is not None for e in examples):
        texts_b = [e.text_b for e in examples]
    ids, _ = tokenizer.encode_batch([e.text_a for e in examples], texts_b)
    length = float(np.percentile([len(row) for row in ids], percentile))
    return int(min(cap, max(16, 16 * math.ceil(length / 16))))


#: The shortest fixed length: [CLS] a [SEP] b [SEP] for a text pair (3 for a single text).
MIN_SEQ_LEN = 4


def check_seq_len(seq_len: int, max_positions: int, name: str = "seq_len") -> None:
    """ValueError (one line) unless `seq_len` is 0 (auto) or in MIN_SEQ_LEN..max_positions, the
    model's max_sequence_length (its position-embedding rows)."""
    if seq_len != 0 and not MIN_SEQ_LEN <= seq_len <= max_positions:
        raise ValueError(
            f"{name} {seq_len}: expected 0 (auto: the 99th percentile of the train lengths) or "
            f"{MIN_SEQ_LEN}..{max_positions} (the model's max_sequence_length is {max_positions})"
        )
