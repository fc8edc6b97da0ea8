"""The MatrixFlow models: they learn, and their gradients match torch's."""

import numpy as np
import pytest
import torch

from mflow.nn import MLPRegressor, RNNRegressor
from tests.helpers import assert_close


def sin_cos_data(n=100, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.uniform(-2, 2, (n, 2))
    return x, np.sin(x[:, 0]) + np.cos(x[:, 1])


@pytest.mark.parametrize("activation", ["relu", "tanh", "sigmoid"])
def test_mlp_loss_falls(activation):
    x, y = sin_cos_data()
    history = MLPRegressor([16], activation, seed=0).fit(x, y, epochs=300, lr=0.05)
    assert len(history) == 300 and all(isinstance(h, float) for h in history)
    assert history[-1] < 0.25 * history[0]


def test_mlp_is_reproducible_and_leaves_hidden_sizes_alone():
    x, y = sin_cos_data(30)
    sizes = [8, 4]
    a = MLPRegressor(sizes, seed=3).fit(x, y, epochs=5, lr=0.01)
    b = MLPRegressor(sizes, seed=3).fit(x, y, epochs=5, lr=0.01)
    assert a == b and sizes == [8, 4]


def test_mlp_gradients_match_torch():
    x, y = sin_cos_data(20)
    model = MLPRegressor([5, 3], "tanh", seed=1)
    model.fit(x, y, epochs=0)  # builds the weights only
    loss = model.loss(x, y.reshape(-1, 1))
    loss.backward()
    tw = [torch.tensor(p.value, requires_grad=True) for p in model.params]
    h = torch.tensor(x)
    for i in range(0, len(tw), 2):
        h = h @ tw[i] + tw[i + 1]
        if i < len(tw) - 2:
            h = torch.tanh(h)
    t_loss = ((h - torch.tensor(y.reshape(-1, 1))) ** 2).mean()
    t_loss.backward()
    assert_close(loss.value[0, 0], t_loss.item())
    for p, t in zip(model.params, tw):
        assert_close(p.grad, t.grad.numpy(), what=p.name)


def test_rnn_learns_and_matches_torch():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 4, 3))
    y = 0.3 * x.sum(axis=(1, 2))[:, None]
    model = RNNRegressor(emb_len=3, out_len=1, hidden_size=6, seed=0)
    history = model.fit(x, y, epochs=100, lr=0.1)
    assert history[-1] < 0.25 * history[0]
    assert model.predict(x).shape == (40, 1)
    for p in model.params:
        p.grad = None
    model.loss(x, y).backward()
    wx, wh, b, wo, bo = (torch.tensor(p.value, requires_grad=True) for p in model.params)
    h = torch.zeros(40, 6, dtype=torch.float64)
    for t in range(4):
        h = torch.tanh(torch.tensor(x[:, t, :]) @ wx + h @ wh + b)
    ((h @ wo + bo - torch.tensor(y)) ** 2).mean().backward()
    for p, t in zip(model.params, (wx, wh, b, wo, bo)):
        assert_close(p.grad, t.grad.numpy(), what=p.name)
