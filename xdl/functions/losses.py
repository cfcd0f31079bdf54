"""Losses from logits as single autodiff nodes (stable log-sum-exp; backward ŷ − y)."""

from __future__ import annotations

from xdl.function import Function


class SoftmaxCrossEntropy(Function):
    """J = (1/m) Σᵢ (log Σⱼ e^(zᵢⱼ) − Σⱼ yᵢⱼ zᵢⱼ) for logits z (m, C), y one-hot (or soft) rows;
    integer labels are gathered instead of multiplied. ∂J/∂z = (softmax(z) − y)/m."""

    def forward(self, z):
        xp, m = self.xp, z.shape[0]
        shifted = z - z.max(axis=-1, keepdims=True)
        if self.labels.ndim == 1:
            picked = shifted[xp.arange(m), self.labels]
        else:
            picked = (shifted * self.labels).sum(axis=-1)
        self.probs = xp.exp(shifted, out=shifted)
        total = self.probs.sum(axis=-1, keepdims=True)
        self.probs /= total
        return xp.asarray((xp.log(total[:, 0]) - picked).mean(), dtype=z.dtype)

    def backward(self, gy):
        xp, m = self.xp, self.probs.shape[0]
        g = self.probs.copy()
        if self.labels.ndim == 1:
            g[xp.arange(m), self.labels] -= 1
        else:
            g -= self.labels
        g *= gy / m
        return (g,)


class SigmoidBinaryCrossEntropy(Function):
    """J = (1/n) Σ (max(z, 0) − z·y + log(1 + e^(−|z|))) — the stable form of
    −[y log σ(z) + (1 − y) log(1 − σ(z))]. ∂J/∂z = (σ(z) − y)/n."""

    def forward(self, z):
        xp = self.xp
        self.z = z
        loss = xp.maximum(z, 0) - z * self.labels + xp.log1p(xp.exp(-xp.abs(z)))
        return xp.asarray(loss.mean(), dtype=z.dtype)

    def backward(self, gy):
        xp = self.xp
        sigma = (xp.tanh(self.z * 0.5) + 1) * 0.5
        return ((sigma - self.labels) * (gy / self.z.size),)


def softmax_cross_entropy(logits, labels):
    return SoftmaxCrossEntropy.apply(logits, labels=labels)


def sigmoid_binary_cross_entropy(logits, labels):
    return SigmoidBinaryCrossEntropy.apply(logits, labels=labels)
