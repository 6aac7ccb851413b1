"""Truncated count distributions used by the single-source estimators.

Each family gives, for a vector of counts ``y ≥ 1`` and linear predictors ``eta`` (one
column per distribution parameter: λ first, then ω or α), the zero-truncated log pmf, its
first and second derivatives in ``eta``, and the probability ``p`` of being observed at all
(one minus the untruncated probability of zero) that the Horvitz–Thompson estimator divides
by. Parameterisations follow singleRcapture (Tyszka, Beręsewicz & Chlebicki) so results can
be compared number for number:

* λ is the untruncated mean with a log link; ω (one-inflation) has a logit link; α (negative
  binomial dispersion, variance λ + αλ²) has a log link.
* ``oizt*`` — one-inflated, then zero-truncated (Godwin & Böhning 2017): the extra ones are
  part of the untruncated distribution, so ``p = 1 − (1 − ω)·P(0)``.
* ``ztoi*`` — zero-truncated, then one-inflated: the extra ones are added after truncation,
  so ``p = 1 − P(0)`` as in the plain truncated model.

Log-likelihoods are written with complex-safe numpy/scipy functions so that families without
hand-written derivatives get exact first derivatives by complex-step differentiation and
second derivatives by central differences of those (error about 1e-10).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy.special import digamma, gammaln, lambertw, loggamma, polygamma

_CSTEP = 1e-20  # complex step
_FSTEP = 1e-5  # finite-difference step for second derivatives


def _expit(x):
    return 1.0 / (1.0 + np.exp(-x))


def _log1mexp(x):
    """log(1 − e^{−x}) for x > 0, complex-safe."""
    return np.log(-np.expm1(-x))


# ---------------------------------------------------------------- analytic derivative algebra
# A "term" is (value, gradient (n,2), Hessian (n,2,2)) of a log-quantity in (eta_1, eta_2).


def _sum(*terms):
    return (sum(t[0] for t in terms), sum(t[1] for t in terms), sum(t[2] for t in terms))


def _neg(t):
    return (-t[0], -t[1], -t[2])


def _logsumexp2(a, b):
    """log(e^a + e^b) with its derivatives."""
    m = np.maximum(a[0], b[0])
    ea, eb = np.exp(a[0] - m), np.exp(b[0] - m)
    value = m + np.log(ea + eb)
    sa = ea / (ea + eb)
    sb = 1.0 - sa
    grad = sa[:, None] * a[1] + sb[:, None] * b[1]
    outer = lambda g: g[:, :, None] * g[:, None, :]  # noqa: E731
    hess = (
        sa[:, None, None] * (a[2] + outer(a[1]))
        + sb[:, None, None] * (b[2] + outer(b[1]))
        - outer(grad)
    )
    return value, grad, hess


def _log1m(b):
    """log(1 − e^b) for b < 0, with its derivatives."""
    eb = np.exp(b[0])
    value = np.log(-np.expm1(b[0]))
    r = eb / -np.expm1(b[0])
    outer = b[1][:, :, None] * b[1][:, None, :]
    return (
        value,
        -r[:, None] * b[1],
        -r[:, None, None] * b[2] - (r * (1 + r))[:, None, None] * outer,
    )


def _term(value, d1=None, d2=None, d11=None, d12=None, d22=None):
    n = len(value)
    grad = np.zeros((n, 2))
    hess = np.zeros((n, 2, 2))
    for j, d in enumerate((d1, d2)):
        if d is not None:
            grad[:, j] = d
    for (a, b), d in zip(((0, 0), (0, 1), (1, 1)), (d11, d12, d22), strict=True):
        if d is not None:
            hess[:, a, b] = d
            hess[:, b, a] = d
    return value, grad, hess


class CountFamily:
    """A zero-truncated count distribution with one or two linear predictors."""

    name: str = ""
    description: str = ""
    predictors: tuple[str, ...] = ("lambda",)
    #: True when the family's likelihood uses every count (False: Zelterman/Chao use 1 and 2)
    uses_all_counts: bool = True
    #: the model in one line, for the result's ``extra``
    parameterisation: str = ""

    # ---------------------------------------------------------------- to implement
    def loglik(self, y: np.ndarray, eta: np.ndarray) -> np.ndarray:
        """Log pmf of y under the zero-truncated model, per unit (complex-safe in eta)."""
        raise NotImplementedError

    def p_observed(self, eta: np.ndarray) -> np.ndarray:
        """P(Y > 0) under the untruncated model (complex-safe in eta)."""
        raise NotImplementedError

    def start(self, y: np.ndarray, w: np.ndarray) -> list[float]:
        """Starting intercepts, one per predictor."""
        ybar = float(np.sum(w * y) / np.sum(w))
        return [np.log(max(2.0 * (ybar - 1.0), 0.05))] + [0.0] * (len(self.predictors) - 1)

    # ---------------------------------------------------------------- generic machinery
    def fit_mask(self, y: np.ndarray) -> np.ndarray:
        return np.ones(len(y), dtype=bool)

    def lambda_(self, eta: np.ndarray) -> np.ndarray:
        return np.exp(eta[:, 0])

    def parameters(self, eta: np.ndarray) -> dict[str, np.ndarray]:
        """Natural parameters for reporting."""
        return {"lambda": self.lambda_(eta)}

    def evaluate(self, y, eta):
        """(loglik, gradient (n,k), Hessian (n,k,k)) per unit in eta."""
        ll = np.real(self.loglik(y, eta))
        grad = self._grad(y, eta)
        k = eta.shape[1]
        hess = np.empty((len(y), k, k))
        for col in range(k):
            up = eta.copy()
            up[:, col] += _FSTEP
            down = eta.copy()
            down[:, col] -= _FSTEP
            hess[:, :, col] = (self._grad(y, up) - self._grad(y, down)) / (2 * _FSTEP)
        hess = 0.5 * (hess + hess.transpose(0, 2, 1))
        return ll, grad, hess

    def _grad(self, y, eta):
        k = eta.shape[1]
        out = np.empty((len(y), k))
        for col in range(k):
            shifted = eta.astype(complex)
            shifted[:, col] += 1j * _CSTEP
            out[:, col] = np.imag(self.loglik(y, shifted)) / _CSTEP
        return out

    def population_terms(self, y, eta):
        """Horvitz–Thompson terms per unit: N_i, dN_i/deta (n,k) and Var term (1−p)/p²."""
        p = np.real(self.p_observed(eta))
        k = eta.shape[1]
        dp = np.empty((len(y), k))
        for col in range(k):
            shifted = eta.astype(complex)
            shifted[:, col] += 1j * _CSTEP
            dp[:, col] = np.imag(self.p_observed(shifted)) / _CSTEP
        return 1.0 / p, -dp / p[:, None] ** 2, (1.0 - p) / p**2

    def population_size_terms(self, y, eta):
        """N_i only (fast path for the bootstrap)."""
        return 1.0 / np.real(self.p_observed(eta))

    def truncated_pmf(self, k: np.ndarray, eta: np.ndarray) -> np.ndarray:
        """P(Y = k | Y > 0) for every unit (rows) and count (columns)."""
        n = eta.shape[0]
        kk = np.broadcast_to(np.asarray(k, dtype=float)[None, :], (n, len(k)))
        rep = np.repeat(eta, len(k), axis=0)
        return np.exp(np.real(self.loglik(kk.reshape(-1), rep))).reshape(n, len(k))

    def info_weight(self, eta: np.ndarray) -> np.ndarray | None:
        """Expected information per unit in eta (single-predictor families), for Firth."""
        return None

    #: families whose likelihood depends on each pattern's counts only through a few sums
    #: implement ``sufficient`` and ``evaluate_patterns`` (the fast path of the fitter)
    def sufficient(self, y, w, pattern, n_patterns):
        return None

    def evaluate_patterns(self, stats, eta_p):
        raise NotImplementedError

    def saturated_loglik(self, y: np.ndarray) -> np.ndarray | None:
        """Log-likelihood per unit of the saturated model (one parameter per count), the
        reference of the deviance; None when the family has no deviance."""
        return None


# ------------------------------------------------------------------------------ Poisson
class ZTPoisson(CountFamily):
    name = "ztpoisson"
    short, label = "poisson", "Poisson"
    description = "zero-truncated Poisson"
    parameterisation = (
        "P(y|y>0) = Pois(y; λ)/(1 − e^{−λ}); log λ = xβ + offset; N̂ = Σ 1/(1 − e^{−λ})"
    )
    parameterisation_oizt = (
        "one-inflated then zero-truncated Poisson: (ω·1{y=1} + (1−ω)Pois(y))/(1 − (1−ω)e^{−λ}); "
        "N̂ = Σ 1/(1 − (1−ω)e^{−λ})"
    )
    parameterisation_ztoi = (
        "zero-truncated then one-inflated Poisson: ω·1{y=1} + (1−ω)Pois(y)/(1−e^{−λ}); "
        "N̂ = Σ 1/(1 − e^{−λ})"
    )

    def untruncated_logpmf(self, y, eta):
        """Untruncated log pmf and log P(0) (complex-safe), for the one-inflated wrapper."""
        lam = np.exp(eta[:, 0])
        return y * eta[:, 0] - lam - gammaln(y + 1), -lam

    def untruncated_term(self, y, eta):
        """log f(y) untruncated with its derivatives in (log λ, ·)."""
        lam = np.exp(eta[:, 0])
        return _term(y * eta[:, 0] - lam - gammaln(y + 1), y - lam, None, -lam)

    def saturated_loglik(self, y):
        # the saturated λ solves λ/(1 − e^{−λ}) = y; solved once per distinct count
        ys, inverse = np.unique(y, return_inverse=True)
        lam_u = np.where(ys > 1, ys + np.real(lambertw(-ys * np.exp(-ys))), 1.0)
        lam_s = lam_u[inverse]
        return np.where(
            y > 1, y * np.log(lam_s) - lam_s - np.log(-np.expm1(-lam_s)) - gammaln(y + 1), 0.0
        )

    def loglik(self, y, eta):
        lam = np.exp(eta[:, 0])
        return y * eta[:, 0] - lam - _log1mexp(lam) - gammaln(y + 1)

    def p_observed(self, eta):
        return -np.expm1(-np.exp(eta[:, 0]))

    @staticmethod
    def _mean_var(lam):
        p = -np.expm1(-lam)
        mu = lam / p
        small = lam < 1e-4
        excess = np.where(small, lam / 2 - lam**2 / 12, 1.0 + lam - mu)
        return mu, mu * excess

    def evaluate(self, y, eta):
        e = eta[:, 0]
        lam = np.exp(e)
        mu, var = self._mean_var(lam)
        ll = y * e - lam - np.log(-np.expm1(-lam)) - gammaln(y + 1)
        return ll, (y - mu)[:, None], (-var)[:, None, None]

    def info_weight(self, eta):
        return self._mean_var(np.exp(eta[:, 0]))[1]

    def sufficient(self, y, w, pattern, n_patterns):
        W = np.bincount(pattern, weights=w, minlength=n_patterns)
        S = np.bincount(pattern, weights=w * y, minlength=n_patterns)
        return W, S, float(np.sum(w * gammaln(y + 1)))

    def truncated_pmf(self, k, eta):
        lam = np.exp(eta[:, 0])[:, None]
        kk = np.asarray(k, dtype=float)[None, :]
        return np.exp(kk * eta[:, [0]] - lam - gammaln(kk + 1) - np.log(-np.expm1(-lam)))

    def evaluate_patterns(self, stats, eta_p):
        W, S, const = stats
        e = eta_p[:, 0]
        lam = np.exp(e)
        mu, var = self._mean_var(lam)
        ll = float(S @ e - W @ (lam + np.log(-np.expm1(-lam)))) - const
        return ll, S - W * mu, -W * var

    def population_terms(self, y, eta):
        lam = np.exp(eta[:, 0])
        p = -np.expm1(-lam)
        # dN/deta = −(dp/deta)/p², dp/deta = λ e^{−λ}
        return 1.0 / p, (-lam * np.exp(-lam) / p**2)[:, None], np.exp(-lam) / p**2


# ------------------------------------------------------------------------------ geometric
class ZTGeometric(CountFamily):
    name = "ztgeom"
    short, label = "geom", "geometric"
    description = "zero-truncated geometric"
    parameterisation = "P(y|y>0) = λ^{y−1}/(1+λ)^y; log λ = xβ + offset; N̂ = Σ (1+λ)/λ"
    parameterisation_oizt = "one-inflated then zero-truncated geometric; N̂ = Σ 1/(1 − (1−ω)/(1+λ))"
    parameterisation_ztoi = "zero-truncated then one-inflated geometric; N̂ = Σ (1+λ)/λ"

    def untruncated_logpmf(self, y, eta):
        """Untruncated log pmf and log P(0) (complex-safe), for the one-inflated wrapper."""
        log1p_lam = np.log1p(np.exp(eta[:, 0]))
        return y * eta[:, 0] - (y + 1) * log1p_lam, -log1p_lam

    def untruncated_term(self, y, eta):
        """log f(y) untruncated with its derivatives in (log λ, ·)."""
        lam = np.exp(eta[:, 0])
        frac = lam / (1 + lam)
        return _term(
            y * eta[:, 0] - (y + 1) * np.log1p(lam),
            y - (y + 1) * frac,
            None,
            -(y + 1) * frac / (1 + lam),
        )

    def saturated_loglik(self, y):
        ym1 = np.maximum(y - 1, 1e-300)
        return np.where(y > 1, (y - 1) * np.log(ym1) - y * np.log(y), 0.0)

    def start(self, y, w):
        ybar = float(np.sum(w * y) / np.sum(w))
        return [np.log(max(ybar - 1.0, 0.05))]

    def loglik(self, y, eta):
        return (y - 1) * eta[:, 0] - y * np.log1p(np.exp(eta[:, 0]))

    def p_observed(self, eta):
        return _expit(eta[:, 0])

    def evaluate(self, y, eta):
        e = eta[:, 0]
        lam = np.exp(e)
        ll = (y - 1) * e - y * np.log1p(lam)
        return (
            ll,
            ((y - 1) - y * lam / (1 + lam))[:, None],
            (-y * lam / (1 + lam) ** 2)[:, None, None],
        )

    def info_weight(self, eta):
        lam = np.exp(eta[:, 0])
        return lam / (1 + lam)

    def sufficient(self, y, w, pattern, n_patterns):
        W = np.bincount(pattern, weights=w, minlength=n_patterns)
        S = np.bincount(pattern, weights=w * y, minlength=n_patterns)
        return W, S

    def evaluate_patterns(self, stats, eta_p):
        W, S = stats
        e = eta_p[:, 0]
        lam = np.exp(e)
        ll = float((S - W) @ e - S @ np.log1p(lam))
        return ll, (S - W) - S * lam / (1 + lam), -S * lam / (1 + lam) ** 2


# ------------------------------------------------------------------------------ negative binomial
class ZTNegBin(CountFamily):
    name = "ztnegbin"
    description = "zero-truncated negative binomial"
    parameterisation = (
        "NB with mean λ and variance λ + αλ², truncated at 0; N̂ = Σ 1/(1 − (1+αλ)^{−1/α})"
    )
    predictors = ("lambda", "alpha")

    def parameters(self, eta):
        return {"lambda": np.exp(eta[:, 0]), "alpha": np.exp(eta[:, 1])}

    def loglik(self, y, eta):
        lam = np.exp(eta[:, 0])
        alpha = np.exp(eta[:, 1])
        inv = 1.0 / alpha
        al = alpha * lam
        log_p0 = -inv * np.log1p(al)
        untrunc = (
            loggamma(y + inv)
            - loggamma(inv)
            - gammaln(y + 1)
            + log_p0
            + y * (np.log(al) - np.log1p(al))
        )
        return untrunc - np.log(-np.expm1(log_p0))

    def p_observed(self, eta):
        lam = np.exp(eta[:, 0])
        alpha = np.exp(eta[:, 1])
        return -np.expm1(-np.log1p(alpha * lam) / alpha)

    @staticmethod
    def _log_pmf(y, eta):
        """log f(y) of the untruncated NB and its derivatives in (log λ, log α)."""
        theta = np.exp(-eta[:, 1])  # 1/α
        log_u = eta[:, 0] + eta[:, 1]  # u = αλ
        log1pu = np.logaddexp(0.0, log_u)
        p = _expit(log_u)  # u/(1+u)
        dg = digamma(y + theta) - digamma(theta)
        tg = polygamma(1, y + theta) - polygamma(1, theta)
        value = (
            gammaln(y + theta) - gammaln(theta) - gammaln(y + 1) + y * log_u - (y + theta) * log1pu
        )
        d1 = y - (y + theta) * p
        d2 = -theta * dg + y + theta * log1pu - (y + theta) * p
        d11 = -(y + theta) * p * (1 - p)
        d12 = theta * p - (y + theta) * p * (1 - p)
        d22 = (
            theta * dg + theta**2 * tg - theta * log1pu + 2 * theta * p - (y + theta) * p * (1 - p)
        )
        return _term(value, d1, d2, d11, d12, d22)

    def evaluate(self, y, eta):
        log_f = self._log_pmf(y, eta)
        log_f0 = self._log_pmf(np.zeros_like(y), eta)
        return _sum(log_f, _neg(_log1m(log_f0)))


# ------------------------------------------------------------------------------ one-inflated
class OneInflated(CountFamily):
    """One-inflation wrapped around a base family (Poisson or geometric) that supplies its
    untruncated log pmf: ``truncate_first=False`` is ``oizt*`` (inflate, then truncate),
    ``True`` is ``ztoi*`` (truncate, then inflate). The wrapper never asks which base it has."""

    predictors = ("lambda", "omega")

    def __init__(self, base: CountFamily, *, truncate_first: bool = False):
        self.base = base
        self.truncate_first = truncate_first
        order = "zero-truncated one-inflated" if truncate_first else "one-inflated zero-truncated"
        then = "truncate, then inflate" if truncate_first else "inflate, then truncate"
        self.name = ("ztoi" if truncate_first else "oizt") + base.short
        self.description = f"{order} {base.label} ({then})"
        self.parameterisation = (
            base.parameterisation_ztoi if truncate_first else base.parameterisation_oizt
        )

    def start(self, y, w):
        share1 = float(np.sum(w * (y == 1)) / np.sum(w))
        omega = np.log(max(share1 * 0.3, 0.01) / (1 - max(share1 * 0.3, 0.01)))
        return [self.base.start(y, w)[0], omega]

    def parameters(self, eta):
        return {"lambda": np.exp(eta[:, 0]), "omega": _expit(eta[:, 1])}

    def loglik(self, y, eta):
        omega = _expit(eta[:, 1])
        log_f, log_p0 = self.base.untruncated_logpmf(y, eta)
        is_one = y == 1
        if self.truncate_first:
            # ω·1{y=1} + (1 − ω)·f(y)/(1 − f(0))
            trunc = log_f - np.log(-np.expm1(log_p0))
            rest = np.log(1 - omega) + trunc
            one = np.log(omega + (1 - omega) * np.exp(trunc))
        else:
            # (ω·1{y=1} + (1 − ω)·f(y)) / (1 − (1 − ω)·f(0))
            denom = np.log(1 - (1 - omega) * np.exp(log_p0))
            rest = np.log(1 - omega) + log_f - denom
            one = np.log(omega + (1 - omega) * np.exp(log_f)) - denom
        return np.where(is_one, one, rest)

    def evaluate(self, y, eta):
        omega = _expit(eta[:, 1])
        n = len(y)
        zero = np.zeros(n)
        log_omega = _term(np.log(omega), None, 1 - omega, None, None, -omega * (1 - omega))
        log_1m_omega = _term(np.log1p(-omega), None, -omega, None, None, -omega * (1 - omega))
        log_f = self.base.untruncated_term(y, eta)
        log_f0 = self.base.untruncated_term(zero, eta)
        if self.truncate_first:
            trunc = _sum(log_f, _neg(_log1m(log_f0)))
            rest = _sum(log_1m_omega, trunc)
            one = _logsumexp2(log_omega, rest)
        else:
            denom = _log1m(_sum(log_1m_omega, log_f0))
            rest = _sum(log_1m_omega, log_f, _neg(denom))
            one = _sum(_logsumexp2(log_omega, _sum(log_1m_omega, log_f)), _neg(denom))
        is_one = y == 1
        return (
            np.where(is_one, one[0], rest[0]),
            np.where(is_one[:, None], one[1], rest[1]),
            np.where(is_one[:, None, None], one[2], rest[2]),
        )

    def p_observed(self, eta):
        _, log_p0 = self.base.untruncated_logpmf(np.zeros(eta.shape[0]), eta)
        if self.truncate_first:
            return -np.expm1(log_p0)
        omega = _expit(eta[:, 1])
        return 1 - (1 - omega) * np.exp(log_p0)


def OIZTPoisson() -> OneInflated:  # noqa: N802 (a family constructor, named like one)
    return OneInflated(ZTPoisson())


def ZTOIPoisson() -> OneInflated:  # noqa: N802
    return OneInflated(ZTPoisson(), truncate_first=True)


def OIZTGeometric() -> OneInflated:  # noqa: N802
    return OneInflated(ZTGeometric())


def ZTOIGeometric() -> OneInflated:  # noqa: N802
    return OneInflated(ZTGeometric(), truncate_first=True)


# ------------------------------------------------------------------------------ Zelterman / Chao
class _OneTwoLogistic(CountFamily):
    """Binomial likelihood of y = 2 among units with y ∈ {1, 2}; λ = 2·exp(eta).

    Under a Poisson with mean λ, P(y = 2 | y ∈ {1, 2}) = (λ/2)/(1 + λ/2): a logistic
    regression with logit = log(λ/2) (Böhning & van der Heijden 2009).
    """

    uses_all_counts = False

    def start(self, y, w):
        f1 = np.sum(w[y == 1]) + 0.5
        f2 = np.sum(w[y == 2]) + 0.5
        return [float(np.log(f2 / f1))]

    def fit_mask(self, y):
        return (y == 1) | (y == 2)

    def lambda_(self, eta):
        return 2.0 * np.exp(eta[:, 0])

    def loglik(self, y, eta):
        z = (y == 2).astype(float)
        return np.where((y == 1) | (y == 2), z * eta[:, 0] - np.log1p(np.exp(eta[:, 0])), 0.0)

    def evaluate(self, y, eta):
        e = eta[:, 0]
        inside = ((y == 1) | (y == 2)).astype(float)
        z = (y == 2).astype(float)
        pi = _expit(e)
        ll = inside * (z * e - np.logaddexp(0.0, e))
        return ll, (inside * (z - pi))[:, None], (-inside * pi * (1 - pi))[:, None, None]

    def info_weight(self, eta):
        pi = _expit(eta[:, 0])
        return pi * (1 - pi)

    def sufficient(self, y, w, pattern, n_patterns):
        W12 = np.bincount(pattern, weights=w * ((y == 1) | (y == 2)), minlength=n_patterns)
        T = np.bincount(pattern, weights=w * (y == 2), minlength=n_patterns)
        return W12, T

    def evaluate_patterns(self, stats, eta_p):
        W12, T = stats
        e = eta_p[:, 0]
        pi = _expit(e)
        ll = float(T @ e - W12 @ np.logaddexp(0.0, e))
        return ll, T - W12 * pi, -W12 * pi * (1 - pi)

    def truncated_pmf(self, k, eta):
        """Zero-truncated Poisson pmf with the fitted λ (for fitted frequencies)."""
        lam = self.lambda_(eta)[:, None]
        kk = np.asarray(k, dtype=float)[None, :]
        return np.exp(kk * np.log(lam) - lam - gammaln(kk + 1) - np.log(-np.expm1(-lam)))

    def p_observed(self, eta):
        return -np.expm1(-2.0 * np.exp(eta[:, 0]))

    def saturated_loglik(self, y):
        return np.zeros_like(y)


class ZeltermanFamily(_OneTwoLogistic):
    """Zelterman regression: λ from the 1-2 logistic fit, HT sum over every observed unit."""

    name = "zelterman"
    description = "Zelterman regression (Horvitz–Thompson with λ fitted on counts 1 and 2)"
    parameterisation = "logit P(y=2 | y∈{1,2}) = log(λ/2) = xβ + offset; N̂ = Σ_all 1/(1 − e^{−λ})"

    def population_terms(self, y, eta):
        lam = self.lambda_(eta)
        p = -np.expm1(-lam)
        return 1.0 / p, (-lam * np.exp(-lam) / p**2)[:, None], np.exp(-lam) / p**2


class ChaoFamily(_OneTwoLogistic):
    """Generalised Chao lower bound (Böhning et al. 2013): n + Σ_{y∈{1,2}} 1/(λ + λ²/2)."""

    name = "chao"
    description = "generalised Chao lower bound (Böhning et al. 2013)"
    parameterisation = (
        "logit P(y=2 | y∈{1,2}) = log(λ/2) = xβ + offset; N̂ = n + Σ_{y∈{1,2}} 1/(λ + λ²/2)"
    )

    def population_terms(self, y, eta):
        lam = self.lambda_(eta)
        in12 = ((y == 1) | (y == 2)).astype(float)
        denom = lam + lam**2 / 2
        n_i = 1.0 + in12 / denom
        # d/deta of 1/(λ + λ²/2) with dλ/deta = λ
        d_n = -in12 * lam * (1 + lam) / denom**2
        # singleRcapture's variance term: (1 − P)(1 + e^{−λ}/P)² with P = P(y ∈ {1,2})
        prob = lam * np.exp(-lam) + lam**2 * np.exp(-lam) / 2
        var = in12 * (1 - prob) * (1 + np.exp(-lam) / prob) ** 2
        return n_i, d_n[:, None], var

    def population_size_terms(self, y, eta):
        lam = self.lambda_(eta)
        in12 = ((y == 1) | (y == 2)).astype(float)
        return 1.0 + in12 / (lam + lam**2 / 2)


#: family name → constructor (the one-inflated ones wrap a base family)
FAMILIES: dict[str, Callable[[], CountFamily]] = {
    "ztpoisson": ZTPoisson,
    "ztgeom": ZTGeometric,
    "ztnegbin": ZTNegBin,
    "oiztpoisson": OIZTPoisson,
    "ztoipoisson": ZTOIPoisson,
    "oiztgeom": OIZTGeometric,
    "ztoigeom": ZTOIGeometric,
    "zelterman": ZeltermanFamily,
    "chao": ChaoFamily,
}
