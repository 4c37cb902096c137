"""`driftgate demo`: the whole story on a simulated robot, over real ROS 2 on loopback, in one command.

    driftgate_sim_robot ──/joint_states, ~/reward──► driftgate_controller ──commands──► robot
          ▲  ~/inject_drift (once the drift monitor is armed)      │ ~/events, /diagnostics
          │                                                        ▼
    driftgate_demo: BagRecorder (MCAP) + DecisionRecorder (decisions.jsonl) + this driver

One process, three nodes (`adapters.cli_node.run_nodes`, a private rclpy context, DDS on
localhost, a per-run ROS_DOMAIN_ID). The driver thread watches the controller and:

1. lets the nominal champion drive until the drift monitor is armed (its warm-up,
   ``launch/drift_monitor.yaml``: 60 s of accepted telemetry) and a few seconds more, so that
   "before the drift" has a baseline and the detector statistics have a nominal stretch;
2. injects the drift on the robot (``~/inject_drift``; ``--drift-at-s`` to choose when);
3. lets detection -> post-alarm recording -> sandboxed adaptation -> gate -> shadow -> canary ->
   promotion -> watch run on their own (the controller node does all of it; the demo only watches);
4. stops when the watch period ends, a rollback completes, ``attempts`` adaptation attempts ended
   without a promotion (the champion was held each time), or ``--max-s`` passes;
5. closes the bag and the decisions file and renders the report (`adapters.report.render_report`):
   ``report.json``, ``timeline.png``, ``summary.md``.

The robot resets itself when it falls (``reset_on_fall`` in launch/demo.yaml; counted and reported):
a balance controller cannot bring a fallen pole back up, and a real robot would be caught and set
upright by an operator.

Run directory (default ``runs/demo``): ``registry/`` (a fresh registry bootstrapped with the shipped
champion; sandbox and gate jobs under ``registry/jobs``; the gate's working suite
``registry/gate_suite.yaml``, to which a promotion appends an archive scenario),
``regression_suite.yaml`` (a copy of the suite the run started from; the repository's file is never
written to), ``bag/`` (rosbag2 MCAP), ``decisions.jsonl``, ``report.json``, ``timeline.png``,
``summary.md``, ``demo.json`` (what ran, with which settings, how long). A previous demo run there is
replaced; any other non-empty directory is refused.
"""
from __future__ import annotations

import json
import math
import os
import shutil
import threading
import time
from collections import deque
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

DEFAULT_DRIFTS: dict[str, dict] = {
    "cartpole": {"mass_scale": {"pole_1": 3.0}, "actuator_gain": {"slide": -1.0}},
}
MARKER = ".driftgate-demo"
DEMO_NODE = "driftgate_demo"
SIM_ROBOT = "driftgate_sim_robot"
CONTROLLER = "driftgate_controller"
REPORT_KEYS = ("plant", "drift", "detected_after_s", "time_to_adapt_s", "return_before_drift",
               "return_after_drift_before_adapt", "return_after_adapt", "verdicts", "champion_lineage",
               "rollbacks")


class DemoError(ValueError):
    """Bad demo input (unknown plant, bad drift, missing champion or suite, a directory in the way);
    `code`: the exit status (2 bad input, 1 a runtime failure such as a node that cannot start)."""

    def __init__(self, message: str, code: int = 2) -> None:
        super().__init__(message)
        self.code = code


def _repo_file(rel: str) -> Path:
    """A file shipped with driftgate: from the working directory if it is there (a clone), else the
    installed copy (`controller.shipped`: colcon share, wheel package data or the checkout)."""
    from controller.shipped import resolve
    return resolve(rel)


