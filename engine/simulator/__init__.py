"""Simulated shoppers of the demo world driving the HTTP API (``recops simulate``).

    >>> summary = await run_simulation(world, SimulationConfig(api_url="http://127.0.0.1:8000", rate=30, duration=3))
    >>> summary.ctr, summary.expected_ctr

Users request lists, behave by the world's ground truth (``DemoWorld.sample_feedback``) and post
every impression, click, add-to-cart and purchase back through ``/events/batch``.
"""

from engine.simulator.scheduler import SimulationConfig, run_simulation
from engine.simulator.summary import SimulationSummary, VariantStats, format_summary
from engine.simulator.visits import Behaviour, behave, event_id, plan_users, visit_rates

__all__ = [
    "Behaviour",
    "SimulationConfig",
    "SimulationSummary",
    "VariantStats",
    "behave",
    "event_id",
    "format_summary",
    "plan_users",
    "run_simulation",
    "visit_rates",
]
