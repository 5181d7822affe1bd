"""``geocsp pretrain | finetune | evaluate | predict | embed`` (docs/training.md).

Config precedence: dataclass defaults < ``--preset`` < ``--config FILE.yaml`` <
``--set key.path=value`` < explicit flags (``--epochs`` ...). Each command parses its
arguments, makes one library call and prints.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click

from geocsp.cli.options import (
    device_option,
    echo_metrics,
    flag_overrides,
    overwrite_option,
    parse_beta,
    point_options,
    run_options,
)
from geocsp.coords import validate_lonlat
from geocsp.data.format import MANIFEST
from geocsp.data.table_formats import WRITE_SUFFIXES
from geocsp.data.tables import read_points
from geocsp.distributed import cleanup
from geocsp.errors import ConfigError
from geocsp.pretrained import PREFIX
from geocsp.training import (
    FinetuneConfig,
    PretrainConfig,
    embed,
    evaluate,
    finetune,
    predict,
    pretrain,
    resolve_config,
)
from geocsp.training.embedding import check_embedding_out


@contextlib.contextmanager
def _process_group() -> Iterator[None]:
    """Destroy the torchrun process group (if the command joined one) when it ends.

    On success the ranks meet at a barrier first, so none tears down while another is still
    writing or communicating.
    """
    try:
        yield
    except BaseException:
        cleanup()
        raise
    cleanup(sync=True)


@click.command("pretrain")
@run_options
def pretrain_cmd(data: str, out: str, preset: str | None, config_file: str | None,
                 overrides: tuple[str, ...], overwrite: bool, **flags: Any) -> None:
    """CSP pre-training of a location encoder (writes OUT/encoder)."""
    cfg = resolve_config(PretrainConfig, stage="pretrain", preset=preset, config_file=config_file,
                         overrides=[*overrides, *flag_overrides(**flags)])
    with _process_group():
        metrics = pretrain(cfg, data, out, overwrite=overwrite)
    click.echo(f"pretrain: {metrics.get('epoch', 0)} epochs, loss {metrics.get('loss', float('nan')):.4f}; "
               f"encoder in {out}/encoder")


@click.command("finetune")
@run_options
@click.option("--init", default=None, type=click.Path(), help="pre-training run (default: Sup. Only).")
@click.option("--ratio", type=float, default=None, help="label ratio λ in (0, 1].")
@click.option("--subset", default=None, metavar="FILE[:COLUMN]",
              help="train rows the image classifier used: indices (.txt/.csv/.npy) or a 0/1 column; "
                   "replaces the stratified λ-subset (docs/dataset.md).")
def finetune_cmd(data: str, out: str, preset: str | None, config_file: str | None,
                 overrides: tuple[str, ...], overwrite: bool, init: str | None, subset: str | None,
                 **flags: Any) -> None:
    """Fine-tune the location prior P(y|x) on a label subset; evaluates on val."""
    cfg = resolve_config(FinetuneConfig, stage="finetune", preset=preset, config_file=config_file,
                         overrides=[*overrides, *flag_overrides(**flags)])
    if subset is not None:  # an explicit flag overrides --set subset=...
        cfg = dataclasses.replace(cfg, subset=subset)
    with _process_group():
        metrics = finetune(cfg, data, out, init=init, overwrite=overwrite)
    echo_metrics(metrics)


@click.command("evaluate")
@click.argument("run", type=click.Path())
@click.option("--data", "data", required=True, type=click.Path(), help="geocsp dataset directory.")
@click.option("--split", default="val", show_default=True)
@click.option("--probs-key", default="auto", show_default=True, help="image-probability set.")
@click.option("--beta", default="1.0", show_default=True, help="exponent of P(y|x), or 'tune'.")
@click.option("--fusion-criterion", type=click.Choice(["top1", "nll"]), default="top1", show_default=True,
              help="what chooses the calibrated fusion's (beta, eps) on calib: top-1 or NLL (docs/fusion.md).")
@click.option("--batch-size", type=int, default=4096, show_default=True)
@device_option()
@click.option("--json", "as_json", is_flag=True, help="print the metrics as JSON.")
@click.option("--out", "out", default=None, type=click.Path(dir_okay=False),
              help="JSON file to write (default RUN/eval-<split>-<dataset>-<probs key>.json).")
@overwrite_option("replace an existing output file.")
def evaluate_cmd(run: str, data: str, split: str, probs_key: str, beta: str, fusion_criterion: str,
                 batch_size: int, device: str, as_json: bool, out: str | None, overwrite: bool) -> None:
    """Image / location / fused metrics of a fine-tuned RUN on a dataset.

    Writes --out, or RUN/eval-<split>-<dataset>-<probs key>[-nll].json; never the run's own
    metrics.json, and never over an existing file unless --overwrite.
    """
    metrics = evaluate(run, data, split, probs_key, parse_beta(beta), batch_size=batch_size, device=device,
                       out=out, overwrite=overwrite, fusion_criterion=fusion_criterion)
    if as_json:
        click.echo(json.dumps(metrics, indent=2))
    else:
        echo_metrics(metrics)


@click.command("predict")
@click.argument("run", type=click.Path())
@click.argument("input_", metavar="INPUT", type=click.Path())
@click.option("--out", "out", required=True, type=click.Path(), help=".csv, .csv.gz, .parquet or .geojson")
@click.option("--top-k", type=int, default=5, show_default=True)
@click.option("--split", default="val", show_default=True, help="split when INPUT is a dataset.")
@click.option("--image-probs", default=None, type=click.Path(), help="(N, Q) .npy of P(y|I).")
@click.option("--probs-key", default="auto", show_default=True)
@click.option("--beta", type=float, default=1.0, show_default=True)
@click.option("--renormalize", is_flag=True,
              help="rescale --image-probs rows that do not sum to 1 (within 1e-3) instead of refusing them.")
@point_options
@device_option()
@overwrite_option("replace an existing --out file.")
def predict_cmd(run: str, input_: str, out: str, top_k: int, split: str, image_probs: str | None,
                probs_key: str, beta: float, renormalize: bool, lon_col: str, lat_col: str, crs: str | None,
                device: str, overwrite: bool) -> None:
    """Top-k classes for INPUT: a dataset dir, or a table of points (CSV, Parquet, GeoParquet, GeoJSON)."""
    if (lon_col, lat_col, crs) != ("lon", "lat", None) and (Path(input_) / MANIFEST).is_file():
        raise ConfigError(f"{input_}: --lon-col/--lat-col/--crs apply to a table INPUT, not to a dataset directory")
    df = predict(run, input_, out, top_k=top_k, split=split, image_probs=image_probs, probs_key=probs_key,
                 beta=beta, device=device, renormalize=renormalize, overwrite=overwrite,
                 lon_col=lon_col, lat_col=lat_col, crs=crs)
    click.echo(f"predict: {len(df)} rows -> {out}")


@click.command("embed")
@click.argument("paths", metavar="[RUN] INPUT", nargs=-1, type=click.Path())
@click.option("--encoder", "encoder", default=None, metavar="NAME",
              help="a pretrained encoder (geocsp encoders --pretrained) instead of RUN.")
@click.option("--out", "out", required=True, type=click.Path(), help=f".npy or a table: {', '.join(WRITE_SUFFIXES)}")
@point_options
@device_option()
@overwrite_option("replace an existing --out file.")
def embed_cmd(paths: tuple[str, ...], encoder: str | None, out: str, lon_col: str, lat_col: str,
              crs: str | None, device: str, overwrite: bool) -> None:
    """Location embeddings e(x) for a table of points (RUN: run or encoder dir; or --encoder NAME).

    INPUT is a CSV, CSV.gz, Parquet, GeoParquet or GeoJSON file of points.
    """
    want = "--encoder NAME INPUT" if encoder is not None else "RUN INPUT (or --encoder NAME INPUT)"
    if len(paths) != (1 if encoder is not None else 2):
        raise ConfigError(f"embed: expected {want}, got {len(paths)} path argument(s)")
    check_embedding_out(out, overwrite, paths[-1])  # before the input is read
    source = f"{PREFIX}{encoder}" if encoder is not None else paths[0]
    _, pts = read_points(paths[-1], lon_col=lon_col, lat_col=lat_col, crs=crs)
    emb = embed(source, validate_lonlat(pts, source=paths[-1]), out, device=device, overwrite=overwrite)
    click.echo(f"embed: {emb.shape[0]} x {emb.shape[1]} -> {out}")


COMMANDS = [pretrain_cmd, finetune_cmd, evaluate_cmd, predict_cmd, embed_cmd]
