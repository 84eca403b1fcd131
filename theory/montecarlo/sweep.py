"""One sweep of the Monte Carlo loop: every layer's pass, then the sample output (docs/theory.md
section 2, "The alternating Monte Carlo solver", step 2).

A layer pass draws the sources from the current kernels, steps the fields forward in time for
all samples at once (``theory.montecarlo.fields``), estimates ``Phi^l``, ``G^l`` with control variates
(``theory.montecarlo.control``), on a refresh the responses by pathwise Jacobians
(``theory.montecarlo.jacobians``), and at the top layer the one-direction tangent along ``r^L`` that gives
the network output (``theory.montecarlo.outputs``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch

from .control import Linearization, estimate_kernels
from .fields import coupling, solve_fields, tangent_fields
from .jacobians import split_half_jacobians
from .outputs import first_order_output, ntk_over_time, sample_output
from .responses import ResponseBook
from .sampling import draw, symmetric_sqrt
from .setup import Iterate, Setup


@dataclass
class SweepOut:
    """New estimates of one sweep: phi, g (L of (n, n)); se: split-half se per layer
    ``[se_phi^1, se_g^1, ...]`` (absolute); se_out: that of ``<d phi(h^L) / d r^L>``; f (t1, pa)
    the sample output; remainder: largest Mehler truncation bound met."""

    phi: list = field(default_factory=list)
    g: list = field(default_factory=list)
    se: list = field(default_factory=list)
    se_out: float = 0.0
    f: torch.Tensor | None = None
    remainder: float = 0.0


class Sweeper:
    """Runs sweeps for one :class:`Setup`; keeps the linearized control variates between sweeps.

    samples / response_samples: full sample counts; control_variate: "linearized", "lazy" or
    "none"; gauss_seidel: layer l sees this sweep's ``Phi^{l-1}`` and ``A^{l-1}``; gia: no
    responses (GIA's exact update adds the lower layers first-order, see ``theory.linear``).
    """

    def __init__(self, setup: Setup, *, samples: int, response_samples: int, control_variate: str,
                 gauss_seidel: bool, gia: bool, generator: torch.Generator) -> None:
        self.s = setup
        self.samples, self.response_samples = samples, response_samples
        self.control_variate, self.gauss_seidel, self.gia = control_variate, gauss_seidel, gia
        self.gen = generator
        self.lins: list = [None] * setup.depth
        self.timing = {"sampling": 0.0, "fields": 0.0, "kernels": 0.0, "responses": 0.0}

    def sweep(self, state: Iterate, book: ResponseBook, frac: float) -> SweepOut:
        """All layers bottom-up with ``frac`` of the samples, then the sample output."""
        s = self.s
        s_it = max(4, int(round(frac * self.samples)))
        s_r = max(1, int(round(frac * self.response_samples)))
        delta_vec = torch.zeros(s.t1, s.pa, dtype=s.kx.dtype, device=s.kx.device)
        delta_vec[:, : s.p] = state.delta
        delta_vec = delta_vec.reshape(s.n)
        out = SweepOut()
        for l in range(1, s.depth + 1):
            this_sweep = self.gauss_seidel and l >= 2
            phi_below = None if l == 1 else (out.phi[l - 2] if this_sweep else state.phi[l - 2])
            a_out = self._layer(l, state, book, out, phi_below, book.a_below(l, this_sweep),
                                delta_vec, s_it, s_r)
        out.f = sample_output(a_out, out.phi[-1], state.delta, s.gamma0, s.eta, s.t1, s.pa, s.p)
        if self.gia and s.depth > 1:  # lower layers first-order (see theory.linear)
            low = ntk_over_time(out.phi, out.g, s.kx, s.t1, s.pa, top=s.depth - 2)
            out.f = out.f + first_order_output(low, state.delta, s.eta)
        return out

    def _layer(self, l, state, book, out, phi_below, a_below, delta_vec, s_it, s_r):
        """One layer's pass; appends to ``out``; returns ``<d phi(h^L)/d r^L>`` (t1, pa) at l = L."""
        s, act, top = self.s, self.s.act, l == self.s.depth
        tic = time.perf_counter()
        fu = s.f_x if l == 1 else symmetric_sqrt(phi_below)
        fr = s.f_one if top else symmetric_sqrt(state.g[l])
        u, _ = draw(fu, s_it, self.gen)
        r, _ = draw(fr, s_it, self.gen)
        c = coupling(a_below, s.kx_full if l == 1 else phi_below, delta_vec, s.scale, s.pa)
        d = coupling(book.b_at(l), s.ones_nn if top else state.g[l], delta_vec, s.scale, s.pa)
        tic = self._tick("sampling", tic)
        h, z, g, ph = solve_fields(u, r, c, d, act, s.pa)
        tic = self._tick("fields", tic)
        est = estimate_kernels(act, u, r, ph, g, fu @ fu.T, fr @ fr.T, self.lins[l - 1],
                               self.control_variate, weight=s.active)
        out.phi.append(est.phi)
        out.g.append(est.g)
        out.se += [est.se_phi, est.se_g]
        out.remainder = max(out.remainder, est.remainder)
        tic = self._tick("kernels", tic)
        if book.refreshed:
            ja, jb, jx, se_a, se_b = split_half_jacobians(
                h[:s_r], z[:s_r], c, d, act, s.pa, u=u[:s_r], r=r[:s_r],
                a_cv=None if est.a_y is None else est.a_y[:s_r], e_aa=est.e_dphi, weight=s.active)
            book.record(l, ja, jb, se_a, se_b, s.change)
            if self.control_variate == "linearized":
                self.lins[l - 1] = Linearization.from_responses(c, d, ja, jb, jx)
        a_out = self._output_tangent(h, z, c, d, est, out) if top else None
        self._tick("responses", tic)
        return a_out

    def _output_tangent(self, h, z, c, d, est, out):
        """``<d phi(h^L) / d r^L>`` (t1, pa) over all samples, with its split-half se in ``out``."""
        s, act = self.s, self.s.act
        _, dphi_r = tangent_fields(None, torch.ones_like(h), act.dphi(h), act.ddphi(h) * z, c, d, s.pa)
        if est.a_y is not None:
            # first-order tangent a_y o (C a_y), a_y = phi'(Jhu u): mean exactly
            # sum_s C(k,s) E[a_y(k) a_y(s)] (theory.montecarlo.control)
            au = est.a_y
            dphi_r = dphi_r - au * (au @ c.T) + (c * est.e_dphi).sum(1)[None, :]
        half = dphi_r.shape[0] // 2
        diff = (dphi_r[:half].mean(0) - dphi_r[half:].mean(0)).reshape(s.t1, s.pa)
        if s.frozen:
            diff = diff * s.active_t
        out.se_out = float(diff.norm()) / 2.0
        return dphi_r.mean(0).reshape(s.t1, s.pa)

    def _tick(self, phase: str, tic: float) -> float:
        now = time.perf_counter()
        self.timing[phase] += now - tic
        return now
