"""Offline replay's configuration and inputs: the settings tree from a YAML file (the replay config
is `controller.settings.Settings`, plus its ``replay`` section), the champion and the regression
suite a replay starts from, and its output directory (written to a temporary directory, renamed
into place when the replay finished)."""
from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Mapping

import yaml

from adapters.replay_bag import ReplayError
from controller.pipeline import merge_mapping as _merge
from controller.settings import ReplayTopics, Settings, SettingsError, validate
from sim.safeio import read_text_bounded

# The replay configuration is the settings tree (controller.settings): the same names as the
# node's parameters, plus the ``replay`` section. ``robot`` not given: the bag's driftgate.plant.

ReplayConfig = Settings


def config_from_mapping(data: Mapping | None, base_dir: Path | None = None) -> ReplayConfig:
    """Validate a replay configuration mapping (ReplayError names the path to a bad key or value)."""
    try:
        cfg = validate(data, "replay config")
    except SettingsError as e:
        raise ReplayError(str(e)) from None
    if base_dir is not None:   # paths in a config file are relative to the file
        rel = lambda p: str((base_dir / p).resolve()) if p and p not in ("lqr", "none") and not Path(p).is_absolute() else p  # noqa: E731
        cfg = cfg.model_copy(update={
            "orchestrator": cfg.orchestrator.model_copy(update={"bootstrap_champion":
                                                                rel(cfg.orchestrator.bootstrap_champion)}),
            "monitor": cfg.monitor.model_copy(update={"config": rel(cfg.monitor.config)}),
            "gate": cfg.gate.model_copy(update={"suite": rel(cfg.gate.suite)})})
    return cfg


def _read_yaml(path: Path, what: str, unreadable: str, invalid: str) -> Any:
    """A YAML file read with a size bound; a one-line ReplayError if it cannot be read or parsed."""
    try:
        return yaml.safe_load(read_text_bounded(path, what=what))
    except OSError as e:
        raise ReplayError(f"{unreadable}: {e.strerror or e}") from None
    except yaml.YAMLError as e:
        raise ReplayError(f"{invalid}: not valid YAML ({e})") from None


def load_replay_config(path: str | os.PathLike | None = None) -> ReplayConfig:
    """Read a replay configuration YAML (None: all defaults)."""
    if path is None:
        return ReplayConfig()
    path = Path(path)
    data = _read_yaml(path, "replay config", f"cannot read config {path}", f"config {path}")
    try:
        return config_from_mapping(data, path.parent.resolve())
    except ReplayError as e:
        raise ReplayError(f"{path}: {e}") from None


def monitor_config(cfg: ReplayConfig):
    """The drift monitor configuration: its YAML file, then the `monitor.overrides`."""
    from controller.pipeline import monitor_config as from_settings
    try:
        return from_settings(cfg)
    except (ValueError, OSError) as e:
        raise ReplayError(f"replay config: monitor: {e}") from None


def _profile(plant: str):
    """The robot profile of `plant` (built-in name or profile path), or None."""
    try:
        from adapters.robot_option import robot_profile
        return robot_profile(plant)
    except Exception:
        return None


def bag_robot(info) -> tuple[str, list[str]]:
    """(robot, joint names) the bag says it was recorded on (metadata; '' / [] when it does not say)."""
    import json
    try:
        names = list(json.loads(info.custom.get("driftgate.joint_names") or "[]"))
    except ValueError:
        names = []
    return str(info.custom.get("driftgate.plant", "") or ""), [str(n) for n in names]


def check_bag_robot(info, plant: str, where: str = "--robot") -> None:
    """ReplayError (one line, both robots and joint sets) when the bag was recorded on another
    robot than `plant`: another robot name, or (a bag naming no robot) other joints."""
    from adapters.robot_option import robot_label
    from sim.observation import plant_info
    bag_plant, bag_joints = bag_robot(info)
    joints = list(plant_info(plant)["joint_names"])
    other = robot_label(bag_plant) != robot_label(plant) if bag_plant else \
        bool(bag_joints) and set(bag_joints) != set(joints)
    if other:
        raise ReplayError(f"{where} {robot_label(plant)}: bag {info.path} was recorded on robot "
                          f"{robot_label(bag_plant) if bag_plant else '(unnamed)'!r} with joints {bag_joints or '?'}; "
                          f"robot {robot_label(plant)!r} has joints {joints}")