@dataclass
class DemoOptions:
    """What `run_demo` runs. `controller` / `sim` are extra ROS parameters for the two nodes (on top
    of the parameter file and what the demo sets itself)."""

    plant: str = "cartpole"
    drift: dict | None = None                 # None: DEFAULT_DRIFTS[plant]
    seed: int = 0
    out: Path = Path("runs/demo")
    drift_at_s: float | None = None           # None: `settle_s` after the drift monitor is armed
    max_s: float = 270.0
    params: Path | None = None                # None: launch/demo.yaml
    champion: Path | None = None              # None: sim/assets/champions/<plant>.safetensors
    suite: Path | None = None                 # None: the parameter file's gate_suite
    controller: dict = field(default_factory=dict)
    sim: dict = field(default_factory=dict)
    settle_s: float = 10.0                    # armed, nominal, before the default injection
    arm_timeout_s: float = 150.0              # inject anyway (and say so) if never armed by then
    attempts: int = 2                         # stop after this many adaptation attempts without promotion
    tail_s: float = 2.0                       # keep recording this long after the story ended
    domain_id: int | None = None              # None: ROS_DOMAIN_ID, else a per-process one
    namespace: str = ""                       # the three nodes' namespace (their relative topics move with it)

    def to_dict(self) -> dict:
        d = asdict(self)
        for k in ("out", "params", "champion", "suite"):
            d[k] = None if d[k] is None else str(d[k])
        return d


@dataclass
class DemoResult:
    out: Path
    report: dict
    stop_reason: str
    wall_s: float
    timeline: dict


# ---------------------------------------------------------------------- input checks

def prepare(opts: DemoOptions) -> dict:
    """Validate everything before any file is written; returns the resolved settings.
    Raises DemoError with a one-line reason."""
    import yaml

    from adapters.cli_node import load_node_params
    from sim.drift_spec import DriftSpec
    from sim.plants import PLANTS, make_plant

    if opts.plant not in PLANTS:
        raise DemoError(f"unknown plant {opts.plant!r}; known: {sorted(PLANTS)}")
    drift = opts.drift if opts.drift is not None else DEFAULT_DRIFTS.get(opts.plant)
    if drift is None:
        raise DemoError(f"no default drift for plant {opts.plant!r}; give one with --drift JSON")
    try:
        spec = DriftSpec.parse(drift)
        make_plant(opts.plant).apply_drift(spec)          # names checked against the model
    except (ValueError, TypeError, KeyError) as e:
        raise DemoError(f"--drift: {e}") from None
    if spec.is_nominal:
        raise DemoError("--drift: the drift is empty (nothing would change on the robot)")
    for name in ("max_s", "settle_s", "tail_s"):
        v = getattr(opts, name)
        if not (isinstance(v, (int, float)) and math.isfinite(v) and v >= 0):
            raise DemoError(f"--{name.replace('_', '-')}: must be a finite number >= 0, got {v!r}")
    if opts.drift_at_s is not None and not (math.isfinite(opts.drift_at_s) and 0 <= opts.drift_at_s < opts.max_s):
        raise DemoError(f"--drift-at-s must be in [0, --max-s), got {opts.drift_at_s}")
    if opts.attempts < 1:
        raise DemoError(f"attempts must be >= 1, got {opts.attempts}")
    params = Path(opts.params) if opts.params is not None else _repo_file("launch/demo.yaml")
    try:
        sim_p = load_node_params(params, SIM_ROBOT, opts.namespace)
        ctl_p = load_node_params(params, CONTROLLER, opts.namespace)
    except (OSError, ValueError, yaml.YAMLError) as e:
        raise DemoError(f"parameter file {params}: {e}") from None
    champion = Path(opts.champion) if opts.champion is not None else \
        _repo_file(f"champions/{opts.plant}.safetensors")
    if not champion.is_file():
        raise DemoError(f"no champion for plant {opts.plant!r} at {champion}; evolve one with "
                        f"`driftgate train-nominal --plant {opts.plant}` or pass --champion FILE")
    try:
        from sim.genome import load_genome
        from sim.plant_task import plant_policy_spec
        g = load_genome(champion)
        if g.policy_spec.obs_dim != plant_policy_spec(opts.plant).obs_dim or \
                g.policy_spec.act_dim != plant_policy_spec(opts.plant).act_dim:
            raise DemoError(f"champion {champion} does not drive plant {opts.plant!r} ({g.policy_spec})")
    except DemoError:
        raise
    except Exception as e:
        raise DemoError(f"champion {champion}: {e}") from None
    suite = Path(opts.suite) if opts.suite is not None else _repo_file(str(ctl_p.get("gate.suite") or
                                                                           "launch/regression_suite.yaml"))
    try:
        from safety.suite import load_suite
        s = load_suite(suite)
    except Exception as e:
        raise DemoError(f"regression suite {suite}: {e}") from None
    if getattr(s, "plant", opts.plant) != opts.plant:
        raise DemoError(f"regression suite {suite} is for plant {s.plant!r}, not {opts.plant!r}; pass --suite FILE")
    return {"drift": spec.as_dict(), "params": params, "champion": champion.resolve(), "suite": suite.resolve(),
            "sim_params": sim_p, "controller_params": ctl_p}


