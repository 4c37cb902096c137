"""How the shipped cartpole champion was made: the nominal LQR written into the deterministic head of
an evolved SR-GHN (its self graph, stochastic head and basis stay as evolved, so it adapts like any
SR-GHN). Why: the SR-GHN evolved from scratch on the smooth balance reward learned to swing the pole
round (224 / 300) and could not balance; this one balances (299.8 / 300). Input: the previously
shipped evolved champion (git history of sim/assets/champions/cartpole.safetensors, id ec3afd4a...).

    python benchmarks/make_cartpole_champion.py [--out DIR]   # default: overwrite the shipped champion
    python benchmarks/make_cartpole_champion.py --smoke       # shorter rollouts, written to a temp dir
"""
import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sim.adapt_job import nominal_champion, mean_return  # noqa: E402
from sim.srghn_decode import genome_policy_weights  # noqa: E402
from sim.srghn_layout import srghn_layout  # noqa: E402
from sim.genome import Genome, save_genome  # noqa: E402
from sim.plants import make_plant  # noqa: E402
from sim.drift_spec import DriftSpec  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=ROOT / "sim" / "assets" / "champions")
    ap.add_argument("--smoke", action="store_true", help="short rollouts; writes to --out or a temp dir")
    args = ap.parse_args()
    out, smoke = args.out, args.smoke
    if smoke and out.resolve() == (ROOT / "sim" / "assets" / "champions").resolve():
        out = Path(tempfile.mkdtemp(prefix="driftgate-smoke-"))
    out.mkdir(parents=True, exist_ok=True)
    champ = nominal_champion("cartpole")  # the evolved champion it was built from
    spec, model = champ.policy_spec, dict(champ.model)
    d = model["embed_dim"]
    L = srghn_layout(spec, model)
    vec = champ.vector.astype(np.float32).copy()
    def put(name, arr):
        off, shape = L[name]; n = int(np.prod(shape)); vec[off:off+n] = np.asarray(arr, np.float32).reshape(-1)
    for pre in ("gnn_policy",):
        for nm in ("msg.weight", "msg.bias", "gru.weight_ih", "gru.weight_hh", "gru.bias_ih"):
            put(f"{pre}.{nm}", np.zeros(L[f"{pre}.{nm}"][1]))
        bhh = np.zeros(3*d); bhh[d:2*d] = 20.0; put(f"{pre}.gru.bias_hh", bhh)
    K = make_plant("cartpole").nominal_controller().K.reshape(-1)
    a1, a2 = 0.5, 1.0
    W1 = np.zeros((32, 5)); b1 = np.zeros(32); W2 = np.zeros((32, 32)); b2 = np.zeros(32); W3 = np.zeros((1, 32)); b3 = np.zeros(1)
    for i, col in enumerate((0, 2, 3, 4)):
        W1[i, col] = a1; W2[i, i] = a2; W3[0, i] = -K[i] / (a1 * a2)
    tens = [W1, b1, W2, b2, W3, b3]
    s = 1.0
    emb = np.zeros((len(tens), d)); D = np.zeros(L["det_head.weight"][1])
    for j, T in enumerate(tens):
        emb[j, j] = s; flat = T.reshape(-1); D[:flat.size, j] = flat / s
    put("embed_policy", emb); put("det_head.weight", D); put("det_head.bias", np.zeros(L["det_head.bias"][1]))
    assert np.abs(vec).max() <= 20
    g = Genome(vector=vec, policy_spec=spec, kind="srghn", model=model, fitness={"source": "nominal LQR written into the deterministic head"})
    w = genome_policy_weights(g)
    ref = np.concatenate([t.reshape(-1) for t in tens]).astype(np.float32)
    print("max decode err", np.abs(w - ref).max())
    # torch decode check
    import torch
    from sim.srghn import SRGHN, SRGHNConfig
    torch_w = SRGHN(spec, SRGHNConfig(**model)).policy_weights(torch.from_numpy(g.vector)[None])[0].numpy()
    print("torch decode err", np.abs(torch_w - ref).max())
    short, long = (30, 60) if smoke else (300, 1000)
    print(f"nominal {short}", mean_return("cartpole", g, DriftSpec(), short, 0), f"{long}", mean_return("cartpole", g, DriftSpec(), long, 0))
    D0 = DriftSpec.parse({"mass_scale": {"pole_1": 3.0}, "actuator_gain": {"slide": -1.0}})
    print(f"drift {short}", mean_return("cartpole", g, D0, short, 0))
    save_genome(g, out / "cartpole.safetensors"); print(g.id)


if __name__ == "__main__":
    main()
