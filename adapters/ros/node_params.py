"""Reading a declared ROS parameter the same way in every driftgate node."""
from __future__ import annotations

from typing import Any

from rclpy.exceptions import ParameterUninitializedException


def param_value(node: Any, name: str) -> Any:
    """The parameter's value; an unset or empty parameter reads as ``[]`` (the nodes' "not given")."""
    try:
        v = node.get_parameter(name).value
    except ParameterUninitializedException:
        return []
    return [] if v is None else v