def prepare_out_dir(out: Path) -> None:
    """A fresh run directory: created if missing, a previous demo run (marker file) replaced,
    anything else that is not empty refused."""
    out = Path(out)
    if out.exists():
        if not out.is_dir():
            raise DemoError(f"--out {out} exists and is not a directory")
        if any(out.iterdir()):
            if not (out / MARKER).exists():
                raise DemoError(f"--out {out} is not empty and was not written by `driftgate demo`; "
                                "choose another directory (nothing was changed)")
            shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / MARKER).write_text("written by `driftgate demo`; the next demo run with this --out replaces "
                              "this directory\n")


def ros_environment(domain_id: int | None) -> int:
    """Loopback-only discovery and a per-run domain id (unless the caller chose them)."""
    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    if domain_id is None:
        env = os.environ.get("ROS_DOMAIN_ID", "").strip()
        domain_id = int(env) if env.isdigit() else os.getpid() % 100 + 100
    os.environ["ROS_DOMAIN_ID"] = str(domain_id)
    return domain_id


# ---------------------------------------------------------------------- the driver

class _State:
    """What the driver knows (read by the display)."""

    def __init__(self) -> None:
        self.t0 = time.monotonic()
        self.armed_at: float | None = None
        self.injected_at: float | None = None
        self.injected_wall: float | None = None     # time.time() of the injection (orchestrator events use it)
        self.inject_note = ""
        self.story = "nominal: the champion drives, the drift monitor warms up"
        self.done_at: float | None = None
        self.stop_reason = ""
        self.rewards: deque = deque()       # (t, reward) of the last second
        self.falls = 0
        self.fall_times: deque = deque(maxlen=200)
        self.lock = threading.Lock()

    def now(self) -> float:
        return time.monotonic() - self.t0


def demo_topics(node) -> dict[str, str]:
    """The recorded roles' topics as the nodes use them: relative names resolved in `node`'s
    namespace (``/diagnostics`` stays absolute)."""
    from adapters.recording import DEFAULT_TOPICS
    return {role: t if role == "diagnostics" else node.resolve_topic_name(t.lstrip("/"))
            for role, t in DEFAULT_TOPICS.items()}


