"""The float fine-tuning stage's settings (no TensorFlow import: the commands read the defaults
for their --help)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace


@dataclass(frozen=True)
class FitSettings:
    """How one fine-tuning stage fits; every default of the float stage is defined here (the QAT
    stage's are `quantize.qat_finetune.QAT_FIT`)."""

    epochs: int = 10  # the most epochs; the best validation epoch is kept
    batch_size: int = 32
    learning_rate: float = 1e-4  # AdamW peak rate
    weight_decay: float = 0.05
    warmup_steps: int = 0  # linear warm-up to the peak rate
    patience: int = 3  # stop after this many epochs without a better validation metric (0: never)
    seed: int = 0  # initialisation and shuffling
    max_steps_per_epoch: int | None = None  # smoke runs only

    def with_seed(self, seed: int) -> FitSettings:
        return replace(self, seed=seed)

    def to_json(self) -> dict:
        values = asdict(self)
        if values["max_steps_per_epoch"] is None:
            del values["max_steps_per_epoch"]
        return values
