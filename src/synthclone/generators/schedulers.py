"""Noise schedule and samplers of the embedded diffusion model, kept apart from the network.

The layout follows diffusers: a scheduler holds the discrete noise schedule (``alphas_cumprod`` over
``num_train_timesteps`` steps), ``set_timesteps(n)`` picks the ``n`` timesteps to visit and ``step(...)``
does one update. Two samplers, both deterministic, both written out here in a few lines:

* :class:`DDIMScheduler` (Song et al. 2021, eta = 0): ``x_prev = a_prev * x0 + s_prev * eps``.
* :class:`DPMSolverMultistepScheduler`: DPM-Solver++(2M) (Lu et al. 2022), a second-order multistep
  solver in log-SNR time that reuses the previous step's data prediction, so it costs one network call
  per step like DDIM but is accurate with ~10 steps. First step and last step are first order (the last
  one lands on sigma = 0, where the update reduces to the data prediction), as in diffusers.

Notation: ``alpha_t = sqrt(abar_t)``, ``sigma_t = sqrt(1 - abar_t)``, ``x_t = alpha_t x0 + sigma_t eps``,
``lambda_t = log(alpha_t / sigma_t)``. The network predicts ``eps`` or ``v = alpha_t eps - sigma_t x0``.
Timesteps are spaced "trailing" (the first one is the last training timestep, T-1) because with few
steps that starts sampling from (almost) pure noise, matching training. ``tests/test_generators_schedulers.py``
checks timesteps and updates against diffusers' ``DDIMScheduler`` and ``DPMSolverMultistepScheduler``.
"""

from __future__ import annotations

import math
from typing import List, Optional

import torch

from ..errors import UserError


def cosine_betas(num_train_timesteps: int = 1000, s: float = 0.008, max_beta: float = 0.999) -> torch.Tensor:
    """Betas of the cosine schedule (Nichol & Dhariwal 2021), float64 (T,), each in (0, max_beta]."""
    def abar(u: float) -> float:
        return math.cos((u + s) / (1 + s) * math.pi / 2) ** 2

    t = num_train_timesteps
    betas = [min(1 - abar((i + 1) / t) / abar(i / t), max_beta) for i in range(t)]
    return torch.tensor(betas, dtype=torch.float64)


