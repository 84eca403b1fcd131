"""The paper's published outcomes (docs/theory.md section 7) beside ours, with the reasons they differ.

Only numbers stated in docs/theory.md are quoted; where the paper shows a figure without a number,
the "paper" column says what the figure claims.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

#: Fig. 3, deep linear L = 5, gamma0 = 1.5: alignment of each theory with trained networks.
FIG3_PUBLISHED = {"dmft": 0.99, "ntk": 0.76, "perturbative": 0.86, "gia": 0.86}


def _mean_se(x) -> str:
    x = np.asarray(x, dtype=float)
    x = x[np.isfinite(x)]
    if not len(x):
        return "n/a"
    se = x.std(ddof=1) / np.sqrt(len(x)) if len(x) > 1 else float("nan")
    return f"{x.mean():.3f} ± {se:.3f}" if np.isfinite(se) else f"{x.mean():.3f}"


def comparison(tables: dict[str, pd.DataFrame], n_target: int = 500) -> pd.DataFrame:
    """Rows: quantity, paper, ours, note."""
    m = tables["measurements"]
    rows = []
    # Fig. 1: alignment at the width nearest to N = 500
    a = m[(m["check"] == "fig1/tanh-L3") & (m["statistic"] == "alignment")]
    if len(a):
        ws = np.array(sorted(a["width"].unique()))
        w = ws[np.argmin(np.abs(np.log(ws / n_target)))]
        for obs, lab in (("phi_final", "Phi"), ("g_final", "G")):
            for layer in sorted(a[a["observable"] == obs]["layer"].dropna().unique()):
                vals = a[(a["observable"] == obs) & (a["layer"] == layer) & (a["width"] == w)]["value"]
                rows.append(dict(quantity=f"Fig. 1 alignment of final {lab}^{int(layer) + 1}, N = {int(w)}",
                                 paper="near 1 from N ~ 500 (figure)", ours=_mean_se(vals),
                                 note="mean ± s.e. over seeds; Gaussian data (paper: CIFAR-10 or Gaussian)"))
    # Fig. 3: alignments at the largest gamma0
    a = m[(m["check"] == "fig3/linear-approximations") & (m["statistic"] == "alignment")]
    if len(a):
        g = a["gamma0"].max()
        for obs, lab in (("phi_final", "H^L"), ("ntk_final", "NTK")):
            for scheme, pub in FIG3_PUBLISHED.items():
                vals = a[(a["observable"] == obs) & (a["scheme"] == scheme) & (a["gamma0"] == g)]["value"]
                if len(vals):
                    rows.append(dict(quantity=f"Fig. 3 alignment of {scheme} final {lab} with networks, "
                                              f"gamma0 = {g:g}, N = {int(a['width'].max())}",
                                     paper=f"{pub:.2f}" if g == 1.5 else "n/a", ours=_mean_se(vals), note=""))
    # Fig. 4: CNN finals
    f = m[(m["check"] == "fig4/cnn") & (m["statistic"] == "final")]
    for (g0, w), sub in f.groupby(["gamma0", "width"]):
        mse = sub[sub["observable"] == "test_mse"]["value"]
        err = sub[sub["observable"] == "test_error"]["value"]
        rows.append(dict(quantity=f"Fig. 4 final test MSE / accuracy, gamma0 = {g0:g}, N = {int(w)}",
                         paper="nearly equal at N = 250 and 500 (figure; no number quoted in docs/theory.md)",
                         ours=f"{_mean_se(mse)} / {_mean_se(1 - np.asarray(err, float))}", note=""))
    return pd.DataFrame(rows, columns=["quantity", "paper", "ours", "note"])


#: Why our numbers differ from the paper's (rendered under the comparison table).
NOTES = """\
### Why the numbers differ

