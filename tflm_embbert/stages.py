"""Which stages the pipeline runs and how (no TensorFlow import: the commands build it from their
flags before loading anything heavy)."""

from __future__ import annotations

from dataclasses import dataclass, replace

from tflm_embbert.tflm.settings import Int8Settings
from tflm_embbert.training.settings import FitSettings


@dataclass(frozen=True)
class Stages:
    """The stages `run_pipeline` runs after float fine-tuning, and how each runs (defaults of each
    stage live in its own settings class)."""

    float_fit: FitSettings = FitSettings()
    qat_fit: FitSettings | None = None  # None: no QAT stage
    int8: Int8Settings | None = None  # None: no int8 conversion (of QAT's model, else the float)
    ptq: bool = False  # also post-training int8 of the float model, scored under TFLM

    def with_seed(self, seed: int) -> Stages:
        """The same stages with one seed for every stage (the `--seed` of the commands)."""
        return replace(
            self,
            float_fit=self.float_fit.with_seed(seed),
            qat_fit=self.qat_fit.with_seed(seed) if self.qat_fit else None,
            int8=self.int8.with_seed(seed) if self.int8 else None,
        )

    def to_json(self) -> dict:
        return {
            "float_fit": self.float_fit.to_json(),
            "qat_fit": self.qat_fit.to_json() if self.qat_fit else None,
            "int8": self.int8.to_json() if self.int8 else None,
            "ptq": self.ptq,
        }