def _demo_node(ctx, out: Path, plant: str, config: dict, seed: int, registry: Path, state: _State,
               namespace: str = ""):
    """The recording node: BagRecorder + DecisionRecorder + the drift publisher + live counters."""
    from rclpy.node import Node
    from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
    from std_msgs.msg import Float64, String

    from adapters.decision_recorder import DecisionRecorder
    from adapters.recording import BagRecorder
    from controller.runtime import plant_info

    class DemoNode(Node):
        def __init__(self) -> None:
            super().__init__(DEMO_NODE, context=ctx, namespace=namespace)
            self.state = state
            info = plant_info(plant)
            topics = demo_topics(self)
            self.falls_topic = self.resolve_topic_name(f"{SIM_ROBOT}/falls")
            self.bag = BagRecorder(self, out / "bag", topics=topics, plant=plant, joint_names=info["joint_names"],
                                   control_dt=info["control_dt"], extra={self.falls_topic: "std_msgs/msg/String"},
                                   custom_data={"driftgate.source": "driftgate demo", "driftgate.seed": str(seed)})
            try:
                self.decisions = DecisionRecorder(self, out / "decisions.jsonl", plant=plant, config=config,
                                                  topics=topics, seed=seed, registry_path=registry,
                                                  falls_topic=self.falls_topic)
            except Exception:
                self.bag.abort()
                raise
            reliable = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
            latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                                 durability=DurabilityPolicy.TRANSIENT_LOCAL)
            self._inject = self.create_publisher(String, f"{SIM_ROBOT}/inject_drift", reliable)
            self.create_subscription(Float64, topics["reward"], self._on_reward, reliable)
            self.create_subscription(String, self.falls_topic, self._on_fall, latched)
            self.closed = False
            self.end_extra: Callable[[], dict] = lambda: {}

        def _on_reward(self, msg) -> None:
            st = self.state
            t = st.now()
            with st.lock:
                st.rewards.append((t, float(msg.data)))
                while st.rewards and st.rewards[0][0] < t - 1.0:
                    st.rewards.popleft()

        def _on_fall(self, msg) -> None:
            try:
                n = int(json.loads(msg.data).get("falls"))
            except (ValueError, TypeError, AttributeError):
                return
            st = self.state
            with st.lock:
                if n > st.falls:
                    st.falls = n
                    st.fall_times.append(st.now())

        def inject(self, drift: dict) -> None:
            self._inject.publish(String(data=json.dumps(drift)))

        def _teardown(self) -> None:     # run_nodes calls it before destroy_node
            if self.closed:
                return
            self.closed = True
            try:
                extra = self.end_extra()
            except Exception as e:       # the end record must still be written
                extra = {"end_error": str(e)}
            self.decisions.close(**extra)
            self.bag.close()

    return DemoNode()


def _quiet(node) -> None:
    """Node INFO logs would scroll through the live display; warnings and errors still show."""
    try:
        from rclpy.logging import LoggingSeverity
        node.get_logger().set_level(LoggingSeverity.WARN)
    except Exception:
        pass


def _sandbox_progress(job_dir: str | None) -> dict:
    """The sandbox's last progress lines (sim.sandbox prints JSON lines to job_dir/sandbox.log)."""
    if not job_dir:
        return {}
    try:
        with open(Path(job_dir) / "sandbox.log", "rb") as fh:
            fh.seek(0, os.SEEK_END)
            fh.seek(max(0, fh.tell() - 4096))
            lines = fh.read().decode(errors="replace").splitlines()
    except OSError:
        return {}
    out: dict = {}
    for line in reversed(lines):
        try:
            d = json.loads(line)
        except ValueError:
            continue
        if not isinstance(d, dict) or "stage" not in d:
            continue
        if not out:
            out["stage"] = d["stage"]
        if d["stage"] == "generation" and "gen" not in out:
            out.update(gen=d.get("gen"), best=d.get("best"), target=d.get("target"))
        if out.get("stage") and "gen" in out:
            break
    return out


def snapshot(ctl, st: _State) -> dict:
    """Everything the display shows, read from the controller node (same process) and the driver."""
    now = st.now()
    with st.lock:
        rew = [r for _, r in st.rewards]
        falls = st.falls
        recent_falls = sum(1 for t in st.fall_times if t > now - 10.0)
    snap: dict[str, Any] = {"t": now, "reward": sum(rew) / len(rew) if rew else None, "falls": falls,
                            "falls_10s": recent_falls, "story": st.story, "injected_at": st.injected_at,
                            "armed_at": st.armed_at, "inject_note": st.inject_note}
    orch = getattr(ctl, "orchestrator", None)
    mon = getattr(ctl, "monitor", None)
    if mon is not None:
        try:
            snap["monitor"] = mon.state
            warm = float(mon.config.warmup_s)
            snap["warmup"] = min(1.0, (mon._clock - mon._warm_start) / warm) if warm > 0 else 1.0
            stats = mon.statistics()
            ratios = [(k, stats[k] / stats[f"{k}:threshold"]) for k in stats
                      if k.startswith("ph:") and not k.endswith(":threshold")
                      and stats.get(f"{k}:threshold", 0) and math.isfinite(stats[f"{k}:threshold"])]
            snap["detector_peak"] = max(ratios, key=lambda kv: kv[1]) if ratios else None
            snap["alarms"] = int(mon.counters.get("alarms", 0))
        except Exception:
            pass
    if orch is not None:
        try:
            s = orch.status()
            snap.update(phase=s["phase"], in_phase_s=s["in_phase_s"], champion=s["champion"],
                        candidate=s["candidate"], canary_weight=s["canary_weight"], sandbox=s["sandbox"],
                        counters=s["counters"], shadow=s.get("shadow"), last_error=s.get("last_error"))
            job = getattr(orch, "_job", None)
            snap["job_dir"] = str(job.job_dir) if job is not None and s["phase"] == "adapting" else None
            snap["sandbox_progress"] = _sandbox_progress(snap["job_dir"])
            go = getattr(orch, "_gate_outcome", None)
            if go is not None:
                snap["gate"] = {"verdict": go.verdict, "reasons": list(go.reasons)[:2],
                                "predicted_reward": go.predicted_reward}
            hist = _history(orch)[-6:]
            snap["history"] = [(h.get("time"), h.get("from"), h.get("to"), h.get("reason")) for h in hist]
        except Exception:
            pass
    return snap


