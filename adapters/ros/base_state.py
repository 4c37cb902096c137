"""A robot's base as ROS messages: sensor_msgs/Imu and nav_msgs/Odometry <-> the observation channels
of a robot profile's ``observe.imu`` / ``observe.odometry`` (`sim.profile.terms`: IMU orientation
w x y z and angular velocity in its own frame; odometry position and linear velocity in the world
frame). The simulated robot publishes them (`adapters.ros.sim_robot_node`), the controller node
feeds them to its observation map (`sim.observation.KinematicObservation.measure`).

Odometry's twist is in ``child_frame_id`` (REP 105); the profile's linear velocity is a world-frame
vector, so the messages name the world frame as both frames and a reader of another robot's
odometry must send it that way too.
"""
from __future__ import annotations

import numpy as np
from nav_msgs.msg import Odometry
from sensor_msgs.msg import Imu

WORLD_FRAME = "world"
MESSAGE = {"imu": Imu, "odom": Odometry}


def imu_values(msg: Imu) -> list[float]:
    o, w = msg.orientation, msg.angular_velocity
    return [o.w, o.x, o.y, o.z, w.x, w.y, w.z]


def odometry_values(msg: Odometry) -> list[float]:
    p, v = msg.pose.pose.position, msg.twist.twist.linear
    return [p.x, p.y, p.z, v.x, v.y, v.z]


VALUES = {"imu": imu_values, "odom": odometry_values}


def imu_message(values, stamp, frame_id: str) -> Imu:
    v = [float(x) for x in np.asarray(values).reshape(-1)]
    msg = Imu()
    msg.header.stamp, msg.header.frame_id = stamp, frame_id
    o, w = msg.orientation, msg.angular_velocity
    o.w, o.x, o.y, o.z = v[0:4]
    w.x, w.y, w.z = v[4:7]
    msg.linear_acceleration_covariance[0] = -1.0     # REP 145: no linear acceleration measured
    return msg


def odometry_message(values, stamp, child_frame_id: str = WORLD_FRAME) -> Odometry:
    v = [float(x) for x in np.asarray(values).reshape(-1)]
    msg = Odometry()
    msg.header.stamp, msg.header.frame_id, msg.child_frame_id = stamp, WORLD_FRAME, child_frame_id
    p, lin = msg.pose.pose.position, msg.twist.twist.linear
    p.x, p.y, p.z = v[0:3]
    lin.x, lin.y, lin.z = v[3:6]
    msg.pose.pose.orientation.w = 1.0
    return msg


def base_columns(obs_names) -> dict[str, np.ndarray]:
    """channel -> its columns in an observation named `obs_names` (channels the robot lacks left out)."""
    out = {ch: np.array([i for i, n in enumerate(obs_names) if str(n).startswith(ch + ".")]) for ch in MESSAGE}
    return {ch: cols for ch, cols in out.items() if cols.size}
