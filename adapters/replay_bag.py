"""The bag side of offline replay: open a rosbag2 (MCAP) recording, find the topics of each role,
check them (`inspect_bag`). Bad input raises `ReplayError` with what and where."""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

import yaml

from sim.safeio import read_text_bounded

REQUIRED_ROLES = ("joint_states", "commands")


class ReplayError(Exception):
    """Bad input (bag, configuration, output directory): the message says what and where."""


@dataclass
class BagInfo:
    path: Path
    custom: dict
    topics: dict            # role -> topic
    types: dict             # topic -> msgtype
    counts: dict            # topic -> messages
    start_ns: int
    end_ns: int
    storage_sha256: str

    @property
    def duration_s(self) -> float:
        return max(0, self.end_ns - self.start_ns) / 1e9


def _bag_error(path: Path, e: BaseException, reading: bool = False) -> ReplayError:
    msg = str(e) or type(e).__name__
    if reading:
        return ReplayError(f"bag {path} is damaged: {msg} (a truncated or corrupt MCAP file)")
    return ReplayError(f"cannot open bag {path}: {msg} (a damaged metadata.yaml, or a truncated or corrupt "
                       "MCAP file)")


def _sha256_files(paths) -> str:
    h = hashlib.sha256()
    for p in sorted(paths):
        h.update(p.name.encode() + b"\0")
        with open(p, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()


def _check_storage_files(bag: Path, files: list[Path]) -> None:
    import stat

    from sim.safeio import inside
    for f in files:
        if not inside(f, bag):
            raise ReplayError(f"bag {bag}: storage file {f.name} lies outside the bag directory; refused")
        try:
            st = os.stat(f)
        except OSError as e:
            raise ReplayError(f"bag {bag}: storage file {f.name}: {e.strerror or e}") from None
        if not stat.S_ISREG(st.st_mode):
            raise ReplayError(f"bag {bag}: storage file {f.name} is not a regular file; refused")


def inspect_bag(path: str | os.PathLike, topics: Mapping[str, str] | None = None) -> BagInfo:
    """Open a bag and check what replay needs (ReplayError otherwise). Does not read messages."""
    from rosbags.rosbag2 import Reader

    from adapters.recording import DEFAULT_TOPICS, ROLE_TYPES, typestore
    path = Path(path)
    if not path.exists():
        raise ReplayError(f"bag {path} does not exist")
    if path.is_file():
        if path.suffix == ".mcap" and (path.parent / "metadata.yaml").exists():
            path = path.parent
        else:
            raise ReplayError(f"{path} is a file: give the rosbag2 bag directory (with metadata.yaml and the "
                              ".mcap file)")
    if not (path / "metadata.yaml").exists():
        raise ReplayError(f"{path} is not a rosbag2 bag directory (no metadata.yaml)")
    try:   # the low-level reader: schemas of topics replay does not use are never parsed
        # first what the reader would open, bounded: the metadata (regular file, size-capped) and
        # every storage file (regular files inside the bag: no device, pipe or link out of it)
        meta = yaml.safe_load(read_text_bounded(path / "metadata.yaml", what="bag metadata"))["rosbag2_bagfile_information"]
        custom = {str(k): str(v) for k, v in (meta.get("custom_data") or {}).items()}
        files = [path / str(f) for f in meta.get("relative_file_paths") or []]
        _check_storage_files(path, files)
        with Reader(path) as r:
            conns = list(r.connections)
            start, end = int(r.start_time), int(r.end_time) - 1   # rosbags: end = last + 1 ns
    except ReplayError:
        raise
    except Exception as e:   # rosbags raises its own errors, and struct/zstd/yaml errors on damage
        raise _bag_error(path, e) from None
    types: dict[str, str] = {}
    counts: dict[str, int] = {}
    for c in conns:
        if c.topic in types and types[c.topic] != c.msgtype:
            raise ReplayError(f"bag {path}: topic {c.topic} is recorded with two types ({types[c.topic]}, "
                              f"{c.msgtype})")
        types[c.topic] = c.msgtype
        counts[c.topic] = counts.get(c.topic, 0) + int(c.msgcount)
    if not conns or sum(counts.values()) == 0:
        raise ReplayError(f"bag {path} is empty (no messages)")
    bag_topics = {}
    try:
        bag_topics = json.loads(custom.get("driftgate.topics") or "{}")
    except ValueError:
        pass
    resolved: dict[str, str] = {}
    for role in ROLE_TYPES:
        want = (topics or {}).get(role) or bag_topics.get(role) or DEFAULT_TOPICS[role]
        if want in types:
            resolved[role] = want
            continue
        if (topics or {}).get(role):
            if role in REQUIRED_ROLES:
                raise ReplayError(f"bag {path}: topic {want} ({role}) is not in the bag; topics: "
                                  f"{sorted(types)}")
            continue
        # not at the expected name: the only topic of the role's type (reward: a Float64 named *reward)
        cands = [t for t, ty in types.items() if ty == ROLE_TYPES[role]]
        if role == "reward":
            cands = [t for t in cands if "reward" in t]
        elif role in ("events", "drift_active"):
            cands = [t for t in cands if t.rstrip("/").endswith(role)]
        if len(cands) == 1:
            resolved[role] = cands[0]
        elif role in REQUIRED_ROLES:
            what = "no topic" if not cands else f"several topics ({sorted(cands)})"
            raise ReplayError(f"bag {path}: missing topic {want} ({role}, {ROLE_TYPES[role]}): {what} of that "
                              f"type; topics: {sorted(f'{t} [{ty}]' for t, ty in types.items())}. "
                              f"Name it with topics.{role} in --config.")
    ts = typestore()
    for role, topic in list(resolved.items()):
        problem = None
        if types[topic] != ROLE_TYPES[role]:
            problem = f"has schema {types[topic]}; replay needs {ROLE_TYPES[role]}"
        else:
            want = ts.hash_rihs01(ROLE_TYPES[role])
            for c in conns:
                if c.topic == topic and str(c.digest or "").startswith("RIHS01_") and c.digest != want:
                    problem = (f"carries an unknown schema for {ROLE_TYPES[role]} (type hash {c.digest[:20]}..., "
                               f"ROS 2's is {want[:20]}...): replay decodes the standard ROS 2 definition only")
        if problem and role in REQUIRED_ROLES:
            raise ReplayError(f"bag {path}: topic {topic} ({role}) {problem}")
        if problem:              # an optional role (reward, drift markers): replay goes on without it
            del resolved[role]
    for role in REQUIRED_ROLES:
        if counts.get(resolved[role], 0) == 0:
            raise ReplayError(f"bag {path}: topic {resolved[role]} ({role}) has no messages")
    sha = _sha256_files(files) if files else ""
    return BagInfo(path, custom, resolved, types, counts, start, end, sha)


