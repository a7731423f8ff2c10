"""Drift detectors for embeddings: MMD², a domain classifier, per-dimension KS.

Inputs are (n, d) float arrays, one row per span, L2-normalised (as every
:class:`~assay.embedders.Embedder` returns them). Large windows are subsampled to a
stated cap, uniformly without replacement with numpy's PCG64 seeded from
``(seed, purpose)``, so memory stays bounded and a re-run gives the same answer.
docs/drift-detectors.md explains each test, its effect size and its cost.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray
from scipy import optimize, stats
from scipy.special import expit, kolmogorov

from assay.drift.result import Configurable, DriftResult, check_alpha, too_small_note

FloatArray = NDArray[np.float64]
F32Array = NDArray[np.float32]

# Seed streams: one independent generator per purpose, so changing one cap does not
# change the random numbers drawn for another.
_REFERENCE, _CURRENT, _BANDWIDTH, _FEATURES, _PERMUTATIONS, _SPLIT = range(1, 7)
# Rows used to estimate the median-heuristic bandwidth (≈ 500k pairs).
_BANDWIDTH_ROWS = 1000


def _rng(seed: int, purpose: int) -> np.random.Generator:
    if not isinstance(seed, int | np.integer) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    return np.random.default_rng([int(seed), purpose])


def embedding_rows(values: Any, which: str) -> F32Array:
    """An (n, d) float32 array of finite values; raises a clear error otherwise."""
    try:
        arr = np.asarray(values, dtype=np.float32)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{which} must be an (n, d) array of floats: {exc}") from None
    if arr.ndim != 2:
        raise ValueError(f"{which} must be a 2-d (n, d) array of embeddings, got shape {arr.shape}")
    if arr.size and not np.isfinite(arr).all():
        bad = int(np.flatnonzero(~np.isfinite(arr).all(axis=1))[0])
        raise ValueError(f"{which} row {bad} has NaN or inf; drop or re-embed that span")
    return arr


def _pair(reference: Any, current: Any) -> tuple[F32Array, F32Array]:
    x = embedding_rows(reference, "reference")
    y = embedding_rows(current, "current")
    if x.shape[0] and y.shape[0] and x.shape[1] != y.shape[1]:
        raise ValueError(
            f"reference has {x.shape[1]} dimensions and current {y.shape[1]}; "
            "embed both windows with the same model"
        )
    return x, y


def sample_rows(
    rows: F32Array, cap: int, rng: np.random.Generator
) -> tuple[F32Array, NDArray[np.intp] | None]:
    """At most ``cap`` rows, uniformly without replacement (kept in order), and their indices."""
    if rows.shape[0] <= cap:
        return rows, None
    idx = np.sort(rng.choice(rows.shape[0], size=cap, replace=False))
    return rows[idx], idx


def _capped(
    x: F32Array, y: F32Array, cap: int, seed: int, details: dict[str, Any]
) -> tuple[F32Array, F32Array, NDArray[np.intp] | None]:
    if cap < 2:
        raise ValueError(f"max_samples must be at least 2, got {cap}")
    xs, _ = sample_rows(x, cap, _rng(seed, _REFERENCE))
    ys, y_idx = sample_rows(y, cap, _rng(seed, _CURRENT))
    if xs.shape[0] < x.shape[0] or ys.shape[0] < y.shape[0]:
        details["subsample"] = {
            "method": "uniform without replacement, numpy PCG64 seeded by (seed, window)",
            "reference": [int(xs.shape[0]), int(x.shape[0])],
            "current": [int(ys.shape[0]), int(y.shape[0])],
        }
    return xs, ys, y_idx


def _sq_dists(a: FloatArray, b: FloatArray) -> FloatArray:
    d2 = np.sum(a * a, axis=1)[:, None] + np.sum(b * b, axis=1)[None, :] - 2.0 * (a @ b.T)
    out: FloatArray = np.maximum(d2, 0.0)
    return out


def median_bandwidth(pooled: F32Array, seed: int = 0) -> float:
    """Median-heuristic RBF bandwidth σ: the median Euclidean distance between pooled rows.

    Estimated on at most 1,000 rows (a seeded uniform sample); zero distances (duplicate
    rows) are left out, and σ = 1 when every row is the same.
    """
    rows, _ = sample_rows(pooled, _BANDWIDTH_ROWS, _rng(seed, _BANDWIDTH))
    r = rows.astype(np.float64)
    d2 = _sq_dists(r, r)[np.triu_indices(r.shape[0], k=1)]
    d2 = d2[d2 > 1e-12]
    return float(np.sqrt(np.median(d2))) if d2.size else 1.0


# ---------------------------------------------------------------------------- MMD


class _ExactMMD:
    """Unbiased MMD² with the exact RBF kernel matrix (pooled n ≤ exact_max)."""

    def __init__(self, x: F32Array, y: F32Array, sigma: float) -> None:
        pooled = np.vstack([x, y]).astype(np.float64)
        k = np.exp(-_sq_dists(pooled, pooled) / (2 * sigma * sigma))
        np.fill_diagonal(k, 0.0)
        self.k = k
        self.r = k.sum(axis=1)
        self.s = float(self.r.sum())
        self.m, self.n = x.shape[0], y.shape[0]
        self.tol = 1e-10
        self.dtype: type[np.floating[Any]] = np.float64

    def __call__(self, z: FloatArray) -> FloatArray:
        """MMD² for each row of z, a 0/1 matrix (P, m + n) marking the reference rows."""
        a = np.einsum("ij,ij->i", z @ self.k, z)
        zr = z @ self.r
        return _mmd_from_sums(a, zr - a, self.s - 2 * zr + a, self.m, self.n)


class _FourierMMD:
    """Unbiased MMD² with random Fourier features: the kernel φ(x)·φ(y) ≈ RBF.

    φ(x) = sqrt(2/D) cos(W x + b), W ~ N(0, I/σ²), b ~ U[0, 2π) (Rahimi & Recht 2007).
    The estimator is the exact unbiased MMD² for that (random, positive definite) kernel,
    so the permutation test stays exact; only the kernel is approximate.
    """

    def __init__(self, x: F32Array, y: F32Array, sigma: float, n_features: int, seed: int) -> None:
        rng = _rng(seed, _FEATURES)
        d = x.shape[1]
        w = (rng.standard_normal((d, n_features)) / sigma).astype(np.float32)
        b = rng.uniform(0.0, 2 * np.pi, n_features).astype(np.float32)
        phi = np.vstack([x, y]) @ w
        phi += b
        np.cos(phi, out=phi)
        phi *= np.float32(math.sqrt(2.0 / n_features))
        self.phi = phi
        self.q = np.einsum("ij,ij->i", phi, phi, dtype=np.float64)
        self.t = phi.sum(axis=0, dtype=np.float64)
        self.m, self.n = x.shape[0], y.shape[0]
        # Float32 sums carry ~1e-7 relative error: treat closer values as ties.
        self.tol = 1e-6 * float(self.t @ self.t) / (self.m + self.n) ** 2
        self.dtype: type[np.floating[Any]] = np.float32

    def __call__(self, z: NDArray[Any]) -> FloatArray:
        """MMD² for each row of z, a 0/1 matrix (P, m + n) marking the reference rows."""
        sx = (z.astype(np.float32, copy=False) @ self.phi).astype(np.float64)
        sy = self.t - sx
        qx = z.astype(np.float64) @ self.q
        qy = self.q.sum() - qx
        xx = np.einsum("ij,ij->i", sx, sx) - qx
        yy = np.einsum("ij,ij->i", sy, sy) - qy
        xy = np.einsum("ij,ij->i", sx, sy)
        return _mmd_from_sums(xx, xy, yy, self.m, self.n)


def _mmd_from_sums(xx: FloatArray, xy: FloatArray, yy: FloatArray, m: int, n: int) -> FloatArray:
    """Σ_{i≠j} k(x_i,x_j)/(m(m−1)) + Σ_{i≠j} k(y_i,y_j)/(n(n−1)) − 2 Σ k(x_i,y_j)/(mn)."""
    out: FloatArray = xx / (m * (m - 1)) + yy / (n * (n - 1)) - 2.0 * xy / (m * n)
    return out


def _membership(perms: NDArray[np.intp], m: int, size: int) -> FloatArray:
    z = np.zeros((perms.shape[0], size))
    np.put_along_axis(z, perms[:, :m], 1.0, axis=1)
    return z


def random_membership(
    rng: np.random.Generator, k: int, m: int, size: int, dtype: type[np.floating[Any]]
) -> NDArray[Any]:
    """k random label permutations as 0/1 rows, each marking a uniform m-subset of size.

    The m smallest of ``size`` iid uniforms form a uniformly random subset; a partial sort
    finds them in O(size) per row, cheaper than shuffling.
    """
    u = rng.random((k, size))
    kth = np.partition(u, m - 1, axis=1)[:, m - 1 : m]
    z = (u <= kth).astype(dtype)
    ties = np.flatnonzero(z.sum(axis=1) != m)  # equal uniforms: practically never
    for i in ties:
        z[i] = 0
        z[i, rng.permutation(size)[:m]] = 1
    return z


def sequential_p_value(
    observed: float,
    draw: Any,
    *,
    batch: int,
    max_draws: int,
    stop_after: int | None,
    tol: float = 0.0,
) -> tuple[float, int]:
    """Monte Carlo permutation p-value with Besag–Clifford sequential stopping.

    ``draw(k)`` returns k statistics under the null. Stops at the ``stop_after``-th draw
    ≥ observed, at draw L, with p = stop_after / L; otherwise, after ``max_draws`` draws
    with g of them ≥ observed, p = (g + 1) / (max_draws + 1). Both are valid p-values
    (Besag & Clifford 1991); stopping early saves the work when p is clearly large.
    Returns (p, draws used).
    """
    used = hits = 0
    while used < max_draws:
        k = min(batch, max_draws - used)
        ge = np.asarray(draw(k)) >= observed - tol
        if stop_after is not None and hits + int(ge.sum()) >= stop_after:
            at = int(np.flatnonzero(ge)[stop_after - hits - 1]) + 1
            return stop_after / (used + at), used + at
        hits += int(ge.sum())
        used += k
    return (hits + 1) / (used + 1), used


@dataclass(frozen=True, slots=True)
class MMDTest(Configurable):
    """Kernel two-sample test: unbiased MMD² (RBF, median-heuristic σ), permutation p-value.

    Exact kernel matrix when the pooled sample has ≤ ``exact_max`` rows, random Fourier
    features (``n_features``) above; each window capped at ``max_samples`` rows. p-value:
    ``n_permutations`` label permutations, continued in batches of that size up to
    ``max_permutations`` while fewer than ``stop_after`` reach the observed MMD²
    (Besag–Clifford), so a small p-value can be resolved to 1/(max_permutations + 1).
    """

    name: str = "mmd"
    kind: Literal["embedding"] = "embedding"
    min_samples: int = 30
    n_permutations: int = 100
    max_permutations: int = 1000
    stop_after: int | None = 10
    exact_max: int = 2000
    n_features: int = 1024
    max_samples: int = 5000
    alpha: float = 0.05

    def run(self, feature: str, reference: Any, current: Any, *, seed: int = 0) -> DriftResult:
        """MMD² as statistic and effect; verdict ``p <= alpha`` (see :func:`correct`)."""
        check_alpha(self.alpha)
        if self.n_permutations < 1 or self.max_permutations < self.n_permutations:
            raise ValueError(
                "need 1 ≤ n_permutations ≤ max_permutations, got "
                f"{self.n_permutations} and {self.max_permutations}"
            )
        x, y = _pair(reference, current)
        m0, n0 = x.shape[0], y.shape[0]
        details: dict[str, Any] = {}
        if min(m0, n0) < max(self.min_samples, 2):
            return DriftResult(
                feature, self.name, math.nan, None, math.nan, "MMD²", m0, n0,
                note=too_small_note(self.name, max(self.min_samples, 2), m0, n0),
                details=details,
            )  # fmt: skip
        x, y, _ = _capped(x, y, self.max_samples, seed, details)
        m, n = x.shape[0], y.shape[0]
        sigma = median_bandwidth(np.vstack([x, y]), seed)
        engine: _ExactMMD | _FourierMMD
        if m + n <= self.exact_max:
            engine = _ExactMMD(x, y, sigma)
            details["estimator"] = "exact"
        else:
            engine = _FourierMMD(x, y, sigma, self.n_features, seed)
            details["estimator"] = f"random Fourier features (D={self.n_features})"
        observed = float(engine(_membership(np.arange(m + n)[None, :], m, m + n))[0])
        rng = _rng(seed, _PERMUTATIONS)

        def draw(k: int) -> FloatArray:
            return engine(random_membership(rng, k, m, m + n, engine.dtype))

        p, used = sequential_p_value(
            observed, draw, batch=self.n_permutations, max_draws=self.max_permutations,
            stop_after=self.stop_after, tol=engine.tol,
        )  # fmt: skip
        details.update({"bandwidth": sigma, "permutations": used})
        return DriftResult(
            feature, self.name, observed, p, observed, "MMD²", m0, n0,
            drifted=p <= self.alpha, details=details,
        )  # fmt: skip


def mmd_unbiased(reference: Any, current: Any, sigma: float | None = None) -> float:
    """Unbiased MMD² with the exact RBF kernel (σ by median heuristic when not given)."""
    x, y = _pair(reference, current)
    if min(x.shape[0], y.shape[0]) < 2:
        raise ValueError("MMD² needs at least 2 rows in each window")
    s = median_bandwidth(np.vstack([x, y])) if sigma is None else float(sigma)
    engine = _ExactMMD(x, y, s)
    m, n = x.shape[0], y.shape[0]
    return float(engine(_membership(np.arange(m + n)[None, :], m, m + n))[0])


# ---------------------------------------------------------------------------- classifier


def fit_logistic(
    x: FloatArray, labels: NDArray[np.bool_], l2: float, max_iter: int = 100
) -> tuple[FloatArray, float]:
    """L2-penalised logistic regression, classes weighted equally, fitted by L-BFGS.

    Minimises mean weighted log-loss + (l2/2)·|β|² (intercept unpenalised); returns
    (β, intercept). ``x`` should be standardised.
    """
    s = np.where(labels, 1.0, -1.0)
    w = np.where(labels, 0.5 / labels.sum(), 0.5 / (~labels).sum())
    d = x.shape[1]

    def loss(theta: FloatArray) -> tuple[float, FloatArray]:
        margin = s * (x @ theta[:d] + theta[d])
        value = float(w @ np.logaddexp(0.0, -margin)) + 0.5 * l2 * float(theta[:d] @ theta[:d])
        g = -w * s * expit(-margin)
        grad = np.empty(d + 1)
        grad[:d] = x.T @ g + l2 * theta[:d]
        grad[d] = g.sum()
        return value, grad

    res = optimize.minimize(
        loss, np.zeros(d + 1), jac=True, method="L-BFGS-B", options={"maxiter": max_iter}
    )
    theta = np.asarray(res.x, dtype=np.float64)
    return theta[:d], float(theta[d])


def auc_mann_whitney(scores_current: FloatArray, scores_reference: FloatArray) -> float:
    """P(score of a current row > score of a reference row), ties counted half (= U/(mn))."""
    n1, n0 = scores_current.size, scores_reference.size
    ranks = stats.rankdata(np.concatenate([scores_current, scores_reference]))
    u = float(ranks[:n1].sum()) - n1 * (n1 + 1) / 2
    return u / (n1 * n0)


@dataclass(frozen=True, slots=True)
class ClassifierTest(Configurable):
    """Domain classifier: can a model tell current rows from reference rows?

    Each window (capped at ``max_samples``) is split in half at random; an L2 logistic
    regression on standardised embeddings is fitted on one half and scores the other.
    effect = held-out AUC − 0.5 (0 = indistinguishable, 0.5 = perfectly separated);
    p-value: one-sided Mann–Whitney test on the held-out scores (normal approximation
    with tie correction), exact in level because the model never saw those rows.
    """

    name: str = "classifier"
    kind: Literal["embedding"] = "embedding"
    min_samples: int = 50
    max_samples: int = 5000
    l2: float | None = None
    max_iter: int = 100
    n_examples: int = 10
    alpha: float = 0.05

    def run(self, feature: str, reference: Any, current: Any, *, seed: int = 0) -> DriftResult:
        """Held-out AUC as statistic; verdict ``p <= alpha`` (see :func:`correct`)."""
        check_alpha(self.alpha)
        x, y = _pair(reference, current)
        m0, n0 = x.shape[0], y.shape[0]
        details: dict[str, Any] = {}
        need = max(self.min_samples, 4)
        if min(m0, n0) < need:
            return DriftResult(
                feature, self.name, math.nan, None, math.nan, "AUC − 0.5", m0, n0,
                note=too_small_note(self.name, need, m0, n0), details=details,
            )  # fmt: skip
        x, y, y_idx = _capped(x, y, self.max_samples, seed, details)
        m, n = x.shape[0], y.shape[0]
        rng = _rng(seed, _SPLIT)
        px, py = rng.permutation(m), rng.permutation(n)
        tx, hx = px[: m // 2], px[m // 2 :]
        ty, hy = py[: n // 2], py[n // 2 :]
        train = np.vstack([x[tx], y[ty]]).astype(np.float64)
        labels = np.concatenate([np.zeros(tx.size, bool), np.ones(ty.size, bool)])
        mu = train.mean(axis=0)
        sd = train.std(axis=0)
        sd[sd < 1e-12] = 1.0
        l2 = self.l2 if self.l2 is not None else x.shape[1] / train.shape[0]
        beta, b0 = fit_logistic((train - mu) / sd, labels, l2, self.max_iter)
        score_x = ((x[hx] - mu) / sd) @ beta + b0
        score_y = ((y[hy] - mu) / sd) @ beta + b0
        auc = auc_mann_whitney(score_y, score_x)
        p = float(
            stats.mannwhitneyu(score_y, score_x, alternative="greater", method="asymptotic").pvalue
        )
        rows = hy if y_idx is None else y_idx[hy]
        top = np.argsort(-score_y, kind="stable")[: self.n_examples]
        details.update(
            {
                "train": [int(tx.size), int(ty.size)],
                "held_out": [int(hx.size), int(hy.size)],
                "l2": l2,
                "most_current_like": [(int(rows[i]), float(expit(score_y[i]))) for i in top],
            }
        )
        return DriftResult(
            feature, self.name, auc, p, auc - 0.5, "AUC − 0.5", m0, n0,
            drifted=p <= self.alpha, details=details,
        )  # fmt: skip


# ---------------------------------------------------------------------------- per-dim KS


def _sort_keys(a: F32Array) -> NDArray[np.uint32]:
    """uint32 keys that sort like the float32 values (−0.0 and +0.0 equal)."""
    bits = np.ascontiguousarray(a + np.float32(0.0)).view(np.uint32)
    negative = bits >= np.uint32(0x80000000)
    keys: NDArray[np.uint32] = np.where(negative, ~bits, bits | np.uint32(0x80000000))
    return keys


def ks_per_dim(x: F32Array, y: F32Array, chunk: int = 16) -> FloatArray:
    """Two-sample KS D for every column of x (m, d) against y (n, d); exact with ties.

    Per block of columns, both windows' values are sorted together as 64-bit keys
    (float order, low bit = which window); the walk +1/m, −1/n along that order, read at
    the last of each run of equal values, has the KS D as its largest |value|.
    """
    m, n, d = x.shape[0], y.shape[0], x.shape[1]
    out = np.empty(d)
    one = np.uint64(1)
    for s in range(0, d, chunk):
        e = min(d, s + chunk)
        keys = np.empty((e - s, m + n), dtype=np.uint64)
        keys[:, :m] = _sort_keys(x[:, s:e].T)
        keys[:, m:] = _sort_keys(y[:, s:e].T)
        keys <<= one
        keys[:, m:] |= one
        keys.sort(axis=1)
        from_y = (keys & one).astype(np.int64)
        # Integer walk (exact): n per reference value, −m per current value; D = max|walk|/mn.
        walk = np.cumsum(n - from_y * (m + n), axis=1)
        keys >>= one
        last = np.empty(keys.shape, dtype=bool)
        last[:, -1] = True
        np.not_equal(keys[:, 1:], keys[:, :-1], out=last[:, :-1])
        np.abs(walk, out=walk)
        out[s:e] = np.max(walk, axis=1, where=last, initial=0) / (m * n)
    return out


@dataclass(frozen=True, slots=True)
class KSPerDimTest(Configurable):
    """Kolmogorov–Smirnov on every embedding dimension, Bonferroni across dimensions.

    p-value per dimension from Kolmogorov's limit (conservative); the result's p-value is
    the smallest Bonferroni-adjusted one, min(1, d · min p). effect = the largest KS D;
    ``details`` counts dimensions with adjusted p ≤ alpha and lists the top ones.
    """

    name: str = "ks_per_dim"
    kind: Literal["embedding"] = "embedding"
    min_samples: int = 30
    max_samples: int = 50_000
    n_top: int = 5
    alpha: float = 0.05

    def run(self, feature: str, reference: Any, current: Any, *, seed: int = 0) -> DriftResult:
        """Largest per-dimension D as statistic and effect; verdict on the adjusted p."""
        check_alpha(self.alpha)
        x, y = _pair(reference, current)
        m0, n0 = x.shape[0], y.shape[0]
        details: dict[str, Any] = {}
        if min(m0, n0) < max(self.min_samples, 1) or x.shape[1] == 0:
            return DriftResult(
                feature, self.name, math.nan, None, math.nan, "max KS D", m0, n0,
                note=too_small_note(self.name, max(self.min_samples, 1), m0, n0),
                details=details,
            )  # fmt: skip
        x, y, _ = _capped(x, y, self.max_samples, seed, details)
        m, n, d = x.shape[0], y.shape[0], x.shape[1]
        dstat = ks_per_dim(x, y)
        p_adj = np.minimum(1.0, d * kolmogorov(math.sqrt(m * n / (m + n)) * dstat))
        top = np.argsort(-dstat, kind="stable")[: self.n_top]
        best = float(p_adj.min())
        details.update(
            {
                "dims": d,
                "drifted_dims": int((p_adj <= self.alpha).sum()),
                "top_dims": [
                    {"dim": int(j), "D": float(dstat[j]), "p_adjusted": float(p_adj[j])}
                    for j in top
                ],
            }
        )
        big = float(dstat.max())
        return DriftResult(
            feature, self.name, big, best, big, "max KS D", m0, n0,
            drifted=best <= self.alpha, details=details,
        )  # fmt: skip


# ---------------------------------------------------------------------------- explanations


def farthest_examples(
    reference: Any,
    current: Any,
    k: int = 10,
    seed: int = 0,
    *,
    max_reference: int = 1000,
    max_candidates: int = 20_000,
) -> list[tuple[int, float]]:
    """Current rows most unlike the reference: the top ``k`` by MMD witness, highest first.

    witness(y) = mean RBF kernel to other current rows − mean kernel to reference rows
    (same σ as :class:`MMDTest`): high where current traffic is denser than the reference,
    so a lone outlier (which the reference had too) is not what gets shown. Kernel means
    use seeded samples of ≤ ``max_reference`` rows per window; at most ``max_candidates``
    current rows are scored (a seeded sample beyond that). Returns (row index into
    ``current``, witness).
    """
    if not isinstance(k, int) or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    x, y = _pair(reference, current)
    if x.shape[0] == 0 or y.shape[0] < 2:
        raise ValueError(
            "farthest_examples needs at least 1 reference row and 2 current rows, "
            f"got {x.shape[0]} and {y.shape[0]}"
        )
    xr, _ = sample_rows(x, max_reference, _rng(seed, _REFERENCE))
    yr, yr_idx = sample_rows(y, max_reference, _rng(seed, _CURRENT))
    cand_idx = (
        np.arange(y.shape[0])
        if y.shape[0] <= max_candidates
        else np.sort(_rng(seed, _SPLIT).choice(y.shape[0], max_candidates, replace=False))
    )
    sigma = median_bandwidth(np.vstack([xr, yr]), seed)
    in_sample = np.zeros(y.shape[0], dtype=bool)
    in_sample[np.arange(y.shape[0]) if yr_idx is None else yr_idx] = True
    xr64, yr64 = xr.astype(np.float64), yr.astype(np.float64)
    scores = np.empty(cand_idx.size)
    for s in range(0, cand_idx.size, 2048):
        rows = cand_idx[s : s + 2048]
        c = y[rows].astype(np.float64)
        to_ref = np.exp(-_sq_dists(c, xr64) / (2 * sigma * sigma)).mean(axis=1)
        to_cur = np.exp(-_sq_dists(c, yr64) / (2 * sigma * sigma)).sum(axis=1)
        # Leave the row itself out of its own current-density estimate.
        self_in = in_sample[rows]
        to_cur = (to_cur - self_in) / (yr.shape[0] - self_in)
        scores[s : s + rows.size] = to_cur - to_ref
    top = np.argsort(-scores, kind="stable")[:k]
    return [(int(cand_idx[i]), float(scores[i])) for i in top]


# ---------------------------------------------------------------------------- instances

mmd_test = MMDTest()
classifier_test = ClassifierTest()
ks_per_dim_test = KSPerDimTest()