- **Fig. 1 alignment.** Ours is measured at N = 512 (the width grid is powers of two) on Gaussian
  data, seed means over 10 networks; the paper shows a figure ("near 1 from N ~ 500"), no number.
  Every layer's Phi and G is aligned >= 0.995 there: agreement. The *convergence* verdict is
  stricter than alignment. The theory is now solved with the Monte Carlo solver's default accuracy
  (4,000 samples, 64 response samples; the first cpu run used 1,000 / 16, whose sampling floor of
  a few per cent made the errors plateau between N = 512 and 2048 and failed the loss, NTK and G
  rows). The solver's own standard error (Solution.info) widens every residual's bounds. With it
  no row fails. Rerun after the solver's stopping-rule fix (the noise floor had used the wrong
  kernel norms and stopped early): the extrapolated N -> infinity residuals of the loss, the NTK,
  Phi^1..3, G^2 and G^3 pass the 5 % tolerance (all below 0.03), G^1's is inconclusive (0.029,
  bounds wider than the tolerance); the N^-1/2 rate is confirmed for Phi^1..3 (slopes -0.50,
  -0.42, -0.40) and undecided (non-gating) for the loss, NTK and G, where 10 seeds at
  N = 512..2048 leave slopes uncertain by +-0.1. More seeds or the full size would decide them;
  the tolerance was not loosened.
- **Fig. 3 approximations at gamma0 = 1.5.** Our DMFT alignment (0.999) matches the paper's 0.99.
  For the approximations docs/theory.md does not say which kernel the paper aligns, so we give both the
  final last-layer H^L and the final NTK. The ordering is the paper's in both (the DMFT is
  significantly closer to the networks than each approximation: the `dmft-best` rows pass), but the
  magnitudes differ: on H^L the static NTK is much worse (0.38 vs 0.76: the lazy H^L = Kx has no
  y y^T component, which dominates the learned H^L of our P = 20 Gaussian task) and perturbation
  theory and GIA are better (0.95 and 0.91 vs 0.86); on the NTK, where the unchanged lower-layer
  terms dilute the change, every approximation is above 0.96. Plausible further causes: a
  different data draw and targets, and our perturbation theory is the exact second-order
  coefficient (docs/theory.md: the official notebook's v_ab has a sign error).
- **Fig. 4 CNN.** docs/theory.md quotes no published test MSE or accuracy (the paper shows curves that
  nearly coincide at N = 250 and 500). Our cpu run differs in data (scikit-learn digits 3 vs 5,
  8x8 grey images, because CIFAR-10 is not present on this machine), widths (128 and 256
  channels) and schedule (60 epochs of SGD, batch 32, 8 seeds, float32; constant rate for the
  first half, then a linear decay to 0). Learning rate (our interpretation; docs/theory.md does not
  state the paper's value): the mean-field parameter step eta gamma0^2 N with eta = 0.5 / gamma0.
  A gamma0-independent eta = 0.5 diverged at gamma0 = 5 and 10 (so did eta = 0.2 at gamma0 = 10),
  because the feature step grows like eta gamma0. With eta = 0.5 / gamma0 every network first sits
  on a plateau (test MSE ~1) for 10-20 epochs, longer at larger gamma0, and the rich ones leave it
  with loss spikes; that is why the run is 60 epochs with the late decay (the decay is the same at
  both widths, so it cannot make or hide a width dependence). Earlier cpu runs show why each
  choice matters: at 15 epochs the networks were still escaping the plateau and the test error
  *failed* width independence at gamma0 = 1 (narrower networks escape sooner); at 60 epochs with
  N = 64 and 128 the test MSE at gamma0 = 5 failed (N = 64 was 27 % worse), a finite-width effect
  that is gone at N = 128 vs 256. Now: at gamma0 = 1 test MSE (0.083 at both widths), test error
  (0 at both) and alignment pass; at gamma0 = 5 and 10 the test error passes and the test MSE and
  alignment are inconclusive (the rich networks' final MSE still varies by 10-20 % between
  seeds, so 8 seeds cannot resolve a 10 % tolerance; more seeds or the full size on a GPU would).
- **Appendix.** The cpu size runs T = 50 steps of eta = 0.3 (the same horizon t = 15 as the
  paper's T = 200, eta = 0.075) with 1,000 Monte Carlo samples; kernels pass, the loss residuals
  are inconclusive because the final losses are small and noisy across seeds.
"""
