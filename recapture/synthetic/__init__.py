"""Simulated registration worlds with known truth: for the demo, the tests and benchmarks.

Real police and IOM extracts are confidential; a simulated world has the same layouts and
the same difficulties (spelling variants, aliases, partial birth dates) and tells exactly
who is who, so every later stage can be checked against the truth::

    from recapture.synthetic import SimulationConfig, simulate_world, write_world
    world = simulate_world(SimulationConfig(size=5_000, seed=1))
    write_world(world, "sim-run")
"""

from recapture.synthetic.config import (
    IomConfig,
    NationalityForms,
    NoiseConfig,
    PoliceConfig,
    PopulationConfig,
    SimulationConfig,
    config_from_dict,
    load_config,
)
from recapture.synthetic.output import format_summary, run_simulation, write_world
from recapture.synthetic.simulate import World, simulate_world, summarise

__all__ = [
    "IomConfig",
    "NationalityForms",
    "NoiseConfig",
    "PoliceConfig",
    "PopulationConfig",
    "SimulationConfig",
    "World",
    "config_from_dict",
    "format_summary",
    "load_config",
    "run_simulation",
    "simulate_world",
    "summarise",
    "write_world",
]
