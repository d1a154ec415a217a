"""Errors survive the trip back from worker processes (Ray pickles them) with type and message."""

import pickle

from synthclone.errors import MissingExtraError, UserError


def test_missing_extra_error_pickles():
    e = pickle.loads(pickle.dumps(MissingExtraError("diffusers", "diffusers", "the diffusers generator")))
    assert type(e) is MissingExtraError and isinstance(e, UserError)
    assert str(e) == "diffusers is needed for the diffusers generator but not installed; install it with: " \
                     "pip install 'synthclone[diffusers]'"
