"""Beyond the ellipsoid: cells of states proved to reach the certified region.

A region of attraction E = {δxᵀP_Rδx ≤ 1} (:mod:`loop_stability`) is invariant and every
trajectory in it converges. A box C of states whose k-step image lies in E — or in cells
already proved, which themselves reach E — is therefore in the region of attraction too: the
union of E and such cells is certified, with a proof of how trajectories pass between them.

Images are enclosed by iterating :meth:`ClosedLoop.advance` on the cell (the centre's
trajectory, and the cell's states with their Jacobian with respect to the starting point, each
step tightened by the mean-value form), so wrapping stays of second order while the cell's image
contracts. A cell is followed for up to :data:`STEPS` steps; it is given up (and split, down to
:data:`DEPTH` halvings per side) when its image grows beyond :data:`SPREAD` times its own size,
leaves the box, or reaches nothing within those steps. Containment in E is tested on the
image box's corners (V is convex); in proved cells, on a raster of the finest cells (states with
n ≤ 3). The certified cells are stored in the
order they were proved; :func:`recheck` re-proves each one from scratch in that order, so a
cell can only lean on cells proved before it.
"""

from __future__ import annotations

import itertools

import numpy as np

from certnet.errors import CertificateError
from certnet.verify import interval as iv
from certnet.verify.jet import Jet

__all__ = ["extend", "recheck", "union_area", "GRID", "STEPS", "DEPTH"]

GRID = 20  #: cells per side of the first grid (n ≤ 2; fewer for more states)
STEPS = 400  #: steps a cell is followed at most
DEPTH = 3  #: halvings of a cell's side at most
SPREAD = 8.0  #: an image wider than this many times its cell is given up


def _grid(lo: np.ndarray, hi: np.ndarray, side: int) -> tuple[np.ndarray, np.ndarray]:
    n = len(lo)
    edges = [np.linspace(lo[j], hi[j], side + 1) for j in range(n)]
    idx = np.stack(np.meshgrid(*[np.arange(side)] * n, indexing="ij"), -1).reshape(-1, n)
    clo = np.stack([edges[j][idx[:, j]] for j in range(n)], 1)
    chi = np.stack([edges[j][idx[:, j] + 1] for j in range(n)], 1)
    return clo, chi


def _in_ellipsoid(lo: np.ndarray, hi: np.ndarray, x0: np.ndarray, P: np.ndarray) -> np.ndarray:
    """Whether each box [lo, hi] lies in {(x − x₀)ᵀP(x − x₀) ≤ 1} (all corners, in interval
    arithmetic)."""
    n = lo.shape[1]
    ok = np.all(np.isfinite(lo) & np.isfinite(hi), axis=1)
    lo_f, hi_f = np.where(np.isfinite(lo), lo, 0.0), np.where(np.isfinite(hi), hi, 0.0)
    for corner in itertools.product((0, 1), repeat=n):
        v = np.where(np.array(corner, dtype=bool), hi_f, lo_f)
        d = (iv.down(v - x0), iv.up(v - x0))
        q = iv.matmul_const(d, P)  # P d (P symmetric)
        prod = iv.mul(d, q)
        top = iv.up(prod[1].sum(1) + 4 * n * iv.U * np.abs(prod[1]).sum(1))
        ok &= top <= 1.0
    return ok


