"""synthclone: is synthetic data from text-to-image models ready to train an image recognizer,
and how robust is what it trains?"""

from importlib.metadata import PackageNotFoundError, version as _version

try:
    __version__ = _version("synthclone")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"

from .errors import UserError  # noqa: E402
from .registry import Registry  # noqa: E402

__all__ = ["Registry", "UserError", "__version__"]
