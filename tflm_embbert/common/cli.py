"""The one entry wrapper of every command: `run(main)`.

    def main(argv): ...      # imports TensorFlow only once the flags are valid

    def run():               # the console script's entry point ([project.scripts])
        cli.run(main)

- --help lists the command module's flags (also under a console script, whose sys.argv[0] is a
  wrapper that defines none) and --verbose.
- A bad flag (absl's parse error), an app.UsageError or a UserInputError: one line on stderr,
  `<command>: <message>`, no traceback, exit code 2.
- Any other exception is an internal error: one line saying so (the traceback too with
  --verbose), exit code 1.
- Without --verbose the command runs under `quiet.quiet_output` (no TensorFlow start-up lines).
"""

from __future__ import annotations

import sys
import traceback
from collections.abc import Callable
from pathlib import Path

from absl import app, flags

from tflm_embbert.common.errors import UserInputError
from tflm_embbert.common.quiet import quiet_output

FLAGS = flags.FLAGS
flags.DEFINE_bool(
    "verbose",
    False,
    "Show TensorFlow's start-up and log lines, Python warnings and an internal error's traceback.",
)
USAGE_EXIT = 2  # a bad flag, file or value: the user can fix it
INTERNAL_EXIT = 1


def show_module_flags(module_name: str, flag_values: flags.FlagValues = FLAGS) -> None:
    """Make the key flags of `module_name` (its own and the ones it adopted) key flags of the
    program sys.argv[0] names, so --help lists them. absl's --help lists the key flags of the
    module sys.argv[0] names: under `python -m pkg.cmd` the command module, under a console
    script the script wrapper, which defines no flags."""
    for flag in flag_values.get_key_flags_for_module(module_name):
        flag_values.register_key_flag_for_module(sys.argv[0], flag)


def command_name() -> str:
    """`export_tflite`, `embbert-train`, or for `python -m tflm_embbert.train` `train`."""
    return Path(sys.argv[0]).stem or "command"


def one_line(text: str) -> str:
    return " ".join(part.strip() for part in str(text).splitlines() if part.strip())


def fail(message: str, exit_code: int = USAGE_EXIT) -> None:
    """Ends the command: `<command>: <message>` as one line on stderr."""
    sys.stderr.flush()
    print(f"{command_name()}: {one_line(message)}", file=sys.stderr, flush=True)
    sys.exit(exit_code)


def _parse_flags(argv: list[str]) -> list[str]:
    try:
        return FLAGS(argv)
    except flags.Error as error:
        fail(str(error))


def _guarded(main: Callable[[list[str]], object]) -> Callable[[list[str]], object]:
    def guarded_main(argv: list[str]) -> object:
        verbose = FLAGS.verbose
        try:
            with quiet_output(verbose):
                return main(argv)
        except (app.UsageError, UserInputError) as error:
            fail(str(error))
        except Exception as error:  # noqa: BLE001 - the internal-error line
            if verbose:
                traceback.print_exc()
            hint = "" if verbose else " (run again with --verbose for the traceback)"
            fail(
                f"internal error: {type(error).__name__}: {one_line(error)[:300]}{hint}",
                INTERNAL_EXIT,
            )

    return guarded_main


def run(main: Callable[[list[str]], object]) -> None:
    """Parses the flags and runs `main(argv)` as above (absl's app.run underneath)."""
    module = main.__module__
    show_module_flags(sys.argv[0] if module == "__main__" else module)
    show_module_flags(__name__)  # --verbose
    app.run(_guarded(main), flags_parser=_parse_flags)
