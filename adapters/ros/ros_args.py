"""The ROS command-line arguments `driftgate node ...` passes on to rclpy (``--ros-args ...``).

rcl applies them itself (remaps, ``__ns``, ``-p``, ``--params-file``, log levels); this module only
reads what the launcher must know before the node exists: the node's effective name and namespace
(to pick the parameter file's section, as ``ros2 run`` with a params file would) and the parameters
set with ``-p`` (which must win over the launcher's own ``--params`` / ``--set`` overrides, because
rclpy lets constructor overrides win over the command line).

    >>> a = RosArgs.parse(["--ros-args", "-r", "__ns:=/robot_a", "-p", "mode:=shadow", "-r", "x:=y"])
    >>> a.namespace, a.name, sorted(a.params)
    ('/robot_a', None, ['mode'])
    >>> RosArgs.parse(["--ros-args", "-r", "driftgate_controller:__node:=left"]).name
    'left'
"""
from __future__ import annotations

from dataclasses import dataclass, field

_REMAP = ("-r", "--remap")
_PARAM = ("-p", "--param")
_WITH_VALUE = _REMAP + _PARAM + ("--params-file", "--log-level", "--log-config-file", "-e", "--enclave")


@dataclass
class RosArgs:
    argv: list[str] = field(default_factory=list)     # what rclpy.init gets (after the program name)
    namespace: str | None = None                       # from a ``__ns:=`` remap
    name: str | None = None                            # from a ``__node:=`` / ``__name:=`` remap
    params: dict[str, str] = field(default_factory=dict)   # ``-p name:=value`` (raw text)

    @classmethod
    def parse(cls, args: list[str]) -> "RosArgs":
        """`args`: the extra command-line words; they must start with ``--ros-args`` (ValueError)."""
        args = list(args)
        if not args:
            return cls()
        if args[0] != "--ros-args":
            raise ValueError(f"unexpected argument(s) {args}; ROS arguments go after --ros-args")
        out = cls(argv=args)
        i, in_ros = 1, True
        while i < len(args):
            tok = args[i]
            if tok == "--ros-args":
                in_ros = True
            elif tok == "--":
                in_ros = False
            elif in_ros and tok in _WITH_VALUE:
                if i + 1 >= len(args):
                    raise ValueError(f"--ros-args: {tok} needs a value")
                value = args[i + 1]
                if tok in _REMAP:
                    out._remap(value)
                elif tok in _PARAM:
                    if ":=" not in value:
                        raise ValueError(f"--ros-args {tok} expects name:=value, got {value!r}")
                    k, v = value.split(":=", 1)
                    out.params[k] = v
                i += 1
            elif not in_ros:
                raise ValueError(f"unexpected argument {tok!r} after --")
            i += 1
        return out

    def _remap(self, rule: str) -> None:
        if ":=" not in rule:
            raise ValueError(f"--ros-args -r expects from:=to, got {rule!r}")
        lhs, rhs = rule.split(":=", 1)
        lhs = lhs.split(":", 1)[-1]       # "node_name:__ns" applies to that node; one node per process here
        if lhs == "__ns":
            self.namespace = rhs
        elif lhs in ("__node", "__name"):
            self.name = rhs
