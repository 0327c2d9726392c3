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
    big = torch.rand(1, 3, 96, 160)
    big[..., 80:] *= 0.3
    with torch.no_grad():
        assert torch.allclose(tlc(x), model(x), atol=1e-5)
        out = tlc(big)
        assert out.shape == big.shape
        assert (out - model(big)).abs().max() > 1e-4
