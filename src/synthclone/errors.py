"""Errors a user can fix: the CLI prints their message as one line and exits with code 2."""


class UserError(Exception):
    """Bad input: a missing file, an unknown name, a value out of range.

    The message names the thing and the fix, in one line. The CLI catches it, prints
    ``synthclone: error: <message>`` and exits with status 2.
    """

    exit_code = 2


class MissingExtraError(UserError):
    """An optional dependency (an extra) is not installed."""

    def __init__(self, package: str, extra: str, what: str = ""):
        self.package, self.extra, self.what = package, extra, what
        what = f" for {what}" if what else ""
        super().__init__(
            f"{package} is needed{what} but not installed; install it with: "
            f"pip install 'synthclone[{extra}]'"
        )

    def __reduce__(self):  # rebuilt from its own fields (it comes back pickled from Ray workers)
        return (type(self), (self.package, self.extra, self.what))
