"""Logged sampler names → diffusers schedulers, built from a pipeline's scheduler config."""

from __future__ import annotations

import pytest

from diffwatch.drift.samplers import UnknownSampler, build_scheduler, known_samplers, resolve

# diffusers' schedulers trip numpy 2's copy-keyword deprecation on every set_timesteps.
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")

# An SD 1.5-style scheduler config, as a pipeline's scheduler.config holds it.
SD15 = {
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "num_train_timesteps": 1000,
    "prediction_type": "epsilon",
    "steps_offset": 1,
}


@pytest.mark.parametrize(
    ("logged", "cls", "options"),
    [
        ("DDIM", "DDIMScheduler", {}),
        ("Euler", "EulerDiscreteScheduler", {}),
        ("Euler a", "EulerAncestralDiscreteScheduler", {}),
        ("euler_ancestral", "EulerAncestralDiscreteScheduler", {}),
        ("DPM++ 2M", "DPMSolverMultistepScheduler", {}),
        ("DPM++ 2M Karras", "DPMSolverMultistepScheduler", {"use_karras_sigmas": True}),
        ("dpmpp_2m_karras", "DPMSolverMultistepScheduler", {"use_karras_sigmas": True}),
        ("DPM++ 2M SDE", "DPMSolverMultistepScheduler", {"algorithm_type": "sde-dpmsolver++"}),
        (
            "DPM++ 2M SDE Karras",
            "DPMSolverMultistepScheduler",
            {"algorithm_type": "sde-dpmsolver++", "use_karras_sigmas": True},
        ),
        ("DPM++ SDE", "DPMSolverSinglestepScheduler", {}),
        ("DPM2 a", "KDPM2AncestralDiscreteScheduler", {}),
        ("Heun", "HeunDiscreteScheduler", {}),
        ("LMS Karras", "LMSDiscreteScheduler", {"use_karras_sigmas": True}),
        ("PLMS", "PNDMScheduler", {}),
        ("UniPC", "UniPCMultistepScheduler", {}),
        ("uni_pc", "UniPCMultistepScheduler", {}),
        ("DEIS", "DEISMultistepScheduler", {}),
        ("LCM", "LCMScheduler", {}),
        ("K_DPMPP_2M", "DPMSolverMultistepScheduler", {}),
        ("EulerDiscreteScheduler", "EulerDiscreteScheduler", {}),
    ],
)
def test_logged_names_build_the_matching_scheduler(logged, cls, options) -> None:
    assert resolve(logged).scheduler == cls
    scheduler = build_scheduler(logged, SD15)
    assert type(scheduler).__name__ == cls
    for key, value in options.items():
        assert scheduler.config[key] == value
    assert scheduler.config["beta_schedule"] == "scaled_linear"  # the pipeline's carry over
    scheduler.set_timesteps(25)  # usable as built
    assert len(scheduler.timesteps) >= 25


@pytest.mark.parametrize("logged", ["DPM adaptive", "Restart", "", None, "karras"])
def test_unknown_names_raise_a_clear_error(logged) -> None:
    with pytest.raises(UnknownSampler) as err:
        build_scheduler(logged, SD15)
    if logged:
        assert repr(logged) in str(err.value) and "dpm++ 2m" in str(err.value)


def test_known_samplers_are_all_buildable() -> None:
    for name in known_samplers():
        build_scheduler(name, SD15)
