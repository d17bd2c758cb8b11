"""The int8 stage's settings (no TensorFlow import)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace


@dataclass(frozen=True)
class Int8Settings:
    """How a trained model becomes the deployed int8 graph; every default is defined here."""

    calibration_examples: int = 200  # training examples calibrating ranges QAT did not learn
    per_channel_dense: bool = False  # False: Dense weights stay on QAT's per-tensor grid
    lean: bool = True  # the exact memory-lean rewrite (graph.lean_graph)
    chunk_rows: tuple[int, ...] = (0, 64, 32)  # row chunks tried by the lean rewrite (0: none)
    mask_bias: bool = True  # lean: mask padded keys with one per-key bias
    lean_check_examples: int = 500  # test examples the lean graph is checked on, bit for bit
    seed: int = 0  # which calibration and check examples

    def with_seed(self, seed: int) -> Int8Settings:
        return replace(self, seed=seed)

    def to_json(self) -> dict:
        return {**asdict(self), "chunk_rows": list(self.chunk_rows)}
