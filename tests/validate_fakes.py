"""Shared fakes for the validate tests: solvers and trainers whose truth is known by construction."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from theory import solve
from validate.power import scale_kernels
from validate.synthetic import synthetic_trainer

#: Planted relative kernel error of each scheme: a_s * gamma0**2 (dmft exact).
PLANTED = {"dmft": 0.0, "ntk": 0.04, "gia": 0.015, "perturbative": 0.01}


def fake_solver(problem, scheme="dmft", **_):
    """The lazy solution, with every kernel of scheme ``s`` scaled by 1 + PLANTED[s] gamma0^2."""
    sol = solve(problem, "ntk")
    return dataclasses.replace(scale_kernels(sol, 1 + PLANTED[str(scheme)] * problem.gamma0**2), scheme=str(scheme))


def truth(problem):
    """What the synthetic networks converge to: the fake dmft solution."""
    return fake_solver(problem, "dmft")


def fake_trainer(noise=1.0, bias=1.0):
    return synthetic_trainer(truth, noise=noise, bias=bias)


