"""Training regimes: ``train_model(regime, train_data, val_data, model, out_dir, ...)``.

Regimes are registered in :data:`REGIMES` (``synthclone list regimes``); each trains through the
one loop in :mod:`synthclone.training.engine` and writes a checkpoint directory that
``synthclone.models.load_any_model`` (and so ``synthclone bench``) loads.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional, Sequence

from ..registry import Registry

REGIMES: Registry = Registry("regime")


def train_model(regime: str, train_data, val_data, model: Optional[str], out_dir, epochs: int = 3,
                batch_size: int = 128, lr: Optional[float] = None, seed: int = 0, weight_decay: float = 5e-4,
                precision: str = "auto", warmup_epochs: float = 0.5, patience: Optional[int] = None,
                val_limit: Optional[int] = None, optimizer: Optional[str] = None,
                loss_weights: Optional[Sequence[float]] = None, dataset: Optional[str] = None,
                data_options: Optional[dict] = None, device: str = "cpu", channels_last: bool = False,
                compile: bool = False, sync_bn: bool = False, **options: Any):
    """Train ``model`` with ``regime`` and write the best-on-validation checkpoint to ``out_dir``.

    Args:
        regime: a name in :data:`REGIMES` (supervised, finetune, linear-probe, classifier-tuning,
            ssl, ssl-multipos, clip).
        train_data: a data spec string (``"real"``, ``"real+STORE@0.5"``, see
            :mod:`synthclone.data.mixing`), a :class:`~synthclone.data.mixing.TrainData` or an
            :class:`~synthclone.data.images.ImageSet`.
        val_data: the validation split (:class:`ImageSet`) used for model selection, or None.
        model: a model name for :func:`synthclone.models.load_any_model` (None: the regime's default).
        out_dir: the checkpoint directory to write (resumed if a killed run of the same config left state).
        loss_weights: per data part loss weights (e.g. ``[1.0, 0.5]`` for real, synthetic).
        dataset: the real dataset behind ``real`` in data specs (needed when ``train_data`` or
            ``probe_data`` is a spec string).
        data_options: ``load_dataset`` options (``size``, ``workers``, ...) for spec strings.
        device: a device setting (``auto``, ``cpu``, ``cuda``, ``cuda:N``); under ``torchrun``
            ``cuda`` is each process's ``LOCAL_RANK`` GPU. CUDA without a GPU is a UserError.
        channels_last, compile, sync_bn: see :class:`~synthclone.training.engine.Settings`.
        options: regime options (``init``, ``tau``, ``probe_epochs``, ``temperature``, ``templates``, ...).
    Returns:
        :class:`~synthclone.training.engine.TrainResult` (checkpoint_dir, history, val_accuracy, ...).
    """
    from ..data.images import ImageSet
    from ..data.mixing import TrainData, from_sets, load_train_data
    from ..device import resolve_device
    from .engine import Settings
    from ..errors import UserError
    from .regimes import DEFAULT_LR, DEFAULT_MODEL, REGIME_OPTIONS, Context

    fn = REGIMES.get(regime)
    valid = REGIME_OPTIONS.get(regime)  # a regime registered elsewhere checks its own options
    unknown = sorted(set(options) - valid) if valid is not None else []
    if unknown:
        raise UserError(f"regime {regime} has no option {', '.join(map(repr, unknown))}; its options: "
                        f"{', '.join(sorted(valid))} (data limits belong to the config's data section)")
    if isinstance(train_data, str):
        train = load_train_data(train_data, dataset=dataset, seed=seed, options=data_options)
    elif isinstance(train_data, ImageSet):
        name = train_data.meta.get("store") or train_data.name or "real"
        train = from_sets([train_data], names=[name if train_data.meta.get("store") else "real"])
    elif isinstance(train_data, TrainData):
        train = train_data
    else:
        raise TypeError(f"train_data must be a spec string, TrainData or ImageSet, not {type(train_data).__name__}")
    settings = Settings(epochs=epochs, batch_size=batch_size, lr=lr if lr is not None else DEFAULT_LR.get(regime, 0.05),
                        weight_decay=weight_decay, seed=seed, precision=precision, warmup_epochs=warmup_epochs,
                        patience=patience, val_limit=val_limit, optimizer=optimizer or "sgd",
                        source_weights=list(loss_weights) if loss_weights else None, device=resolve_device(device),
                        channels_last=channels_last, compile=compile, sync_bn=sync_bn)
    if optimizer:
        options["optimizer_given"] = True
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    ctx = Context(regime, train, val_data, model or DEFAULT_MODEL.get(regime, "resnet8"), out, settings, options,
                  dataset=dataset, data_options=dict(data_options or {}))
    return fn(ctx)


from . import regimes  # noqa: E402,F401  (registers the regimes)

__all__ = ["REGIMES", "train_model"]