def robot_config(cfg: ReplayConfig, info, robot: str | None) -> ReplayConfig:
    """The replay configuration for the bag's robot: `robot` (checked against the bag) or the
    config's ``robot`` or the bag's; the drift-monitor calibration from the robot's profile when
    the config names none."""
    if robot is not None:
        check_bag_robot(info, robot)
        cfg = cfg.model_copy(update={"robot": robot})
        cfg.model_fields_set.add("robot")
    elif "robot" in cfg.model_fields_set:
        check_bag_robot(info, cfg.robot, where="replay config robot:")
    plant = cfg.robot if "robot" in cfg.model_fields_set else bag_robot(info)[0]
    prof = _profile(plant) if plant else None
    cal = prof.asset_path("calibration") if prof is not None else None
    if not cfg.monitor.config and cal is not None and cal.is_file():
        fields = set(cfg.model_fields_set)
        cfg = cfg.model_copy(update={"monitor": cfg.monitor.model_copy(update={"config": str(cal)})})
        cfg.model_fields_set.clear()
        cfg.model_fields_set.update(fields)
    return cfg


def _topics(cfg: ReplayConfig) -> dict:
    return cfg.replay.topics.model_dump(exclude_none=True)


def _topics_roles() -> tuple[str, ...]:
    return tuple(ReplayTopics.model_fields)



def _champion(cfg: ReplayConfig, plant: str):
    from sim.genome import GenomeFileError, load_genome
    src = cfg.orchestrator.bootstrap_champion
    try:
        if src == "lqr":
            from controller.bootstrap import lqr_policy_genome
            return lqr_policy_genome(plant), "lqr"
        if src:
            return load_genome(src), Path(src).name
        from controller.shipped import shipped_file
        try:
            path = shipped_file(f"champions/{plant}.safetensors")
        except FileNotFoundError:
            path = None
        if path is not None:
            return load_genome(path), f"shipped:{path.name}"
        prof = _profile(plant)
        path = prof.asset_path("champion") if prof is not None else None
        if path is not None and path.is_file():
            return load_genome(path), f"profile:{path.name}"
        from controller.bootstrap import nominal_policy_genome
        try:
            return nominal_policy_genome(plant), "nominal linear feedback"
        except ValueError:
            pass                       # no linear nominal controller: the error below says what to set
    except (GenomeFileError, OSError, ValueError) as e:
        raise ReplayError(f"replay config: orchestrator.bootstrap_champion {src or plant!r}: {e}") from None
    raise ReplayError(f"no champion for plant {plant!r}: set orchestrator.bootstrap_champion (a genome file) in "
                      "--config")


def _suite(cfg: ReplayConfig, plant: str, work: Path) -> tuple[Path, dict]:
    from safety.suite import SuiteError, load_suite
    from controller.shipped import resolve
    src = cfg.gate.suite or None
    if src is None and _profile(plant) is not None:
        src = _profile(plant).asset_path("suite")
    if src is None:
        raise ReplayError(f"no regression suite for plant {plant!r}: set gate.suite in --config "
                          "(or replay.gate_enabled: false)")
    src = resolve(src)
    doc = _read_yaml(src, "gate suite", f"gate suite {src}", f"gate suite {src}")
    if cfg.gate.overrides:
        doc = _merge(doc, cfg.gate.overrides)
    out = work / "suite.yaml"
    text = yaml.safe_dump(doc, sort_keys=False)
    out.write_text(text)
    try:
        suite = load_suite(out)
    except SuiteError as e:
        raise ReplayError(f"gate suite {src} with gate.overrides: {e}".replace(str(out), "suite")) from None
    from adapters.robot_option import robot_label
    if robot_label(str(suite.plant)) != robot_label(plant):
        raise ReplayError(f"gate suite {src} judges plant {suite.plant!r}, the bag is {plant!r}")
    return out, {"name": suite.name, "source": src.name, "sha256": hashlib.sha256(text.encode()).hexdigest(),
                 "overrides": cfg.gate.overrides}


def _make_output_tmp(out_dir: Path, overwrite: bool) -> Path:
    if out_dir.exists() and not overwrite:
        raise ReplayError(f"output directory {out_dir} exists already; choose a new --out (or --force)")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.partial-", dir=out_dir.parent))


def _publish(tmp: Path, out_dir: Path, overwrite: bool) -> None:
    if out_dir.exists():
        if not overwrite:
            raise ReplayError(f"output directory {out_dir} appeared during the replay; results left in {tmp}")
        old = out_dir.parent / f".{out_dir.name}.old-{os.getpid()}"
        os.replace(out_dir, old)
        os.replace(tmp, out_dir)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, out_dir)


