"""DriftSpec: canonical form and hash, validation, composition, and exact apply/clear on MjModel."""
import hashlib
import json

import numpy as np
import pytest

from sim.drift_spec import VARIANTS, DriftSpec, compose, variant
from sim.plants import make_plant

HEADLINE = '{"mass_scale": {"pole_1": 3.0}, "actuator_gain": {"slide": -1.0}}'


def model_arrays(model):
    """Every array-valued field of an MjModel, plus the option/statistic structs, copied."""
    out = {}
    for name in dir(model):
        if name.startswith("_"):
            continue
        value = getattr(model, name)
        if isinstance(value, np.ndarray):
            out[name] = value.copy()
    for struct in ("opt", "stat"):
        obj = getattr(model, struct)
        for name in dir(obj):
            if not name.startswith("_") and not callable(getattr(obj, name)):
                out[f"{struct}.{name}"] = np.array(getattr(obj, name), copy=True)
    return out


def assert_models_equal(a, b):
    assert a.keys() == b.keys()
    diff = [k for k in a if not np.array_equal(a[k], b[k])]
    assert not diff, f"fields differ: {diff}"


# -- canonical form ------------------------------------------------------------------------------

def test_nominal_hash_is_stable():
    assert DriftSpec().to_json() == "{}"
    assert DriftSpec().hash == hashlib.sha256(b"{}").hexdigest()
    assert DriftSpec.parse(None) == DriftSpec.parse("") == DriftSpec.parse({}) == DriftSpec()
    assert DriftSpec().is_nominal


def test_headline_spec_canonical_json_and_hash():
    spec = DriftSpec.parse(HEADLINE)
    assert spec.to_json() == '{"actuator_gain":{"slide":-1.0},"mass_scale":{"pole_1":3.0}}'
    # pinned: a change here silently splits fitness histories keyed by this hash
    assert spec.hash == "3f3fa908614cf20883749b987c07bf97b0d79e079643ffe6c95cfd0599d8f1e5"
    assert DriftSpec.from_json(spec.to_json()) == spec


def test_hash_independent_of_key_order_number_type_and_identity_entries():
    a = DriftSpec.parse({"mass_scale": {"pole_1": 3, "cart": 1.0}, "actuator_gain": {"slide": -1}})
    b = DriftSpec.parse('{"actuator_gain":{"slide":-1.0},"mass_scale":{"pole_1":3.0}}')
    c = DriftSpec(actuator_gain={"slide": -1.0}, mass_scale=(("pole_1", 3.0),),
                  obs_noise=0, action_delay=0, gravity=1.0)
    assert a == b == c
    assert a.hash == b.hash == c.hash
    assert hash(a) == hash(b) and len({a, b, c}) == 1


def test_specs_that_differ_hash_differently():
    hashes = {spec.hash for plant in VARIANTS.values() for spec in plant.values()}
    assert len(hashes) == sum(len(v) for v in VARIANTS.values())
    assert DriftSpec().hash not in hashes


def test_frozen():
    spec = DriftSpec(obs_noise=0.1)
    with pytest.raises(AttributeError):
        spec.obs_noise = 0.2


def test_gravity_scale_or_vector_and_json_round_trip():
    spec = DriftSpec(gravity=[0, 0, -3.7], obs_bias={"pole_sin": 0.1, 2: 0.5}, action_delay=2)
    assert json.loads(spec.to_json())["gravity"] == [0.0, 0.0, -3.7]
    assert DriftSpec.parse(spec.to_json()) == spec
    assert dict(spec.obs_bias) == {"pole_sin": 0.1, "2": 0.5}
    assert DriftSpec(gravity=0.5).as_dict() == {"gravity": 0.5}


# -- validation ----------------------------------------------------------------------------------

@pytest.mark.parametrize("bad, key", [
    ({"mass_scal": {"pole_1": 2.0}}, "mass_scal"),
    ({"mass_scale": {"pole_1": 0.0}}, "pole_1"),
    ({"mass_scale": {"pole_1": -2.0}}, "pole_1"),
    ({"friction_scale": {"*": float("nan")}}, "friction_scale"),
    ({"damping_scale": {"slider": float("inf")}}, "slider"),
    ({"actuator_gain": {"slide": 0.0}}, "slide"),
    ({"actuator_gain": {"slide": "fast"}}, "slide"),
    ({"mass_scale": [3.0]}, "mass_scale"),
    ({"gravity": [0, 0]}, "gravity"),
    ({"gravity": -1.0}, "gravity"),
    ({"obs_noise": -0.1}, "obs_noise"),
    ({"action_delay": 1.5}, "action_delay"),
    ({"action_delay": -1}, "action_delay"),
    ({"action_delay": 10_000}, "action_delay"),
])
def test_invalid_values_name_the_key(bad, key):
    with pytest.raises(ValueError, match=key):
        DriftSpec.parse(bad)


def test_invalid_json_and_types():
    with pytest.raises(ValueError, match="JSON"):
        DriftSpec.parse("{mass_scale")
    with pytest.raises(ValueError, match="object"):
        DriftSpec.parse("[1, 2]")


