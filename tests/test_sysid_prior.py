"""A pull toward the nominal robot in system identification, and a gain shared by every actuator.

Why: from the walker's post-alarm stance telemetry a heavier torso and weaker leg motors explain the
window about equally well (a valley within 10 % of the minimum from torso x0.3 to x2); six free gains
plus friction landed at per-motor gains 0.04-0.76 and torso 1.2-2.9 x where the truth was 0.5 and
1.0 x, and the candidates evolved there fell on the true robot. One shared gain (a sagging supply)
and a prior that picks, along a flat valley, the robot that changed least, fix the estimate."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

import sim.sysid as sysid_mod
from sim.plants import make_plant
from sim.sysid import Param, identify, prior_factor
from sim.sysid_params import PARAMETER_SETS, default_prior, parameter_set, spec_from_params

ROBOTS = Path(__file__).resolve().parents[1] / "launch" / "robots"
PARAMS = (Param("mass_scale", "torso", 0.5, 4.0), Param("actuator_gain", "*", -1.5, 1.5))


def test_prior_factor_is_one_at_nominal_and_grows_with_the_distance_over_the_range():
    at = lambda m, g: [p.to_search(v) for p, v in zip(PARAMS, (m, g))]  # noqa: E731
    assert prior_factor(PARAMS, at(1.0, 1.0), 2.0) == pytest.approx(1.0)
    assert prior_factor(PARAMS, at(2.0, 0.5), 0.0) == 1.0
    near, far = prior_factor(PARAMS, at(1.0, 0.5), 2.0), prior_factor(PARAMS, at(2.0, 0.5), 2.0)
    assert 1.0 < near < far
    # z = (0.5 - 1) / 3 for the gain (linear, signed range), log(2) / log(8) for the mass
    assert far == pytest.approx(1 + 2 * ((0.5 / 3) ** 2 + (np.log(2) / np.log(8)) ** 2))


class _Valley:
    """A replay whose loss is a flat valley: torso mass m and shared gain g explain the data equally
    well when m = 2 g (the walker's trade), with a tilt that noise would put toward a light torso."""

    def __init__(self):
        self.starts, self.horizon = np.arange(8) * 4, 4

    @classmethod
    def build(cls, *a, **k):
        return cls()

    def refine(self, spec) -> int:
        return 1

    def residuals(self, spec) -> np.ndarray:
        d = spec.as_dict()
        m = d.get("mass_scale", {}).get("torso", 1.0)
        g = d.get("actuator_gain", {}).get("*", 1.0)
        valley = 10 * (np.log(m) - np.log(abs(g) / 0.5))
        return np.tile([valley, 1 + 0.1 * np.log(m)], (self.starts.size, 1))

    def loss(self, spec) -> float:
        return float(np.mean(self.residuals(spec) ** 2))

    def subset(self, mask):
        return self


@pytest.mark.parametrize("prior", [0.0, 2.0])
def test_the_prior_picks_the_robot_nearest_nominal_along_a_flat_valley(monkeypatch, prior):
    monkeypatch.setattr(sysid_mod, "Replay", _Valley)
    monkeypatch.setattr(sysid_mod, "DEFAULT_HORIZON", {"walker": 4})
    plant = make_plant("walker")
    tel = _tiny_window(plant)
    r = identify(plant, tel, PARAMS, max_evals=400, seed=0, ensemble=3, prior=prior)
    m, g = r.params["mass_scale.torso"], r.params["actuator_gain.*"]
    assert r.prior == prior
    assert m == pytest.approx(2 * g, rel=0.05)              # on the valley either way
    if prior:
        assert m == pytest.approx(1.0, abs=0.2) and g == pytest.approx(0.5, abs=0.1)
    else:                                                   # the data alone: the valley's light end
        assert m < 0.6


def _tiny_window(plant):
    from sim.sysid import Telemetry
    n = 40
    return Telemetry(np.tile(plant.data.qpos, (n + 1, 1)), np.zeros((n + 1, plant.model.nv)),
                     np.zeros((n, plant.model.nu)), plant.control_dt)


def test_walker_identifies_one_shared_gain_with_a_prior_and_its_profile_says_the_same():
    names = [p.name for p in PARAMETER_SETS["walker"]]
    assert names == ["mass_scale.torso", "actuator_gain.*", "damping_scale.*"]
    assert default_prior(make_plant("walker")) == 2.0
    profile_plant = make_plant(str(ROBOTS / "walker.yaml"))
    assert parameter_set(profile_plant) == PARAMETER_SETS["walker"]
    assert default_prior(profile_plant) == 2.0
    # the shared gain is a DriftSpec entry every robot applies to all its actuators
    profile_plant.apply_drift(spec_from_params({"actuator_gain.*": 0.5}))
    assert np.allclose(profile_plant.model.actuator_gear[:, 0], 0.5 * make_plant(str(ROBOTS / "walker.yaml")).model.actuator_gear[:, 0])


def test_tie_gains_is_the_profile_option_per_actuator_stays_the_default(tmp_path):
    doc = yaml.safe_load((ROBOTS / "walker.yaml").read_text())
    doc["model"] = {"mjcf": "dm_control:suite/walker.xml"}
    for k in ("assets", "initial_state", "objective"):
        doc.pop(k, None)
    doc["drift"].pop("default", None)
    tied = dict(doc, name="mywalker")            # not a built-in's name: the profile's drift block decides
    (tmp_path / "tied.yaml").write_text(yaml.safe_dump(tied))
    plant = make_plant(str(tmp_path / "tied.yaml"))
    assert [p.name for p in parameter_set(plant) if p.field == "actuator_gain"] == ["actuator_gain.*"]
    assert default_prior(plant) == 2.0
    untied = dict(tied, drift={k: v for k, v in doc["drift"].items() if k not in ("tie_gains", "prior")})
    (tmp_path / "untied.yaml").write_text(yaml.safe_dump(untied))
    plant = make_plant(str(tmp_path / "untied.yaml"))
    gains = [p.name for p in parameter_set(plant) if p.field == "actuator_gain"]
    assert len(gains) == 6 and "actuator_gain.*" not in gains
    assert default_prior(plant) == 0.0


def test_a_builtins_shipped_profile_is_that_builtin_robot(tmp_path):
    from adapters.robot_option import resolve_robot
    assert resolve_robot(str(ROBOTS / "walker.yaml")) == "walker"
    assert resolve_robot("launch/robots/walker.yaml" if Path("launch/robots/walker.yaml").exists()
                         else str(ROBOTS / "walker.yaml")) == "walker"
    copy = tmp_path / "walker.yaml"                       # the user's own file keeps its own path
    copy.write_text((ROBOTS / "walker.yaml").read_text().replace("../../sim/assets", str(ROBOTS.parents[1] / "sim" / "assets")))
    assert resolve_robot(str(copy)) == str(copy.resolve())
