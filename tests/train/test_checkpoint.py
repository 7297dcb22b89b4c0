"""Checkpoints: digests that catch a flipped bit or a truncation, and no silent replacement."""

import pytest
import torch

import certnet as cn
from certnet.train import PolicyConfig, optimize_policy
from certnet.train.checkpoint import state_digest


def _cfg(**kw):
    base = dict(
        iterations=2,
        batch=4,
        horizon=3,
        hidden=(4,),
        progress=False,
        x0_low=(-0.3, -0.3),
        x0_high=(0.3, 0.3),
    )
    return PolicyConfig(**{**base, **kw})


@pytest.fixture
def checkpoint(tmp_path):
    ck = tmp_path / "run.pt"
    optimize_policy(cn.plants.Pendulum(), _cfg(checkpoint=str(ck)))
    return ck


def test_a_checkpoint_carries_the_digest_of_its_content(checkpoint):
    raw = torch.load(checkpoint, weights_only=True)
    digest = raw.pop("digest")
    assert digest == state_digest(raw)
    state = cn.train.load_checkpoint(checkpoint, kind="optimize_policy")
    assert "digest" not in state and state["iteration"] == 2


def test_a_flipped_bit_in_a_weight_is_refused(checkpoint):
    """torch reads the changed tensor without complaint; the digest does not match."""
    raw = torch.load(checkpoint, weights_only=True)
    weight = next(v for k, v in raw["net"].items() if k.endswith("bias"))
    data = bytearray(checkpoint.read_bytes())
    at = data.find(weight.numpy().tobytes())
    assert at > 0
    data[at + 3] ^= 0x20  # an exponent bit of the first float32
    checkpoint.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="checkpoint corrupted or modified: its digest"):
        cn.train.load_checkpoint(checkpoint, kind="optimize_policy")


def test_a_truncated_checkpoint_says_so(checkpoint):
    checkpoint.write_bytes(checkpoint.read_bytes()[:200])
    with pytest.raises(ValueError, match=r"not a readable certnet checkpoint \(truncated"):
        cn.train.load_checkpoint(checkpoint, kind="optimize_policy")


def test_a_checkpoint_without_digest_loads_with_a_warning(checkpoint):
    raw = torch.load(checkpoint, weights_only=True)
    del raw["digest"]
    torch.save(raw, checkpoint)
    with pytest.warns(UserWarning, match="has no digest"):
        state = cn.train.load_checkpoint(checkpoint, kind="optimize_policy")
    assert state["iteration"] == 2


def test_an_existing_checkpoint_is_never_replaced_silently(checkpoint):
    before = checkpoint.read_bytes()
    with pytest.raises(FileExistsError, match=r"holds 2 iterations; continue it with resume"):
        optimize_policy(cn.plants.Pendulum(), _cfg(iterations=1, checkpoint=str(checkpoint)))
    assert checkpoint.read_bytes() == before
    optimize_policy(
        cn.plants.Pendulum(), _cfg(iterations=1, checkpoint=str(checkpoint), overwrite=True)
    )
    assert cn.train.checkpoint_iterations(checkpoint) == 1


def test_an_unreadable_file_in_the_way_is_not_replaced_either(tmp_path):
    junk = tmp_path / "run.pt"
    junk.write_text("my notes")
    with pytest.raises(FileExistsError, match=r"exists \(unreadable as a checkpoint\)"):
        optimize_policy(cn.plants.Pendulum(), _cfg(checkpoint=str(junk)))
    assert junk.read_text() == "my notes"


def test_resume_and_overwrite_exclude_each_other():
    with pytest.raises(ValueError, match="set one of them"):
        _cfg(checkpoint="run.pt", resume=True, overwrite=True)
