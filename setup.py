"""driftgate: pip package and ROS 2 ament_python package from one tree.

`pip install -e .[ros,dev] -c constraints.txt` in a plain venv; `colcon build` in a ROS 2 workspace
(where rclpy and the message packages come from the workspace, so the `ros` extra is not needed).
"""
import os
from glob import glob

from setuptools import find_packages, setup
from setuptools.command.build_py import build_py


PACKAGE = "driftgate"

# Ranges only: exact versions live in constraints.txt (the one place pins are kept).
INSTALL_REQUIRES = [
    "numpy>=1.26",
    "torch==2.13.0",  # CPU build; an unpinned torch pulls a multi-GB CUDA build
    "mujoco==3.17.0",  # 4.0 breaks dm-control 1.0.50
    "dm-control==1.0.50",
    "gymnasium[mujoco,box2d]>=1.0",
    "river>=0.26",
    "cma>=4.0",
    "safetensors>=0.4",
    "ray>=2.40",
    "typer>=0.12",
    "rich>=13",
    "matplotlib>=3.8",
    "pyyaml>=6",
    "scipy>=1.11",
    "mcap>=1.2",
    "mcap-ros2-support>=0.5",
    "rosbags>=0.10",
    "pydantic>=2.6,<3",  # the configuration files' models and the robot profile schema
]

# ROS 2 (kilted) from PyPI wheels: a real DDS node in a plain venv. Leave this extra out inside
# RoboStack or a sourced ROS 2 install, where rclpy and the messages already exist.
ROS_REQUIRES = [
    "ros-rclpy[fastrtps]",
    "ros-std-msgs",
    "ros-sensor-msgs",
    "ros-nav-msgs",          # nav_msgs/Odometry: a floating base's pose and twist
    "ros-diagnostic-msgs",
    "ros-std-srvs",
    "ros-lifecycle-msgs",
    "ros-rcl-interfaces",
    "ros-ament-index-python",
]

DEV_REQUIRES = ["pytest>=8", "hypothesis>=6"]

# launch/*.yaml (the shipped configuration) also travels as package data of `controller`
# (controller/assets/launch/), so a wheel finds it through importlib.resources; a colcon build installs it to
# share/driftgate/launch as well (data_files). controller/shipped.py resolves both. launch/ stays the one
# copy in the source tree.
SHIPPED_CONFIG = sorted(glob("launch/*.yaml"))


class BuildPyWithConfig(build_py):
    """build_py that also copies launch/*.yaml into the built `controller` package (controller/assets/launch)."""

    def run(self):
        super().run()
        if getattr(self, "editable_mode", False):   # an editable install reads launch/ from the checkout
            return
        dest = os.path.join(self.build_lib, "controller", "assets", "launch")
        self.mkpath(dest)
        for src in SHIPPED_CONFIG:
            self.copy_file(src, os.path.join(dest, os.path.basename(src)))

    def get_outputs(self, include_bytecode=True):
        return super().get_outputs(include_bytecode) + [
            os.path.join(self.build_lib, "controller", "assets", "launch", os.path.basename(s)) for s in SHIPPED_CONFIG]


setup(
    name=PACKAGE,
    version="0.1.0",
    description="Keeps robot controllers working when the robot drifts: detect, adapt in simulation (SR-GHN), gate, swap.",
    packages=find_packages(include=["controller", "controller.*", "adapters", "adapters.*",
                                    "sim", "sim.*", "safety", "safety.*"]),
    package_data={"sim": ["assets/champions/*.safetensors"]},
    data_files=[
        ("share/ament_index/resource_index/packages", ["resource/" + PACKAGE]),
        ("share/" + PACKAGE, ["package.xml"]),
        ("share/" + PACKAGE + "/launch", glob("launch/*.py") + SHIPPED_CONFIG),
        ("share/" + PACKAGE + "/champions", glob("sim/assets/champions/*.safetensors")),
        ("share/" + PACKAGE + "/launch/robots", glob("launch/robots/*.yaml")),
        ("share/" + PACKAGE + "/launch/robots/suites", glob("launch/robots/suites/*.yaml")),
        ("share/" + PACKAGE + "/launch/robots/calibration", glob("launch/robots/calibration/*.yaml")
         + glob("launch/robots/calibration/*.json")),
        ("share/" + PACKAGE + "/launch/robots/demo", glob("launch/robots/demo/*.yaml")),
    ],
    cmdclass={"build_py": BuildPyWithConfig},
    python_requires=">=3.10",
    install_requires=INSTALL_REQUIRES,
    extras_require={"ros": ROS_REQUIRES, "dev": DEV_REQUIRES},
    zip_safe=True,
    maintainer="driftgate developers",
    maintainer_email="dev@driftgate.invalid",
    license="Apache-2.0",
    entry_points={"console_scripts": [
        "driftgate = adapters.cli:main",
        # the node executables `ros2 launch` / `ros2 run driftgate ...` look for
        "driftgate_controller = adapters.ros.controller_node:main",
        "driftgate_sim_robot = adapters.ros.sim_robot_node:main",
    ]},
)
