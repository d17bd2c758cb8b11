"""Board profiles and the check that a generated library fits one before anyone flashes it.

Flash = the .tflite + the tokenizer's tables + a code baseline; RAM = the arena (measured under the
TFLM runtime, plus the margin) + the library's buffers + a RAM baseline. The Nano 33 BLE's flash
code baseline is the measured code of TFLM + CMSIS-NN for this project's models on a Cortex-M4
(arm-none-eabi-gcc 12, TFLM core -Os, kernels -O2: 131,992-137,310 B + CMSIS-NN 37,096 B; the
larger, L=256 figure is used; ../shared/notes/m4-measurements.md). The Arduino mbed core and libc
come on top and were not measured, so the check also warns when less than 10% of flash is left.
The RAM baseline (61 KB) is the one measured for a minimal TFLM sketch (board-and-tflm.md).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from export.tflm_profiles import ExportError

KIB = 1024
TFLM_CODE_BYTES = 137_310  # TFLM core + kernels of the L=256 library, measured on the M4
CMSIS_NN_CODE_BYTES = 37_096  # CMSIS-NN, measured alongside


@dataclass(frozen=True)
class Board:
    name: str
    flash_bytes: int  # what a sketch may use (upload.maximum_size)
    ram_bytes: int  # maximum_data_size
    code_flash_bytes: int  # TFLM + kernels code before any model (the core comes on top)
    code_ram_bytes: int  # core + TFLM statics + stacks, before the arena
    fqbn: str = ""


BOARDS = {
    "nano33ble": Board(
        "nano33ble",
        flash_bytes=983_040,
        ram_bytes=262_144,
        code_flash_bytes=TFLM_CODE_BYTES + CMSIS_NN_CODE_BYTES,
        code_ram_bytes=61 * KIB,
        fqbn="arduino:mbed_nano:nano33ble",
    ),
}


def custom_board(flash_bytes: int, ram_bytes: int, code_flash_bytes: int, code_ram_bytes: int):
    for name, value in (("--flash_bytes", flash_bytes), ("--ram_bytes", ram_bytes)):
        if value <= 0:
            raise ExportError(f"{name}: a custom board needs a positive size, got {value}")
    return Board("custom", flash_bytes, ram_bytes, code_flash_bytes, code_ram_bytes)


def fit(
    board: Board,
    *,
    model_bytes: int,
    tokenizer_bytes: int,
    arena_bytes: int,
    buffer_bytes: int,
    seq_len: int,
    force: bool = False,
) -> dict:
    """The flash/RAM budget of the library on `board`; raises ExportError when over, unless
    `force` (then the report says so)."""
    flash = model_bytes + tokenizer_bytes + board.code_flash_bytes
    ram = arena_bytes + buffer_bytes + board.code_ram_bytes
    budget = {
        "board": asdict(board),
        "flash": {
            "model_bytes": model_bytes,
            "tokenizer_bytes": tokenizer_bytes,
            "code_baseline_bytes": board.code_flash_bytes,
            "total_bytes": flash,
            "available_bytes": board.flash_bytes,
            "fits": flash <= board.flash_bytes,
        },
        "ram": {
            "arena_bytes": arena_bytes,
            "buffer_bytes": buffer_bytes,
            "baseline_bytes": board.code_ram_bytes,
            "total_bytes": ram,
            "available_bytes": board.ram_bytes,
            "fits": ram <= board.ram_bytes,
        },
        "forced": False,
        "warnings": [],
    }
    problems = []
    if not budget["flash"]["fits"]:
        problems.append(
            f"flash {flash:,} B (model {model_bytes:,} + tokenizer {tokenizer_bytes:,} + code "
            f"{board.code_flash_bytes:,}) > {board.flash_bytes:,} B"
        )
    if not budget["ram"]["fits"]:
        problems.append(
            f"RAM {ram:,} B (arena {arena_bytes:,} at L={seq_len} + buffers {buffer_bytes:,} + "
            f"baseline {board.code_ram_bytes:,}) > {board.ram_bytes:,} B"
        )
    if problems:
        if not force:
            raise ExportError(
                f"board {board.name}: {'; '.join(problems)}; use a shorter --seq_len (the arena "
                "grows with L, the attention part with L^2), a smaller preset, or --force to "
                "write the library anyway"
            )
        budget["forced"] = True
        budget["warnings"].append(f"over budget, written because of --force: {'; '.join(problems)}")
    elif flash > 0.9 * board.flash_bytes:
        budget["warnings"].append(
            f"flash {flash:,} B leaves under 10% of {board.flash_bytes:,} B for the Arduino "
            "core and libc, which the code baseline (TFLM + CMSIS-NN) does not include"
        )
    return budget
