"""Reaching Ray from the sandbox: which cluster, a quick reachability check, and a head node started
for one job *outside* the sandbox's limits.

Why this exists: `ray.init()` inside the sandbox child started Ray's own processes (GCS, raylet with
the object store) under the child's address-space limit, and every process that talks to the object
store maps all of it (by default 30 % of RAM) into its address space. Past the limit the mapping
fails and the driver waits on a socket forever: the job ended at the wall-clock kill. So:

- with an address (`--ray-address`, the node's ``ray_address``, or ``RAY_ADDRESS``) only the driver
  lives in the sandbox; the parent checks nothing, the child checks the address answers within
  `CONNECT_TIMEOUT_S` and that `ray.init` returns within `INIT_TIMEOUT_S` (a one-line error
  otherwise, never a silent wait);
- without one, the sandbox's parent starts a head here (`LocalHead`: ``ray start --head --block``
  in a process group of its own, reniced like the sandbox, a small object store), the child connects
  to it, and the parent stops it afterwards (SIGTERM to its group: ``--block`` stops every Ray
  process it started; SIGKILL to whatever is left of that group);
- a Ray driver's memory limit is on its private memory (RLIMIT_DATA, see `sim.sandbox`), since the
  object store is shared memory owned and bounded by Ray (``object_store_memory``).

Only the evaluation crosses to Ray: the task (plant name, identified drift specs, horizon), each
generation's weights and episode seeds, and fitness values back. Nothing here imports rclpy.
"""
from __future__ import annotations

import ctypes
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

CONNECT_TIMEOUT_S = 5.0      # TCP connect to the GCS / Ray Client port
INIT_TIMEOUT_S = 60.0        # ray.init after the port answered (a cluster that accepts but never serves)
HEAD_START_TIMEOUT_S = 120.0
HEAD_OBJECT_STORE_MB = 256   # populations are KB to MB; Ray's minimum is 75 MB


class RayUnavailable(RuntimeError):
    """Ray could not be reached or started; the message is one line naming the address."""


def cluster_address(address: str | None) -> str | None:
    """The cluster a job uses: its own address, else ``RAY_ADDRESS``, else None (start one here)."""
    address = (address or "").strip() or os.environ.get("RAY_ADDRESS", "").strip()
    return address or None


def host_port(address: str) -> tuple[str, int] | None:
    """(host, port) of "host:port" or "ray://host:port"; None for "auto"/"local" (found by Ray itself)."""
    rest = address.split("://", 1)[1] if "://" in address else address
    rest = rest.split("/", 1)[0]
    if rest in ("auto", "local", ""):
        return None
    host, sep, port = rest.rpartition(":")
    if not sep or not port.isdigit():
        raise RayUnavailable(f"ray_address: expected host:port or ray://host:port, got {address!r}")
    return host.strip("[]"), int(port)


def check_reachable(address: str, timeout_s: float = CONNECT_TIMEOUT_S) -> None:
    """Raise `RayUnavailable` unless `address` accepts a TCP connection within `timeout_s`."""
    hp = host_port(address)
    if hp is None:
        return
    try:
        with socket.create_connection(hp, timeout=timeout_s):
            pass
    except OSError as e:
        reason = "timed out" if isinstance(e, TimeoutError) else (e.strerror or type(e).__name__)
        raise RayUnavailable(f"ray: cannot reach the Ray cluster at {address} ({reason}, "
                             f"connect timeout {timeout_s:g} s)") from None


def token_available() -> bool:
    """Is a Ray auth token at hand (``RAY_AUTH_TOKEN``, ``RAY_AUTH_TOKEN_PATH``, ~/.ray/auth_token)?"""
    if os.environ.get("RAY_AUTH_TOKEN"):
        return True
    path = os.environ.get("RAY_AUTH_TOKEN_PATH") or str(Path.home() / ".ray" / "auth_token")
    try:
        return Path(path).is_file() and Path(path).stat().st_size > 0
    except OSError:
        return False


def enable_token_auth() -> None:
    """Ray 2.60: ``ray start`` turns token authentication on when a token exists, but a driver given
    an explicit address never does, and is refused. Send the token whenever one is at hand (a
    cluster without authentication accepts it too); an explicit ``RAY_AUTH_MODE`` is respected."""
    if "RAY_AUTH_MODE" not in os.environ and token_available():
        os.environ["RAY_AUTH_MODE"] = "token"
        raylet = sys.modules.get("ray._raylet")
        if raylet is not None:               # Ray caches its config when imported: refresh it
            raylet.Config.initialize("")


def init_with_timeout(ray, timeout_s: float = INIT_TIMEOUT_S, **kwargs) -> None:
    """`ray.init(**kwargs)` that gives up after `timeout_s` with a one-line error (the call itself
    retries for minutes on a cluster that accepts connections but does not answer)."""
    done, box = threading.Event(), {}

    def target() -> None:
        try:
            ray.init(**kwargs)
        except BaseException as e:  # noqa: BLE001 - reported below
            box["error"] = e
        finally:
            done.set()

    threading.Thread(target=target, name="ray-init", daemon=True).start()
    where = kwargs.get("address") or "a local Ray"
    if not done.wait(timeout_s):
        raise RayUnavailable(f"ray: ray.init({where}) did not return within {timeout_s:g} s")
    if "error" in box:
        e = box["error"]
        first = (str(e).strip().splitlines() or [""])[0][:300]
        raise RayUnavailable(f"ray: cannot connect to {where}: {type(e).__name__}: {first}") from None