class _Raster:
    """Proved cells on the finest grid (n ≤ 3), with a summed-area table so that "is each of
    these boxes covered by proved cells?" is a few array operations."""

    def __init__(self, lo: np.ndarray, hi: np.ndarray, side: int):
        self.lo, self.hi = lo, hi
        self.side = side
        self.h = (hi - lo) / side
        self.marks = np.zeros((side,) * len(lo), dtype=bool)
        self._table()

    def _table(self) -> None:
        t = self.marks.astype(np.int64)
        for ax in range(t.ndim):
            t = np.cumsum(t, axis=ax)
        self.table = np.pad(t, [(1, 0)] * t.ndim)

    def mark(self, lo: np.ndarray, hi: np.ndarray) -> None:
        """Mark the raster cells lying inside the boxes [lo, hi] (rows)."""
        i0 = np.ceil((lo - self.lo) / self.h - 1e-9).astype(int)
        i1 = np.floor((hi - self.lo) / self.h + 1e-9).astype(int)
        for a, b in zip(np.clip(i0, 0, self.side), np.clip(i1, 0, self.side), strict=True):
            self.marks[tuple(slice(x, y) for x, y in zip(a, b, strict=True))] = True
        self._table()

    def covers(self, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
        """Whether every raster cell touching each box [lo, hi] (rows) is marked."""
        n = lo.shape[1]
        fine = np.all(np.isfinite(lo) & np.isfinite(hi), axis=1)
        fine &= np.all(lo >= self.lo, axis=1) & np.all(hi <= self.hi, axis=1)
        lo_f = np.where(fine[:, None], lo, self.lo)
        hi_f = np.where(fine[:, None], hi, self.lo)
        i0 = np.clip(np.floor((lo_f - self.lo) / self.h).astype(int), 0, self.side)
        i1 = np.clip(np.ceil((hi_f - self.lo) / self.h).astype(int), 0, self.side)
        total = np.zeros(len(lo), dtype=np.int64)
        for corner in itertools.product((0, 1), repeat=n):
            idx = tuple(np.where(c, i1[:, j], i0[:, j]) for j, c in enumerate(corner))
            total += (-1) ** (n - sum(corner)) * self.table[idx]
        need = np.prod(i1 - i0, axis=1)
        return fine & (need > 0) & (total == need)


def _start(lo: np.ndarray, hi: np.ndarray) -> tuple[Jet, Jet, np.ndarray]:
    mid = 0.5 * lo + 0.5 * hi
    return Jet(mid, mid), Jet.box(lo, hi), 0.5 * (hi - lo)


def _reached(xb: Jet, x0, P, raster) -> np.ndarray:
    ok = _in_ellipsoid(xb.lo, xb.hi, x0, P)
    if raster is not None:
        ok |= raster.covers(xb.lo, xb.hi)
    return ok


def _lost(xb: Jet, span: np.ndarray, raster) -> np.ndarray:
    width = xb.hi - xb.lo
    lost = ~np.all(np.isfinite(width) & (width <= SPREAD * span), axis=1)
    if raster is not None:
        lost |= np.any(xb.hi < raster.lo, axis=1) | np.any(xb.lo > raster.hi, axis=1)
    return lost


def _children(lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The 2ⁿ halves of each box."""
    mid = 0.5 * lo + 0.5 * hi
    kids_lo, kids_hi = [], []
    for corner in itertools.product((0, 1), repeat=lo.shape[1]):
        c = np.array(corner, dtype=bool)
        kids_lo.append(np.where(c, mid, lo))
        kids_hi.append(np.where(c, hi, mid))
    return np.concatenate(kids_lo), np.concatenate(kids_hi)


def extend(loop, x0: np.ndarray, P: np.ndarray, lo: np.ndarray, hi: np.ndarray, *,
           max_cell_steps: int = 2_000_000) -> dict:
    """Cells of the box [lo, hi] proved to reach E = {(x − x₀)ᵀP(x − x₀) ≤ 1}.

    Every cell in flight advances by one step per tick, whatever its age, so cells of every
    size share one batch; a cell given up is replaced at once by its 2ⁿ halves (down to
    :data:`DEPTH`), and a cell proved marks the raster at once, so later cells may lean on it.

    Returns
    -------
    dict
        ``lo``, ``hi`` (cells, n) of the proved cells in the order they were proved, ``steps``
        (cells,) the step at which each reached E or earlier cells, ``box`` and ``spent`` (cell
        steps advanced).
    """
    n = len(x0)
    side = max(4, GRID // (2 ** max(0, n - 2)))
    raster = _Raster(lo, hi, side * 2**DEPTH) if n <= 3 else None
    clo, chi = _grid(lo, hi, side)
    keep = ~_in_ellipsoid(clo, chi, x0, P)  # already in E: nothing to prove
    cells = {"lo": clo[keep], "hi": chi[keep], "depth": np.zeros(int(keep.sum()), dtype=int),
             "age": np.zeros(int(keep.sum()), dtype=int)}
    xc, xb, rz = _start(cells["lo"], cells["hi"])
    proved_lo, proved_hi, proved_k = [], [], []
    spent = 0
    while len(cells["lo"]) and spent < max_cell_steps:
        spent += len(cells["lo"])
        xc, xb = loop.advance(xc, xb, rz)
        cells["age"] = cells["age"] + 1
        ok = _reached(xb, x0, P, raster)
        if np.any(ok):
            proved_lo.extend(cells["lo"][ok])
            proved_hi.extend(cells["hi"][ok])
            proved_k.extend(int(k) for k in cells["age"][ok])
            if raster is not None:
                raster.mark(cells["lo"][ok], cells["hi"][ok])
        span = cells["hi"] - cells["lo"]
        out = ~ok & (_lost(xb, span, raster) | (cells["age"] >= STEPS))
        stay = ~ok & ~out
        split = out & (cells["depth"] < DEPTH)
        klo, khi = _children(cells["lo"][split], cells["hi"][split])
        kdepth = np.tile(cells["depth"][split] + 1, 2**n)
        kc, kb, krz = _start(klo, khi)
        cells = {"lo": np.concatenate([cells["lo"][stay], klo]),
                 "hi": np.concatenate([cells["hi"][stay], khi]),
                 "depth": np.concatenate([cells["depth"][stay], kdepth]),
                 "age": np.concatenate([cells["age"][stay], np.zeros(len(klo), dtype=int)])}
        xc, xb = _cat(xc[stay], kc), _cat(xb[stay], kb)
        rz = np.concatenate([rz[stay], krz])
    return {
        "lo": np.array(proved_lo).reshape(-1, n),
        "hi": np.array(proved_hi).reshape(-1, n),
        "steps": np.array(proved_k, dtype=int),
        "box": [lo, hi],
        "spent": spent,
    }


def _cat(a: Jet, b: Jet) -> Jet:
    from certnet.verify.jet import cat

    return cat([a, b], 0)


def _follow(loop, lo, hi, x0, P, raster, steps: int) -> int:
    """The first step (≤ ``steps``) at which one cell's image is in E or the raster, or −1."""
    xc, xb, rz = _start(lo, hi)
    for k in range(1, steps + 1):
        xc, xb = loop.advance(xc, xb, rz)
        if _reached(xb, x0, P, raster)[0]:
            return k
    return -1


def recheck(loop, x0: np.ndarray, P: np.ndarray, data: dict) -> int:
    """Re-prove stored cells in their order; returns their number.

    Raises
    ------
    CertificateError
        A cell's image does not reach E or the cells proved before it within its stored steps.
    """
    lo, hi = (np.asarray(v, dtype=np.float64) for v in data["box"])
    clo = np.asarray(data["lo"], dtype=np.float64).reshape(-1, len(x0))
    chi = np.asarray(data["hi"], dtype=np.float64).reshape(-1, len(x0))
    steps = np.asarray(data["steps"], dtype=int)
    n = len(x0)
    side = max(4, GRID // (2 ** max(0, n - 2)))
    raster = _Raster(lo, hi, side * 2**DEPTH) if n <= 3 else None
    for k in range(len(clo)):
        if _follow(loop, clo[k:k + 1], chi[k:k + 1], x0, P, raster, int(steps[k])) < 0:
            raise CertificateError(
                f"stored cell {k} ({clo[k].tolist()} … {chi[k].tolist()}) does not reach the "
                "certified region within its steps; the certificate was tampered with"
            )
        if raster is not None:
            raster.mark(clo[k:k + 1], chi[k:k + 1])
    return len(clo)


def _misses(lo: np.ndarray, hi: np.ndarray, x0: np.ndarray, P: np.ndarray) -> np.ndarray:
    """Whether each box surely misses {(x − x₀)ᵀP(x − x₀) ≤ 1} (a lower bound of V over it,
    by interval arithmetic, exceeds 1)."""
    d = (iv.down(lo - x0), iv.up(hi - x0))
    q = iv.matmul_const(d, P)
    prod = iv.mul(d, q)
    return iv.down(prod[0].sum(1) - 4 * lo.shape[1] * iv.U * np.abs(prod[0]).sum(1)) > 1.0


def union_area(x0: np.ndarray, P: np.ndarray, cells: dict, volume: float,
               split: int = 32) -> float:
    """A lower bound on the volume of E ∪ cells: E's volume, plus each cell's part that surely
    misses E — the whole cell, or for a cell that may overlap E, its sub-boxes (``split`` per
    side) that surely miss it."""
    lo = np.asarray(cells["lo"], dtype=np.float64)
    hi = np.asarray(cells["hi"], dtype=np.float64)
    if not len(lo):
        return volume
    total = 0.0
    miss = _misses(lo, hi, x0, P)
    total += float(np.prod(hi[miss] - lo[miss], axis=1).sum())
    for a, b in zip(lo[~miss], hi[~miss], strict=True):
        slo, shi = _grid(a, b, split)
        m = _misses(slo, shi, x0, P)
        total += float(np.prod(shi[m] - slo[m], axis=1).sum())
    return float(volume + total)
