"""--help of a console script lists its command module's flags.

absl's --help lists the key flags of the module named by sys.argv[0]. Under `python -m pkg.cmd`
that is the command module; under a console script (e.g. `embbert-train`) it is the script
wrapper, which defines no flags, so --help listed none. A command's run() calls
`show_module_flags(__name__)` before app.run.
"""

from __future__ import annotations

import sys

from absl import flags


def show_module_flags(module_name: str, flag_values: flags.FlagValues = flags.FLAGS) -> None:
    """Make the key flags of `module_name` (its own and the ones it adopted) key flags of the
    program sys.argv[0] names, so --help lists them."""
    for flag in flag_values.get_key_flags_for_module(module_name):
        flag_values.register_key_flag_for_module(sys.argv[0], flag)
