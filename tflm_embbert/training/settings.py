"""The float fine-tuning stage's settings (no TensorFlow import: the commands read the defaults
for their --help)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

DECAYS = ("constant", "linear", "cosine")  # learning-rate decays after the warm-up


@dataclass(frozen=True)
class FitSettings:
    """How one fine-tuning stage fits; every default of the float stage is defined here (the QAT
    stage's are `quantize.settings.QAT_FIT`). The float defaults are the recipe that
    bench/finetune_sweep.py chose on validation slices only (bench/results/finetune_sweep/:
    peak lr 1e-3, 6% warm-up then cosine decay to 0, up to 10 epochs, patience 3)."""

    epochs: int = 10  # the most epochs (the decay plans for them); the best validation one is kept
    batch_size: int = 32
    learning_rate: float = 1e-3  # AdamW peak rate
    schedule: str = "cosine"  # decay after the warm-up: "constant", "linear" or "cosine"
    warmup_fraction: float = 0.06  # linear warm-up over this share of the planned steps ...
    warmup_steps: int = 0  # ... or over exactly this many steps when > 0
    weight_decay: float = 0.05
    dropout: float | None = None  # None: the model's own rate
    patience: int = 3  # stop after this many epochs without a better validation metric (0: never)
    seed: int = 0  # initialisation and shuffling
    max_steps_per_epoch: int | None = None  # smoke runs only

    def __post_init__(self):
        if self.schedule not in DECAYS:
            raise ValueError(
                f"schedule: expected one of {', '.join(DECAYS)}, got {self.schedule!r}"
            )

    def warmup(self, steps_per_epoch: int) -> int:
        """Warm-up steps of a fit with `steps_per_epoch` steps per epoch."""
        if self.warmup_steps or self.schedule == "constant":
            return self.warmup_steps
        return int(round(self.warmup_fraction * steps_per_epoch * self.epochs))

    def with_seed(self, seed: int) -> FitSettings:
        return replace(self, seed=seed)

    def to_json(self) -> dict:
        values = asdict(self)
        if values["max_steps_per_epoch"] is None:
            del values["max_steps_per_epoch"]
        return values