def _short(gid: Any) -> str:
    return str(gid)[:10] if gid else "-"


def render(snap: dict, opts: DemoOptions):
    """The live display (a rich renderable)."""
    from rich.panel import Panel
    from rich.table import Table
    t = Table.grid(padding=(0, 2))
    t.add_column(style="bold cyan", justify="right")
    t.add_column()
    t.add_row("time", f"{snap['t']:6.1f} s   (stops by {opts.max_s:g} s)")
    t.add_row("story", snap.get("story", ""))
    phase = snap.get("phase", "-")
    t.add_row("phase", f"[bold]{phase}[/] for {snap.get('in_phase_s', 0.0):.1f} s   champion "
              f"{_short(snap.get('champion'))}   candidate {_short(snap.get('candidate'))}")
    rew = snap.get("reward")
    inj = snap.get("injected_at")
    drift = f"injected at {inj:.1f} s: {json.dumps(snap.get('drift'))}" if inj is not None else "none yet"
    t.add_row("robot", f"reward {'-' if rew is None else f'{rew:.3f}'} /tick (last 1 s)   falls {snap['falls']} "
              f"({snap['falls_10s']} in the last 10 s)   drift {drift}")
    mon = snap.get("monitor", "-")
    if mon == "warmup":
        mon = f"warm-up {100 * snap.get('warmup', 0.0):.0f} %"
    peak = snap.get("detector_peak")
    t.add_row("detector", f"{mon}   alarms {snap.get('alarms', 0)}" +
              (f"   peak {peak[0]} {peak[1]:.2f} x threshold" if peak else ""))
    sp = snap.get("sandbox_progress") or {}
    sb = str(snap.get("sandbox", "-"))
    if sp:
        sb += f"   stage {sp.get('stage')}"
        if sp.get("gen") is not None:
            sb += f"   generation {sp['gen']}  best {sp.get('best') or 0.0:.1f} (target {sp.get('target') or 0.0:.1f})"
    t.add_row("sandbox", sb)
    g = snap.get("gate")
    t.add_row("gate", "-" if not g else f"{g['verdict']}  " + "; ".join(g["reasons"])[:110])
    sh = snap.get("shadow")
    if sh and sh.get("n"):
        t.add_row("shadow", f"n {sh['n']}  divergence {sh.get('divergence_mean') or 0:.3f}  candidate saturated "
                  f"{100 * (sh.get('saturation_challenger') or 0):.0f} %")
    cw = snap.get("canary_weight")
    c = snap.get("counters") or {}
    t.add_row("canary / registry", f"weight {'-' if cw is None else f'{cw:g}'}   promotions {c.get('promotions', 0)}  "
              f"rollbacks {c.get('rollbacks', 0)}  gate pass/fail/hold {c.get('gate_pass', 0)}/"
              f"{c.get('gate_fail', 0)}/{c.get('gate_hold', 0)}  jobs {c.get('jobs', 0)} "
              f"(failed {c.get('job_failures', 0)})")
    for when, frm, to, why in snap.get("history") or []:
        t.add_row("", f"[dim]{frm} -> {to}: {str(why)[:100]}[/]")
    return Panel(t, title=f"driftgate demo: {opts.plant}", border_style="blue")


