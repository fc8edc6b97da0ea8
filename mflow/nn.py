"""The two models of the MatrixFlow article, built only from Nodes.

Fixed from the article: predictions are vectorised (its predict indexed x[j]
instead of x[i][j]), the caller's hidden-size list is copied, not mutated, the
number of epochs is the caller's, and initial weights come from `seed`.

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> x = rng.uniform(-2, 2, (100, 2)); y = np.sin(x[:, 0]) + np.cos(x[:, 1])
>>> history = MLPRegressor([16], seed=0).fit(x, y, epochs=200, lr=0.05)
>>> history[-1] < history[0] / 5
True
"""

import numpy as np

from .functions import mean, relu, sigmoid, tanh
from .node import Node
from .shapes import ShapeError

ACTIVATIONS = {"relu": relu, "tanh": tanh, "sigmoid": sigmoid}


def _param(rng, rows, cols, name):
    # He/Glorot-style scale keeps the first activations of order one
    return Node(rng.normal(0.0, np.sqrt(2.0 / (rows + cols)), (rows, cols)),
                requires_grad=True, name=name)


def _targets(y, n, who):
    y = np.asarray(y, dtype=np.float64)
    y = y.reshape(-1, 1) if y.ndim == 1 else y
    if y.ndim != 2 or y.shape[0] != n:
        raise ShapeError(f"{who}.fit: y of shape {y.shape} does not match {n} samples of x")
    return y


class _Regressor:
    """Plain gradient descent on the mean squared error."""

    params: list

    def loss(self, x, y):
        """The mean squared error as a Node (1x1), for inspecting gradients."""
        diff = self._forward(x) - Node(y)
        return mean(diff * diff)

    def fit(self, x, y, epochs=100, lr=0.01):
        """Train; return the loss before each epoch's step, one float per epoch."""
        x = self._inputs(x)
        y = _targets(y, x.shape[0], type(self).__name__)
        if not getattr(self, "params", None):
            self._init(x, y)
        history = []
        for _ in range(int(epochs)):
            for p in self.params:
                p.grad = None
            loss = self.loss(x, y)
            loss.backward()
            for p in self.params:
                p.value -= lr * p.grad
            history.append(float(loss.value[0, 0]))
        return history

    def predict(self, x):
        """Predictions as a (samples, outputs) array."""
        return self._forward(self._inputs(x)).value


class MLPRegressor(_Regressor):
    """A multi-layer perceptron: x (samples, features) -> (samples, outputs)."""

    def __init__(self, hidden_sizes=(16,), activation="relu", seed=0):
        if activation not in ACTIVATIONS:
            raise ValueError(f"MLPRegressor: activation must be one of {sorted(ACTIVATIONS)}; "
                             f"got {activation!r}")
        self.hidden_sizes = tuple(int(h) for h in hidden_sizes)
        self.activation = activation
        self.seed = seed
        self.params = []

    def _inputs(self, x):
        x = np.asarray(x, dtype=np.float64)
        if x.ndim != 2:
            raise ShapeError(f"MLPRegressor: x must be (samples, features); got shape {x.shape}")
        return x

    def _init(self, x, y):
        rng = np.random.default_rng(self.seed)
        sizes = [x.shape[1], *self.hidden_sizes, y.shape[1]]
        self.layers = [(_param(rng, m, n, f"W{i}"), Node(np.zeros((1, n)), True, f"b{i}"))
                       for i, (m, n) in enumerate(zip(sizes, sizes[1:]))]
        self.params = [p for layer in self.layers for p in layer]

    def _forward(self, x):
        act = ACTIVATIONS[self.activation]
        h = Node(x)
        for i, (w, b) in enumerate(self.layers):
            h = h @ w + b
            if i < len(self.layers) - 1:
                h = act(h)
        return h


class RNNRegressor(_Regressor):
    """An Elman RNN: x (samples, steps, emb_len) -> (samples, out_len), read from the
    last hidden state h_t = tanh(x_t W_x + h_{t-1} W_h + b)."""

    def __init__(self, emb_len, out_len, hidden_size=16, seed=0):
        self.emb_len, self.out_len, self.hidden_size = int(emb_len), int(out_len), int(hidden_size)
        self.seed = seed
        self.params = []

    def _inputs(self, x):
        x = np.asarray(x, dtype=np.float64)
        if x.ndim != 3 or x.shape[2] != self.emb_len:
            raise ShapeError(f"RNNRegressor: x must be (samples, steps, {self.emb_len}); "
                             f"got shape {x.shape}")
        return x

    def _init(self, x, y):
        if y.shape[1] != self.out_len:
            raise ShapeError(f"RNNRegressor.fit: y has {y.shape[1]} columns; "
                             f"out_len is {self.out_len}")
        rng = np.random.default_rng(self.seed)
        e, h, o = self.emb_len, self.hidden_size, self.out_len
        self.w_x, self.w_h = _param(rng, e, h, "W_x"), _param(rng, h, h, "W_h")
        self.b = Node(np.zeros((1, h)), True, "b")
        self.w_o, self.b_o = _param(rng, h, o, "W_o"), Node(np.zeros((1, o)), True, "b_o")
        self.params = [self.w_x, self.w_h, self.b, self.w_o, self.b_o]

    def _forward(self, x):
        h = Node(np.zeros((x.shape[0], self.hidden_size)))
        for t in range(x.shape[1]):
            h = tanh(Node(x[:, t, :]) @ self.w_x + h @ self.w_h + self.b)
        return h @ self.w_o + self.b_o


if __name__ == "__main__":  # the demo: python -m mflow.nn
    rng = np.random.default_rng(0)
    x = rng.uniform(-2, 2, (100, 2))
    y = np.sin(x[:, 0]) + np.cos(x[:, 1])
    history = MLPRegressor([16], "tanh", seed=0).fit(x, y, epochs=500, lr=0.05)
    for epoch in (0, 1, 10, 100, 499):
        print(f"epoch {epoch:3d}  mean squared error {history[epoch]:.4f}")
