"""Which length buckets an export asks for: the --length_buckets flag and its parsing (no
TensorFlow import, so the commands can check the flag before loading anything heavy). Building
the buckets is export.buckets'."""

from __future__ import annotations

from tflm_embbert.common.errors import UserInputError

SMALLEST_DEFAULT = 16  # the default buckets: powers of two from this one up to L
FLAG_HELP = (
    "Length buckets: sequence lengths below --seq_len, each a complete model in the one model "
    "array sharing the weights; the library runs the shortest bucket that holds the tokenized "
    "input. 'auto' = powers of two from 16 below L; L is always the last bucket; 'none' (or an "
    "empty value) = one model. Every bucket's logits must equal the full graph's on the test "
    "split (0 LSB): with 'auto' the export falls back to one model and says why, an explicit "
    "list is refused."
)


class BucketError(UserInputError):
    """A bucket set that cannot be exported as asked (one line)."""


def default_lengths(seq_len: int, smallest: int = SMALLEST_DEFAULT) -> list[int]:
    """Powers of two from `smallest` below `seq_len`, then `seq_len` ([] when none is below)."""
    lengths = []
    length = smallest
    while length < seq_len:
        lengths.append(length)
        length *= 2
    return lengths + [seq_len] if lengths else []


def parse_lengths(values: list[str], seq_len: int) -> list[int]:
    """--length_buckets values -> increasing lengths ending with `seq_len`, or [] (one model).
    'auto' -> `default_lengths`; 'none' or no value -> []. ValueError (one line naming the flag)
    for anything else than positive, strictly increasing integers <= seq_len."""
    values = [v.strip() for v in values if v.strip()]
    if not values or [v.lower() for v in values] == ["none"]:
        return []
    if [v.lower() for v in values] == ["auto"]:
        return default_lengths(seq_len)
    shown = ",".join(values)
    if not all(v.isdigit() for v in values):
        raise ValueError(
            f"--length_buckets: expected 'auto', 'none' or positive integers, got {shown}"
        )
    lengths = [int(v) for v in values]
    if min(lengths) < 1:
        raise ValueError(f"--length_buckets: lengths must be positive, got {shown}")
    if any(b <= a for a, b in zip(lengths, lengths[1:], strict=False)):
        raise ValueError(f"--length_buckets: lengths must be strictly increasing, got {shown}")
    if lengths[-1] > seq_len:
        raise ValueError(f"--length_buckets: {lengths[-1]} exceeds the sequence length L={seq_len}")
    if lengths[-1] != seq_len:
        lengths.append(seq_len)
    return lengths if len(lengths) > 1 else []


def off_note(values: list[str], seq_len: int) -> dict:
    """The report entry of an export without buckets."""
    shown = ",".join(values) or "none"
    return {"enabled": False, "reason": f"--length_buckets={shown} at L={seq_len}: one model"}