def _history(orch) -> list[dict]:
    with orch._lock:            # the orchestrator appends under this lock (a deque is not safe to copy while it grows)
        return list(orch.history)


def _story_progress(orch, st: _State, opts: DemoOptions) -> tuple[bool, str]:
    """(done, why) from the orchestrator's transitions since the drift."""
    since = st.injected_wall or 0.0
    hist = [h for h in _history(orch) if (h.get("time") or 0.0) >= since]
    counters = dict(orch.counters)
    trs = [(h.get("from"), h.get("to"), h.get("reason") or "") for h in hist if h.get("event") == "transition"]
    if any(frm == "watch" and to == "watching" for frm, to, _ in trs):
        why = next(r for frm, to, r in reversed(trs) if frm == "watch" and to == "watching")
        return True, f"watch period ended: {why}"
    if counters.get("rollbacks", 0) and orch.phase.value == "watching":
        return True, "rollback completed"
    if counters.get("promotions", 0):
        return False, ""
    ended = sum(1 for frm, to, _ in trs if to == "watching" and frm in ("adapting", "gating", "shadow", "canary"))
    if ended >= opts.attempts:
        return True, f"{ended} adaptation attempt(s) ended without a promotion: the champion was held"
    return False, ""


def _phase_story(phase: str) -> str:
    return {"idle": "no champion", "watching": "the champion drives; the drift monitor watches",
            "adapting": "drift detected: the sandbox identifies the robot and evolves a candidate",
            "gating": "the gate judges the candidate against the champion (regression suite)",
            "shadow": "the candidate computes actions on live states, without authority",
            "canary": "the candidate gets a stepped share of the command",
            "promoted": "promoted", "watch": "watching live performance after the promotion",
            "rollback": "rolled back"}.get(phase, phase)


