"""A recording of the incumbent controller as paired ticks: the joint state, and the command after it.

Reads any rosbag2 MCAP bag with a `sensor_msgs/JointState` topic and a `std_msgs/Float64MultiArray`
command topic: the bags driftgate writes (the nodes' `BagRecorder`, `driftgate demo`,
`driftgate simulate-bag`) name their own topics and joints in metadata.yaml; for any other bag the
topics are found by type (or given).

Pairing is replay's (`adapters.replay`): a joint state waits for the next command; that command is
the incumbent's answer to it. A joint state followed by another joint state before any command has
no answer of its own and is dropped (counted), never paired with a stale command: the regression
must only see what the incumbent computed from that state.

Joint names: the policy sees joints in the plant's order. The names the robot publishes are
`joint_names` (given), else the bag's `driftgate.joint_names`, else the plant's own MuJoCo names;
a bag whose joint states do not carry them all is refused (the wrong plant for the bag).
"""
from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from adapters.joint_stream import JointOrder, StatePairing

from sim.distill import Demonstration, DistillError

JOINT_STATE = "sensor_msgs/msg/JointState"
COMMAND = "std_msgs/msg/Float64MultiArray"
REWARD = "std_msgs/msg/Float64"


def _bag_dir(path: Path) -> Path:
    if not path.exists():
        raise DistillError("BAG", f"{path} does not exist")
    if path.is_file():
        if path.suffix == ".mcap" and (path.parent / "metadata.yaml").exists():
            return path.parent
        raise DistillError("BAG", f"{path} is a file: give the rosbag2 bag directory (metadata.yaml + .mcap)")
    if not (path / "metadata.yaml").exists():
        raise DistillError("BAG", f"{path} is not a rosbag2 bag directory (no metadata.yaml)")
    return path


def _pick(types: Mapping[str, str], want: str | None, option: str, role: str, msgtype: str,
          preferred: Sequence[str]) -> str:
    """The topic of one role: given (must exist with the right type), else the first preferred name
    the bag has with that type, else the only topic of that type."""
    listing = ", ".join(f"{t} [{ty}]" for t, ty in sorted(types.items()))
    if want:
        if want not in types:
            raise DistillError(option, f"topic {want} is not in the bag; topics: {listing}")
        if types[want] != msgtype:
            raise DistillError(option, f"topic {want} carries {types[want]}, {role} need {msgtype}")
        return want
    for t in preferred:
        if t and types.get(t) == msgtype:
            return t
    cands = sorted(t for t, ty in types.items() if ty == msgtype)
    if len(cands) == 1:
        return cands[0]
    what = "no topic" if not cands else f"several topics ({', '.join(cands)})"
    raise DistillError(option, f"the bag has {what} of type {msgtype} for the {role}; name one with {option}. "
                       f"Topics: {listing or 'none'}")


