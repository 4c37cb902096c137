"""A floating-base robot over real DDS: the simulated robot node publishes the IMU (sensor_msgs/Imu)
and odometry (nav_msgs/Odometry) its profile lists, the controller node subscribes to them, builds
the observation from joint states + base sensors and drives the robot; when a base sensor goes
silent it holds the safe command and says so on /diagnostics."""
import os
import warnings

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy", reason="ROS 2 (rclpy) is not installed")
from waiting import wait_for  # noqa: E402
from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from nav_msgs.msg import Odometry  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from sensor_msgs.msg import Imu  # noqa: E402
from std_msgs.msg import Float64MultiArray  # noqa: E402

from adapters.ros import controller_node as cn  # noqa: E402
from adapters.ros import sim_robot_node as sn  # noqa: E402
from sim.profile import find_profile  # noqa: E402

warnings.filterwarnings("ignore", message=".*DISPLAY.*")
pytestmark = pytest.mark.ros
ANT = str(find_profile("ant"))
NS = f"/dgfb{os.getpid()}"


def P(**kw):
    return [Parameter(k.replace("__", "."), value=v) for k, v in kw.items()]


@pytest.fixture(scope="module")
def champion(tmp_path_factory):
    """An SR-GHN for the ant (one generation: what it does does not matter here, that it runs does)."""
    from sim.champion import train_nominal
    from sim.genome import save_genome
    genome = train_nominal(ANT, generations=1, seed=0, horizon=20)
    return save_genome(genome, tmp_path_factory.mktemp("ant") / "champion.safetensors")


@pytest.fixture
def session():
    from rclpy.executors import SingleThreadedExecutor
    ctx = rclpy.Context()
    rclpy.init(context=ctx, domain_id=(int(os.environ.get("ROS_DOMAIN_ID", "100")) + 53) % 100 + 100)
    ex = SingleThreadedExecutor(context=ctx)
    nodes = []
    yield ctx, ex, nodes
    ex.shutdown(timeout_sec=5)
    for n in reversed(nodes):
        if hasattr(n, "_teardown"):
            n._teardown()
        n.destroy_node()
    rclpy.try_shutdown(context=ctx)


def start_robot_and_controller(session, probe, robot: str, champion, tmp_path, **params):
    """The controller (its champion bootstrapped, no monitor, no adaptation) and the simulated robot
    on `robot`'s profile, with `probe`, on one executor spinning in a thread; the controller active."""
    import threading
    ctx, ex, nodes = session
    ctl = cn.ControllerNode(namespace=NS, context=ctx, parameter_overrides=P(
        robot=robot, orchestrator__registry_path=str(tmp_path / "registry"),
        orchestrator__bootstrap_champion=str(champion), monitor__config="none", adapt__enabled=False,
        runtime__stale_timeout_s=0.5, ros__joint_states_topic="joint_states", ros__commands_topic="commands",
        **params))
    sim = sn.SimRobotNode(namespace=NS, context=ctx, parameter_overrides=P(
        robot=robot, seed=1, joint_states_topic="joint_states", commands_topic="commands"))
    for n in (probe, ctl, sim):
        nodes.append(n)
        ex.add_node(n)
    assert ctl.trigger_configure() == cn.TransitionCallbackReturn.SUCCESS
    assert ctl.trigger_activate() == cn.TransitionCallbackReturn.SUCCESS
    threading.Thread(target=ex.spin, daemon=True).start()
    return ctl, sim


def test_the_controller_drives_a_floating_base_from_imu_and_odometry(session, champion, tmp_path):
    ctx, _, _ = session
    probe = rclpy.create_node("probe", namespace=NS, context=ctx)
    imus, odoms, diags, commands = [], [], [], []
    probe.create_subscription(Imu, f"{NS}/imu", imus.append, 10)
    probe.create_subscription(Odometry, f"{NS}/odom", odoms.append, 10)
    probe.create_subscription(DiagnosticArray, "/diagnostics", diags.append, 10)
    probe.create_subscription(Float64MultiArray, f"{NS}/commands", commands.append, 10)
    ctl, sim = start_robot_and_controller(session, probe, ANT, champion, tmp_path, ros__diagnostics_rate_hz=4.0)

    # 1. the base sensors arrive and the controller acts on them: its commands reach the robot
    wait_for(lambda: ctl.runtime.ticks["ok"] >= 50 and sim.counters["commands"] >= 50, 60,
             f"50 ok ticks ({ctl.runtime.ticks if ctl.runtime else None})")
    assert imus and odoms and odoms[-1].child_frame_id == "torso"
    q = imus[-1].orientation
    assert abs(q.w ** 2 + q.x ** 2 + q.y ** 2 + q.z ** 2 - 1.0) < 1e-6
    assert ctl.runtime.base_refused == 0
    assert np.abs(np.asarray(commands[-1].data)).max() > 0       # the champion's action, not the safe zeros

    # 2. odometry goes silent: the next ticks hold the safe command and /diagnostics says why
    silent = sim._base_pubs.pop("odometry")   # unpublished, not destroyed: destroying a publisher while
    assert silent is not None           # the executor spins in another thread races its wait set
    wait_for(lambda: ctl.runtime.ticks["base_stale"] >= 10, 20, "base_stale ticks")
    wait_for(lambda: commands and np.allclose(commands[-1].data, ctl.runtime.safe_command), 20, "the safe command")

    def says_base_stale():
        return any(st.level == b"\x02" and "base sensors (imu, odometry)" in st.message
                   for arr in list(diags) for st in arr.status)
    wait_for(says_base_stale, 20, "ERROR on /diagnostics naming the base sensors")
    assert ctl.trigger_deactivate() == cn.TransitionCallbackReturn.SUCCESS


def test_the_controller_tracks_the_reachers_target_from_the_task_topic(session, tmp_path):
    """The reacher's circling target (observe.extra) goes over DDS on the profile's task topic; the
    controller tracks it with the shipped champion (the finger reaches the target), and holds the safe
    command when the topic goes silent."""
    from std_msgs.msg import Float64
    from sim.profile import load_profile
    ctx, _, _ = session
    reacher = str(find_profile("reacher"))
    champion = load_profile(reacher).asset_path("champion")
    probe = rclpy.create_node("probe", namespace=NS, context=ctx)
    tasks, rewards, commands = [], [], []
    probe.create_subscription(Float64MultiArray, f"{NS}/task", tasks.append, 10)
    probe.create_subscription(Float64, f"{NS}/driftgate_sim_robot/reward", lambda m: rewards.append(m.data), 100)
    probe.create_subscription(Float64MultiArray, f"{NS}/commands", commands.append, 10)
    ctl, sim = start_robot_and_controller(session, probe, reacher, champion, tmp_path)

    wait_for(lambda: ctl.runtime.ticks["ok"] >= 250, 90, f"250 ok ticks ({ctl.runtime.ticks if ctl.runtime else None})")
    assert tasks and len(tasks[-1].data) == 2 and ctl.runtime.base_refused == 0
    wait_for(lambda: sum(r > 0.5 for r in rewards) >= 50, 60, "the finger on the target for 50 ticks")

    silent = sim._base_pubs.pop("task")   # unpublished, not destroyed: destroying a publisher while
    assert silent is not None           # the executor spins in another thread races its wait set
    wait_for(lambda: ctl.runtime.ticks["base_stale"] >= 10, 20, "base_stale ticks")
    wait_for(lambda: commands and np.allclose(commands[-1].data, ctl.runtime.safe_command), 20, "the safe command")
    assert ctl.trigger_deactivate() == cn.TransitionCallbackReturn.SUCCESS