def run_demo(opts: DemoOptions, *, console=None, live: bool = True,
             on_tick: Callable[[dict], None] | None = None) -> DemoResult:
    """Run the demo (see the module docstring). Raises DemoError for bad input before writing
    anything; a failure after the nodes started still closes the recordings and renders the report."""
    from rich.console import Console

    console = console or Console(stderr=True)
    res = prepare(opts)
    out = Path(opts.out)
    saved_env = {k: os.environ.get(k) for k in ("ROS_DOMAIN_ID", "ROS_AUTOMATIC_DISCOVERY_RANGE")}
    domain_id = ros_environment(opts.domain_id)
    try:
        return _run(opts, res, out, domain_id, console, live, on_tick)
    finally:
        for k, v in saved_env.items():     # a caller's environment is left as it was (tests run several)
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _run(opts: DemoOptions, res: dict, out: Path, domain_id: int, console, live: bool,
         on_tick: Callable[[dict], None] | None) -> DemoResult:
    from adapters.cli_node import NodeFailed, run_nodes, to_overrides
    from adapters.report import render_report
    from adapters.ros import controller_node as cn
    from adapters.ros import sim_robot_node as sn

    prepare_out_dir(out)
    registry = out / "registry"
    suite = out / "regression_suite.yaml"
    shutil.copyfile(res["suite"], suite)

    sim_values = {**res["sim_params"], "robot": opts.plant, "seed": int(opts.seed), **opts.sim}
    ctl_values = {**res["controller_params"], "robot": opts.plant, "orchestrator.registry_path": str(registry),
                  "orchestrator.bootstrap_champion": str(res["champion"]), "gate.suite": str(suite),
                  "orchestrator.job_root": "", "ros.autostart": True, **opts.controller}
    try:
        sim_over = to_overrides(sim_values, sn.PARAMETERS)
        ctl_over = to_overrides(ctl_values, cn.PARAMETERS)
    except ValueError as e:
        shutil.rmtree(out, ignore_errors=True)
        raise DemoError(str(e)) from None
    config = {"controller": ctl_values, "sim_robot": sim_values, "demo": opts.to_dict(),
              "reset_on_fall": bool(sim_values.get("reset_on_fall")), "drift": res["drift"],
              "champion": str(res["champion"]), "ros_domain_id": domain_id}

    st = _State()
    nodes: dict[str, Any] = {}
    stop = threading.Event()
    errors: list[str] = []

    def make_sim(ctx):
        nodes["sim"] = n = sn.SimRobotNode(SIM_ROBOT, context=ctx, namespace=opts.namespace,
                                           parameter_overrides=sim_over)
        _quiet(n)
        return n

    def make_ctl(ctx):
        nodes["ctl"] = n = cn.ControllerNode(CONTROLLER, context=ctx, namespace=opts.namespace,
                                             parameter_overrides=ctl_over)
        _quiet(n)
        return n

    def make_demo(ctx):
        nodes["demo"] = n = _demo_node(ctx, out, opts.plant, config, opts.seed, registry, st, opts.namespace)

        def end_extra() -> dict:
            ctl = nodes.get("ctl")
            sim = nodes.get("sim")
            orch = getattr(ctl, "orchestrator", None)
            mon = getattr(ctl, "monitor", None)
            return {"counters": dict(orch.counters) if orch is not None else None,
                    "monitor": dict(mon.counters) if mon is not None else None,
                    "champion": orch.champion_id if orch is not None else None,
                    "robot": dict(sim.counters) if sim is not None else None, "stop_reason": st.stop_reason}
        n.end_extra = end_extra
        return n

    def driver() -> None:
        try:
            _drive(opts, res["drift"], nodes, st, stop, console if live else None, on_tick)
        except Exception as e:   # never leave the nodes spinning forever
            errors.append(f"{type(e).__name__}: {e}")
            st.stop_reason = st.stop_reason or f"driver error: {e}"
            stop.set()

    th = threading.Thread(target=driver, name="driftgate-demo-driver", daemon=True)
    t_start = time.monotonic()
    th.start()
    try:
        run_nodes([make_sim, make_ctl, make_demo], domain_id=domain_id, stop=stop)
    except NodeFailed as e:          # the controller could not configure: no story to tell
        raise DemoError(str(e), code=e.code) from None
    finally:
        stop.set()
        th.join(timeout=10)
    wall = time.monotonic() - t_start
    if errors:
        console.print(f"[bold red]demo driver failed:[/] {errors[0]}")
    timeline = {"armed_at_s": st.armed_at, "injected_at_s": st.injected_at, "done_at_s": st.done_at,
                "stop_reason": st.stop_reason, "inject_note": st.inject_note}
    extra = {"demo": {"wall_s": round(wall, 3), "out": str(out), "bag": str(out / "bag"),
                      "registry": str(registry), **{k: v for k, v in timeline.items()}}}
    report = render_report(out, extra=extra)
    (out / "demo.json").write_text(json.dumps({"options": opts.to_dict(), "resolved": {
        "drift": res["drift"], "champion": str(res["champion"]), "suite": str(res["suite"]),
        "params": str(res["params"])}, "ros_domain_id": domain_id, "wall_s": wall, **timeline},
        indent=1, default=str) + "\n")
    return DemoResult(out, report, st.stop_reason, wall, timeline)


