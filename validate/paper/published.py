"""The paper's published outcomes (THEORY.md section 7) beside ours, with the reasons they differ.

Only numbers stated in THEORY.md are quoted; where the paper shows a figure without a number,
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
                         paper="nearly equal at N = 250 and 500 (figure; no number quoted in THEORY.md)",
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
  no row fails: the N^-1/2 rate is confirmed for Phi^1 and Phi^2 (slopes -0.49, -0.41) and
  undecided elsewhere (non-gating), the extrapolated residuals are all below 0.03 (Phi^1..3 pass
  the 5 % tolerance), and loss, NTK and G^1..3 are inconclusive: 10 seeds at N = 512..2048 leave
  bounds wider than the tolerance (e.g. loss residual 0 [-0.07, 0.07]). More seeds or the full
  size would decide them; the tolerance was not loosened.
- **Fig. 3 approximations at gamma0 = 1.5.** Our DMFT alignment (0.999) matches the paper's 0.99.
  For the approximations THEORY.md does not say which kernel the paper aligns, so we give both the
  final last-layer H^L and the final NTK. The ordering is the paper's in both (the DMFT is
  significantly closer to the networks than each approximation: the `dmft-best` rows pass), but the
  magnitudes differ: on H^L the static NTK is much worse (0.38 vs 0.76: the lazy H^L = Kx has no
  y y^T component, which dominates the learned H^L of our P = 20 Gaussian task) and perturbation
  theory and GIA are better (0.95 and 0.91 vs 0.86); on the NTK, where the unchanged lower-layer
  terms dilute the change, every approximation is above 0.96. Plausible further causes: a
  different data draw and targets, and our perturbation theory is the exact second-order
  coefficient (THEORY.md: the official notebook's v_ab has a sign error).
- **Fig. 4 CNN.** THEORY.md quotes no published test MSE or accuracy (the paper shows curves that
  nearly coincide at N = 250 and 500). Our run differs in data (scikit-learn digits 3 vs 5, 8x8
  grey images, because CIFAR-10 is not present on this machine), widths (64 and 128 channels on
  the CPU) and schedule (15 epochs, batch 32, 6 seeds). Learning rate (our interpretation; the
  paper's value is not stated in THEORY.md): the mean-field parameter step eta gamma0^2 N with
  eta = 0.5 / gamma0, because the feature step grows like eta gamma0 and at eta = 0.5 for every
  gamma0 the gamma0 = 5 and 10 networks diverged (first cpu run). Now no seed diverges, but 15
  epochs are short: at gamma0 = 10 (eta = 0.05) both widths stay on the initial plateau (test
  MSE 0.97-0.99), so its rows are inconclusive (the check marks a gamma0 whose mean test MSE
  stays above 0.95 at both widths); at gamma0 = 5 (eta = 0.1) only some N = 64 seeds have left
  it (MSE 0.95 vs 0.98; accuracy 0.55 vs 0.44), so its test-MSE `pass` compares two barely
  trained widths and is weak evidence. (A probe at eta = 0.4 for gamma0 = 5 left the plateau
  after about 6 epochs and then diverged for one of two seeds.) At gamma0 = 1 (eta = 0.5) the
  networks learn (accuracy 0.95 at N = 64, 0.88 at N = 128, test MSE 0.80 and 0.87) and the
  test error *fails* width independence (0.053 vs 0.123, difference 0.07 > 0.05): the narrower
  networks leave the plateau sooner, as expected while training is still in its
  early phase, where escaping the plateau depends on finite-width fluctuations (our reading, not a
  THEORY.md fact). This is not the paper's regime (30 epochs on CIFAR-10 at N = 250,
  500, far past the plateau); test MSE and alignment are inconclusive with 6 seeds. Open items:
  more epochs (or a learning-rate schedule for large gamma0), wider networks on a GPU.
- **Appendix.** The cpu size runs T = 50 steps of eta = 0.3 (the same horizon t = 15 as the
  paper's T = 200, eta = 0.075) with 1,000 Monte Carlo samples; kernels pass, the loss residuals
  are inconclusive because the final losses are small and noisy across seeds.
"""
