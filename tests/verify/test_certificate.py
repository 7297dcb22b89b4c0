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


@register_checker("test-kind", "normed", norm="l2")
def _check_normed(cert, stack):
    return float(cert.array("t")[2])  # IndexError when the list was shortened


def test_a_norm_the_checker_does_not_prove_is_refused():
    c = _cert(method="normed", value=3.0)
    assert c.check() == 3.0
    with pytest.raises(CertificateError, match="bound in the 'l2' norm, but this one says"):
        _cert(method="normed", value=3.0, norm="linf").check()


def test_a_malformed_certificate_is_a_certificate_error_that_says_what_to_do():
    short = _cert(method="normed", multipliers={"t": [1.0, 2.0]})
    with pytest.raises(CertificateError, match="malformed or was tampered.*re-run certnet"):
        short.check()
    with pytest.raises(CertificateError, match="must be numbers"):
        Certificate.from_dict({**_cert().to_dict(), "value": "six"})
    with pytest.raises(CertificateError, match="'data' must be an object"):
        Certificate.from_dict({**_cert().to_dict(), "data": [1, 2]})
    with pytest.raises(CertificateError, match="nothing to check"):
        Certificate.from_dict({**_cert().to_dict(), "certified": "yes"}).check()
    with pytest.raises(CertificateError, match="no checker registered"):
        Certificate.from_dict({**_cert().to_dict(), "method": ["sum"]}).check()


def test_a_certificate_without_a_fingerprint_is_not_checked_against_a_network():
    net = cn.nn.NormalizedMLP([2, 3, 1], seed=0)
    with pytest.raises(CertificateError, match=r"\(none\).*made for other weights"):
        _cert().check(net)


def test_a_re_check_that_proves_more_than_stored_is_reported_not_rounded_down():
    worse = _cert(value=5.999999)  # the proof gives 6
    with pytest.raises(CertificateError, match="proves only 6.0, larger than the stored"):
        worse.check()
    assert _cert(value=7.0).check() == 6.0  # the proved value, not the stored one