def _drive(opts: DemoOptions, drift: dict, nodes: dict, st: _State, stop: threading.Event, console,
           on_tick: Callable[[dict], None] | None) -> None:
    """The driver loop: inject the drift when due, follow the story, decide when to stop."""
    from contextlib import nullcontext
    while not stop.is_set() and not all(k in nodes for k in ("sim", "ctl", "demo")):
        if st.now() > 60.0:
            raise RuntimeError("the nodes did not start within 60 s")
        time.sleep(0.05)
    ctl, demo = nodes["ctl"], nodes["demo"]
    ctx = nullcontext()
    live = None
    if console is not None:
        from rich.live import Live
        live = Live(console=console, refresh_per_second=4, transient=False)
        ctx = live
    with ctx:
        while not stop.is_set():
            now = st.now()
            mon = getattr(ctl, "monitor", None)
            orch = getattr(ctl, "orchestrator", None)
            armed = mon is not None and mon.state == "monitoring"
            if st.armed_at is None and armed:
                st.armed_at = now
            if st.injected_at is None:
                due = None
                if opts.drift_at_s is not None:
                    due = opts.drift_at_s
                    if now >= due and not armed and mon is not None and now < opts.arm_timeout_s:
                        st.inject_note = f"held from {due:g} s until the drift monitor is armed"
                        due = None
                elif st.armed_at is not None:
                    due = st.armed_at + opts.settle_s
                elif now >= opts.arm_timeout_s:
                    due = now
                    st.inject_note = "the drift monitor was not armed: drift injected anyway"
                if due is not None and now >= due:
                    demo.inject(drift)
                    st.injected_at, st.injected_wall = now, time.time()
                    st.story = "drift injected: " + json.dumps(drift)
            elif orch is not None and st.done_at is None:
                st.story = _phase_story(orch.phase.value)
                done, why = _story_progress(orch, st, opts)
                if done:
                    st.done_at, st.stop_reason = now, why
                    st.story = f"done: {why}"
            if st.done_at is not None and now >= st.done_at + opts.tail_s:
                break
            if now >= opts.max_s:
                st.stop_reason = st.stop_reason or f"--max-s {opts.max_s:g} s reached"
                break
            if live is not None or on_tick is not None:
                snap = snapshot(ctl, st)
                snap["drift"] = drift
                if live is not None:
                    live.update(render(snap, opts))
                if on_tick is not None:
                    on_tick(snap)
            stop.wait(0.25)
    if not st.stop_reason:
        st.stop_reason = "stopped from outside (SIGINT/SIGTERM)"
    stop.set()


def summary_table(report: dict, result: DemoResult):
    """The short printed summary (a rich Table)."""
    from rich.table import Table

    def f(x, nd=3, unit=""):
        if x is None:
            return "-"
        return f"{x:.{nd}f}{unit}" if isinstance(x, float) else str(x)
    t = Table(title=f"driftgate demo: {report.get('plant')} ({result.wall_s:.0f} s wall)", show_header=False)
    t.add_column(style="bold")
    t.add_column()
    t.add_row("drift", json.dumps(report.get("drift")))
    t.add_row("injected at", f(report.get("drift_injected_at_s"), 1, " s"))
    t.add_row("detected after", f(report.get("detected_after_s"), 2, " s"))
    t.add_row("time to adapt (drift -> promotion)", f(report.get("time_to_adapt_s"), 1, " s"))
    t.add_row("reward before drift", f(report.get("return_before_drift")))
    t.add_row("reward after drift, before adaptation", f(report.get("return_after_drift_before_adapt")))
    t.add_row("reward after adaptation", f(report.get("return_after_adapt")))
    fl = report.get("falls") or {}
    if fl:
        def per(k):
            return "-" if k not in fl else f"{fl[k]['n']} ({f(fl[k]['per_min'], 1)}/min)"
        t.add_row("robot falls (reset): before / after drift / after adaptation",
                  f"{per('before_drift')} / {per('after_drift_before_adapt')} / {per('after_adapt')}")
    ads = report.get("adaptations") or []
    for a in ads:
        t.add_row(f"adaptation {a.get('job')}",
                  f"{'ok' if a.get('ok') else 'failed'}: sim return {f(a.get('return_before'), 1)} -> "
                  f"{f(a.get('return_after'), 1)} (nominal {f(a.get('nominal_return'), 1)}), "
                  f"{a.get('generations')} generations, estimate {json.dumps(a.get('drift_estimate'))}")
    t.add_row("gate verdicts", ", ".join(v["verdict"] for v in report.get("verdicts") or []) or "-")
    for v in (report.get("verdicts") or [])[:3]:
        if v.get("reasons"):
            t.add_row(f"  {v['verdict']}", "; ".join(v["reasons"])[:160])
    t.add_row("promotions / rollbacks", f"{len(report.get('promotions') or [])} / {len(report.get('rollbacks') or [])}")
    t.add_row("champion lineage", " -> ".join(_short(g) for g in report.get("champion_lineage") or []) or "-")
    t.add_row("stopped because", result.stop_reason or "-")
    return t


__all__ = ["DEFAULT_DRIFTS", "DemoError", "DemoOptions", "DemoResult", "REPORT_KEYS", "prepare", "prepare_out_dir",
           "run_demo", "summary_table"]
