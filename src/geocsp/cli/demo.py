"""``geocsp demo``: the paper's Table 1 reproduced on GeoWorld, with maps (docs/demo.md).

Also holds the options and the runner shared with ``geocsp bench paper``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from geocsp.demo.compare import format_comparisons
from geocsp.demo.report import format_table
from geocsp.demo.run import run_table
from geocsp.demo.tables import TABLE_GAIN, methods_by_name, settings_for
from geocsp.errors import ConfigError, GeocspError
from geocsp.experiments.execute import Interrupted, interruptible


def _floats(text: str | None) -> tuple[float, ...] | None:
    if text is None:
        return None
    try:
        return tuple(float(t) for t in text.split(",") if t.strip())
    except ValueError:
        raise click.BadParameter(f"expected comma-separated numbers like 0.05,0.1, got {text!r}") from None


class _Folds(click.ParamType):
    """``auto`` or an integer number of folds (validated by :class:`~geocsp.demo.tables.DemoSettings`)."""

    name = "auto|K"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int | str:
        if isinstance(value, int) or value == "auto":
            return value
        try:
            return int(value)
        except ValueError:
            self.fail(f"expected auto or an integer, got {value!r}", param, ctx)


def table_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """Options shared by ``demo`` and ``bench paper``.

    Args:
        f: the command function.

    Returns:
        ``f`` with the options attached.
    """
    options = [
        click.option("--quick", is_flag=True, help="the geoworld-quick preset (small world, tiny budget)."),
        click.option("--preset", default=None,
                     help="demo preset name or YAML, or auto (default geoworld-demo; auto for --data not a GeoWorld)."),
        click.option("--seeds", type=click.IntRange(min=1), default=None, help="number of seeds (0 .. N-1)."),
        click.option("--ratios", default=None, help="label ratios, e.g. 0.05,0.1,0.2,1.0"),
        click.option("--world", default=None, help="GeoWorld preset (small, default, ...)."),
        click.option("--device", default="cpu", show_default=True, help="cpu | cuda | cuda:N | auto"),
        click.option("--jobs", type=click.IntRange(min=1), default=None,
                     help="worker processes (default: one per core, 1 on a GPU)."),
        click.option("--runs", default=None, type=click.Path(), help="training-run directory (default OUT/runs)."),
        click.option("--no-figures", is_flag=True, help="skip the PNG figures."),
        click.option("--crossfit", "crossfit", type=_Folds(), default="auto", show_default=True, metavar="auto|K",
                     help="without a calib split: cross-fit the calibrated fusion on K folds of each run's "
                          "labelled subset (K extra fine-tunings per run; needs out-of-fold train "
                          "probabilities; docs/fusion.md). auto = 3 when the data has no calib split but "
                          "train probabilities, else off; 0 = off."),
    ]
    for opt in reversed(options):
        f = opt(f)
    return f


def run_and_print(table: int, out: str, quick: bool, preset: str | None, seeds: int | None,
                  ratios: str | None, world: str | None, device: str, jobs: int | None,
                  runs: str | None, no_figures: bool, data: str | None = None,
                  methods: str | None = None, crossfit: int | str = "auto") -> None:
    """Resolve the settings, run the table, print it and where the files are.

    Prints the paper's fused top-1 table first (as before), then the calibrated fusion's
    table and the paired per-seed differences (docs/protocol.md).

    Args:
        table: 1, 2 or 3.
        out: output directory.
        quick: the quick preset (when ``preset`` is None).
        preset: demo preset name or YAML.
        seeds: number of seeds.
        ratios: comma-separated label ratios.
        world: GeoWorld preset.
        device: device of every run.
        jobs: worker processes.
        runs: training-run directory.
        no_figures: skip the PNG figures.
        data: a geocsp dataset directory instead of the preset's GeoWorld.
        methods: comma-separated method names (``img-only,sup-grid,...``); None for the table's.
        crossfit: K folds of the labelled-subset cross-fit (0 = off), or ``auto``.

    SIGINT/SIGTERM end the command (and its worker processes) with one stderr line,
    ``geocsp: interrupted (SIGTERM); rerun the same command to resume``, and exit status 130
    (SIGINT) or 143 (SIGTERM); rerunning resumes.
    """
    created = not Path(out).exists()
    try:
        with interruptible():
            _run_and_print(table, out, quick, preset, seeds, ratios, world, device, jobs, runs, no_figures,
                           data, methods, crossfit)
    except GeocspError:
        if created:
            _remove_unused(Path(out))
        raise
    except Interrupted as e:
        click.echo(f"geocsp: {e}", err=True)
        click.get_current_context().exit(e.exit_code)


def _remove_unused(out: Path) -> None:
    """Remove ``out`` when a refused command created it and left only its derived preset there.

    A refusal (bad ratio, missing probabilities...) comes before any run; the folder and its
    ``preset-auto.yaml`` are then all the command wrote. A folder holding anything else stays.
    """
    if not out.is_dir() or any(p.name != "preset-auto.yaml" for p in out.iterdir()):
        return
    (out / "preset-auto.yaml").unlink(missing_ok=True)
    out.rmdir()


def _run_and_print(table: int, out: str, quick: bool, preset: str | None, seeds: int | None,
                   ratios: str | None, world: str | None, device: str, jobs: int | None,
                   runs: str | None, no_figures: bool, data: str | None, methods: str | None,
                   crossfit: int | str) -> None:
    chosen = methods_by_name(methods)
    if chosen is not None and table != 1:
        raise ConfigError(f"--methods: applies to --table 1 (Table 1's methods), not --table {table}")
    settings = settings_for(preset, quick=quick, seeds=seeds, ratios=_floats(ratios), world=world,
                            device=device, jobs=jobs, data=data, out=out, crossfit_folds=crossfit)
    where = (f"dataset {settings.data}" if settings.data is not None
             else f"GeoWorld '{settings.world}' (seed {settings.world_seed})")
    click.echo(f"geocsp: table {table} on {where}, "
               f"preset {settings.preset}, seeds {list(settings.seeds)}, ratios {list(settings.ratios)}, "
               f"{settings.jobs} job(s)", err=True)
    res = run_table(settings, table, out, runs=runs, progress=lambda s: click.echo(s, err=True),
                    figures=not no_figures, methods=chosen)
    click.echo(format_table(res["rows"], TABLE_GAIN[table]))
    click.echo(f"fused top-1 %, mean (std) over {len(settings.seeds)} seeds; {res['seconds']:.0f} s; "
               f"wrote {', '.join(sorted(str(p) for p in res['paths'].values()))}")
    click.echo("\ncalibrated fusion (docs/fusion.md):")
    click.echo(format_table(res["rows"], TABLE_GAIN[table], prefix="cal_"))
    if res["comparisons"]:
        click.echo(format_comparisons(res["comparisons"]))
    for note in res["notes"]:
        click.echo(f"note: {note}", err=True)


@click.command("demo")
@table_options
@click.option("--out", default="geocsp-demo", show_default=True, type=click.Path(), help="output directory.")
def demo(out: str, **opts: Any) -> None:
    """The paper's Table 1 on GeoWorld: Img. Only, Sup. Only, MSE, CSP-NCE/MC at 5-100 % labels.

    Generates (and caches) the world, pre-trains once per (method, seed), fine-tunes per
    (method, ratio, seed), prints fused top-1 mean (std) and writes results.json/csv/md and
    figures to OUT. Rerunning reuses finished runs.
    """
    run_and_print(1, out, **opts)


COMMANDS = [demo]