class NoiseSchedule:
    """The discrete forward process: ``abar_t`` for ``t`` in ``0..T-1`` (float64 tensors).

    Args:
        num_train_timesteps: T.
        kind: ``"cosine"`` (default) or ``"linear"`` (DDPM's 1e-4..0.02).
        prediction_type: what the network outputs, ``"v_prediction"`` or ``"epsilon"``.
    """

    def __init__(self, num_train_timesteps: int = 1000, kind: str = "cosine", prediction_type: str = "v_prediction"):
        if kind == "cosine":
            betas = cosine_betas(num_train_timesteps)
        elif kind == "linear":
            betas = torch.linspace(1e-4, 0.02, num_train_timesteps, dtype=torch.float64)
        else:
            raise UserError(f"unknown noise schedule {kind!r}; valid: cosine, linear")
        if prediction_type not in ("v_prediction", "epsilon"):
            raise UserError(f"unknown prediction type {prediction_type!r}; valid: v_prediction, epsilon")
        self.num_train_timesteps = num_train_timesteps
        self.kind = kind
        self.prediction_type = prediction_type
        self.betas = betas
        self.alphas_cumprod = torch.cumprod(1.0 - betas, dim=0)

    def config(self) -> dict:
        return {"num_train_timesteps": self.num_train_timesteps, "kind": self.kind, "prediction_type": self.prediction_type}

    def _coef(self, t: torch.Tensor, like: torch.Tensor):
        abar = self.alphas_cumprod[t.long().cpu()].to(like.dtype).to(like.device).view(-1, *([1] * (like.ndim - 1)))
        return abar.sqrt(), (1 - abar).sqrt()

    def add_noise(self, x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """``x_t = alpha_t x0 + sigma_t noise``; x0, noise (N, ...) float, t int64 (N,) in [0, T)."""
        a, s = self._coef(t, x0)
        return a * x0 + s * noise

    def target(self, x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """The regression target of the network at ``t``: ``v = alpha eps - sigma x0`` or ``eps``."""
        if self.prediction_type == "epsilon":
            return noise
        a, s = self._coef(t, x0)
        return a * noise - s * x0

    def split(self, model_output: torch.Tensor, x: torch.Tensor, abar: float):
        """(x0, eps) predicted from the network output at a timestep with ``abar`` (a float)."""
        a, s = math.sqrt(abar), math.sqrt(1.0 - abar)
        if self.prediction_type == "epsilon":
            eps = model_output
            x0 = (x - s * eps) / a
        else:
            x0 = a * x - s * model_output
            eps = s * x + a * model_output
        return x0, eps


def trailing_timesteps(num_train_timesteps: int, num_inference_steps: int) -> List[int]:
    """``n`` timesteps from ``T-1`` downwards, evenly spaced (diffusers' ``timestep_spacing="trailing"``)."""
    if num_inference_steps < 1:
        raise UserError(f"steps must be >= 1 (got {num_inference_steps})")
    if num_inference_steps > num_train_timesteps:
        raise UserError(f"steps={num_inference_steps} exceeds the {num_train_timesteps} training timesteps")
    ratio = num_train_timesteps / num_inference_steps
    return [int(round(v)) - 1 for v in torch.arange(num_train_timesteps, 0, -ratio, dtype=torch.float64).tolist()]


class _Sampler:
    """Common part: the visited timesteps and the ``abar`` each update lands on."""

    def __init__(self, schedule: NoiseSchedule, clip_sample: bool = False):
        self.schedule = schedule
        # clip the predicted clean image to the data range [-1, 1] (and re-derive eps from it): keeps
        # strongly guided samples in range, like diffusers' ``clip_sample``
        self.clip_sample = clip_sample
        self.timesteps: List[int] = []
        self.step_index = 0

    def set_timesteps(self, num_inference_steps: int, strength: Optional[float] = None) -> List[int]:
        """Choose the timesteps (descending ints); with ``strength`` in [0, 1] keep only the last
        ``int(n * strength)`` of them, as image-to-image does (strength 1 = all, 0 = none)."""
        ts = trailing_timesteps(self.schedule.num_train_timesteps, num_inference_steps)
        if strength is not None:
            keep = min(int(num_inference_steps * strength), num_inference_steps)
            ts = ts[num_inference_steps - keep :]
        self.timesteps = ts
        self.step_index = 0
        self._reset()
        return list(ts)

    def _reset(self) -> None:
        pass

    def _predict(self, model_output: torch.Tensor, sample: torch.Tensor, abar: float):
        x0, eps = self.schedule.split(model_output, sample, abar)
        if self.clip_sample:
            x0 = x0.clamp(-1.0, 1.0)
            eps = (sample - math.sqrt(abar) * x0) / math.sqrt(1.0 - abar)
        return x0, eps

    def _abar(self, i: int) -> float:
        """``abar`` at visited step ``i``; past the last visited step it is 1 (sigma = 0, a clean image)."""
        if i >= len(self.timesteps):
            return 1.0
        return float(self.schedule.alphas_cumprod[self.timesteps[i]])


class DDIMScheduler(_Sampler):
    """Deterministic DDIM (eta = 0).

    ``step(model_output, sample)`` with ``sample`` x_t float (N, C, H, W) at ``timesteps[step_index]``
    returns x at the next visited timestep (a clean image after the last one).
    """

    name = "ddim"

    def step(self, model_output: torch.Tensor, sample: torch.Tensor) -> torch.Tensor:
        i = self.step_index
        x0, eps = self._predict(model_output, sample, self._abar(i))
        abar_prev = self._abar(i + 1)
        self.step_index += 1
        return math.sqrt(abar_prev) * x0 + math.sqrt(1.0 - abar_prev) * eps


class DPMSolverMultistepScheduler(_Sampler):
    """DPM-Solver++(2M), midpoint variant, first order at the first and at the last step.

    With ``h = lambda_t - lambda_s`` and data predictions ``D0`` (now) and ``D1`` (one step back):
    ``x_t = (sigma_t / sigma_s) x_s - alpha_t (e^{-h} - 1) (D0 + (D0 - D1_prev) / (2 r))``, ``r = h_prev / h``.
    """

    name = "dpm"

    def _reset(self) -> None:
        self._prev_x0: Optional[torch.Tensor] = None
        self._prev_lambda: Optional[float] = None

    @staticmethod
    def _alpha_sigma_lambda(abar: float):
        if abar >= 1.0:
            return 1.0, 0.0, math.inf
        a, s = math.sqrt(abar), math.sqrt(1.0 - abar)
        return a, s, math.log(a) - math.log(s)

    def step(self, model_output: torch.Tensor, sample: torch.Tensor) -> torch.Tensor:
        i = self.step_index
        abar_s, abar_t = self._abar(i), self._abar(i + 1)
        x0, _ = self._predict(model_output, sample, abar_s)
        a_s, s_s, lam_s = self._alpha_sigma_lambda(abar_s)
        a_t, s_t, lam_t = self._alpha_sigma_lambda(abar_t)
        last = i == len(self.timesteps) - 1
        if s_t == 0.0:
            out = x0  # e^{-h} = 0: the first-order update is exactly the data prediction
        else:
            h = lam_t - lam_s
            phi = math.expm1(-h)  # e^{-h} - 1
            d = x0
            if self._prev_x0 is not None and not last:
                r = (lam_s - self._prev_lambda) / h
                d = x0 + (x0 - self._prev_x0) / (2.0 * r)
            out = (s_t / s_s) * sample - a_t * phi * d
        self._prev_x0, self._prev_lambda = x0, lam_s
        self.step_index += 1
        return out


SCHEDULERS = {"ddim": DDIMScheduler, "dpm": DPMSolverMultistepScheduler}


def make_scheduler(name: str, schedule: NoiseSchedule, clip_sample: bool = False):
    """A fresh sampler by name (``"dpm"`` = DPM-Solver++(2M), ``"ddim"``) over ``schedule``."""
    try:
        return SCHEDULERS[name](schedule, clip_sample=clip_sample)
    except KeyError:
        raise UserError(f"unknown scheduler {name!r}; valid schedulers: {', '.join(sorted(SCHEDULERS))}") from None
