"""Bounded YAML parsing (geocsp.yamlsafe, used by geocsp.config): alias bombs, deep nesting,
huge and binary files, repeated keys."""

from __future__ import annotations

import time
import tracemalloc
from pathlib import Path

import pytest

from geocsp.config import load_yaml, parse_override
from geocsp.errors import ConfigError
from geocsp.yamlsafe import (
    MAX_YAML_ALIASES,
    MAX_YAML_BYTES,
    MAX_YAML_DEPTH,
    MAX_YAML_NODES,
    parse_yaml_text,
)

BOMB = "\n".join(
    [f"a: &a [{','.join(['lol'] * 9)}]"]
    + [f"{k}: &{k} [{','.join([f'*{p}'] * 9)}]" for p, k in zip("abcdefgh", "bcdefghi", strict=True)]
) + "\n"


def _nested(depth: int) -> str:
    return "[" * depth + "]" * depth


def test_alias_bomb_is_refused_fast_with_bounded_memory(tmp_path: Path) -> None:
    path = tmp_path / "bomb.yaml"
    path.write_text(BOMB)
    assert len(BOMB) < 400
    tracemalloc.start()
    t0 = time.perf_counter()
    with pytest.raises(ConfigError, match=rf"bomb.yaml: YAML refused: more than {MAX_YAML_NODES} values"):
        load_yaml(path)
    seconds = time.perf_counter() - t0
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert seconds < 0.5 and peak < 20 * 2**20


def test_override_values_use_the_same_bounds() -> None:
    flow = "{" + BOMB.strip().replace("\n", ", ") + "}"
    with pytest.raises(ConfigError, match="override 'optim': YAML refused"):
        parse_override("optim=" + flow)
    with pytest.raises(ConfigError, match="nested deeper"):
        parse_override("a=" + _nested(MAX_YAML_DEPTH + 1))
    assert parse_override("a.b=[1, 2") == (["a", "b"], "[1, 2")  # not YAML: kept as text
    assert parse_override("a=" + _nested(3)) == (["a"], [[[]]])
    with pytest.raises(ConfigError, match="expected a key"):
        parse_override("=1")


@pytest.mark.parametrize("depth", [MAX_YAML_DEPTH + 1, 100_000])
def test_deep_nesting_is_refused_before_recursing(depth: int) -> None:
    t0 = time.perf_counter()
    with pytest.raises(ConfigError, match=f"nested deeper than {MAX_YAML_DEPTH} levels"):
        parse_yaml_text(_nested(depth), "deep.yaml")
    assert time.perf_counter() - t0 < 5.0


def test_depth_limit_is_inclusive_and_counts_through_aliases() -> None:
    assert parse_yaml_text(_nested(MAX_YAML_DEPTH), "x") is not None
    inner = "[" * 40 + "1" + "]" * 40
    assert parse_yaml_text(f"a: &a {inner}\nb: [[[[[[[[*a]]]]]]]]", "x")["b"][0][0][0][0][0][0][0][0][0]
    with pytest.raises(ConfigError, match="nested deeper"):
        parse_yaml_text(f"a: &a {inner}\nb: [[[[[[[[[[[*a]]]]]]]]]]]", "x")


def test_alias_count_and_recursive_alias() -> None:
    few = "a: &a 1\nb: [" + ", ".join(["*a"] * MAX_YAML_ALIASES) + "]"
    assert len(parse_yaml_text(few, "x")["b"]) == MAX_YAML_ALIASES
    with pytest.raises(ConfigError, match=f"more than {MAX_YAML_ALIASES} aliases"):
        parse_yaml_text(few.replace("]", ", *a]"), "x")
    with pytest.raises(ConfigError, match="recursive alias"):
        parse_yaml_text("a: &a [1, *a]", "x")
    assert parse_yaml_text("x: &x {a: 1}\ny:\n  <<: *x\n  b: 2\n", "x") == {"x": {"a": 1}, "y": {"a": 1, "b": 2}}


def test_huge_binary_and_non_utf8_files(tmp_path: Path) -> None:
    huge = tmp_path / "huge.yaml"
    huge.write_text("# x\n" * (MAX_YAML_BYTES // 4 + 1))
    with pytest.raises(ConfigError, match=f"huge.yaml: config larger than {MAX_YAML_BYTES} bytes"):
        load_yaml(huge)
    binary = tmp_path / "bin.yaml"
    binary.write_bytes(b"\x00\x01\xff\xfe")
    with pytest.raises(ConfigError, match=r"bin.yaml: expected UTF-8 YAML text, found byte 0xff at offset 2"):
        load_yaml(binary)
    nul = tmp_path / "nul.yaml"
    nul.write_bytes(b"seed: 1\x00\n")
    with pytest.raises(ConfigError, match=r"nul\.yaml: invalid YAML"):
        load_yaml(nul)


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("- a\n- b\n", "expected a YAML mapping at the top level"),
        ("a: [1,\n", r"invalid YAML \(line 2"),
        ("a: 1\n---\nb: 2\n", "invalid YAML"),
        ("a: !!python/object/apply:os.system ['true']\n", "could not determine a constructor"),
        ("a: !!int abc\n", "invalid YAML value"),
        ("a: *nowhere\n", "undefined alias"),
    ],
)
def test_invalid_documents_are_one_line(tmp_path: Path, text: str, match: str) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=match) as info:
        load_yaml(path)
    assert "\n" not in str(info.value) and str(path) in str(info.value)


def test_a_key_given_twice_is_refused_not_silently_last_wins(tmp_path: Path) -> None:
    """PyYAML keeps the last of two equal keys: `seed: 1 ... seed: 2` trained with seed 2."""
    p = tmp_path / "dup.yaml"
    p.write_text("seed: 1\noptim:\n  lr: 0.1\nseed: 2\n")
    with pytest.raises(ConfigError, match=r"dup\.yaml: YAML refused: key 'seed' given twice in one mapping "
                                          r"\(lines 1 and 4\); keep one"):
        load_yaml(p)
    with pytest.raises(ConfigError, match=r"override 'optim': YAML refused: key 'lr' given twice"):
        parse_override("optim={lr: 1, lr: 2}")
    # the same key in two different mappings, and YAML merge keys, are fine
    assert load_yaml_text("a: {x: 1}\nb: {x: 2}\n") == {"a": {"x": 1}, "b": {"x": 2}}
    assert load_yaml_text("base: &b {x: 1}\nc:\n  <<: *b\n  y: 2\n")["c"] == {"x": 1, "y": 2}


def load_yaml_text(text: str) -> object:
    return parse_yaml_text(text, "t")


def test_missing_file_and_directory(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        load_yaml(tmp_path / "nowhere.yaml")
    with pytest.raises(ConfigError, match="found a directory"):
        load_yaml(tmp_path)
    (tmp_path / "empty.yaml").write_text("")
    assert load_yaml(tmp_path / "empty.yaml") == {}


def test_bundled_presets_still_load() -> None:
    presets = Path(__file__).resolve().parents[1] / "src" / "geocsp" / "presets"
    for path in sorted(presets.glob("*.yaml")):
        assert isinstance(load_yaml(path), dict)


def test_a_value_fitting_no_alternative_of_a_union_says_what_each_expects() -> None:
    """Was `cannot interpret 'none' as typing.Union[bool, typing.Literal[...]]`."""
    from geocsp.training import PretrainConfig, resolve_config

    with pytest.raises(ConfigError, match=r"^compile: expected true/false or one of \['reduce-overhead', "
                                          r"'max-autotune'\], got 'none'$"):
        resolve_config(PretrainConfig, overrides=["compile=none"])
