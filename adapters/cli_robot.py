"""`driftgate robot init | check`: draft a robot profile from a model, and check one.

    driftgate robot init --mjcf MODEL.xml [--out PROFILE.yaml] [--force]
    driftgate robot init --urdf ROBOT.urdf [--out PROFILE.yaml] [--force]
    driftgate robot check PROFILE.yaml [--bag BAG]

`init` writes a commented draft (every joint, actuator, body, site and sensor by name; defaults from
the model) that `check` accepts as it is; it checks the draft itself before writing it, writes it
atomically and never replaces a file without --force. `check` validates a profile against its
compiled model and prints a summary; with --bag it also checks that a rosbag2 recording carries the
profile's topics, JointState names and command width. Bad input is one line on stderr naming the
field, exit status 2.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from adapters.cli_common import fail as _fail   # one line on stderr, exit 2 / 1

EXIT_BAD_INPUT = 2
app = typer.Typer(name="robot", no_args_is_help=True, add_completion=False,
                  help="robot profiles: draft one from an MJCF/URDF model (init), validate one (check)")
out = Console()


@app.command("init")
def init(
    mjcf: Optional[Path] = typer.Option(None, "--mjcf", help="MuJoCo MJCF model file"),
    urdf: Optional[Path] = typer.Option(None, "--urdf", help="URDF file, compiled by MuJoCo's URDF compiler"),
    out_path: Optional[Path] = typer.Option(None, "--out", help="profile to write (default: ./<model name>.yaml)"),
    force: bool = typer.Option(False, "--force", help="replace an existing profile file"),
) -> None:
    """Write a commented draft profile from a model: every joint, actuator, body and sensor by name."""
    import mujoco
    import yaml

    from sim.atomicio import atomic_write_bytes
    from sim.profile import ProfileError, profile_from_mapping
    from sim.profile.draft import draft_profile, render_urdf_actuators, urdf_actuators
    from sim.profile.resolve import add_actuator

    if (mjcf is None) == (urdf is None):
        _fail("give exactly one of --mjcf FILE or --urdf FILE")
    source = mjcf or urdf
    flag = "--mjcf" if mjcf else "--urdf"
    if not source.is_file():
        _fail(f"{flag}: no such file: {source}")
    target = out_path or Path(f"{source.stem}.yaml")
    if target.exists() and not force:
        _fail(f"--out: {target} exists; pass --force to replace it")
    block = None
    try:
        if mjcf:
            model = mujoco.MjModel.from_xml_path(str(source))
        else:
            model = mujoco.MjSpec.from_file(str(source)).compile()
            if model.nu == 0:
                decls = urdf_actuators(model)
                spec = mujoco.MjSpec.from_file(str(source))
                for k, a in enumerate(decls):
                    add_actuator(spec, a, str(source), f"model.actuators[{k}]")
                model, block = spec.compile(), render_urdf_actuators(decls)
    except Exception as e:
        _fail(f"{flag}: {source}: {e}")
    try:
        text = draft_profile(model, source, target, kind="mjcf" if mjcf else "urdf", urdf_actuators=block)
    except ValueError as e:
        _fail(f"{flag}: {e}")
    try:   # the draft must pass its own check before it lands on disk
        profile_from_mapping(yaml.safe_load(text), target)
    except ProfileError as e:
        _fail(f"the drafted profile does not check (a driftgate bug, please report): {e}", code=1)
    atomic_write_bytes(target, text.encode())
    typer.echo(f"wrote {target}: {model.njnt} joints, {model.nu} actuators, {model.nbody - 1} bodies, "
               f"{model.nsensor} sensors; edit it, then: driftgate robot check {target}", err=True)


@app.command("check")
def check(
    profile: Path = typer.Argument(..., help="robot profile YAML"),
    bag: Optional[Path] = typer.Option(None, "--bag", help="rosbag2 (MCAP) recording of the robot to check "
                                       "topics, JointState names and command width against"),
) -> None:
    """Validate a profile against its model (and a recording) and print a summary."""
    from sim.profile import ProfileError, load_profile

    try:
        p = load_profile(profile)
    except ProfileError as e:
        _fail(str(e))
    out.print(summary_table(p))
    if bag is not None:
        try:
            rows = check_bag(p, bag)
        except ValueError as e:
            _fail(str(e))
        table = Table(title=f"recording {bag}")
        for col in ("role", "topic", "type", "messages", "check"):
            table.add_column(col)
        for row in rows:
            table.add_row(*row)
        out.print(table)
    out.print(f"[bold green]ok[/]: {p.name} ({profile})")


def summary_table(p) -> Table:
    m, doc = p.model, p.doc
    from sim.profile import model_names as mn
    t = Table(title=f"robot profile {p.name}: {p.model_path.name}, {m.nq} qpos, {m.nv} dof, {m.nu} actuators; "
                    f"{doc.control.rate_hz:g} Hz = {p.n_sub_steps} x {m.opt.timestep:g} s")
    for col in ("what", "name", "MuJoCo", "range / detail"):
        t.add_column(col)
    for ros, j in zip(p.ros_joints, p.joints):
        lo, hi = p.joint_bounds[ros]
        bounds = "unbounded" if math.isinf(lo) and math.isinf(hi) else f"[{lo:.4g}, {hi:.4g}]"
        t.add_row("joint", ros, m.joint(j).name, f"{mn.JOINT_KIND[int(m.jnt_type[j])]}, bounds {bounds}")
    for i, a in enumerate(p.actuators):
        lo, hi = m.actuator_ctrlrange[a]
        rng = f"[{lo:g}, {hi:g}]" if m.actuator_ctrllimited[a] else "unlimited"
        kind = mn.actuator_kind(m, a)
        note = "" if kind == mn.INTERFACE_KIND[doc.command.interface] else \
            f" [yellow](a {kind} actuator behind the {doc.command.interface} interface)[/]"
        t.add_row(f"command[{i}]", doc.command.actuators[i], mn.actuator_label(m, a),
                  f"{kind}, ctrlrange {rng}, safe {p.safe_command[i]:g}{note}")
    if p.imu:
        body, site = p.imu
        t.add_row("imu", doc.observe.imu.topic, m.site(site).name if site is not None else m.body(body).name,
                  "orientation + angular velocity")
    if p.odometry:
        t.add_row("odometry", doc.observe.odometry.topic, m.body(p.odometry[0]).name, "position + linear velocity")
    for body, h, tilt in p.falls:
        t.add_row("fall", m.body(body).name, "", ", ".join(x for x in (h is not None and f"height < {h:g} m",
                                                                         tilt is not None and f"tilt > {tilt:g} deg") if x))
    obj = doc.objective
    detail = {"model_reference": f"track {obj.track}", "entry_point": str(obj.entry_point),
              "terms": f"{len(obj.terms)} terms, {obj.combine}"}[obj.kind]
    t.add_row("objective", obj.kind, "", detail)
    for table in ("mass_scale", "actuator_gain", "damping_scale", "friction_scale", "obs_bias"):
        for k, (lo, hi) in getattr(doc.drift, table).items():
            t.add_row("drift", table, k, f"[{lo:g}, {hi:g}]")
    if doc.drift.action_delay_ticks != (0, 0):
        t.add_row("drift", "action_delay_ticks", "", str(list(doc.drift.action_delay_ticks)))
    for which in ("champion", "suite", "calibration"):
        path = p.asset_path(which)
        if path is not None:
            t.add_row("asset", which, str(path), "present" if path.exists() else "not yet (created when made)")
    return t


def _topic_matches(recorded: str, wanted: str) -> bool:
    """A profile topic is relative (it moves with the namespace): '/ns/joint_states' matches 'joint_states'."""
    wanted = wanted.strip("/")
    return recorded.strip("/") == wanted or recorded.endswith("/" + wanted)


def check_bag(p, bag: Path) -> list[tuple[str, str, str, str, str]]:
    """Rows (role, topic, type, messages, verdict); ValueError (one line) on the first mismatch."""
    from rosbags.rosbag2 import Reader

    from adapters.recording import typestore

    doc = p.doc
    if not (bag / "metadata.yaml").exists():
        raise ValueError(f"--bag: {bag} is not a rosbag2 bag directory (no metadata.yaml)")
    wanted = [("joint_states", doc.observe.joint_states.topic, "sensor_msgs/msg/JointState"),
              ("commands", doc.command.topic, "std_msgs/msg/Float64MultiArray")]
    if doc.observe.imu:
        wanted.append(("imu", doc.observe.imu.topic, "sensor_msgs/msg/Imu"))
    if doc.observe.odometry:
        wanted.append(("odometry", doc.observe.odometry.topic, "nav_msgs/msg/Odometry"))
    rows = []
    try:
        with Reader(bag) as reader:
            conns = list(reader.connections)
            recorded = sorted({c.topic for c in conns})
            for role, topic, msgtype in wanted:
                field = {"joint_states": "observe.joint_states.topic", "commands": "command.topic",
                         "imu": "observe.imu.topic", "odometry": "observe.odometry.topic"}[role]
                match = [c for c in conns if _topic_matches(c.topic, topic)]
                if not match:
                    raise ValueError(f"--bag: {field}: topic {topic!r} is not in the recording; topics: {recorded}")
                c = match[0]
                if c.msgtype != msgtype:
                    raise ValueError(f"--bag: {field}: {c.topic} carries {c.msgtype}, the profile needs {msgtype}")
                first = next(iter(reader.messages(connections=[c])), None)
                verdict = "ok"
                if first is not None and role in ("joint_states", "commands"):
                    msg = typestore().deserialize_cdr(first[2], c.msgtype)
                    verdict = _check_message(p, role, msg)
                rows.append((role, c.topic, c.msgtype, str(c.msgcount), verdict))
    except ValueError:
        raise
    except Exception as e:   # rosbags' own errors on a damaged bag
        raise ValueError(f"--bag: cannot read {bag}: {e}") from None
    return rows


def _check_message(p, role: str, msg) -> str:
    if role == "joint_states":
        names = list(msg.name)
        missing = [n for n in p.ros_joints if n not in names]
        if missing:
            raise ValueError(f"--bag: observe.joint_states.joints: {missing} are not in the recorded JointState; "
                             f"it carries {names}")
        extra = [n for n in names if n not in p.ros_joints]
        return "ok" + (f" ({len(extra)} joints not in the profile: {extra[:5]})" if extra else "")
    width = len(msg.data)
    if width != len(p.actuators):
        raise ValueError(f"--bag: command.actuators: the recorded commands carry {width} values, the profile "
                         f"lists {len(p.actuators)} actuators")
    return "ok"
