"""Every command refuses bad input with one line and exit 2, and writes nothing (issue 14).

A table of bad inputs over every command, each run in-process through click's runner.
Each case must exit 2 with exactly one stderr line ``geocsp: error: ...`` (a click usage
error too: ``geocsp: error: <click's message> (see 'geocsp CMD --help')``), no traceback anywhere, and no new or changed file in the case's directory or in the shared
fixtures (world, runs, input files).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from geocsp.cli.main import cli
from geocsp.yamlsafe import MAX_YAML_BYTES, MAX_YAML_DEPTH

OTHERS = "issue 14 item owned by another engineer"
ELSEWHERE = "issue 14: needs a change outside the CLI boundary / config files (see the report)"
TINY = ["device=cpu", "quiet=true", "model.dim=32", "model.network_args.hidden_dim=64",
        "model.encoder_args.num_scales=8", "data.batch_size=512"]
BOMB = "\n".join(
    [f"a: &a [{','.join(['lol'] * 9)}]"]
    + [f"{k}: &{k} [{','.join([f'*{p}'] * 9)}]" for p, k in zip("abcdefgh", "bcdefghi", strict=True)]
) + "\n"
"""A 'billion laughs' YAML: 9^9 strings once its aliases are expanded, in ~350 bytes."""


class Case(NamedTuple):
    """One bad input: its id, the argv (``{w}`` world, ``{ft}`` fine-tune run, ``{pre}``
    pre-train run, ``{f}`` input files, ``{o}`` a fresh path for outputs) and whether
    it is a click usage error."""

    id: str
    argv: str
    usage: bool = False
    xfail: str | None = None
    report: bool = False  # ``data check``: problem lines ``file:...`` first, then one error line


CASES = [
    # encoders
    Case("encoders-unknown-option", "encoders --bogus", usage=True),
    Case("encoders-extra-argument", "encoders extra", usage=True),
    # data check
    Case("check-missing-dir", "data check {f}/nowhere", report=True),
    Case("check-file-not-dir", "data check {f}/pts.csv", report=True),
    Case("check-empty-dir", "data check {f}/emptydir", report=True),
    Case("check-corrupt-parquet", "data check {f}/world_badparquet", report=True),
    Case("check-corrupt-manifest", "data check {f}/world_badmanifest", report=True),
    # data import-table
    Case("table-missing-file", "data import-table {f}/nowhere.csv --out {o}"),
    Case("table-dir-as-file", "data import-table {f}/emptydir --out {o}"),
    Case("table-empty-csv", "data import-table {f}/empty.csv --out {o}"),
    Case("table-header-only-csv", "data import-table {f}/header.csv --out {o}"),
    Case("table-garbage-parquet", "data import-table {f}/garbage.parquet --out {o}"),
    Case("table-binary-csv", "data import-table {f}/binary.csv --out {o}"),
    Case("table-swapped-coords", "data import-table {f}/swapped.csv --out {o}"),
    Case("table-lon-out-of-range", "data import-table {f}/lon_range.csv --out {o}"),
    Case("table-nan-coords", "data import-table {f}/nan.csv --out {o}"),
    Case("table-text-coords", "data import-table {f}/text.csv --out {o}"),
    Case("table-missing-column", "data import-table {f}/pts.csv --lon-col x --out {o}"),
    Case("table-duplicate-columns", "data import-table {f}/dupcols.csv --out {o}"),
    Case("table-out-is-file", "data import-table {f}/pts.csv --out {f}/pts.csv"),
    Case("table-out-under-file", "data import-table {f}/pts.csv --out {f}/pts.csv/sub"),
    Case("table-features-corrupt-npy", "data import-table {f}/pts.csv --features {f}/bad.npy --out {o}"),
    Case("table-features-wrong-rows", "data import-table {f}/pts.csv --features {f}/rows7.npy --out {o}"),
    Case("table-classes-missing", "data import-table {f}/labels.csv --label-col label "
         "--classes {f}/nowhere.txt --out {o}"),
    # data import-inat
    Case("inat-missing-src", "data import-inat {f}/nowhere --out {o}"),
    Case("inat-empty-src", "data import-inat {f}/emptydir --out {o}"),
    Case("inat-unknown-dataset", "data import-inat {f}/emptydir --dataset bogus --out {o}", usage=True),
    # data split
    Case("split-missing-src", "data split {f}/nowhere --out {o}"),
    Case("split-has-val-already", "data split {w} --out {o}"),
    Case("split-val-frac-zero", "data split {f}/onesplit --out {o} --val-frac 0"),
    Case("split-val-frac-above-one", "data split {f}/onesplit --out {o} --val-frac 1.5"),
    Case("split-negative-block", "data split {f}/onesplit --out {o} --method spatial --block-deg -1"),
    Case("split-unknown-split", "data split {w} --out {o} --from nosuch"),
    Case("split-val-frac-text", "data split {w} --out {o} --val-frac abc", usage=True),
    Case("split-unknown-method", "data split {w} --out {o} --method bogus", usage=True),
    Case("split-negative-seed", "data split {f}/onesplit --out {o} --seed -1", usage=True),  # was a traceback
    # data make-world
    Case("world-unknown-preset", "data make-world --preset nosuch --out {o}"),
    Case("world-negative-seed", "data make-world --preset small --seed -1 --out {o}", usage=True),  # was a traceback
    Case("world-unknown-knob", "data make-world --preset small --set bogus_knob=1 --out {o}"),
    Case("world-negative-knob", "data make-world --preset small --set num_classes=-3 --out {o}"),
    Case("world-bomb-knob", "data make-world --preset small --set num_classes={bomb} --out {o}"),
    Case("world-seed-text", "data make-world --seed abc --out {o}", usage=True),
    Case("world-out-is-file", "data make-world --preset small --out {f}/pts.csv"),
    # data from-photos
    Case("photos-missing-dir", "data from-photos {f}/nowhere --out {o}"),
    Case("photos-file-not-dir", "data from-photos {f}/pts.csv --out {o}", usage=True),
    # pretrain
    Case("pretrain-missing-data", "pretrain --data {f}/nowhere --out {o} {tiny}"),
    Case("pretrain-data-is-file", "pretrain --data {f}/pts.csv --out {o} {tiny}"),
    Case("pretrain-corrupt-data", "pretrain --data {f}/world_badparquet --out {o} {tiny}"),
    Case("pretrain-unknown-preset", "pretrain --data {w} --out {o} --preset nosuch"),
    Case("pretrain-config-missing", "pretrain --data {w} --out {o} --config {f}/nowhere.yaml"),
    Case("pretrain-config-dir", "pretrain --data {w} --out {o} --config {f}/emptydir"),
    Case("pretrain-config-list", "pretrain --data {w} --out {o} --config {f}/list.yaml"),
    Case("pretrain-config-invalid", "pretrain --data {w} --out {o} --config {f}/invalid.yaml"),
    Case("pretrain-config-bomb", "pretrain --data {w} --out {o} --config {f}/bomb.yaml"),
    Case("pretrain-config-deep", "pretrain --data {w} --out {o} --config {f}/deep.yaml"),
    Case("pretrain-config-huge", "pretrain --data {w} --out {o} --config {f}/huge.yaml"),
    Case("pretrain-config-binary", "pretrain --data {w} --out {o} --config {f}/binary.yaml"),
    Case("pretrain-config-latin1", "pretrain --data {w} --out {o} --config {f}/latin1.yaml"),
    Case("pretrain-config-python-tag", "pretrain --data {w} --out {o} --config {f}/pytag.yaml"),
    Case("pretrain-config-duplicate-key", "pretrain --data {w} --out {o} --config {f}/dup_key.yaml"),  # last won
    Case("pretrain-config-unknown-key", "pretrain --data {w} --out {o} --config {f}/unknown_key.yaml"),
    Case("pretrain-set-unknown-key", "pretrain --data {w} --out {o} --set optim.lrr=1"),
    Case("pretrain-set-bad-value", "pretrain --data {w} --out {o} --set optim.lr=abc"),
    Case("pretrain-set-no-equals", "pretrain --data {w} --out {o} --set optim.lr"),
    Case("pretrain-set-empty-key", "pretrain --data {w} --out {o} --set =1"),
    Case("pretrain-set-through-value", "pretrain --data {w} --out {o} --set seed.x=1"),
    Case("pretrain-set-bomb", "pretrain --data {w} --out {o} --set optim={bomb}"),
    Case("pretrain-unknown-objective", "pretrain --data {w} --out {o} --set objective.name=nosuch"),
    Case("pretrain-unknown-encoder", "pretrain --data {w} --out {o} --set model.encoder=nosuch"),
    Case("pretrain-zero-epochs", "pretrain --data {w} --out {o} {tiny} --epochs 0"),
    Case("pretrain-negative-epochs", "pretrain --data {w} --out {o} {tiny} --epochs -1"),
    Case("pretrain-zero-batch", "pretrain --data {w} --out {o} {tiny} --batch-size 0"),
    Case("pretrain-epochs-text", "pretrain --data {w} --out {o} --epochs abc", usage=True),
    Case("pretrain-missing-out", "pretrain --data {w}", usage=True),
    Case("pretrain-unknown-device", "pretrain --data {w} --out {o} {tiny} --device tpu"),
    Case("pretrain-out-is-file", "pretrain --data {w} --out {f}/pts.csv {tiny}"),
    Case("pretrain-out-under-file", "pretrain --data {w} --out {f}/pts.csv/run {tiny}"),
    Case("pretrain-out-readonly", "pretrain --data {w} --out {f}/readonly/run {tiny}"),
    Case("pretrain-rundir-config-bomb", "pretrain --data {w} --out {f}/run_bomb {tiny} --epochs 1"),
    # finetune
    Case("finetune-zero-ratio", "finetune --data {w} --out {o} {tiny} --ratio 0"),
    Case("finetune-negative-seed", "finetune --data {w} --out {o} {tiny} --seed -1", usage=True),  # was a traceback
    Case("finetune-negative-seed-set", "finetune --data {w} --out {o} {tiny} --set seed=-1"),
    Case("finetune-huge-seed-set", "finetune --data {w} --out {o} {tiny} --set seed=1e30"),
    Case("pretrain-negative-seed-set", "pretrain --data {w} --out {o} {tiny} --set seed=-1"),  # left config.yaml
    Case("finetune-negative-ratio", "finetune --data {w} --out {o} {tiny} --ratio -0.5"),
    Case("finetune-ratio-above-one", "finetune --data {w} --out {o} {tiny} --ratio 2"),
    Case("finetune-init-missing", "finetune --data {w} --out {o} {tiny} --init {f}/nowhere"),
    Case("finetune-init-empty", "finetune --data {w} --out {o} {tiny} --init {f}/emptydir"),
    Case("finetune-init-bad-dim", "finetune --data {w} --out {o} {tiny} --init {f}/enc_bad_dim"),
    Case("finetune-init-corrupt-weights", "finetune --data {w} --out {o} {tiny} --init {f}/enc_corrupt"),
    Case("finetune-unknown-loss", "finetune --data {w} --out {o} {tiny} --set loss.name=nosuch"),
    Case("finetune-changed-config", "finetune --data {w} --out {ft} {tiny} --epochs 2 --ratio 0.1"),
    # evaluate
    Case("evaluate-missing-run", "evaluate {f}/nowhere --data {w}"),
    Case("evaluate-pretrain-run", "evaluate {pre} --data {w}"),
    Case("evaluate-unknown-split", "evaluate {ft} --data {w} --split nosuch"),
    Case("evaluate-beta-text", "evaluate {ft} --data {w} --beta abc", usage=True),
    Case("evaluate-negative-beta", "evaluate {ft} --data {w} --beta -1"),
    Case("evaluate-zero-batch", "evaluate {ft} --data {w} --batch-size 0"),
    Case("evaluate-unknown-probs-key", "evaluate {ft} --data {w} --probs-key nosuch"),
    Case("evaluate-bad-dim-prior", "evaluate {f}/ft_bad_dim --data {w}"),
    Case("evaluate-wrong-kind", "evaluate {f}/ft_wrong_kind --data {w}"),
    Case("evaluate-corrupt-weights", "evaluate {f}/ft_corrupt --data {w}"),
    Case("evaluate-corrupt-config-json", "evaluate {f}/ft_badjson --data {w}"),
    Case("evaluate-missing-data", "evaluate {ft} --data {f}/nowhere"),
    # predict
    Case("predict-swapped", "predict {ft} {f}/swapped.csv --out {o}.csv"),
    Case("export-no-artifact", "export onnx {f} --out {o}.onnx"),
    Case("export-missing-run", "export onnx {f}/nowhere --out {o}.onnx"),
    Case("export-bad-suffix", "export onnx {ft} --out {o}.txt"),
    Case("predict-nan", "predict {ft} {f}/nan.csv --out {o}.csv"),
    Case("predict-text-coords", "predict {ft} {f}/text.csv --out {o}.csv"),
    Case("predict-missing-input", "predict {ft} {f}/nowhere.csv --out {o}.csv"),
    Case("predict-empty-input", "predict {ft} {f}/empty.csv --out {o}.csv"),
    Case("predict-zero-top-k", "predict {ft} {f}/pts.csv --out {o}.csv --top-k 0"),
    Case("predict-bad-suffix", "predict {ft} {f}/pts.csv --out {o}.txt"),
    Case("predict-out-is-dir", "predict {ft} {f}/pts.csv --out {f}/emptydir"),
    Case("predict-out-is-dir-overwrite", "predict {ft} {f}/pts.csv --out {f}/images --overwrite"),  # was the temp name
    Case("embed-out-is-dir-overwrite", "embed {pre} {f}/pts.csv --out {f}/images --overwrite"),
    Case("predict-out-under-file", "predict {ft} {f}/pts.csv --out {f}/pts.csv/p.csv"),
    Case("predict-out-exists", "predict {ft} {f}/pts.csv --out {f}/labels.csv"),
    Case("predict-image-probs-corrupt", "predict {ft} {f}/pts.csv --out {o}.csv --image-probs {f}/bad.npy"),
    Case("predict-image-probs-shape", "predict {ft} {f}/pts.csv --out {o}.csv --image-probs {f}/rows7.npy"),
    Case("predict-image-probs-nan", "predict {ft} {f}/pts.csv --out {o}.csv --image-probs {f}/probs_nan.npy"),
    Case("predict-image-probs-negative", "predict {ft} {f}/pts.csv --out {o}.csv "
         "--image-probs {f}/probs_negative.npy"),
    Case("predict-unknown-split", "predict {ft} {w} --out {o}.csv --split nosuch"),
    Case("predict-beta-nan", "predict {ft} {f}/pts.csv --out {o}.csv --beta nan"),  # was accepted
    Case("predict-negative-beta", "predict {ft} {f}/pts.csv --out {o}.csv --beta -1"),  # was accepted
    Case("predict-out-is-input", "predict {ft} {f}/pts.csv --out {f}/pts.csv --overwrite"),  # replaced it
    Case("predict-wrong-kind", "predict {pre} {f}/pts.csv --out {o}.csv"),
    # embed
    Case("embed-no-encoder", "embed {f}/emptydir {f}/pts.csv --out {o}.npy"),
    Case("embed-text-coords", "embed {pre} {f}/text.csv --out {o}.npy"),
    Case("embed-bad-suffix", "embed {pre} {f}/pts.csv --out {o}.xyz"),
    Case("embed-out-is-input", "embed {pre} {f}/pts.csv --out {f}/pts.csv --overwrite"),  # replaced it
    Case("embed-corrupt-weights", "embed {f}/enc_corrupt {f}/pts.csv --out {o}.npy"),
    Case("embed-bad-dim", "embed {f}/enc_bad_dim {f}/pts.csv --out {o}.npy"),
    # features
    Case("extract-missing-dir", "features extract {f}/nowhere --backbone onnx --weights {f}/bad.onnx --out {o}"),
    Case("extract-unknown-backbone", "features extract {f}/images --backbone nosuch --out {o}"),
    Case("extract-missing-weights", "features extract {f}/images --backbone onnx --weights {f}/nowhere.onnx "
         "--out {o}"),
    Case("extract-corrupt-onnx", "features extract {f}/images --backbone onnx --weights {f}/bad.onnx --out {o}"),
    Case("extract-zero-batch", "features extract {f}/images --backbone onnx --weights {f}/bad.onnx "
         "--batch-size 0 --out {o}"),
    Case("extract-bad-preprocess-json", "features extract {f}/images --backbone onnx --weights {f}/bad.onnx "
         "--preprocess {nope --out {o}"),
    Case("export-onnx-unknown-backbone", "features export-onnx --backbone nosuch --out {o}.onnx"),
    Case("export-onnx-out-is-dir", "features export-onnx --backbone nosuch --out {f}/emptydir", usage=True),
    # sdm
    Case("sdm-fit-no-background", "sdm fit {f}/pts.csv --out {o}"),
    Case("sdm-fit-missing-records", "sdm fit {f}/nowhere.csv --background {f}/pts.csv --out {o}"),
    Case("sdm-fit-swapped", "sdm fit {f}/swapped.csv --background {f}/pts.csv --out {o} --epochs 1"),
    Case("sdm-fit-zero-epochs", "sdm fit {f}/pts.csv --background {f}/pts.csv --out {o} --epochs 0"),
    Case("sdm-fit-bad-region", "sdm fit {f}/pts.csv --background {f}/pts.csv --out {o} --region a,b,c"),
    Case("sdm-fit-unknown-covariate", "sdm fit {f}/pts.csv --background {f}/pts.csv --out {o} "
         "--covariates nosuch"),
    Case("sdm-fit-negative-background-sample", "sdm fit {f}/pts.csv --background-sample -5 --out {o}"),
    Case("sdm-fit-unknown-species-col", "sdm fit {f}/labels.csv --species-col nosuch "
         "--background {f}/pts.csv --out {o}"),
    Case("sdm-fit-unknown-loss", "sdm fit {f}/pts.csv --out {o} --loss bogus", usage=True),
    Case("sdm-fit-out-is-file", "sdm fit {f}/pts.csv --out {f}/labels.csv", usage=True),
    Case("sdm-predict-wrong-kind", "sdm predict {ft} {f}/pts.csv --out {o}.csv"),
    Case("sdm-predict-missing-run", "sdm predict {f}/nowhere {f}/pts.csv --out {o}.csv"),
    # convert
    Case("convert-missing-file", "convert sinr {f}/nowhere.pt --out {o}"),
    Case("convert-not-a-checkpoint", "convert sinr {f}/pts.csv --out {o}"),
    Case("convert-unknown-kind", "convert satclp {f}/pts.csv --out {o}"),
    Case("convert-missing-out", "convert sinr {f}/pts.csv", usage=True),
    # serve (each fails before the server starts)
    Case("serve-missing-run", "serve {f}/nowhere --port 0"),
    Case("serve-pretrain-run", "serve {pre} --port 0"),
    Case("serve-bad-port", "serve {ft} --port 70000", usage=True),
    Case("serve-bad-region", "serve {ft} --port 0 --region 1,2,3"),
    Case("serve-missing-records", "serve {ft} --port 0 --records {f}/nowhere.csv"),
    # map
    Case("map-missing-run", "map {f}/nowhere --species a --out {o}.png"),
    Case("map-no-species", "map {ft} --out {o}.png"),
    Case("map-unknown-species", "map {ft} --species nosuch --out {o}.png"),
    Case("map-zero-res", "map {ft} --richness --res 0 --out {o}.png"),
    Case("map-bad-region", "map {ft} --richness --region 1,2 --out {o}.png"),
    # demo / bench
    Case("demo-unknown-preset", "demo --preset nosuch --out {o}"),
    Case("demo-ratios-text", "demo --ratios abc --out {o}", usage=True),
    Case("demo-zero-seeds", "demo --seeds 0 --out {o}", usage=True),
    Case("demo-unknown-world", "demo --quick --world nosuch --out {o}"),
    Case("demo-ratio-out-of-range", "demo --quick --ratios 0,2 --out {o}"),
    Case("demo-preset-bomb", "demo --preset {f}/bomb.yaml --out {o}"),
    Case("bench-unknown-table", "bench paper --table 4 --out {o}", usage=True),
    Case("bench-unknown-preset", "bench paper --preset nosuch --out {o}"),
]


def _write_inputs(f: Path, world: Path, ft: Path, pre: Path) -> None:
    """The bad (and a few good) input files the cases refer to."""
    f.mkdir()
    (f / "emptydir").mkdir()
    (f / "images").mkdir()
    (f / "images" / "a.jpg").write_bytes(b"\xff\xd8\xff not really a jpeg")
    pts = pd.DataFrame({"lon": [1.0, 2.0, 3.0], "lat": [4.0, 5.0, 6.0]})
    pts.to_csv(f / "pts.csv", index=False)
    pts.assign(label=["a", "b", "c"]).to_csv(f / "labels.csv", index=False)
    pd.DataFrame({"lon": [10.0, 11.0], "lat": [120.5, 130.0]}).to_csv(f / "swapped.csv", index=False)
    pd.DataFrame({"lon": [500.0, 1.0], "lat": [4.0, 5.0]}).to_csv(f / "lon_range.csv", index=False)
    (f / "nan.csv").write_text("lon,lat\n1.0,2.0\nnan,3.0\n")
    (f / "text.csv").write_text("lon,lat\n1.0,2.0\nnorth,east\n")
    (f / "dupcols.csv").write_text("lon,lat,lon\n1.0,2.0,3.0\n")
    (f / "empty.csv").write_bytes(b"")
    (f / "header.csv").write_text("lon,lat\n")
    (f / "garbage.parquet").write_bytes(b"PAR1 this is not parquet at all")
    (f / "binary.csv").write_bytes(bytes(range(256)) * 4)
    (f / "bad.npy").write_bytes(b"\x93NUMPY garbage")
    np.save(f / "rows7.npy", np.zeros((7, 4), np.float32))
    q = len(json.loads((ft / "classes.json").read_text()))
    probs = np.full((3, q), 1.0 / q)
    probs[1, 2] = np.nan
    np.save(f / "probs_nan.npy", probs)
    probs[1, 2] = -0.5
    np.save(f / "probs_negative.npy", probs)
    (f / "bad.onnx").write_bytes(b"not an onnx model")
    (f / "list.yaml").write_text("- a\n- b\n")
    (f / "invalid.yaml").write_text("optim: [1,\n")
    (f / "bomb.yaml").write_text(BOMB)
    (f / "deep.yaml").write_text("a: " + "[" * (MAX_YAML_DEPTH + 5) + "]" * (MAX_YAML_DEPTH + 5) + "\n")
    (f / "huge.yaml").write_text("# padding\n" * (MAX_YAML_BYTES // 10 + 10))
    (f / "binary.yaml").write_bytes(b"\x00\x01\x02\xff\xfe" * 100)
    (f / "latin1.yaml").write_bytes("seed: 1 # caf\u00e9\n".encode("latin-1"))
    (f / "pytag.yaml").write_text("seed: !!python/object/apply:os.system ['true']\n")
    (f / "unknown_key.yaml").write_text("optim:\n  lrr: 1\n")
    (f / "dup_key.yaml").write_text("seed: 1\nseed: 2\n")
    (f / "readonly").mkdir(mode=0o555)
    # checkpoints that do not fit: an encoder whose config says another dim, a corrupt one
    for name, src in (("enc_bad_dim", pre / "encoder"), ("enc_corrupt", pre / "encoder")):
        shutil.copytree(src, f / name)
    _edit_json(f / "enc_bad_dim" / "config.json", lambda c: c["config"].update(dim=c["config"]["dim"] * 2))
    (f / "enc_corrupt" / "model.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{garbage")
    for name in ("ft_bad_dim", "ft_wrong_kind", "ft_corrupt", "ft_badjson"):
        shutil.copytree(ft, f / name)
    _edit_json(f / "ft_bad_dim" / "prior" / "config.json",
               lambda c: c["config"].update(dim=c["config"]["dim"] * 2))
    _edit_json(f / "ft_wrong_kind" / "prior" / "config.json", lambda c: c.update(kind="sdm"))
    (f / "ft_corrupt" / "prior" / "model.safetensors").write_bytes(b"")
    (f / "ft_badjson" / "prior" / "config.json").write_text("{not json")
    # a run directory whose saved config.yaml is an alias bomb
    shutil.copytree(pre, f / "run_bomb")
    (f / "run_bomb" / "config.yaml").write_text(BOMB)
    # a one-split dataset (no val yet), and datasets with a corrupt table / manifest
    r = CliRunner().invoke(cli, ["data", "import-table", str(f / "labels.csv"), "--label-col", "label",
                                 "--out", str(f / "onesplit")])
    assert r.exit_code == 0, r.output
    for name in ("world_badparquet", "world_badmanifest"):
        shutil.copytree(world, f / name)
    (f / "world_badparquet" / "train.parquet").write_bytes(b"PAR1 garbage")
    (f / "world_badmanifest" / "manifest.json").write_text("{\"version\": ")


def _edit_json(path: Path, edit: object) -> None:
    data = json.loads(path.read_text())
    edit(data)  # type: ignore[operator]
    path.write_text(json.dumps(data))


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Path]]:
    """Small world, 1-epoch pre-train and fine-tune runs, and the input files (built once)."""
    import torch

    from geocsp.data import make_world

    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("battery")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GEOCSP_CACHE", str(tmp_path_factory.mktemp("cache")))
        mp.delenv("GEOCSP_DEBUG", raising=False)
        fx = root / "fixtures"
        world = make_world("small", seed=0, out=fx / "world")
        flags = [x for t in TINY for x in ("--set", t)]
        for stage in ("pretrain", "finetune"):
            extra = ["--ratio", "0.1"] if stage == "finetune" else []
            r = CliRunner().invoke(cli, [stage, "--data", str(world), "--out", str(fx / stage), *flags,
                                         "--epochs", "1", *extra])
            assert r.exit_code == 0, r.output
        _write_inputs(fx / "files", world, fx / "finetune", fx / "pretrain")
        yield {"root": root, "fixtures": fx, "world": world, "ft": fx / "finetune", "pre": fx / "pretrain",
               "files": fx / "files"}
        (fx / "files" / "readonly").chmod(0o755)


def _snapshot(*roots: Path) -> dict[str, tuple[str, int, str]]:
    """Every path under ``roots`` -> (kind, mtime_ns, sha256 of a file's bytes)."""
    out = {}
    for root in roots:
        for dirpath, dirnames, filenames in os.walk(root):
            for name in dirnames + filenames:
                p = Path(dirpath) / name
                st = p.lstat()
                digest = hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else ""
                out[str(p)] = ("dir" if p.is_dir() else "file", st.st_mtime_ns if p.is_file() else 0, digest)
    return out


def _argv(case: Case, env: dict[str, Path], out: Path) -> list[str]:
    """The case's argv with its placeholders filled in (the bomb is one flow-style token)."""
    values = {"{w}": env["world"], "{ft}": env["ft"], "{pre}": env["pre"], "{f}": env["files"], "{o}": out,
              "{bomb}": "{" + BOMB.strip().replace("\n", ", ") + "}"}
    argv = []
    for tok in case.argv.replace("{tiny}", " ".join(f"--set {t}" for t in TINY)).split():
        for key, value in values.items():
            tok = tok.replace(key, str(value))
        argv.append(tok)
    return argv


@pytest.mark.parametrize(
    "case",
    [pytest.param(c, id=c.id, marks=[pytest.mark.xfail(strict=False, reason=c.xfail)] if c.xfail else [])
     for c in CASES],
)
def test_bad_input(case: Case, env: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if case.id == "pretrain-out-readonly" and os.geteuid() == 0:
        pytest.skip("root writes into a 0o555 directory anyway (the *-out-under-file cases cover it)")
    monkeypatch.setenv("GEOCSP_CACHE", str(env["root"] / "cache"))
    monkeypatch.delenv("GEOCSP_DEBUG", raising=False)
    out = tmp_path / "out"
    before = _snapshot(tmp_path, env["fixtures"])
    res = CliRunner().invoke(cli, _argv(case, env, out))
    after = _snapshot(tmp_path, env["fixtures"])
    text = res.stdout + res.stderr
    assert "Traceback" not in text, text
    assert res.exception is None or isinstance(res.exception, SystemExit), repr(res.exception)
    assert res.exit_code == 2, (res.exit_code, text)
    lines = res.stderr.strip().splitlines()
    if case.report:
        assert lines and lines[-1].startswith("geocsp: error: "), res.stderr
        assert all(line.startswith(str(env["files"])) for line in lines[:-1]), res.stderr
    else:
        assert len(lines) == 1 and lines[0].startswith("geocsp: error: "), res.stderr
        if case.usage:  # was click's 3 lines: Usage: / Try ... / Error: ...
            assert lines[0].endswith(" --help')"), res.stderr
    changed = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
    assert not changed, changed


def test_battery_covers_every_command() -> None:
    from geocsp.cli.main import COMMANDS

    covered = {c.argv.split()[0] for c in CASES}
    assert covered == set(COMMANDS)
    assert len(CASES) >= 60 and len({c.id for c in CASES}) == len(CASES)
    sub = {" ".join(c.argv.split()[:2]) for c in CASES}
    for name in ("data check", "data import-inat", "data import-table", "data split", "data make-world",
                 "data from-photos", "features extract", "features export-onnx", "sdm fit",
                 "sdm predict", "bench paper"):
        assert name in sub, name


def test_run_dir_config_bomb_is_one_line(env: dict[str, Path]) -> None:
    """The alias-bomb refusal of a run directory's config.yaml (whatever the run-dir lock leaves)."""
    case = next(c for c in CASES if c.id == "pretrain-rundir-config-bomb")
    res = CliRunner().invoke(cli, _argv(case, env, env["root"] / "unused"))
    assert res.exit_code == 2 and "Traceback" not in res.output
    assert res.stderr.splitlines() == [
        f"geocsp: error: {env['files']}/run_bomb/config.yaml: YAML refused: more than 100000 values once aliases "
        "are expanded"]
