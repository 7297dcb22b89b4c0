import numpy as np
import pytest

from certnet.errors import CertificateError
from certnet.nn.activations import ActivationSpec
from certnet.verify import Certificate
from certnet.verify.product import product_bound, product_certificate
from tests.verify.conftest import make_stack, random_weights


def test_product_of_spectral_norms_and_activation_constants():
    ws = random_weights([3, 5, 4, 2], seed=0)
    stack = make_stack(ws, ["silu", "sigmoid"])
    b = product_bound(stack)
    exact = np.prod([np.linalg.norm(w, 2) for w in ws]) * 1.0998393201288670 * 0.25
    assert exact <= b["product_spectral"] <= exact * (1 + 1e-12)
    assert b["product_spectral"] <= b["product_frobenius"]
    cert = product_certificate(stack)
    assert cert.value == b["product_spectral"] and cert.check(stack) == cert.value


def test_groupsort_counts_as_one_lipschitz():
    ws = random_weights([2, 4, 1], seed=1)
    gs = ActivationSpec("groupsort", float("nan"), float("nan"), False, {"group_size": 2})
    b = product_bound(make_stack(ws, [gs]))
    assert b["act_lipschitz"] == [1.0]


def test_tampered_norms_fail():
    stack = make_stack(random_weights([2, 4, 1], seed=2), ["relu"])
    d = product_certificate(stack).to_dict()
    d["multipliers"]["spectral"] = [x * 0.5 for x in d["multipliers"]["spectral"]]
    with pytest.raises(CertificateError, match="stored spectral norms"):
        Certificate.from_dict(d).check(stack)
    with pytest.raises(CertificateError, match="call cert.check"):
        product_certificate(stack).check()
