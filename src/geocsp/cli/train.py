"""``geocsp pretrain | finetune | evaluate | predict | embed`` (docs/training.md).

Config precedence: dataclass defaults < ``--preset`` < ``--config FILE.yaml`` <
``--set key.path=value`` < explicit flags (``--epochs`` ...). torch is imported inside the
command bodies so that ``geocsp --help`` stays fast.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterator
from typing import Any

import click


def _run_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """Options shared by ``pretrain`` and ``finetune``."""
    options = [
        click.option("--data", "data", required=True, type=click.Path(), help="geocsp dataset directory."),
        click.option("--out", "out", required=True, type=click.Path(), help="run directory (rerun = resume)."),
        click.option("--preset", default=None, help="bundled preset, e.g. paper-inat2018."),
        click.option("--config", "config_file", default=None, type=click.Path(), help="YAML run config."),
        click.option("--set", "overrides", multiple=True, metavar="KEY.PATH=VALUE",
                     help="override one config value (repeatable)."),
        click.option("--epochs", type=int, default=None, help="data.epochs"),
        click.option("--batch-size", type=int, default=None, help="data.batch_size"),
        click.option("--seed", type=int, default=None, help="seed"),
        click.option("--device", default=None, help="auto | cpu | cuda | cuda:N"),
        click.option("--quiet", is_flag=True, help="no progress bars."),
        click.option("--overwrite", is_flag=True, help="discard an existing run in --out."),
    ]
    for opt in reversed(options):
        f = opt(f)
    return f


def _flag_overrides(**flags: Any) -> list[str]:
    keys = {"epochs": "data.epochs", "batch_size": "data.batch_size", "seed": "seed",
            "device": "device", "ratio": "ratio"}
    out = [f"{keys[k]}={v}" for k, v in flags.items() if k in keys and v is not None]
    if flags.get("quiet"):
        out.append("quiet=true")
    return out


@contextlib.contextmanager
def _process_group() -> Iterator[None]:
    """Destroy the torchrun process group (if the command joined one) when it ends."""
    from geocsp.distributed import cleanup

    try:
        yield
    finally:
        cleanup()


def _resolve(cls_name: str, stage: str, preset: str | None, config_file: str | None,
             overrides: tuple[str, ...], flags: dict[str, Any]) -> Any:
    from geocsp import training

    cls = getattr(training, cls_name)
    return training.resolve_config(cls, stage=stage, preset=preset, config_file=config_file,
                                   overrides=[*overrides, *_flag_overrides(**flags)])


@click.command("pretrain")
@_run_options
def pretrain_cmd(data: str, out: str, preset: str | None, config_file: str | None,
                 overrides: tuple[str, ...], overwrite: bool, **flags: Any) -> None:
    """CSP pre-training of a location encoder (writes OUT/encoder)."""
    from geocsp.training import pretrain

    cfg = _resolve("PretrainConfig", "pretrain", preset, config_file, overrides, flags)
    with _process_group():
        metrics = pretrain(cfg, data, out, overwrite=overwrite)
    click.echo(f"pretrain: {metrics.get('epoch', 0)} epochs, loss {metrics.get('loss', float('nan')):.4f}; "
               f"encoder in {out}/encoder")


@click.command("finetune")
@_run_options
@click.option("--init", default=None, type=click.Path(), help="pre-training run (default: Sup. Only).")
@click.option("--ratio", type=float, default=None, help="label ratio λ in (0, 1].")
def finetune_cmd(data: str, out: str, preset: str | None, config_file: str | None,
                 overrides: tuple[str, ...], overwrite: bool, init: str | None, **flags: Any) -> None:
    """Fine-tune the location prior P(y|x) on a label subset; evaluates on val."""
    from geocsp.training import finetune

    cfg = _resolve("FinetuneConfig", "finetune", preset, config_file, overrides, flags)
    with _process_group():
        metrics = finetune(cfg, data, out, init=init, overwrite=overwrite)
    _echo_metrics(metrics)


def _echo_metrics(metrics: dict[str, Any]) -> None:
    for key in ("image", "location", "fused"):
        m = metrics.get(key)
        if m is None and key in metrics:
            click.echo(f"{key:9s} n/a (the split has no image-classifier probabilities)")
        elif m is not None:
            click.echo(f"{key:9s} top1 {m['top1']:.4f}  top5 {m['top5']:.4f}  mrr {m['mrr']:.4f}  n {m['n']}")


def _beta(value: str) -> float | str:
    if value == "tune":
        return value
    try:
        return float(value)
    except ValueError:
        raise click.BadParameter(f"expected a number or 'tune', got {value!r}") from None


@click.command("evaluate")
@click.argument("run", type=click.Path())
@click.option("--data", "data", required=True, type=click.Path(), help="geocsp dataset directory.")
@click.option("--split", default="val", show_default=True)
@click.option("--probs-key", default="auto", show_default=True, help="image-probability set.")
@click.option("--beta", default="1.0", show_default=True, help="exponent of P(y|x), or 'tune'.")
@click.option("--batch-size", type=int, default=4096, show_default=True)
@click.option("--device", default="auto", show_default=True)
@click.option("--json", "as_json", is_flag=True, help="print the metrics as JSON.")
def evaluate_cmd(run: str, data: str, split: str, probs_key: str, beta: str, batch_size: int,
                 device: str, as_json: bool) -> None:
    """Image / location / fused metrics of a fine-tuned RUN (writes RUN/metrics.json)."""
    from geocsp.training import evaluate

    metrics = evaluate(run, data, split, probs_key, _beta(beta), batch_size=batch_size, device=device)
    if as_json:
        click.echo(json.dumps(metrics, indent=2))
    else:
        _echo_metrics(metrics)


@click.command("predict")
@click.argument("run", type=click.Path())
@click.argument("input_", metavar="INPUT", type=click.Path())
@click.option("--out", "out", required=True, type=click.Path(), help=".csv or .parquet")
@click.option("--top-k", type=int, default=5, show_default=True)
@click.option("--split", default="val", show_default=True, help="split when INPUT is a dataset.")
@click.option("--image-probs", default=None, type=click.Path(), help="(N, Q) .npy of P(y|I).")
@click.option("--probs-key", default="auto", show_default=True)
@click.option("--beta", type=float, default=1.0, show_default=True)
@click.option("--device", default="auto", show_default=True)
def predict_cmd(run: str, input_: str, out: str, top_k: int, split: str, image_probs: str | None,
                probs_key: str, beta: float, device: str) -> None:
    """Top-k classes for INPUT (a dataset dir or a CSV/Parquet of lon, lat)."""
    from geocsp.training import predict

    df = predict(run, input_, out, top_k=top_k, split=split, image_probs=image_probs,
                 probs_key=probs_key, beta=beta, device=device)
    click.echo(f"predict: {len(df)} rows -> {out}")


@click.command("embed")
@click.argument("run", type=click.Path())
@click.argument("input_", metavar="INPUT", type=click.Path())
@click.option("--out", "out", required=True, type=click.Path(), help=".npy, .csv or .parquet")
@click.option("--device", default="auto", show_default=True)
def embed_cmd(run: str, input_: str, out: str, device: str) -> None:
    """Location embeddings e(x) for a CSV/Parquet of lon, lat (RUN: run or encoder dir)."""
    from geocsp.training import embed

    emb = embed(run, input_, out, device=device)
    click.echo(f"embed: {emb.shape[0]} x {emb.shape[1]} -> {out}")


COMMANDS = [pretrain_cmd, finetune_cmd, evaluate_cmd, predict_cmd, embed_cmd]