@pytest.mark.parametrize("bad, key", [
    ({"mass_scale": {"pole_7": 2.0}}, "pole_7"),
    ({"friction_scale": {"wheel": 0.5}}, "wheel"),
    ({"actuator_gain": {"hinge_1": -1.0}}, "hinge_1"),
    ({"damping_scale": {"slide": 2.0}}, "slide"),  # an actuator name, not a joint
    ({"obs_bias": {"pole_tan": 0.1}}, "pole_tan"),
    ({"obs_bias": {"9": 0.1}}, "'9'"),
])
def test_unknown_model_names_rejected_when_applied_and_plant_untouched(bad, key):
    plant = make_plant("cartpole", drift=VARIANTS["cartpole"]["payload"])
    before = model_arrays(plant.model)
    with pytest.raises(ValueError, match=key):
        plant.apply_drift(bad)
    assert plant.drift == VARIANTS["cartpole"]["payload"]
    assert_models_equal(before, model_arrays(plant.model))
    with pytest.raises(ValueError, match=key):
        make_plant("cartpole", drift=bad)


# -- composition ---------------------------------------------------------------------------------

def test_compose_multiplies_scales_and_later_wins_otherwise():
    a = DriftSpec(mass_scale={"pole_1": 2.0}, actuator_gain={"slide": -1.0}, obs_noise=0.1,
                  obs_bias={"pole_sin": 0.1}, gravity=2.0)
    b = DriftSpec(mass_scale={"pole_1": 1.5, "cart": 2.0}, actuator_gain={"slide": -0.5},
                  obs_bias={"pole_sin": 0.3}, action_delay=3, gravity=0.5)
    c = compose(a, b)
    assert dict(c.mass_scale) == {"pole_1": 3.0, "cart": 2.0}
    assert dict(c.actuator_gain) == {"slide": 0.5}
    assert dict(c.obs_bias) == {"pole_sin": 0.3}
    assert (c.obs_noise, c.action_delay, c.gravity) == (0.1, 3, None)  # 2.0 * 0.5 = nominal
    assert compose(DriftSpec(gravity=[0, 0, -5]), DriftSpec(gravity=2.0)).gravity == (0, 0, -10)
    assert compose() == compose(None, {}) == DriftSpec()
    assert compose(a, DriftSpec(mass_scale={"pole_1": 0.5}), DriftSpec(actuator_gain={"slide": -1})
                   ).mass_scale == ()


def test_named_variants_compose():
    spec = variant("cartpole", "payload", "reversed_motor")
    assert spec == DriftSpec.parse(HEADLINE) == VARIANTS["cartpole"]["payload_reversed"]
    with pytest.raises(ValueError, match="known"):
        variant("cartpole", "warp_drive")
    with pytest.raises(ValueError, match="known plants"):
        variant("submarine", "payload")


def test_every_variant_applies_to_its_plant():
    for name, table in VARIANTS.items():
        plant = make_plant(name)
        for spec in table.values():
            plant.apply_drift(spec)
            assert plant.drift == spec


# -- exact apply / clear -------------------------------------------------------------------------

EVERYTHING = {
    "cartpole": {"mass_scale": {"pole_1": 3.0, "cart": 0.7}, "friction_scale": {"*": 0.3},
                 "actuator_gain": {"slide": -1.3}, "damping_scale": {"slider": 50, "hinge_1": 2},
                 "gravity": 1.1, "obs_bias": {"pole_sin": 0.1}, "obs_noise": 0.01,
                 "action_delay": 2},
    "walker": {"mass_scale": {"torso": 1.5, "*": 1.1}, "friction_scale": {"*": 0.3,
               "left_foot": 0.5}, "actuator_gain": {"right_hip": -1.0, "left_knee": 0.5},
               "damping_scale": {"right_knee": 5.0}, "gravity": [0.5, 0, -9.0]},
    "reacher": {"mass_scale": {"hand": 3.0}, "actuator_gain": {"wrist": -1.0, "shoulder": 0.5},
                "damping_scale": {"shoulder": 5.0, "wrist": 5.0}},
}


@pytest.mark.parametrize("name", sorted(EVERYTHING))
def test_apply_then_clear_restores_every_model_field_bit_for_bit(name):
    plant = make_plant(name)
    nominal = model_arrays(plant.model)
    plant.apply_drift(EVERYTHING[name])
    drifted = model_arrays(plant.model)
    changed = {k for k in nominal if not np.array_equal(nominal[k], drifted[k])}
    expected = {"body_mass", "body_inertia", "actuator_gear", "dof_damping"}
    if name != "reacher":
        expected |= {"geom_friction", "opt.gravity"}
    assert expected <= changed
    assert "body_subtreemass" in changed  # derived constants follow the masses (mj_setConst)
    plant.clear_drift()
    assert_models_equal(nominal, model_arrays(plant.model))
    assert plant.drift == DriftSpec()


def test_reapplying_is_idempotent_and_replacing_needs_no_clear():
    plant = make_plant("cartpole")
    a, b = VARIANTS["cartpole"]["payload"], VARIANTS["cartpole"]["gain_loss"]
    plant.apply_drift(b)
    only_b = model_arrays(plant.model)
    plant.apply_drift(a)
    plant.apply_drift(a)
    plant.apply_drift(b)
    assert_models_equal(only_b, model_arrays(plant.model))
