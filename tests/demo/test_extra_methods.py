"""The extra methods (distillation, GeoCLIP init, CV-selected prior) of ``bench paper --methods`` (issue 16); Table 1 itself unchanged."""

from __future__ import annotations

from click.testing import CliRunner

from geocsp.cli.main import cli
from geocsp.config import from_dict, to_dict
from geocsp.demo.tables import METHODS, SUP_CV_CANDIDATES, TABLES, methods_by_name
from geocsp.experiments.plan import _resolved
from geocsp.pretrained.registry import PRETRAINED
from geocsp.training import FinetuneConfig
from geocsp.training.config import SelectConfig
from geocsp.training.select import candidate_config


def test_table_1_is_the_papers_then_the_default_prior() -> None:
    assert [m.name for m in TABLES[1]] == ["Img. Only", "Sup. Only (wrap)", "Sup. Only (grid)", "MSE", "CSP-NCE-BLD",
                                           "CSP-MC-BLD", "Class KDE"]
    assert TABLES[1][1].finetune == ("model.encoder=wrap", "model.encoder_args={}", "model.network=fcnet",
                                     "model.network_args={}")
    assert METHODS.names()[:7] == ["img-only", "sup-wrap", "sup-grid", "mse", "csp-nce-bld", "csp-mc-bld", "kde"]
    kde = TABLES[1][6]  # nothing trained: the KDE alone, on Sup. Only (wrap)'s (unused) network
    assert kde.pretrain is None and kde.finetune == (*TABLES[1][1].finetune, "data.epochs=0", "kde.shrink=inf")


def test_distill_methods_resolve_to_the_distill_loss() -> None:
    distill, grid, csp = methods_by_name("distill,distill-grid,csp-distill")
    assert csp.pretrain == TABLES[1][5].pretrain and distill.pretrain is None and grid.pretrain is None
    for method, encoder in ((distill, "wrap"), (grid, "grid"), (csp, "grid")):
        cfg = _resolved(FinetuneConfig, "finetune", "geoworld-demo", list(method.finetune))
        assert cfg["loss"] == {"name": "distill", "args": {"base": "full", "base_args": {"bg_weight": 1.0}}}
        assert cfg["model"]["encoder"] == encoder


def test_geoclip_method_states_the_released_architecture() -> None:
    (geoclip,) = methods_by_name("geoclip")
    cfg = _resolved(FinetuneConfig, "finetune", "geoworld-demo", list(geoclip.finetune))
    assert cfg["init"] == "geoclip" and geoclip.pretrain is None
    assert cfg["model"] == to_dict(PRETRAINED.get("geoclip").obj.config)  # the preset's grid + FFN overridden


def test_bench_help_names_every_method() -> None:
    out = CliRunner().invoke(cli, ["bench", "paper", "--help"], terminal_width=400).output
    assert all(name in out.replace("\n", "") for name in METHODS.names())



def test_finetuning_methods_resolve_to_their_settings() -> None:
    """Issue 16 item 3: frozen, partial, early-stopped CSP-MC-BLD and early-stopped Sup. Only (wrap), by name."""
    frozen, partial, es, sup_es = methods_by_name("csp-frozen,csp-partial,csp-es,sup-wrap-es")
    assert frozen.pretrain == partial.pretrain == es.pretrain == TABLES[1][5].pretrain and sup_es.pretrain is None
    got = [from_dict(FinetuneConfig, _resolved(FinetuneConfig, "finetune", "geoworld-demo", list(m.finetune)))
           for m in (frozen, partial, es, sup_es)]
    assert got[0].encoder_frozen and not got[1].encoder_frozen and 0 < got[1].encoder_lr_scale < 1
    assert [c.early_stop for c in got] == ["off", "off", "fused", "fused"]
    assert [c.model.encoder for c in got] == ["grid", "grid", "grid", "wrap"]
    paper = from_dict(FinetuneConfig, _resolved(FinetuneConfig, "finetune", "geoworld-demo", []))
    assert (paper.freeze_encoder, paper.encoder_lr_scale, paper.unfreeze_after, paper.early_stop) == (False, 1, 0, "off")


def test_sup_cv_method_resolves_to_the_selection() -> None:
    (cv,) = methods_by_name("sup-cv")
    assert cv.pretrain is None and not cv.name.startswith("Sup. Only")  # compared with both Sup. Only rows
    cfg = from_dict(FinetuneConfig, _resolved(FinetuneConfig, "finetune", "geoworld-demo", list(cv.finetune)))
    assert cfg.select.candidates == SUP_CV_CANDIDATES and cfg.select.epochs == 0 and cfg.select.folds == 3
    assert candidate_config(cfg, "grid-r0.1").model == cfg.model  # Sup. Only (grid) is a candidate
    plain = from_dict(FinetuneConfig, _resolved(FinetuneConfig, "finetune", "geoworld-demo", []))
    assert plain.select == SelectConfig() and not plain.select.candidates  # the paper's methods: selection off


def test_zero_shot_methods_resolve_to_the_prototype_head() -> None:
    zero_shot, proto = methods_by_name("csp-zeroshot,CSP-PROTO")
    for method, epochs in ((zero_shot, 0), (proto, 60)):
        assert method.pretrain == TABLES[1][5].pretrain  # CSP-MC-BLD's pre-training run, shared
        cfg = _resolved(FinetuneConfig, "finetune", "geoworld-demo", list(method.finetune))
        assert cfg["head_init"] == "prototypes" and cfg["data"]["epochs"] == epochs
        assert cfg["loss"] == {"name": "full", "args": {"bg_weight": 1.0}}
