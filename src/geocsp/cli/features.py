"""``geocsp features``: extract image features offline (``extract``) and ``export-onnx``."""

from __future__ import annotations

from pathlib import Path

import click

from geocsp.data.tables import refuse_existing
from geocsp.features.export_onnx import export_onnx
from geocsp.features.extract import ExtractConfig, extract_folder
from geocsp.features.preprocess import PreprocessConfig


@click.group("features")
def features() -> None:
    """Image folders -> feature datasets, with local weights only (never downloads)."""


@features.command("extract")
@click.argument("images_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--backbone", required=True,
              help="onnx | torch-export | torchscript | timm:NAME | torchvision:NAME | "
                   "open_clip:NAME | efficientnet-lite0")
@click.option("--weights", type=click.Path(path_type=Path), default=None,
              help="Local weights file/folder (optional for efficientnet-lite0).")
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Dataset directory to write.")
@click.option("--batch-size", default=32, show_default=True, type=int)
@click.option("--chunk-size", default=512, show_default=True, type=int,
              help="Images per saved partial chunk (resume unit).")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda, cuda:N.")
@click.option("--no-amp", is_flag=True, help="Disable float16 autocast on CUDA.")
@click.option("--split", default="train", show_default=True, help="Split name to write.")
@click.option("--labels", "labels_csv", type=click.Path(path_type=Path), default=None,
              help="CSV with --id-col and --label-col (default: sub-folder names).")
@click.option("--locations", "locations_csv", type=click.Path(path_type=Path), default=None,
              help="CSV with --id-col, --lon-col, --lat-col (wins over EXIF GPS).")
@click.option("--id-col", default="image", show_default=True,
              help="Column matching the image relative path or file stem.")
@click.option("--label-col", default="label", show_default=True)
@click.option("--lon-col", default="lon", show_default=True)
@click.option("--lat-col", default="lat", show_default=True)
@click.option("--l2-normalize", is_flag=True, help="L2-normalise each feature row.")
@click.option("--preprocess", "preprocess_json", default=None,
              help='Override preprocessing, JSON: {"size":224,"crop_pct":0.875,...}.')
@click.option("--quiet", is_flag=True, help="No progress bar.")
@click.option("--overwrite", is_flag=True, help="Replace an existing dataset at --out.")
def extract_cmd(images_dir: Path, backbone: str, weights: Path | None, out: Path, batch_size: int,
                chunk_size: int, device: str, no_amp: bool, split: str, labels_csv: Path | None,
                locations_csv: Path | None, id_col: str, label_col: str, lon_col: str,
                lat_col: str, l2_normalize: bool, preprocess_json: str | None, quiet: bool,
                overwrite: bool) -> None:
    """Extract features of every image under IMAGES_DIR into a geocsp dataset at --out.

    An interrupted extraction resumes from OUT.partial/; a finished dataset at --out is refused
    unless --overwrite.
    """
    refuse_existing(out, overwrite)
    pre = PreprocessConfig.from_json(preprocess_json) if preprocess_json else None
    cfg = ExtractConfig(batch_size=batch_size, chunk_size=chunk_size, l2_normalize=l2_normalize,
                        split=split, progress=not quiet)
    report = extract_folder(images_dir, out, backbone, weights=weights, device=device,
                            amp=not no_amp, preprocess=pre, cfg=cfg, labels_table=labels_csv,
                            locations_table=locations_csv, id_col=id_col, label_col=label_col,
                            lon_col=lon_col, lat_col=lat_col)
    click.echo(f"{report['extracted']}/{report['images']} images -> {out} "
               f"({report['feature_dim']}-d, {report['images_per_s']} images/s)")
    for item in report["failed"]:
        click.echo(f"skipped {item['image']}: {item['error']}", err=True)
    for key, what in (("without_location", "location"), ("without_label", "label")):
        if report.get(key):
            click.echo(f"{len(report[key])} images without {what} (listed in {out}/extract_report.json)")


@features.command("export-onnx")
@click.option("--backbone", required=True, help="timm:NAME | torchvision:NAME | efficientnet-lite0")
@click.option("--weights", type=click.Path(path_type=Path), default=None)
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--size", type=int, default=None, help="Trace input side (default: backbone crop).")
@click.option("--opset", type=int, default=17, show_default=True)
@click.option("--overwrite", is_flag=True, help="Replace an existing --out.")
def export_onnx_cmd(backbone: str, weights: Path | None, out: Path, size: int | None,
                    opset: int, overwrite: bool) -> None:
    """Export a torch backbone to ONNX (+ OUT.json preprocessing) and check it matches."""
    refuse_existing(out, overwrite)
    res = export_onnx(backbone, str(weights) if weights else None, out, size=size, opset=opset)
    click.echo(f"wrote {res['onnx']} ({res['dim']}-d) + {res['sidecar']}; "
               f"max |ORT - torch| = {res['max_abs_diff']:.3g}")


COMMANDS = [features]
