"""Certificate: a certified number together with the evidence that proves it.

Every number certnet certifies (a Lipschitz constant, a closed-loop ℓ2 gain, a region of
attraction) is a :class:`Certificate`. It is immutable and carries:

* ``kind`` ("lipschitz", "l2-gain", "stability", …), ``norm``, ``method``;
* ``value`` — the certified upper bound, in the user's units (``inf`` when not certified);
* ``certified`` and, when False, ``reason``;
* ``multipliers`` — the decision variables that prove it (arrays, as nested lists in JSON);
* ``data`` — everything else the proof needs (per-layer norms, plant matrices, ellipsoid P …);
* ``solver`` — name, status, time in s, iterations (provenance, as cvxpy's ``SolverStats``);
* ``margin`` — the explicit numerical margin used;
* ``fingerprint`` — SHA-256 of the network it was made for (:meth:`LayerStack.fingerprint`);
* ``version`` — certnet's version.

``check()`` re-verifies the certificate *from the stored multipliers alone* in float64 by calling
the checker registered for its ``(kind, method)``; a checker rebuilds the matrix inequality in
numpy, tests it by eigenvalues/Cholesky, recomputes the certified value and returns it. A
certificate passes when the recomputed value does not exceed the stored ``value``. Checkers are
registered by the modules that make certificates (:func:`register_checker`), so this module
knows no method in particular.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from certnet.errors import CertificateError

__all__ = ["Certificate", "register_checker", "checker_for", "SCHEMA"]

SCHEMA = "certnet.certificate/1"

# (kind, method) -> checker(cert, stack_or_None) -> recomputed value (float)
_CHECKERS: dict[tuple[str, str], Callable[..., float]] = {}
# (kind, method) -> the norm its checker proves the value in (when the checker declares one)
_NORMS: dict[tuple[str, str], str] = {}

# What a malformed certificate makes a checker raise (a key deleted, a list shortened, a
# string where a number was): reported as CertificateError, never as a crash or a pass.
_MALFORMED = (
    KeyError,
    IndexError,
    TypeError,
    ValueError,
    AttributeError,
    ZeroDivisionError,
    OverflowError,
    np.linalg.LinAlgError,
)


def register_checker(kind: str, method: str, *, norm: str | None = None):
    """Decorator: register ``fn(cert, stack, **context) -> float`` as the re-verifier of
    (kind, method).

    ``stack`` is the :class:`~certnet.nn.LayerStack` of the network passed to ``check`` (or
    None when called without one); ``context`` holds the other keywords given to ``check``
    (e.g. ``plant=`` for closed-loop certificates). The checker must rebuild the proof in
    float64 from ``cert.multipliers`` / ``cert.data`` (and the context) and return the value it
    proves, or raise :class:`~certnet.errors.CertificateError` saying what failed.

    ``norm``: the norm the checker proves its value in; :meth:`Certificate.check` then refuses a
    certificate whose ``norm`` says another (a renamed norm would claim another bound).
    """

    def deco(fn):
        _CHECKERS[(kind, method)] = fn
        if norm is not None:
            _NORMS[(kind, method)] = norm
        return fn

    return deco


def checker_for(kind: str, method: str) -> Callable[..., float]:
    """The registered checker of (kind, method); raises CertificateError if there is none."""
    try:
        return _CHECKERS[(kind, method)]
    except (KeyError, TypeError):
        raise CertificateError(
            f"no checker registered for kind={kind!r}, method={method!r}; import the module "
            "that makes such certificates (e.g. certnet.verify) before calling check()"
        ) from None


def _jsonable(x: Any) -> Any:
    if isinstance(x, np.ndarray):
        return x.tolist()
    if isinstance(x, (np.floating, np.integer, np.bool_)):
        return x.item()
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, float) and not math.isfinite(x):
        return repr(x)  # "inf", "nan": JSON has no such numbers
    return x


@dataclasses.dataclass(frozen=True)
class Certificate:
    """A certified bound and its proof; see the module docstring.

    Build one with keyword arguments; arrays in ``multipliers``/``data`` may be numpy arrays
    or nested lists (``array()`` returns float64 numpy either way).
    """

    kind: str
    value: float
    method: str
    certified: bool
    reason: str = ""
    norm: str = "l2"
    multipliers: dict[str, Any] = dataclasses.field(default_factory=dict)
    data: dict[str, Any] = dataclasses.field(default_factory=dict)
    solver: dict[str, Any] = dataclasses.field(default_factory=dict)
    margin: float = 0.0
    fingerprint: str = ""
    version: str = ""
    created: str = ""

    def __post_init__(self) -> None:
        if not self.version:
            from certnet import __version__

            object.__setattr__(self, "version", __version__)
        if not self.created:
            now = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
            object.__setattr__(self, "created", now)
        if self.certified and not (math.isfinite(self.value) and self.value >= 0):
            raise CertificateError(f"a certified value must be finite and >= 0, got {self.value}")
        if not self.certified and not self.reason:
            raise CertificateError("a certificate that is not certified must say why (reason=)")

    # ------------------------------------------------------------------ access
    def array(self, key: str) -> np.ndarray:
        """A multiplier or data entry as a float64 numpy array."""
        src = self.multipliers if key in self.multipliers else self.data
        if key not in src:
            raise KeyError(f"certificate has no multiplier or data entry {key!r}")
        return np.asarray(src[key], dtype=np.float64)

    # ------------------------------------------------------------------ verification
    def check(self, net: Any = None, **context: Any) -> float:
        """Re-verify in float64 from the stored multipliers; return the re-proved value.

        Parameters
        ----------
        net : NormalizedMLP, nn.Sequential or LayerStack, optional
            The network the certificate is about. When given, its fingerprint must match.
            Checkers that need the weights and find none raise CertificateError.
        **context
            What else the proof is about: closed-loop certificates need ``plant=`` (and
            ``observation=`` when the network read a function of the user's).

        Returns
        -------
        float
            The value the re-verification proves (never rounded towards the stored one).

        Raises
        ------
        CertificateError
            Not certified, made for other weights, in another norm than its checker proves,
            malformed (a field missing or of the wrong shape), tampered, or the inequality
            fails.
        """
        if self.certified is not True:
            raise CertificateError(f"nothing to check: not certified ({self.reason})")
        checker = checker_for(self.kind, self.method)
        want = _NORMS.get((self.kind, self.method))
        if want is not None and self.norm != want:
            raise CertificateError(
                f"a {self.kind!r} certificate by {self.method!r} is a bound in the {want!r} norm, "
                f"but this one says norm={self.norm!r}; it was tampered with: re-run certnet "
                "verify to make a new one"
            )
        stack = None
        if net is not None:
            from certnet.nn.extract import extract_layers

            stack = extract_layers(net)
            fp = stack.fingerprint()
            if fp != self.fingerprint:
                raise CertificateError(
                    f"this certificate was made for weights with fingerprint "
                    f"{self.fingerprint[:16] or '(none)'}…, but the network given has "
                    f"{fp[:16]}…; the certificate was made for other weights: re-certify the "
                    "current network (re-run certnet verify)"
                )
        try:
            proved = float(checker(self, stack, **context))
        except CertificateError:
            raise
        except _MALFORMED as e:
            raise CertificateError(
                f"the certificate could not be re-verified: it is malformed or was tampered "
                f"with ({type(e).__name__}: {e}); re-run certnet verify to make a new one"
            ) from e
        if not (proved <= self.value):
            raise CertificateError(
                f"re-verification proves only {proved!r}, larger than the stored value "
                f"{self.value!r}; the certificate was tampered with or is wrong: re-run "
                "certnet verify"
            )
        return proved

    # ------------------------------------------------------------------ (de)serialisation
    def to_dict(self) -> dict[str, Any]:
        d = {f.name: _jsonable(getattr(self, f.name)) for f in dataclasses.fields(self)}
        d["schema"] = SCHEMA
        return d

    def to_json(self, **kw: Any) -> str:
        """JSON text (floats are written with repr precision, so values round-trip exactly)."""
        return json.dumps(self.to_dict(), **kw)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Certificate:
        if d.get("schema") != SCHEMA:
            raise CertificateError(
                f"not a certnet certificate (schema {d.get('schema')!r}, expected {SCHEMA!r})"
            )
        names = {f.name for f in dataclasses.fields(cls)}
        missing = {"kind", "value", "method", "certified"} - set(d)
        if missing:
            raise CertificateError(f"certificate is missing {sorted(missing)}")
        kw = {k: v for k, v in d.items() if k in names}
        try:
            kw["value"] = float(kw["value"])
            kw["margin"] = float(kw.get("margin", 0.0))
        except (TypeError, ValueError):
            raise CertificateError(
                f"certificate value/margin must be numbers, got {kw['value']!r} and "
                f"{kw.get('margin')!r}; the file was edited: re-run certnet verify"
            ) from None
        for key in ("multipliers", "data", "solver"):
            if not isinstance(kw.get(key, {}), dict):
                raise CertificateError(
                    f"certificate field {key!r} must be an object, got "
                    f"{type(kw[key]).__name__}; re-run certnet verify"
                )
        return cls(**kw)

    @classmethod
    def from_json(cls, text: str) -> Certificate:
        try:
            return cls.from_dict(json.loads(text))
        except json.JSONDecodeError as e:
            raise CertificateError(f"certificate is not valid JSON ({e})") from None

    def save(self, path: str | os.PathLike) -> Path:
        """Write the certificate as JSON (parent folders are created)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.to_json(indent=1))
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> Certificate:
        """Read a certificate written by :meth:`save`."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"no such certificate file: {path}")
        return cls.from_json(path.read_text())

    def summary(self) -> str:
        """One line for people: value, method, status."""
        if not self.certified:
            return f"{self.kind} ({self.method}): NOT certified — {self.reason}"
        return f"{self.kind} ({self.method}, {self.norm}): {self.value:.6g}"
