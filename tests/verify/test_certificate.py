import math

import numpy as np
import pytest

import certnet as cn
from certnet.errors import CertificateError
from certnet.verify import Certificate, register_checker


@register_checker("test-kind", "sum")
def _check_sum(cert, stack):
    return float(cert.array("t").sum())


def _cert(**kw):
    base = dict(
        kind="test-kind",
        value=6.0,
        method="sum",
        certified=True,
        multipliers={"t": np.array([1.0, 2.0, 3.0])},
    )
    base.update(kw)
    return Certificate(**base)


def test_json_roundtrip_and_check(tmp_path):
    c = _cert()
    assert c.check() == 6.0
    back = Certificate.load(c.save(tmp_path / "c.json"))
    assert back == Certificate.from_json(c.to_json())
    assert back.value == c.value and back.check() == 6.0
    nc = _cert(value=math.inf, certified=False, reason="solver failed")
    assert Certificate.from_json(nc.to_json()).value == math.inf


def test_tampered_multiplier_fails():
    c = Certificate.from_dict({**_cert().to_dict(), "multipliers": {"t": [1.0, 2.0, 3.5]}})
    with pytest.raises(CertificateError, match="tampered"):
        c.check()


def test_fingerprint_mismatch():
    net = cn.nn.NormalizedMLP([2, 3, 1], seed=0)
    c = _cert(fingerprint=cn.nn.extract_layers(net).fingerprint())
    assert c.check(net) == 6.0
    other = cn.nn.NormalizedMLP([2, 3, 1], seed=1)
    with pytest.raises(CertificateError, match="re-certify"):
        c.check(other)


def test_invalid_certificates():
    with pytest.raises(CertificateError, match="must say why"):
        _cert(certified=False)
    with pytest.raises(CertificateError, match="finite"):
        _cert(value=math.nan)
    with pytest.raises(CertificateError, match="nothing to check"):
        _cert(certified=False, reason="x", value=math.inf).check()
    with pytest.raises(CertificateError, match="no checker"):
        _cert(method="unknown").check()
    with pytest.raises(CertificateError, match="schema"):
        Certificate.from_dict({"kind": "x"})
    with pytest.raises(CertificateError, match="JSON"):
        Certificate.from_json("{not json")