def read_demonstration(bag: str | os.PathLike, plant: str, *, joint_state_topic: str | None = None,
                       command_topic: str | None = None, joint_names: Sequence[str] | None = None
                       ) -> Demonstration:
    """Paired (q, qdot, command) ticks of the incumbent in `bag`, joints in `plant`'s order.
    DistillError (naming the option) for a bag that cannot give them."""
    from rosbags.rosbag2 import Reader

    from adapters.recording import DEFAULT_TOPICS, typestore
    from sim.observation import plant_info

    path = _bag_dir(Path(bag))
    try:
        info = plant_info(plant)
    except (ValueError, OSError) as e:
        raise DistillError("--robot", str(e)) from None
    try:
        import yaml
        meta = yaml.safe_load((path / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
        custom = {str(k): str(v) for k, v in (meta.get("custom_data") or {}).items()}
        with Reader(path) as r:
            conns = list(r.connections)
    except DistillError:
        raise
    except Exception as e:   # rosbags, yaml, zstd, struct: a damaged bag
        raise DistillError("BAG", f"cannot open {path}: {str(e) or type(e).__name__}") from None
    types = {c.topic: c.msgtype for c in conns}
    counts: dict[str, int] = {}
    for c in conns:
        counts[c.topic] = counts.get(c.topic, 0) + int(c.msgcount)
    if not conns or sum(counts.values()) == 0:
        raise DistillError("BAG", f"{path} is empty (no messages)")
    try:
        bag_topics = json.loads(custom.get("driftgate.topics") or "{}")
    except ValueError:
        bag_topics = {}
    js = _pick(types, joint_state_topic, "--joint-state-topic", "joint states", JOINT_STATE,
               [bag_topics.get("joint_states"), DEFAULT_TOPICS["joint_states"]])
    cmd = _pick(types, command_topic, "--command-topic", "commands", COMMAND,
                [bag_topics.get("commands"), DEFAULT_TOPICS["commands"]])
    try:
        rew = _pick(types, None, "", "reward", REWARD, [bag_topics.get("reward"), DEFAULT_TOPICS["reward"]])
    except DistillError:
        rew = None
    for topic, option in ((js, "--joint-state-topic"), (cmd, "--command-topic")):
        if counts.get(topic, 0) == 0:
            raise DistillError(option, f"topic {topic} has no messages in {path}")

    names = list(joint_names or [])
    if not names:
        try:
            names = list(json.loads(custom.get("driftgate.joint_names") or "[]"))
        except ValueError:
            names = []
        if len(names) != len(info["joint_names"]):
            names = list(info["joint_names"])
    if len(names) != len(info["joint_names"]):
        raise DistillError("--joint-names", f"{len(names)} names for plant {plant!r}'s "
                           f"{len(info['joint_names'])} joints {info['joint_names']}")

    act_dim = int(info["act_dim"])
    pos, vel, cmds, stamps, rewards = [], [], [], [], []
    order = JointOrder(names)

    def emit(state, a) -> None:
        pos.append(state[0])
        vel.append(state[1])
        stamps.append(state[2])
        cmds.append(a)

    pairing = StatePairing(emit, hold=False)   # only what the incumbent answered
    try:
        with Reader(path) as r:
            want = [c for c in r.connections if c.topic in (js, cmd, rew)]
            deser = typestore().deserialize_cdr
            for c, ts, raw in r.messages(connections=want):
                if c.topic == js:
                    m = deser(raw, c.msgtype)
                    if order.index(m.name) is None:
                        raise DistillError("--robot", f"the joint states on {js} carry joints {list(m.name)}; plant "
                                           f"{plant!r} needs {names} (the wrong plant for this bag, or give "
                                           "--joint-names)")
                    qv = order.reorder(m)
                    ok = qv is not None and np.isfinite(qv[0]).all() and np.isfinite(qv[1]).all()
                    pairing.state((qv[0], qv[1], ts / 1e9) if ok else None)
                elif c.topic == cmd:
                    a = np.asarray(deser(raw, c.msgtype).data, dtype=np.float64)
                    if a.shape != (act_dim,):
                        raise DistillError("--command-topic", f"commands on {cmd} have {a.size} values; plant "
                                           f"{plant!r} takes {act_dim} (the wrong topic, or the wrong --robot)")
                    if np.isfinite(a).all():
                        pairing.command(a)
                    else:
                        pairing.discard()
                else:
                    x = float(deser(raw, c.msgtype).data)
                    if math.isfinite(x):
                        rewards.append(x)
    except DistillError:
        raise
    except Exception as e:
        raise DistillError("BAG", f"{path} is damaged: {str(e) or type(e).__name__}") from None
    unpaired, refused = pairing.unpaired, pairing.skipped
    source = {"bag": str(path), "joint_state_topic": js, "command_topic": cmd, "reward_topic": rew,
              "joint_names": names, "paired": len(pos), "unpaired_joint_states": unpaired,
              "refused_joint_states": refused, "bag_plant": custom.get("driftgate.plant"),
              "bag_source": custom.get("driftgate.source")}
    shape = (0, len(names))
    return Demonstration(np.array(pos).reshape(-1, len(names)) if pos else np.zeros(shape),
                         np.array(vel).reshape(-1, len(names)) if vel else np.zeros(shape),
                         np.array(cmds).reshape(-1, act_dim) if cmds else np.zeros((0, act_dim)),
                         np.array(stamps), np.array(rewards) if rewards else None, source)
