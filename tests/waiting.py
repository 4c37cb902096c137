"""`wait_for`: poll a condition until it holds or a deadline passes (the ROS tests' one way to wait)."""
import time


def wait_for(cond, timeout=30.0, what="condition"):
    """Poll `cond`; on timeout say what was awaited (`what` may be a callable: evaluated then)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what() if callable(what) else what}")
