"""Generation's packed oneDNN linears (``mlxsft/backends/torch/cpu_linear.py``): the same outputs as
``nn.Linear`` inside the context, the module's own forward where a gradient is needed and after exit, a new pack
when the weight changes, and nothing done where the copies would not fit."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from mlxsft.backends.torch import cpu_linear  # noqa: E402
from mlxsft.backends.torch.cpu_linear import packed_linears  # noqa: E402

pytestmark = pytest.mark.skipif(not torch.backends.mkldnn.is_available(), reason="torch built without oneDNN")


def net(bias: bool = True) -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(48, 96, bias=bias), torch.nn.SiLU(), torch.nn.Linear(96, 40))


def calls_to_the_packed_kernel(monkeypatch) -> list:
    seen = []
    real = cpu_linear._linear

    def spy(x, packed, bias):
        seen.append(tuple(x.shape))
        return real(x, packed, bias)

    monkeypatch.setattr(cpu_linear, "_linear", spy)
    return seen


@pytest.mark.parametrize("shape", [(1, 48), (7, 48), (3, 5, 48)])
@pytest.mark.parametrize("bias", [True, False])
def test_packed_outputs_equal_nn_linear_and_the_forward_comes_back(monkeypatch, shape, bias):
    model = net(bias)
    x = torch.randn(*shape)
    with torch.no_grad():
        ref = model(x)
        seen = calls_to_the_packed_kernel(monkeypatch)
        with packed_linears(model) as on:
            got = model(x)
        after = model(x)
    assert on is True and len(seen) == 2  # both linears went through the packed kernel, once each
    assert got.shape == ref.shape
    torch.testing.assert_close(got, ref, rtol=1e-5, atol=1e-5)
    assert torch.equal(after, ref)  # the class's forward again
    assert all("forward" not in m.__dict__ and "_mlxsft_pack" not in m.__dict__ for m in model.modules())


def test_a_gradient_takes_the_module_forward(monkeypatch):
    model = net()
    x = torch.randn(4, 48, requires_grad=True)
    seen = calls_to_the_packed_kernel(monkeypatch)
    with packed_linears(model):
        model(x).sum().backward()
    assert seen == [] and x.grad is not None and model[0].weight.grad is not None


def test_a_changed_weight_is_packed_again(monkeypatch):
    model = net()
    x = torch.randn(2, 48)
    with torch.no_grad(), packed_linears(model):
        first = model(x)
        model[2].weight.mul_(2.0)  # in place: the version counter moves
        model[2].bias.zero_()
        second = model(x)
        ref = torch.nn.Linear.forward(model[2], torch.nn.functional.silu(model[0](x)))
    torch.testing.assert_close(second, ref, rtol=1e-5, atol=1e-5)
    assert not torch.allclose(first, second)


def test_nothing_is_packed_without_room_for_the_copies(monkeypatch):
    model = net()
    weights = sum(m.weight.numel() * 4 for m in model.modules() if isinstance(m, torch.nn.Linear))
    monkeypatch.setattr(cpu_linear, "available_memory_bytes", lambda: int(weights / cpu_linear.SHARE_OF_FREE) - 1)
    seen = calls_to_the_packed_kernel(monkeypatch)
    with torch.no_grad(), packed_linears(model) as on:
        model(torch.randn(2, 48))
    assert on is False and seen == []
    monkeypatch.setattr(cpu_linear, "available_memory_bytes", lambda: int(weights / cpu_linear.SHARE_OF_FREE))
    with torch.no_grad(), packed_linears(model) as on:
        model(torch.randn(2, 48))
    assert on is True and len(seen) == 2


def test_other_dtypes_and_reentry_are_left_alone(monkeypatch):
    model = net().to(torch.bfloat16)
    with packed_linears(model) as on:
        assert on is False
    model = net()
    with packed_linears(model) as outer:
        with packed_linears(model) as inner:
            pass
        assert outer is True and inner is False
        assert all("forward" in m.__dict__ for m in model.modules() if isinstance(m, torch.nn.Linear))  # still on
    assert all("forward" not in m.__dict__ for m in model.modules())


def test_peft_lora_layers_are_packed_and_answer_the_same(monkeypatch):
    peft = pytest.importorskip("peft")
    model = peft.get_peft_model(net(), peft.LoraConfig(r=4, target_modules=["0", "2"], init_lora_weights=False))
    x = torch.randn(3, 48)
    with torch.no_grad():
        ref = model(x)
        seen = calls_to_the_packed_kernel(monkeypatch)
        with packed_linears(model):
            got = model(x)
            with model.disable_adapter():
                base = model(x)
        base_ref = net()(x)
    assert len(seen) == 6 + 2  # per layer the base, lora_A and lora_B; then the two base layers alone
    torch.testing.assert_close(got, ref, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(base, base_ref, rtol=1e-5, atol=1e-5)
