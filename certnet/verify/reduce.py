"""Exact reduction of a network before a LipSDP certificate: dead and duplicated neurons.

A hidden neuron i of layer k (row i of W_k, column i of W_{k+1}) is removed when

* its incoming row is zero: its output σ(b_i) is constant, so its effect, σ(b_i) times its
  outgoing column, is a bias of the next layer — and every LipSDP certificate holds for every
  bias, so it is simply dropped;
* its outgoing column is zero: nothing depends on it.

Neurons with *exactly* equal incoming rows and biases in the original network (bit for bit)
compute the same output, so they are merged into one whose outgoing column is the sum of
theirs. The sum is computed with TwoSum, which gives its rounding error exactly; that error is
returned as an entrywise bound E (see :mod:`certnet.verify.rounding`) and enters the
certificate's rounding inflation. Dropping repeats until nothing changes (dropping a neuron can
leave a zero column behind it).

Without this, a dead neuron makes LipSDP-Neuron's feasible set unbounded (its multiplier has
nothing to pay for and is driven to infinity) and duplicated ones make the LMI singular; the
reduced network has the same map (up to biases) and the same Lipschitz constant.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from certnet.verify.rounding import _two_sum, up

__all__ = ["Reduced", "reduce_layers"]


@dataclass(frozen=True)
class Reduced:
    """A reduced network.

    Attributes
    ----------
    weights : list of ndarray
        W_1 … W_L of the reduced net (unscaled, as in the LayerStack).
    errors : list of (ndarray or None)
        Entrywise bounds |W_exact − W̃| (None: exact).
    activations : list of ActivationSpec
        Unchanged, one per hidden layer (empty if some hidden layer lost all its neurons; the
        net is then constant and ``weights`` is one zero matrix).
    kept : list of list of list of int
        Per hidden layer, per kept neuron, the original indices merged into it (first one is
        the representative).
    """

    weights: list
    errors: list
    activations: list
    kept: list

    @property
    def changed(self) -> bool:
        return any(len(g) != 1 or g[0] != i for layer in self.kept for i, g in enumerate(layer))


def reduce_layers(weights, biases, activations) -> Reduced:
    """Drop dead neurons and merge exact duplicates (see the module docstring).

    Parameters
    ----------
    weights, biases : sequence of ndarray
        W_1 … W_L, b_1 … b_L of a LayerStack (before scalings are folded in).
    activations : sequence of ActivationSpec
        σ_1 … σ_{L−1}.

    Returns
    -------
    Reduced
    """
    ws = [np.asarray(w, dtype=np.float64) for w in weights]
    es: list = [None] * len(ws)
    kept = []
    # 1. exact duplicates, judged on the original rows and biases
    for h in range(len(ws) - 1):
        w_in, b = np.asarray(weights[h], dtype=np.float64), np.asarray(biases[h], np.float64)
        groups: dict[bytes, list[int]] = {}
        for i in range(w_in.shape[0]):
            key = w_in[i].tobytes() + b[i : i + 1].tobytes()
            groups.setdefault(key, []).append(i)
        gl = list(groups.values())
        kept.append(gl)
        if len(gl) == w_in.shape[0]:
            continue
        reps = [g[0] for g in gl]
        out = ws[h + 1]
        cols, errs = [], []
        for g in gl:
            c, e = out[:, g[0]].copy(), np.zeros(out.shape[0])
            for j in g[1:]:
                c, r = _two_sum(c, out[:, j])
                e = e + np.abs(r)
            cols.append(c)
            errs.append(up(e, len(g)) if len(g) > 2 else e)
        ws[h] = ws[h][reps]
        if es[h] is not None:
            es[h] = es[h][reps]
        ws[h + 1] = np.stack(cols, axis=1)
        ew = np.stack(errs, axis=1)
        es[h + 1] = ew if np.any(ew) else None
    # 2. dead neurons, until nothing changes
    changed = True
    while changed:
        changed = False
        for h in range(len(ws) - 1):
            zero_in = ~np.any(ws[h], axis=1)
            if es[h] is not None:
                zero_in &= ~np.any(es[h], axis=1)
            zero_out = ~np.any(ws[h + 1], axis=0)
            if es[h + 1] is not None:
                zero_out &= ~np.any(es[h + 1], axis=0)
            keep = ~(zero_in | zero_out)
            if keep.all():
                continue
            changed = True
            ws[h], ws[h + 1] = ws[h][keep], ws[h + 1][:, keep]
            if es[h] is not None:
                es[h] = es[h][keep]
            if es[h + 1] is not None:
                es[h + 1] = es[h + 1][:, keep]
            kept[h] = [g for g, k in zip(kept[h], keep, strict=True) if k]
    acts = list(activations)
    if any(w.shape[0] == 0 for w in ws[:-1]):  # a layer with no neuron left: f is constant
        d0, dl = np.shape(weights[0])[1], np.shape(weights[-1])[0]
        return Reduced([np.zeros((dl, d0))], [None], [], [[] for _ in acts])
    return Reduced(ws, es, acts, kept)
