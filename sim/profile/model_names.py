"""Names in a compiled MuJoCo model, as a profile writes them, and where the model file is.

Real MJCF files (gymnasium's ant, hopper, pusher...) leave actuators unnamed; a profile then names
an actuator by its transmission target, ``joint:hip_1``, never by index: an index silently changes
meaning when someone edits the model, a target does not.
"""
from __future__ import annotations

import importlib.util
import os
import re
from pathlib import Path

import mujoco

TRN_PREFIX = {mujoco.mjtTrn.mjTRN_JOINT: "joint", mujoco.mjtTrn.mjTRN_JOINTINPARENT: "joint",
              mujoco.mjtTrn.mjTRN_TENDON: "tendon", mujoco.mjtTrn.mjTRN_SITE: "site",
              mujoco.mjtTrn.mjTRN_SLIDERCRANK: "site", mujoco.mjtTrn.mjTRN_BODY: "body"}
OBJ_OF = {"joint": mujoco.mjtObj.mjOBJ_JOINT, "tendon": mujoco.mjtObj.mjOBJ_TENDON,
          "site": mujoco.mjtObj.mjOBJ_SITE, "body": mujoco.mjtObj.mjOBJ_BODY}
JOINT_KIND = {0: "free", 1: "ball", 2: "slide", 3: "hinge"}
PACKAGE_PATH = re.compile(r"^([A-Za-z_][\w.]+):(?![/\\]{2})(.+)$")   # dm_control:suite/x.xml


class NameError_(ValueError):
    """A name the model lacks (message names the known ones)."""


def known(names, limit: int = 40) -> str:
    names = list(names)
    shown = ", ".join(names[:limit])
    return f"[{shown}{f', ... ({len(names) - limit} more)' if len(names) > limit else ''}]"


def names(model: mujoco.MjModel, obj: str) -> list[str]:
    """Named objects of one kind, in model order (unnamed ones have no name to give)."""
    count = {"joint": model.njnt, "body": model.nbody, "site": model.nsite, "geom": model.ngeom,
             "sensor": model.nsensor, "tendon": model.ntendon, "key": model.nkey}[obj]
    get = getattr(model, obj)
    return [n for n in (get(i).name for i in range(count)) if n]


def lookup(model: mujoco.MjModel, obj: str, name: str, what: str) -> int:
    """Id of the named `obj` (joint, body, site, geom, sensor, key); NameError_ naming the known ones."""
    known_names = names(model, obj)
    if name not in known_names:
        raise NameError_(f"unknown {what or obj} {name!r}; known: {known(known_names)}")
    return int(getattr(model, obj)(name).id)


def actuator_target(model: mujoco.MjModel, i: int) -> str:
    """``joint:NAME`` (or tendon/site/body) of actuator i; '' when its target is unnamed."""
    prefix = TRN_PREFIX.get(mujoco.mjtTrn(int(model.actuator_trntype[i])))
    if prefix is None:
        return ""
    target = mujoco.mj_id2name(model, OBJ_OF[prefix], int(model.actuator_trnid[i, 0]))
    return f"{prefix}:{target}" if target else ""


def actuator_label(model: mujoco.MjModel, i: int) -> str:
    """How a profile names actuator i: its own name, else its transmission target."""
    return model.actuator(i).name or actuator_target(model, i) or f"#{i}"


def actuator_refs(model: mujoco.MjModel) -> dict[str, int]:
    """Every accepted actuator reference -> actuator id (targets shared by several actuators are
    ambiguous and left out: those actuators must be named in the model)."""
    refs: dict[str, int] = {}
    by_target: dict[str, list[int]] = {}
    for i in range(model.nu):
        if model.actuator(i).name:
            refs[model.actuator(i).name] = i
        target = actuator_target(model, i)
        if target:
            by_target.setdefault(target, []).append(i)
    for target, ids in by_target.items():
        if len(ids) == 1 and target not in refs:
            refs[target] = ids[0]
    return refs


def lookup_actuator(model: mujoco.MjModel, ref: str) -> int:
    refs = actuator_refs(model)
    if ref in refs:
        return refs[ref]
    labels = [actuator_label(model, i) for i in range(model.nu)]
    shared = [t for t in {actuator_target(model, i) for i in range(model.nu)} if t and t not in refs]
    hint = f" ({ref} drives several actuators: name them in the model)" if ref in shared else ""
    raise NameError_(f"unknown actuator {ref!r}{hint}; known: {known(labels)} (an unnamed actuator is "
                     "named by its target, e.g. 'joint:NAME')")


def resolve_model_path(ref: str, base: Path) -> Path:
    """A profile's model path: ``PACKAGE:PATH`` inside an installed Python package (found without
    importing it), else a path relative to the profile's folder."""
    m = PACKAGE_PATH.match(ref)
    if m:
        package, rel = m.groups()
        spec = importlib.util.find_spec(package.split(".")[0])
        if spec is None or not spec.submodule_search_locations:
            raise FileNotFoundError(f"package {package.split('.')[0]!r} (in {ref!r}) is not installed")
        root = Path(list(spec.submodule_search_locations)[0])
        for part in package.split(".")[1:]:
            root = root / part
        path = root / rel
    else:
        path = Path(ref).expanduser()
        path = Path(os.path.normpath(path if path.is_absolute() else base / path))   # lexical '..'
    if not path.is_file():
        raise FileNotFoundError(f"no such file: {path}")
    return path


def actuator_kind(model: mujoco.MjModel, i: int) -> str:
    """'motor', 'position' or 'velocity' servo (MuJoCo's shortcuts), else 'other': what a ROS 2
    forward command controller's interface (effort / position / velocity) should drive."""
    gain, bias = int(model.actuator_gaintype[i]), int(model.actuator_biastype[i])
    gp, bp = model.actuator_gainprm[i], model.actuator_biasprm[i]
    if int(model.actuator_dyntype[i]) != int(mujoco.mjtDyn.mjDYN_NONE) or gain != int(mujoco.mjtGain.mjGAIN_FIXED):
        return "other"
    if bias == int(mujoco.mjtBias.mjBIAS_NONE):
        return "motor"
    if bias == int(mujoco.mjtBias.mjBIAS_AFFINE) and bp[0] == 0 and bp[1] == -gp[0] and gp[0] > 0:
        return "position"
    if bias == int(mujoco.mjtBias.mjBIAS_AFFINE) and bp[0] == 0 and bp[1] == 0 and bp[2] == -gp[0] and gp[0] > 0:
        return "velocity"
    return "other"


INTERFACE_KIND = {"effort": "motor", "position": "position", "velocity": "velocity"}


def one_line(message: str) -> str:
    return " ".join(str(message).split())
