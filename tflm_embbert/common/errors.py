"""The project's error for a bad input the user can fix.

Every command runs under `tflm_embbert.common.cli.run`, which prints a UserInputError as one line
on stderr (no traceback) and exits with code 2, as it does for a bad flag (absl's
app.UsageError). Any other exception is an internal error: exit code 1, its traceback only with
--verbose. The errors that name a bad file, run folder, model or option (DataFormatError,
RunFolderError, ExportError, BucketError) are UserInputErrors; it derives from ValueError so the
code that checks values keeps catching them as such.
"""

from __future__ import annotations


class UserInputError(ValueError):
    """A bad flag value, file, run folder or model, told in one line: what was given and what
    was expected."""


class MissingFileError(UserInputError, FileNotFoundError):
    """A file or folder the user named (or a task needs) does not exist; still a
    FileNotFoundError for the code that catches that."""
