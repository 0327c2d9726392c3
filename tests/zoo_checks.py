"""Checks every zoo model's tests share."""

import torch

ANY_SIZES = [(1, 1), (17, 23), (64, 64), (37, 100)]


def assert_any_size(model, size):
    """forward keeps (2, 3, *size); forward_all()[0] is forward."""
    x = torch.rand(2, 3, *size)
    with torch.no_grad():
        y = model(x)
        assert y.shape == x.shape
        assert torch.equal(model.forward_all(x)[0], y)


def assert_tlc_invariants(model, tlc, train_size):
    """TLC equals the model at train size, and differs from it on a larger input whose
    right half has other statistics (shape kept)."""
    x = torch.rand(1, 3, train_size, train_size)
    h, w = max(96, 2 * train_size), max(160, 2 * train_size + 32)  # beyond base = 1.5 x train
    big = torch.rand(1, 3, h, w)
    big[..., w // 2 :] *= 0.3
    with torch.no_grad():
        assert torch.allclose(tlc(x), model(x), atol=1e-5)
        out = tlc(big)
        assert out.shape == big.shape
        assert (out - model(big)).abs().max() > 1e-4 * float(out.abs().max())


def deterministic_(model, seed=1234):
    """Fill ``model``'s floating state (wavelet filter buffers excepted) in state_dict
    order with uniform(-1, 1) / sqrt(fan_in) values from one seeded generator: the
    weights the official-output fixtures were made with (tests/fixtures/README.md)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if not t.is_floating_point() or "DWT." in name:
                continue
            fan_in = t[0].numel() if t.dim() >= 2 else 1
            t.copy_((torch.rand(t.shape, generator=g) * 2 - 1) / fan_in**0.5)
