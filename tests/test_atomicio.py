"""sim.atomicio: the one home of atomic writes, canonical JSON, JSON-safe values and strict contracts."""
import json
import os
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path

import numpy as np
import pytest

from sim import atomicio
from sim.atomicio import atomic_write_json, canonical_json, dataclass_from_mapping, json_safe


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path, monkeypatch):
    path = atomic_write_json(tmp_path / "sub" / "state.json", {"v": 1})
    assert json.loads(path.read_text()) == {"v": 1}
    with pytest.raises(ValueError):                      # NaN is refused before anything is written
        atomic_write_json(path, {"v": float("nan")})

    def crash(src, dst):
        raise OSError("disk gone at the rename")
    monkeypatch.setattr(atomicio.os, "replace", crash)
    with pytest.raises(OSError, match="rename"):
        atomic_write_json(path, {"v": 2})
    assert json.loads(path.read_text()) == {"v": 1}
    assert os.listdir(path.parent) == ["state.json"]


def test_a_new_file_gets_open_permissions_and_a_replaced_one_keeps_its_own(tmp_path):
    umask = os.umask(0o022)
    try:
        new = atomicio.atomic_write_text(tmp_path / "new.txt", "x")
        assert new.stat().st_mode & 0o777 == 0o644
        new.chmod(0o640)
        atomicio.atomic_write_text(new, "y")
        assert new.stat().st_mode & 0o777 == 0o640 and new.read_text() == "y"
    finally:
        os.umask(umask)


def test_canonical_json_is_one_text_per_value():
    assert canonical_json({"b": [1, 2.5], "a": {"y": None, "x": "é"}}) == '{"a":{"x":"\\u00e9","y":null},"b":[1,2.5]}'
    with pytest.raises(ValueError):
        canonical_json({"x": float("inf")})


class Mode(str, Enum):
    ACTIVE = "active"


def test_json_safe_makes_plain_json():
    value = {"arr": np.array([[1, 2]], dtype=np.int32), "f": np.float32(0.5), "nan": np.nan,
             "b": np.bool_(True), "t": (1, Mode.ACTIVE), 3: Path("/x/y"), "obj": object}
    out = json_safe(value)
    assert out == {"arr": [[1, 2]], "f": 0.5, "nan": None, "b": True, "t": [1, "active"], "3": "/x/y",
                   "obj": str(object)}
    assert type(out["b"]) is bool and type(out["arr"][0][0]) is int
    canonical_json(out)                                  # and it is valid canonical JSON


@dataclass(frozen=True)
class Job:
    plant: str
    seed: int = 0
    tags: list = field(default_factory=list)


def test_dataclass_from_mapping_is_strict_and_names_what_is_wrong():
    assert dataclass_from_mapping(Job, {"plant": "cartpole", "seed": 3}, what="job.json") == Job("cartpole", 3)
    assert dataclass_from_mapping(Job, {"plant": "p", "format": 1}, what="job.json", ignore=("format",)) == Job("p")
    with pytest.raises(ValueError, match=r"^job.json: unknown key\(s\) \['colour', 'sed'\]; known: \['plant', 'seed', 'tags'\]$"):
        dataclass_from_mapping(Job, {"plant": "p", "sed": 1, "colour": 2}, what="job.json")
    with pytest.raises(ValueError, match=r"^job.json: .*missing 1 required positional argument: 'plant'"):
        dataclass_from_mapping(Job, {"seed": 1}, what="job.json")
    with pytest.raises(ValueError, match="^job.json: expected a JSON object, got list$"):
        dataclass_from_mapping(Job, [1, 2], what="job.json")
