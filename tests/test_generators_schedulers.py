"""The hand-written DDIM and DPM-Solver++(2M) samplers against diffusers' schedulers on the same schedule."""

import pytest
import torch

from synthclone.errors import UserError
from synthclone.generators.schedulers import (DDIMScheduler, DPMSolverMultistepScheduler, NoiseSchedule,
                                              make_scheduler, trailing_timesteps)

diffusers = pytest.importorskip("diffusers")


def _toy_model(x, t):
    """A fixed nonlinear 'network' so multistep history matters."""
    return torch.tanh(0.7 * x) * (1.0 + t / 1000.0) - 0.1 * x.mean()


def _run_ours(sampler, steps, x):
    sampler.set_timesteps(steps)
    for t in sampler.timesteps:
        x = sampler.step(_toy_model(x, float(t)), x)
    return x


def _run_diffusers(sched, steps, x):
    sched.set_timesteps(steps)
    for t in sched.timesteps:
        x = sched.step(_toy_model(x, float(t)), t, x).prev_sample
    return x


@pytest.mark.parametrize("prediction_type", ["v_prediction", "epsilon"])
@pytest.mark.parametrize("steps", [1, 5, 10, 25])
def test_ddim_matches_diffusers(prediction_type, steps):
    schedule = NoiseSchedule(prediction_type=prediction_type)
    ref = diffusers.DDIMScheduler(num_train_timesteps=1000, trained_betas=schedule.betas.numpy(), clip_sample=False,
                                  set_alpha_to_one=True, prediction_type=prediction_type, timestep_spacing="trailing")
    ref.set_timesteps(steps)
    assert trailing_timesteps(1000, steps) == ref.timesteps.tolist()
    x = torch.randn(4, 1, 8, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    ours = _run_ours(DDIMScheduler(schedule), steps, x.clone())
    theirs = _run_diffusers(ref, steps, x.clone())
    torch.testing.assert_close(ours, theirs.to(ours.dtype), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("prediction_type", ["v_prediction", "epsilon"])
@pytest.mark.parametrize("steps", [2, 5, 10, 20])
def test_dpm_solver_pp_2m_matches_diffusers(prediction_type, steps):
    schedule = NoiseSchedule(prediction_type=prediction_type)
    ref = diffusers.DPMSolverMultistepScheduler(num_train_timesteps=1000, trained_betas=schedule.betas.numpy(),
                                                algorithm_type="dpmsolver++", solver_order=2, solver_type="midpoint",
                                                prediction_type=prediction_type, timestep_spacing="trailing",
                                                lower_order_final=True, final_sigmas_type="zero")
    ref.set_timesteps(steps)
    assert trailing_timesteps(1000, steps) == ref.timesteps.tolist()
    x = torch.randn(4, 1, 8, 8, dtype=torch.float32, generator=torch.Generator().manual_seed(1))
    ours = _run_ours(DPMSolverMultistepScheduler(schedule), steps, x.clone())
    theirs = _run_diffusers(ref, steps, x.clone())
    torch.testing.assert_close(ours, theirs.to(ours.dtype), rtol=2e-3, atol=2e-3)


def test_dpm_differs_from_ddim_after_first_step():
    """The second-order correction is really applied (else the DPM test would pass for a DDIM)."""
    schedule = NoiseSchedule()
    x = torch.randn(2, 1, 8, 8, generator=torch.Generator().manual_seed(2))
    a = _run_ours(DDIMScheduler(schedule), 10, x.clone())
    b = _run_ours(DPMSolverMultistepScheduler(schedule), 10, x.clone())
    assert (a - b).abs().max() > 1e-3


def test_strength_keeps_the_last_timesteps():
    s = DDIMScheduler(NoiseSchedule())
    full = s.set_timesteps(10)
    assert s.set_timesteps(10, strength=0.5) == full[5:]
    assert s.set_timesteps(10, strength=1.0) == full
    assert s.set_timesteps(10, strength=0.0) == []


def test_noise_schedule_forward_process():
    schedule = NoiseSchedule()
    abar = schedule.alphas_cumprod
    assert abar[0] > 0.999 and abar[-1] < 1e-3 and bool((abar[1:] < abar[:-1]).all())
    x0, noise = torch.rand(3, 1, 4, 4) * 2 - 1, torch.randn(3, 1, 4, 4)
    t = torch.tensor([0, 500, 999])
    xt = schedule.add_noise(x0, noise, t)
    v = schedule.target(x0, noise, t)
    for i in range(3):
        x0_hat, eps_hat = schedule.split(v[i], xt[i], float(abar[t[i]]))
        torch.testing.assert_close(x0_hat, x0[i], atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(eps_hat, noise[i], atol=1e-4, rtol=1e-4)


def test_bad_scheduler_and_steps():
    with pytest.raises(UserError, match="valid schedulers"):
        make_scheduler("euler", NoiseSchedule())
    with pytest.raises(UserError, match="steps"):
        trailing_timesteps(1000, 0)
