"""Commands without TensorFlow's start-up noise (unless --verbose).

TensorFlow and its libraries print to stderr: C++ log lines from absl::Log before it is set up
("WARNING: All log messages before absl::InitializeLog() ...", oneDNN, "Could not find cuda
drivers", a cuInit "error"; TF_CPP_MIN_LOG_LEVEL does not reach these), Python warnings
(tf.lite.Interpreter's deprecation), absl's Python log (Keras "Compiled the loaded model ...",
SavedModel "Assets written to ...") and the converter's "fully_quantize: 0, inference_type: 6 ..."
from C++. `quiet_output()` is set up once the flags are parsed, before TensorFlow is imported:
TF_CPP_MIN_LOG_LEVEL=2, absl and the tensorflow logger at ERROR, warnings from the TensorFlow
packages ignored, and a filter on file descriptor 2 that drops the known noise lines (C++ log
lines at I/W level and the CUDA probe's E lines) and passes every other line on, so a real error
still shows.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sys
import threading
import warnings
from collections.abc import Iterator

# A C++ (absl / glog) log line: "I1205 21:36:13.441768 140075 file.cc:153] ..."; the month-day
# is 0000 before absl::InitializeLog. Python's absl log lines have the same form.
_LOG_LINE = re.compile(rb"^([IWEF])\d{4} [\d:.]+\s+\d+ [^\]\s]+:\d+\] ")
_CUDA = re.compile(rb"cuInit|CUDA|cuda|cuDNN|cuFFT|cuBLAS|TensorRT|TF-TRT")
_NOISE = (
    re.compile(rb"^WARNING: All log messages before absl::InitializeLog\(\) is called"),
    re.compile(rb"^fully_quantize: \d+, inference_type: \d+"),  # the converter, from C++
)
_WARNING_MODULES = r"(tensorflow|tf_keras|keras|tensorflow_model_optimization|absl|google)(\.|$)"


def is_noise(line: bytes) -> bool:
    """True for a stderr line that is TensorFlow start-up or log noise."""
    match = _LOG_LINE.match(line)
    if match:
        return match.group(1) in b"IW" or bool(_CUDA.search(line))
    return any(pattern.match(line) for pattern in _NOISE)


def quiet_python_logs() -> None:
    """Python-side noise: TF C++ below ERROR, absl's and TensorFlow's loggers, warnings of the
    TensorFlow packages."""
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"
    from absl import logging as absl_logging

    absl_logging.set_verbosity(absl_logging.ERROR)
    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    for category in (UserWarning, DeprecationWarning, FutureWarning, RuntimeWarning):
        warnings.filterwarnings("ignore", category=category, module=_WARNING_MODULES)
    warnings.filterwarnings("ignore", message=r"(?s).*tf\.lite\.Interpreter is deprecated")


class StderrFilter:
    """Routes file descriptor 2 through a pipe; a thread writes every line that is not
    `is_noise` to the real stderr. Catches what C++ libraries write, not just sys.stderr."""

    def __init__(self) -> None:
        self._saved: int | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        sys.stderr.flush()
        self._saved = os.dup(2)
        read_end, write_end = os.pipe()
        os.dup2(write_end, 2)
        os.close(write_end)
        out = os.dup(self._saved)
        self._thread = threading.Thread(target=self._pump, args=(read_end, out), daemon=True)
        self._thread.start()

    @staticmethod
    def _pump(read_end: int, out: int) -> None:
        pending = b""
        try:
            while chunk := os.read(read_end, 65536):
                pending += chunk
                *lines, pending = pending.split(b"\n")
                kept = b"".join(line + b"\n" for line in lines if not is_noise(line))
                if kept:
                    os.write(out, kept)
            if pending and not is_noise(pending):
                os.write(out, pending)
        finally:
            os.close(read_end)
            os.close(out)

    def stop(self) -> None:
        """Restores fd 2 (the pipe sees its end) and waits for the last lines."""
        if self._saved is None:
            return
        sys.stderr.flush()
        os.dup2(self._saved, 2)
        os.close(self._saved)
        self._saved = None
        if self._thread is not None:
            self._thread.join(timeout=10)  # a child process may still hold the pipe open


@contextlib.contextmanager
def quiet_output(verbose: bool = False) -> Iterator[None]:
    """A command's body without TensorFlow's noise (nothing changes when `verbose`)."""
    if verbose:
        yield
        return
    quiet_python_logs()
    stderr = StderrFilter()
    stderr.start()
    try:
        yield
    finally:
        stderr.stop()
