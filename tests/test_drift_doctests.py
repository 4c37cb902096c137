"""The drift package keeps its promises: the PageHinkley wrapper documents real detection behaviour
in a runnable Example (run by tests/test_doctests.py), and the live-side package never pulls in
torch, MuJoCo or sim."""


def test_page_hinkley_example_is_in_the_wrapper_docstring():
    from controller.drift.detectors import CalibratedPageHinkley
    assert ">>> ph = CalibratedPageHinkley(" in CalibratedPageHinkley.__doc__


def test_controller_drift_does_not_import_torch_or_mujoco():
    import subprocess
    import sys
    code = ("import sys, controller.drift, controller.drift.monitor; "
            "bad = [m for m in ('torch', 'mujoco', 'dm_control', 'sim') if m in sys.modules]; "
            "print(bad); sys.exit(1 if bad else 0)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
