"""Recording to rosbag2 MCAP: the offline writer, the simulated-bag generator and the rclpy recorder.
Every bag is opened with both rosbags (AnyReader) and the mcap readers (mcap_ros2 + mcap)."""
import json
import os
import threading
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import yaml
from mcap.reader import make_reader
from mcap_ros2.reader import read_ros2_messages
from rosbags.highlevel import AnyReader

from adapters.recording import (DEFAULT_TOPICS, BagWriter, RecordingError, simulate_bag, typestore)

T0 = 1_700_000_000_000_000_000


def rosbags_read(path):
    out = []
    with AnyReader([Path(path)], default_typestore=typestore()) as r:
        for c, t, raw in r.messages():
            out.append((c.topic, c.msgtype, t, r.deserialize(raw, c.msgtype)))
    return out


def mcap_read(bag):
    files = list(Path(bag).glob("*.mcap"))
    assert len(files) == 1
    return [(m.channel.topic, m.schema.name, m.log_time_ns, m.ros_msg) for m in read_ros2_messages(str(files[0]))]


def no_leftovers(parent):
    return [p.name for p in Path(parent).iterdir() if ".partial-" in p.name]


def test_offline_writer_bag_opens_with_rosbags_and_mcap(tmp_path):
    bag = tmp_path / "bag"
    with BagWriter(bag, plant="cartpole", joint_names=["slider", "hinge_1"], control_dt=0.01,
                   custom_data={"note": {"k": 1}}) as w:
        w.drift_active(T0, None)
        for k in range(50):
            t = T0 + k * 10_000_000
            w.joint_state(t, ["slider", "hinge_1"], [0.1 * k, -0.01 * k], [1.0, 2.0])
            w.command(t + 1_000_000, [0.5 - 0.01 * k])
            w.reward(t + 10_000_000, 0.9)
        w.event(T0 + 5, {"event": "transition", "from": "watching", "to": "adapting"})
        w.drift_active(T0 + 200_000_000, {"actuator_gain": {"slide": -1.0}})
        w.diagnostics(T0, [{"name": "x: control", "level": 1, "message": "warn", "values": {"a": 1}}])
    assert bag.is_dir() and sorted(p.name for p in bag.iterdir()) == ["bag.mcap", "metadata.yaml"]
    assert no_leftovers(tmp_path) == []
    meta = yaml.safe_load((bag / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
    assert meta["storage_identifier"] == "mcap" and meta["version"] == 9
    assert meta["relative_file_paths"] == ["bag.mcap"] and meta["message_count"] == 154
    assert meta["custom_data"]["driftgate.plant"] == "cartpole"
    assert json.loads(meta["custom_data"]["driftgate.joint_names"]) == ["slider", "hinge_1"]
    assert json.loads(meta["custom_data"]["driftgate.topics"])["commands"] == DEFAULT_TOPICS["commands"]
    types = {t["topic_metadata"]["name"]: t["topic_metadata"]["type"] for t in meta["topics_with_message_count"]}
    assert types == {"/driftgate_sim_robot/drift_active": "std_msgs/msg/String",
                     "/joint_states": "sensor_msgs/msg/JointState",
                     "/forward_effort_controller/commands": "std_msgs/msg/Float64MultiArray",
                     "/driftgate_sim_robot/reward": "std_msgs/msg/Float64",
                     "/driftgate_controller/events": "std_msgs/msg/String",
                     "/diagnostics": "diagnostic_msgs/msg/DiagnosticArray"}

    a = rosbags_read(bag)
    b = mcap_read(bag)
    assert len(a) == len(b) == 154
    assert Counter(x[0] for x in a) == Counter(x[0] for x in b)
    js = [m for topic, _, _, m in a if topic == "/joint_states"]
    assert js[3].name == ["slider", "hinge_1"] and np.allclose(js[3].position, [0.3, -0.03])
    assert js[3].header.stamp.sec == T0 // 10**9 and js[3].header.stamp.nanosec == 30_000_000
    js_m = [m for topic, _, _, m in b if topic == "/joint_states"]
    assert list(js_m[3].position) == pytest.approx([0.3, -0.03]) and list(js_m[3].name) == ["slider", "hinge_1"]
    cmds = [list(m.data) for topic, _, _, m in b if topic == "/forward_effort_controller/commands"]
    assert cmds[2] == pytest.approx([0.48])
    ev = [json.loads(m.data) for topic, _, _, m in b if topic == "/driftgate_controller/events"]
    assert ev == [{"event": "transition", "from": "watching", "to": "adapting"}]
    drift = [json.loads(m.data) for topic, _, _, m in a if topic.endswith("drift_active")]
    assert drift[0]["drift"] == {} and drift[1]["drift"] == {"actuator_gain": {"slide": -1.0}}
    diag = [m for topic, _, _, m in b if topic == "/diagnostics"][0]
    assert diag.status[0].level in (1, b"\x01") and diag.status[0].values[0].key == "a"
    # zstd-compressed chunks, ros2 profile, ROS 2 .msg schemas, the rosbag2 metadata record
    with open(bag / "bag.mcap", "rb") as f:
        reader = make_reader(f)
        summary = reader.get_summary()
        assert reader.get_header().profile == "ros2"
        assert {ci.compression for ci in summary.chunk_indexes} == {"zstd"}
        assert {s.encoding for s in summary.schemas.values()} == {"ros2msg"}
        assert "rosbag2" in [m.name for m in reader.iter_metadata()]


def test_writer_is_atomic(tmp_path):
    bag = tmp_path / "bag"
    with pytest.raises(RuntimeError, match="boom"):
        with BagWriter(bag) as w:
            w.reward(T0, 1.0)
            raise RuntimeError("boom")
    assert not bag.exists() and no_leftovers(tmp_path) == []
    w = BagWriter(bag)
    w.reward(T0, 1.0)
    assert not bag.exists()                      # nothing visible until close
    w.abort()
    assert not bag.exists() and no_leftovers(tmp_path) == []
    with BagWriter(bag) as w:
        w.reward(T0, 1.0)
    with pytest.raises(RecordingError, match="exists already"):
        BagWriter(bag)
    with BagWriter(bag, overwrite=True) as w:   # replace explicitly
        w.reward(T0, 2.0)
        w.reward(T0 + 1, 3.0)
    assert [m.data for *_, m in rosbags_read(bag)] == [2.0, 3.0]
    with pytest.raises(RecordingError, match="unknown message type"):
        with BagWriter(tmp_path / "b2") as w:
            w.add_topic("/x", "no_pkg/msg/Nothing")
    assert not (tmp_path / "b2").exists() and no_leftovers(tmp_path) == []
    w = BagWriter(tmp_path / "b3")
    w.close()
    with pytest.raises(RecordingError, match="closed"):
        w.reward(T0, 1.0)


def test_writer_is_thread_safe(tmp_path):
    bag = tmp_path / "bag"
    w = BagWriter(bag)
    w.add_topic("/a", "std_msgs/msg/Float64")

    def work(i):
        for k in range(300):
            w.reward(T0 + k * 1000 + i, float(i), topic="/a")
            w.event(T0 + k * 1000 + i, {"i": i, "k": k})
    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    w.close()
    msgs = mcap_read(bag)
    assert len(msgs) == 2400 and len(rosbags_read(bag)) == 2400


def test_simulate_bag_records_what_the_nodes_publish(tmp_path):
    bag = simulate_bag(tmp_path / "sim", seconds=3.0, drift={"actuator_gain": {"slide": -1.0}}, drift_at_s=2.0,
                       seed=3)
    msgs = rosbags_read(bag)
    by = Counter(t for t, *_ in msgs)
    assert by["/joint_states"] == by["/forward_effort_controller/commands"] == by["/driftgate_sim_robot/reward"] == 300
    assert by["/driftgate_sim_robot/drift_active"] == 2 and by["/diagnostics"] == 3
    js = [(t, m) for topic, _, t, m in msgs if topic == "/joint_states"]
    assert js[0][0] == T0 and js[1][0] - js[0][0] == 10_000_000
    assert js[10][1].header.stamp.nanosec == 100_000_000           # header stamp = publish time
    # each command follows its joint state (1 ms latency), each reward comes with the next state
    order = [topic for topic, *_ in msgs if topic in ("/joint_states", "/forward_effort_controller/commands")]
    assert order[:6] == ["/joint_states", "/forward_effort_controller/commands"] * 3
    meta = yaml.safe_load((bag / "metadata.yaml").read_text())["rosbag2_bagfile_information"]["custom_data"]
    assert meta["driftgate.drift_at_s"] == "2.0" and json.loads(meta["driftgate.drift"]) == \
        {"actuator_gain": {"slide": -1.0}}
    assert len(mcap_read(bag)) == len(msgs)
    with pytest.raises(ValueError):
        simulate_bag(tmp_path / "bad", seconds=1.0, drift={"mass_scale": {"no_such_body": 2.0}})
    assert not (tmp_path / "bad").exists() and no_leftovers(tmp_path) == []


# ---------------------------------------------------------------------- the rclpy recorder

@pytest.mark.ros
def test_bag_recorder_on_a_live_node(tmp_path):
    rclpy = pytest.importorskip("rclpy", reason="ROS 2 (rclpy) is not installed")
    from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import JointState
    from std_msgs.msg import Float64, Float64MultiArray, String

    from adapters.bag_recorder import BagRecorder

    ns = f"/rec{os.getpid()}"
    topics = {"joint_states": f"{ns}/joint_states", "commands": f"{ns}/commands", "reward": f"{ns}/reward",
              "events": f"{ns}/events", "drift_active": f"{ns}/drift_active", "diagnostics": f"{ns}/diagnostics"}
    ctx = rclpy.Context()
    rclpy.init(context=ctx, domain_id=(int(os.environ.get("ROS_DOMAIN_ID", "100")) + 41) % 100 + 100)
    executor = SingleThreadedExecutor(context=ctx)
    pub_node = rclpy.create_node("pub", context=ctx)
    rec_node = rclpy.create_node("recorder", context=ctx)
    executor.add_node(pub_node)
    executor.add_node(rec_node)
    spin = threading.Thread(target=executor.spin, daemon=True)
    spin.start()
    try:
        reliable = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)
        latched = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE,
                             durability=DurabilityPolicy.TRANSIENT_LOCAL)
        pj = pub_node.create_publisher(JointState, topics["joint_states"], reliable)
        pc = pub_node.create_publisher(Float64MultiArray, topics["commands"], reliable)
        pr = pub_node.create_publisher(Float64, topics["reward"], reliable)
        pe = pub_node.create_publisher(String, topics["events"], latched)
        pd = pub_node.create_publisher(DiagnosticArray, topics["diagnostics"], reliable)
        pe.publish(String(data=json.dumps({"event": "lifecycle", "state": "active"})))   # before the recorder
        bag = tmp_path / "live"
        rec = BagRecorder(rec_node, bag, topics=topics, plant="cartpole", joint_names=["slider", "hinge_1"],
                          control_dt=0.01)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not (pj.get_subscription_count() and pc.get_subscription_count()
                                                    and pr.get_subscription_count() and pd.get_subscription_count()):
            time.sleep(0.05)
        for k in range(40):
            m = JointState(name=["slider", "hinge_1"], position=[0.01 * k, 0.0], velocity=[0.0, 0.1])
            m.header.stamp.sec, m.header.stamp.nanosec = 100 + k // 100, (k % 100) * 10_000_000
            pj.publish(m)
            pc.publish(Float64MultiArray(data=[0.1 * k]))
            pr.publish(Float64(data=1.0 - 0.01 * k))
            time.sleep(0.002)
        st = DiagnosticStatus(level=DiagnosticStatus.WARN, name="n: control", message="m")
        st.values = [KeyValue(key="k", value="v")]
        pd.publish(DiagnosticArray(status=[st]))
        pe.publish(String(data=json.dumps({"event": "transition", "to": "adapting"})))
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and (rec.counts.get(topics["joint_states"], 0) < 40
                                                or rec.counts.get(topics["events"], 0) < 2
                                                or rec.counts.get(topics["diagnostics"], 0) < 1):
            time.sleep(0.05)
        path = rec.close()
        assert rec.errors == 0
        rec.close()                          # idempotent
    finally:
        executor.shutdown()
        pub_node.destroy_node()
        rec_node.destroy_node()
        rclpy.try_shutdown(context=ctx)
    assert path == bag and no_leftovers(tmp_path) == []
    a, b = rosbags_read(bag), mcap_read(bag)
    count = Counter(t for t, *_ in a)
    assert count[topics["joint_states"]] == count[topics["commands"]] == count[topics["reward"]] == 40
    assert count == Counter(t for t, *_ in b)
    js = [m for topic, _, _, m in a if topic == topics["joint_states"]]
    assert [round(float(m.position[0]), 6) for m in js] == [round(0.01 * k, 6) for k in range(40)]
    assert js[5].header.stamp.sec == 100 and js[5].header.stamp.nanosec == 50_000_000
    events = [json.loads(m.data)["event"] for topic, _, _, m in b if topic == topics["events"]]
    assert events == ["lifecycle", "transition"]      # the latched one published before recording too
    times = [t for *_, t, _ in a]
    assert times == sorted(times) and all(t > 1_600_000_000 * 10**9 for t in times)   # receive stamps
    diag = [m for topic, _, _, m in a if topic == topics["diagnostics"]][0]
    assert diag.status[0].name == "n: control" and diag.status[0].values[0].value == "v"
