"""`driftgate node {controller,sim-robot,demo}`: the ROS 2 nodes in a plain venv, from the launch YAML.

`ros2 launch` is not on PyPI, so this starts the same nodes with the same parameter file: the
``ros__parameters`` of the section named after the node (wildcard sections ``/**`` first, then
``name`` and ``/namespace/name``) become parameter overrides, nested mappings flattened with dots
as ROS does. ``--set key=value`` (YAML value) overrides single parameters. SIGINT / SIGTERM stop
the executor, run the nodes' cleanup (the controller publishes its safe command, sandbox jobs are
killed) and shut the context down.

Namespaces and remapping: ``--namespace robot_a``, or ROS arguments after ``--ros-args`` as with
``ros2 run`` (``-r __ns:=/robot_a``, ``-r joint_states:=/other/joint_states``, ``-p name:=value``,
``use_sim_time`` ...). rcl applies them; the YAML section is chosen with the resulting node name
and namespace, and ``-p`` wins over ``--params`` and ``--set``.

Mounted by the top-level CLI as ``driftgate node``; also ``python -m adapters.cli_node``.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

import typer
import yaml

from adapters.cli_common import fail as _fail
from adapters.ros.ros_args import RosArgs
from adapters.ros.spin import NodeFailed, requested_realtime_priority, run_nodes  # noqa: F401 (the CLI's API)

app = typer.Typer(name="node", add_completion=False, no_args_is_help=True,
                  help="start the driftgate ROS 2 nodes from the launch YAML (no ros2 launch needed)")

CONTROLLER = "driftgate_controller"
SIM_ROBOT = "driftgate_sim_robot"


def _flatten(d: dict, prefix: str = "") -> dict:
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flatten(v, key + "."))
        else:
            out[key] = v
    return out


def load_node_params(path: str | Path | None, node_name: str, namespace: str = "") -> dict[str, Any]:
    """The flattened ``ros__parameters`` for `node_name` in a ROS 2 parameter file (or {})."""
    if path is None:
        return {}
    from controller.shipped import resolve     # launch/driftgate.yaml names the shipped file from any directory
    from sim.safeio import read_text_bounded
    path = resolve(path)
    try:
        doc = yaml.safe_load(read_text_bounded(path, what="parameter file")) or {}
    except yaml.YAMLError as e:
        raise ValueError(f"{path}: not valid YAML ({' '.join(str(e).split())})") from None
    if not isinstance(doc, dict):
        raise ValueError(f"{path}: not a ROS 2 parameter file (top level must be a mapping)")
    ns = "/" + namespace.strip("/") if namespace.strip("/") else ""
    keys = ["/**", "**", node_name, f"/{node_name}", f"{ns}/{node_name}"]
    out: dict[str, Any] = {}
    for key in dict.fromkeys(keys):
        sec = doc.get(key)
        if sec is None:
            continue
        if not isinstance(sec, dict) or not isinstance(sec.get("ros__parameters", {}), dict):
            raise ValueError(f"{path}: section {key!r} must hold a ros__parameters mapping")
        out.update(_flatten(sec.get("ros__parameters") or {}))
    return out


def parse_sets(items: list[str]) -> dict[str, Any]:
    out = {}
    for item in items:
        if "=" not in item:
            raise typer.BadParameter(f"--set expects key=value, got {item!r}")
        k, v = item.split("=", 1)
        out[k.strip()] = yaml.safe_load(v) if v.strip() else ""
    return out


# parameters every rclpy node declares itself (not in the nodes' PARAMETERS tables)
RCLPY_PARAMETERS: dict[str, tuple] = {"use_sim_time": (False, "follow /clock (adapters.ros.node_clock)", False)}


def to_overrides(values: dict[str, Any], declared: dict[str, tuple]) -> list:
    """rclpy Parameters; an int where the node declares a float is converted (YAML writes 100 for
    100.0), empty lists are left out (a typed array parameter keeps its default), unknown names are
    an error (a typo must not be silently ignored)."""
    from rclpy.parameter import Parameter
    from controller.params import unknown_names
    declared = {**RCLPY_PARAMETERS, **declared}
    msg = unknown_names(list(values), list(declared))
    if msg:
        raise ValueError(msg)
    out = []
    for k, v in values.items():
        default = declared[k][0]
        if isinstance(default, float) and isinstance(v, int) and not isinstance(v, bool):
            v = float(v)
        if isinstance(v, list):
            if not v:
                continue
            if default == Parameter.Type.DOUBLE_ARRAY or \
                    (isinstance(default, list) and default and isinstance(default[0], float)):
                v = [float(x) for x in v]
        out.append(Parameter(k, value=v))
    return out


def _values(params: Optional[Path], name: str, namespace: str, sets: list[str], ros: RosArgs) -> dict[str, Any]:
    """YAML section (chosen by the effective name and namespace) < --set; names given with
    ``--ros-args -p`` are left to rcl (rclpy lets constructor overrides win over the command line)."""
    values = load_node_params(params, ros.name or name, ros.namespace if ros.namespace is not None else namespace)
    values.update(parse_sets(sets))
    for k in ros.params:
        values.pop(k, None)
    return values


def _controller_factory(params: Optional[Path], name: str, namespace: str, sets: list[str], autostart: bool,
                        ros: RosArgs | None = None):
    from adapters.ros import controller_node as cn
    values = _values(params, name, namespace, sets, ros or RosArgs())
    if autostart:
        values["ros.autostart"] = True
    overrides = to_overrides(values, cn.PARAMETERS)
    return lambda ctx: cn.ControllerNode(name, context=ctx, namespace=namespace, parameter_overrides=overrides)


def _sim_factory(params: Optional[Path], name: str, namespace: str, sets: list[str], ros: RosArgs | None = None):
    from adapters.ros import sim_robot_node as sn
    values = _values(params, name, namespace, sets, ros or RosArgs())
    overrides = to_overrides(values, sn.PARAMETERS)
    return lambda ctx: sn.SimRobotNode(name, context=ctx, namespace=namespace, parameter_overrides=overrides)


def _ros_args(ctx: typer.Context) -> RosArgs:
    try:
        return RosArgs.parse(ctx.args)
    except ValueError as e:
        _fail(e)


def _run(factories: list, domain_id: Optional[int], args: list[str] | None = None) -> None:
    """run_nodes; a node that cannot configure ends the process with one line and exit status 2
    (bad parameters) or 1 (anything else, e.g. an unreadable registry)."""
    try:
        run_nodes(factories, domain_id=domain_id, args=args)
    except NodeFailed as e:
        _fail(e, e.code)


PARAMS_OPT = typer.Option(None, "--params", help="ROS 2 parameter YAML (e.g. launch/driftgate.yaml)")
NS_OPT = typer.Option("", help="node namespace (relative topics move with it); or --ros-args -r __ns:=/NS")
ROS_ARGS = {"allow_extra_args": True, "ignore_unknown_options": True}   # --ros-args ... goes to rclpy
SET_OPT = typer.Option([], "--set", help="override one parameter: key=value (YAML value); repeatable")


@app.command(context_settings=ROS_ARGS)
def controller(ctx: typer.Context, params: Optional[Path] = PARAMS_OPT,
               name: str = typer.Option(CONTROLLER, help="node name (selects the YAML section)"),
               namespace: str = NS_OPT,
               set_: list[str] = SET_OPT,
               autostart: bool = typer.Option(True, "--autostart/--no-autostart",
                                              help="configure + activate (no lifecycle manager here)"),
               domain_id: Optional[int] = typer.Option(None, help="ROS_DOMAIN_ID (default: environment)")) -> None:
    """Run the driftgate controller node until SIGINT/SIGTERM (then it publishes its safe command).
    ROS arguments go after --ros-args."""
    ros = _ros_args(ctx)
    try:
        factory = _controller_factory(params, name, namespace, set_, autostart, ros)
    except (ValueError, OSError, yaml.YAMLError) as e:
        _fail(e)
    _run([factory], domain_id, ros.argv or None)


@app.command("sim-robot", context_settings=ROS_ARGS)
def sim_robot(ctx: typer.Context, params: Optional[Path] = PARAMS_OPT,
              name: str = typer.Option(SIM_ROBOT, help="node name (selects the YAML section)"),
              namespace: str = NS_OPT,
              set_: list[str] = SET_OPT,
              domain_id: Optional[int] = typer.Option(None, help="ROS_DOMAIN_ID (default: environment)")) -> None:
    """Run the simulated robot node until SIGINT/SIGTERM. ROS arguments go after --ros-args."""
    ros = _ros_args(ctx)
    try:
        factory = _sim_factory(params, name, namespace, set_, ros)
    except (ValueError, OSError, yaml.YAMLError) as e:
        _fail(e)
    _run([factory], domain_id, ros.argv or None)


@app.command(context_settings=ROS_ARGS)
def demo(ctx: typer.Context,
         params: Path = typer.Option(Path("launch/demo.yaml"), "--params", help="parameter YAML with both nodes"),
         namespace: str = NS_OPT,
         set_: list[str] = SET_OPT,
         domain_id: Optional[int] = typer.Option(None, help="ROS_DOMAIN_ID (default: environment)")) -> None:
    """Simulated robot + controller in one process (what launch/demo.launch.py starts), in one
    namespace. ROS arguments go after --ros-args (they apply to both nodes)."""
    ros = _ros_args(ctx)
    try:       # the robot's profile gives champion, suite, calibration, rate, guard bounds (adapters/demo.py)
        from adapters.demo_profile import node_values
        sim_p, ctl_p = node_values(parse_sets(set_).get("robot"), load_node_params(params, SIM_ROBOT, namespace),
                                   load_node_params(params, CONTROLLER, namespace))
        sim = _sim_factory(params, SIM_ROBOT, namespace, [f"{k}={json.dumps(v)}" for k, v in sim_p.items()], ros)
        ctl = _controller_factory(params, CONTROLLER, namespace,
                                  [f"{k}={json.dumps(v)}" for k, v in ctl_p.items()] + list(set_), True, ros)
    except (ValueError, OSError, yaml.YAMLError) as e:
        _fail(e)
    _run([sim, ctl], domain_id, ros.argv or None)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
