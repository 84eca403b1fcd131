"""The optimised linear DMFT solver against a plain whole-trajectory evaluation (docs/theory.md section 4).

The reference below implements section 4 literally, with nothing the solver uses for speed: full
operators ``C^l`` ((T+1) P_all x (T+1)) and ``D^l`` ((T+1) x (T+1) P_all) in the original
(unrescaled) variables, dense ``(I - C D)^{-1}`` and ``(I - D C)^{-1}`` of size (T+1) P_all and
T+1, no separability of ``D``, no time marching and no push-through identities; the fixed point in
``Delta`` is found by Picard iteration over the whole trajectory (each pass makes at least one more
time row exact, by causality, so T + 2 passes reach it). Tiny problems only.
"""

from __future__ import annotations

import pytest
import torch

from theory import Problem, gaussian_data, solve


def plain_linear_dmft(prob: Problem, *, gia: bool, exact: bool) -> dict:
    L, m, Pa, P = prob.depth, prob.steps + 1, prob.n_points, prob.n_train
    n, g0, c = m * Pa, prob.gamma0, prob.eta * prob.gamma0 / P
    kx, y = prob.kx, prob.y_train
    f64 = dict(dtype=torch.float64)
    causal = torch.tril(torch.ones(m, m, **f64), -1)  # [s < k]
    H0 = kx[None, :, None, :].expand(m, Pa, m, Pa).reshape(n, n)
    ones = torch.ones(m, m, **f64)
    H = [H0] * (L + 1)
    G = [ones] * (L + 2)
    A = [torch.zeros(n, m, **f64)] * (L + 1)
    B = [torch.zeros(m, n, **f64)] * (L + 1)  # B[L] = 0 stays
    delta = y.expand(m, P).clone()  # first guess: f = 0
    # Every coupling is strictly causal in time except the equal-time chains across layers
    # (G^l <- G^{l+1}, H^l <- H^{l-1}, f <- both), so L + 2 passes of the whole map make one more
    # time row exact. Rows not yet exact hold the last exact row's Delta (the plain Picard iterate
    # can overflow there before it settles; by causality they never feed the exact rows).
    for it in range((m + 1) * (L + 2)):
        dfull = torch.zeros(m, Pa, **f64)
        dfull[:, :P] = delta
        for l in range(1, L + 1):
            # C^l(k,mu; s) = A^{l-1} + c [s<k] sum_nu H^{l-1}(k,mu; s,nu) Delta_nu(s)
            Hp = H[l - 1].reshape(m, Pa, m, Pa)
            C = c * torch.einsum("kasb,sb->kas", Hp, dfull) * causal[:, None, :]
            if not gia:
                C = C + A[l - 1].reshape(m, Pa, m)
            C = C.reshape(n, m)
            # D^l(k; s,nu) = B^l + c [s<k] G^{l+1}(k,s) Delta_nu(s)
            D = c * (G[l + 1] * causal)[:, :, None] * dfull[None, :, :]
            if not gia:
                D = D + B[l].reshape(m, m, Pa)
            D = D.reshape(m, n)
            Minv = torch.linalg.inv(torch.eye(n, **f64) - C @ D)
            Qinv = torch.linalg.inv(torch.eye(m, **f64) - D @ C)
            A[l] = Minv @ C
            B[l - 1] = Qinv @ D
            H[l] = Minv @ H[l - 1] @ Minv.T + A[l] @ G[l + 1] @ A[l].T
            G[l] = Qinv @ G[l + 1] @ Qinv.T + B[l - 1] @ H[l - 1] @ B[l - 1].T
        hd = [torch.diagonal(H[l].reshape(m, Pa, m, Pa), dim1=0, dim2=2).permute(2, 0, 1) for l in range(L + 1)]
        ntk = sum(torch.diagonal(G[l + 1])[:, None, None] * hd[l] for l in range(L + 1))
        if exact:
            # f~ = <h^L g^L> / gamma0 at equal times, h = (I-CD)^{-1}(u + C r), g = (I-DC)^{-1}(r + D u)
            X = (Minv @ H[L - 1] @ B[L - 1].T + A[L] @ G[L + 1] @ Qinv.T) / g0
            f = torch.diagonal(X.reshape(m, Pa, m), dim1=0, dim2=2).T
            if gia and L > 1:
                # GIA drops the responses through which layers 0..L-2 reach the output; their
                # NTK terms enter first-order instead (theory/linear/solver.py, output update)
                k_low = sum(torch.diagonal(G[l + 1])[:, None, None] * hd[l] for l in range(L - 1))
                steps = prob.eta / P * torch.einsum("kab,kb->ka", k_low[:, :, :P], delta)
                f = f + torch.cat([torch.zeros(1, Pa, **f64), torch.cumsum(steps, 0)[:-1]])
        else:
            steps = prob.eta / P * torch.einsum("kab,kb->ka", ntk[:, :, :P], delta)
            f = torch.cat([torch.zeros(1, Pa, **f64), torch.cumsum(steps, 0)[:-1]])
        r = min(it // (L + 2), m - 1)
        delta = (y - f[:, :P])[torch.clamp(torch.arange(m), max=r)]
    return dict(f=f, loss=(delta**2).mean(-1), ntk=ntk, H=H, G=G, A=A, B=B)


def _close(a, b, tol=1e-10):
    scale = max(1.0, float(b.abs().max()))
    assert float((a - b).abs().max()) <= tol * scale


@pytest.mark.parametrize("scheme", ["dmft", "gia"])
@pytest.mark.parametrize("update", ["exact", "first_order"])
@pytest.mark.parametrize("depth", [1, 3])
def test_solver_equals_plain_whole_trajectory_evaluation(scheme, update, depth):
    x, y, xt, yt = gaussian_data(3, 5, 2, seed=7)
    prob = Problem(x, y, xt, yt, depth=depth, activation="linear", gamma0=1.5, eta=0.1, steps=7)
    sol = solve(prob, scheme=scheme, update=update, strict=True)
    ref = plain_linear_dmft(prob, gia=scheme == "gia", exact=update == "exact")
    m, Pa = prob.steps + 1, prob.n_points
    _close(sol.f_train, ref["f"][:, :3])
    _close(sol.f_test, ref["f"][:, 3:])
    _close(sol.loss, ref["loss"])
    _close(sol.ntk, ref["ntk"])
    for l in range(depth):
        _close(sol.phi[l], ref["H"][l + 1].reshape(m, Pa, m, Pa))
        _close(sol.g[l][:, 0, :, 0], ref["G"][l + 1])
        if scheme == "dmft":
            native = sol.info["linear_responses"]
            _close(native["a"][l], ref["A"][l + 1].reshape(m, Pa, m))
            _close(native["b"][l], ref["B"][l].reshape(m, m, Pa))
            if l >= 1:  # the common layout (theory.Solution): A^l spread over nu, B^l over mu
                _close(sol.response_a[l - 1].sum(-1), ref["A"][l].reshape(m, Pa, m))
                for mu in range(Pa):
                    _close(sol.response_b[l - 1][:, mu], ref["B"][l].reshape(m, m, Pa))
    # the comparison covers real feature learning: far from the lazy (gamma0 -> 0) answer
    lazy = solve(prob.replace(gamma0=1e-4), scheme=scheme, update=update)
    assert float((sol.loss - lazy.loss).abs().max()) > 1e-3 * float(sol.loss[0])


def test_torch_and_numpy_march_backends_agree():
    """The march runs on NumPy for float eps on the CPU, on torch otherwise (GPU, dual eps)."""
    from theory.linear import march

    x, y, xt, yt = gaussian_data(4, 6, 2, seed=8)
    prob = Problem(x, y, xt, yt, depth=3, activation="linear", gamma0=1.5, eta=0.1, steps=9)
    kw = dict(depth=3, eps=2.25, a=0.1 / 4, steps=9, gia=False, exact_update=True, blowup=1e8)
    a = march(prob.kx, prob.y_train, backend="numpy", **kw)
    b = march(prob.kx, prob.y_train, backend="torch", **kw)
    for name in ("delta", "f", "ntk"):
        _close(getattr(a, name), getattr(b, name), 1e-13)
    for name in ("A", "U", "G", "Psi", "psi", "bh"):
        for u, v in zip(getattr(a, name), getattr(b, name)):
            if u is not None:
                _close(u, v, 1e-13)


def test_forward_mode_derivative_in_eps_matches_finite_differences():
    """The dual-number path of the march and assembly (used at eps = 0 by theory.linear.perturbative)
    also at eps != 0: d q / d eps against a central difference of plain solves."""
    import torch.autograd.forward_ad as fwAD

    from theory.linear import core

    x, y, xt, yt = gaussian_data(3, 5, 2, seed=9)
    prob = Problem(x, y, xt, yt, depth=3, activation="linear", gamma0=1.0, eta=0.1, steps=6)
    e0, h = 1.2, 1e-4
    kw = dict(gia=False, exact_update=True, dtype=torch.float64, device="cpu")
    with fwAD.dual_level():
        out = core(prob, fwAD.make_dual(torch.tensor(e0, dtype=torch.float64), torch.tensor(1.0, dtype=torch.float64)), **kw)
        d_loss = fwAD.unpack_dual(out["loss"]).tangent.clone()
        d_H = [fwAD.unpack_dual(out["H"][l]).tangent.clone() for l in range(1, 4)]
    hi, lo = core(prob, e0 + h, **kw), core(prob, e0 - h, **kw)
    _close(d_loss, (hi["loss"] - lo["loss"]) / (2 * h), 1e-6)
    for l in range(1, 4):
        _close(d_H[l - 1], (hi["H"][l] - lo["H"][l]) / (2 * h), 1e-6)
    assert float(d_H[2].abs().max()) > 1e-2  # a real dependence on eps