# -- a head started for one job ----------------------------------------------------------------------

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("", 0))
        return s.getsockname()[1]


def die_with_parent(sig: int) -> None:
    """Linux: deliver `sig` to this process when the process that started it dies (even by SIGKILL),
    so a cancelled launcher never leaves a head or a sandbox child behind."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, int(sig), 0, 0, 0)   # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def ray_cli() -> str:
    local = Path(sys.executable).with_name("ray")
    return str(local) if local.exists() else (shutil.which("ray") or "ray")


@dataclass
class LocalHead:
    """``ray start --head --block`` for one job: `address` to connect to; `stop()` ends it."""

    num_cpus: int = 1
    object_store_mb: int = HEAD_OBJECT_STORE_MB
    nice: int = 0
    start_timeout_s: float = HEAD_START_TIMEOUT_S
    address: str | None = None
    temp_dir: Path | None = None
    proc: subprocess.Popen | None = None
    token: str = ""
    own_token: bool = True                  # False: Ray's default (~/.ray/auth_token when it exists)

    def client_env(self) -> dict[str, str]:
        """What a driver needs to connect: the address and this head's own token (a fresh one per
        head, so no other driver on the machine can submit work to it)."""
        if not self.own_token:
            return {"RAY_ADDRESS": self.address or ""}
        return {"RAY_ADDRESS": self.address or "", "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": self.token}

    def start(self) -> "LocalHead":
        # a short temp dir of its own: Ray's socket paths are length-limited, and /tmp/ray is shared
        self.temp_dir = Path(tempfile.mkdtemp(prefix="dgray-", dir="/tmp"))
        port = _free_port()
        cmd = [ray_cli(), "start", "--head", "--block", f"--port={port}", f"--num-cpus={int(self.num_cpus)}",
               "--num-gpus=0", "--include-dashboard=false", "--disable-usage-stats",
               f"--temp-dir={self.temp_dir}", f"--object-store-memory={int(self.object_store_mb) * 1024 * 1024}",
               f"--dashboard-agent-listen-port={_free_port()}"]
        # Ray renices its workers by +15 by default: on a busy machine they then starve (nice 10 + 15 is
        # 19, next to nothing against nice-0 load). The workers do the sandbox's work: same niceness.
        env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "RAY_worker_niceness": "0"}
        env.pop("RAY_ADDRESS", None)
        if self.own_token:
            self.token = secrets.token_hex(32)
            env.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=self.token)
            env.pop("RAY_AUTH_TOKEN_PATH", None)
        nice = int(self.nice)

        def pre() -> None:
            os.setsid()
            if nice:
                os.nice(nice)
            die_with_parent(signal.SIGTERM)

        log = open(self.temp_dir / "head.log", "wb")
        try:
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         preexec_fn=pre, env=env)
        except OSError as e:
            self.stop()
            raise RayUnavailable(f"ray: could not start a local Ray head ({cmd[0]}: {e.strerror or e})") from None
        finally:
            log.close()
        deadline = time.monotonic() + self.start_timeout_s
        while time.monotonic() < deadline:
            text = self.log_text()
            if "Ray runtime started" in text:
                self.address = self._address_from(text, port)
                return self
            if self.proc.poll() is not None:
                break
            time.sleep(0.2)
        tail = " | ".join(self.log_text().strip().splitlines()[-3:])[-300:]
        self.stop()
        raise RayUnavailable(f"ray: could not start a local Ray head ({tail or 'no output'})")

    @staticmethod
    def _address_from(text: str, port: int) -> str:
        for line in text.splitlines():       # "Local node IP: 192.0.2.2"
            if "Local node IP:" in line:
                return f"{line.split('Local node IP:', 1)[1].strip()}:{port}"
        return f"127.0.0.1:{port}"

    def log_text(self) -> str:
        try:
            return (self.temp_dir / "head.log").read_text(errors="replace")
        except (OSError, TypeError):
            return ""

    def stop(self, grace_s: float = 2.0) -> None:
        """SIGTERM to the head's process group, SIGKILL after `grace_s` (``ray start --block`` takes
        half a minute to stop politely, and a job's head holds nothing worth saving), then SIGKILL
        to any process it started that left the group (by pid, collected before)."""
        proc, self.proc = self.proc, None
        if proc is not None:
            started = descendants(proc.pid)
            for sig, wait in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 5.0)):
                try:
                    os.killpg(proc.pid, sig)
                except (ProcessLookupError, PermissionError):
                    break
                try:
                    proc.wait(timeout=wait)
                except subprocess.TimeoutExpired:
                    continue
                if not _group_alive(proc.pid):
                    break
            for pid in started:
                try:
                    os.kill(pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
        if self.temp_dir is not None:
            shutil.rmtree(self.temp_dir, ignore_errors=True)

    def __enter__(self) -> "LocalHead":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def descendants(pid: int) -> set[int]:
    """Every process below `pid` (from /proc)."""
    parents = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                parents[int(d.name)] = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                pass
    found, frontier = set(), {pid}
    while frontier:
        frontier = {p for p, pp in parents.items() if pp in frontier} - found
        found |= frontier
    return found


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except (ProcessLookupError, PermissionError):
        return False
