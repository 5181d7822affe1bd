"""Multi-run protocols: plan the runs, execute them, record their provenance.

:mod:`~geocsp.experiments.plan` turns methods × label ratios × seeds into training jobs,
:mod:`~geocsp.experiments.execute` runs them (a process pool, reusing finished runs) and
:mod:`~geocsp.experiments.provenance` names runs and describes the machine. ``geocsp demo``
and ``geocsp bench paper`` (:mod:`geocsp.demo`) are built on it.

The runner itself, :func:`geocsp.experiments.execute.execute`, is not re-exported here: the
name would hide its module.
"""

from geocsp.experiments.execute import (
    Interrupted,
    default_jobs,
    finished_metrics,
    interruptible,
    run_job,
)
from geocsp.experiments.plan import Job, Method, PlanSettings, plan_jobs
from geocsp.experiments.provenance import dataset_identity, machine_info

__all__ = [
    "Interrupted",
    "Job",
    "Method",
    "PlanSettings",
    "dataset_identity",
    "default_jobs",
    "finished_metrics",
    "interruptible",
    "machine_info",
    "plan_jobs",
    "run_job",
]
