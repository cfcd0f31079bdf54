"""The update rules: SGD, Momentum (Nesterov), RMSprop, Adam, AdamW (formulas: `xdl.ops.optim`)."""

from __future__ import annotations

from xdl.data.validation import check_bool
from xdl.optim.optimizer import Optimizer, check_beta, check_positive


# PyTorch's dampening, to SGD and Momentum alike (none gives Momentum's first step: PyTorch's first buffer is g)
DAMPENING = ("not offered here: xdl.optim.Momentum's v ← β·v + (1 − β)·g from v = 0 is PyTorch's momentum=β, "
             "dampening=β but for the first step")


class SGD(Optimizer):
    """p ← p − lr·(g + wd·p)

    ``weight_decay``: wd (0, the default: none), coupled: g ← g + wd·p before the step.
    ``params``, ``lr``, ``check_finite``, ``max_grad_norm``, and ``weight_decay``'s range: as every optimizer's
    (`Optimizer.__init__`).
    The settings after ``lr`` are keywords only (PyTorch's third positional argument is momentum).
    """

    pytorch_names = {"momentum": "xdl.optim.Momentum's beta (PyTorch's SGD(lr, momentum=β) is "
                                 "Momentum(lr=lr/(1 − β), beta=β))",
                     # (PyTorch's nesterov comes with its momentum: Momentum(lr, beta, nesterov=True) alone took
                     # 1 − β times its steps, 10× smaller at β = 0.9, when nesterov was the keyword named first)
                     "nesterov": "a flag of xdl.optim.Momentum (PyTorch's SGD(lr, momentum=β, nesterov=True) is "
                                 "Momentum(lr=lr/(1 − β), beta=β, nesterov=True))",
                     "dampening": DAMPENING}

    # PyTorch's third positional argument is momentum (SGD(params, 0.1, 0.9)): here it was weight_decay
    # and decayed every weight by 0.9·p a step, without a word — so the settings after lr are keywords
    pytorch_positional = ("PyTorch's third, SGD(params, lr, momentum), is xdl.optim.Momentum's beta "
                          "(Momentum(params, lr / (1 − β), beta=β)); give weight_decay by its name")

    def __init__(self, params=None, lr=0.01, *, weight_decay=0.0, check_finite=False, max_grad_norm=None):
        super().__init__(params, check_finite, max_grad_norm=max_grad_norm, lr=lr, weight_decay=weight_decay)

    stacks = True  # (its update takes K models' rows: ARCHITECTURE.md, the optimizer recipe)

    def update(self, flat, state, h, step, steps_done=None):
        flat.backend.ops.sgd_update(flat.data, flat.grad, h["lr"], h["weight_decay"])


class Momentum(Optimizer):
    """v ← β·v + (1 − β)·g;  p ← p − lr·v  (the EWA form; Nesterov steps along β·v + (1 − β)·g).

    PyTorch's SGD(lr, momentum=β) keeps b ← β·b + g, 1/(1 − β) times this v: it takes the steps of
    Momentum(lr=lr/(1 − β), beta=β).

    ``beta``: β in [0, 1), the decay of the average (β = 0.9 averages about the last 1/(1 − β) = 10
    gradients; 0 keeps none: plain SGD).
    ``nesterov``: True or False (the default); True steps along the look-ahead β·v + (1 − β)·g,
    with v already updated, instead of v.
    ``weight_decay``: wd (0, the default: none), coupled: g ← g + wd·p before the average.
    ``params``, ``lr``, ``check_finite``, ``max_grad_norm``, and ``weight_decay``'s range: as every optimizer's
    (`Optimizer.__init__`).
    The settings after ``lr`` are keywords only (PyTorch's SGD(params, lr, momentum, dampening) takes lr
    for another scale of step, and dampening where nesterov is here).
    """

    state_names = ("v",)
    # v here is (1 − β) times PyTorch's buffer b ← β·b + g: the same steps take lr/(1 − β)
    pytorch_names = {"momentum": "beta here, but its SGD(lr, momentum=β) is Momentum(lr=lr/(1 − β), beta=β): "
                                 "v here is β·v + (1 − β)·g, PyTorch's buffer β·b + g",
                     "dampening": DAMPENING}
    # PyTorch's SGD(params, 0.1, 0.9) is Momentum(params, 1.0, beta=0.9): Momentum(params, 0.1, 0.9) took
    # steps 10× smaller, without a word — so the settings after lr are keywords
    pytorch_positional = ("PyTorch's third, SGD(params, lr, momentum), is beta here, with lr / (1 − β) for the "
                          "same steps (Momentum(params, lr / (1 − β), beta=β)); give beta, nesterov and "
                          "weight_decay by name")

    def __init__(self, params=None, lr=0.01, *, beta=0.9, nesterov=False, weight_decay=0.0, check_finite=False,
                 max_grad_norm=None):
        super().__init__(params, check_finite, max_grad_norm=max_grad_norm,
                         lr=lr, beta=beta, nesterov=nesterov, weight_decay=weight_decay)

    def check_settings(self, s):
        super().check_settings(s)
        check_beta("beta", s["beta"])
        check_bool(s["nesterov"], "nesterov")

    stacks = True

    def update(self, flat, state, h, step, steps_done=None):
        flat.backend.ops.momentum_update(flat.data, flat.grad, state["v"], h["lr"], h["beta"], h["nesterov"],
                                                   h["weight_decay"])


class RMSprop(Optimizer):
    """s ← β·s + (1 − β)·g²;  p ← p − lr·g/(√s + ε)

    ``beta``: β in [0, 1), the decay of the average of g² (PyTorch's alpha; β = 0.9 averages about
    the last 10 squares).
    ``eps``: ε, a finite number > 0 that is not 0 in the parameters' dtype (it keeps the division
    finite where s is 0).
    ``weight_decay``: wd (0, the default: none), coupled: g ← g + wd·p before the average (g in both
    formulas is then g + wd·p).
    ``params``, ``lr``, ``check_finite``, ``max_grad_norm``, and ``weight_decay``'s range: as every optimizer's
    (`Optimizer.__init__`).
    The settings after ``lr`` are keywords only (Keras's RMSprop(learning_rate, rho, momentum) takes
    momentum where eps is here).
    """

    state_names = ("s",)
    pytorch_names = {"alpha": "beta here",
                     "momentum": "not in RMSprop here (use Adam for momentum with RMSprop's scaling)",
                     "centered": "not offered here"}
    keras_names = {"rho": "beta here", "epsilon": "eps here"}
    # Keras's order, RMSprop(learning_rate, rho, momentum), after params: RMSprop(m, 0.001, 0.9, 0.9) took the
    # momentum as eps, without a word — so the settings after lr are keywords
    pytorch_positional = ("PyTorch's third, RMSprop(params, lr, alpha), is beta here (Keras's rho), and this "
                          "rule has no momentum (Keras's fourth): give beta, eps and weight_decay by name")

    def __init__(self, params=None, lr=0.001, *, beta=0.9, eps=1e-8, weight_decay=0.0, check_finite=False,
                 max_grad_norm=None):
        super().__init__(params, check_finite, max_grad_norm=max_grad_norm,
                         lr=lr, beta=beta, eps=eps, weight_decay=weight_decay)

    def check_settings(self, s):
        super().check_settings(s)
        check_beta("beta", s["beta"])
        check_positive("eps", s["eps"])

    stacks = True

    def update(self, flat, state, h, step, steps_done=None):
        flat.backend.ops.rmsprop_update(flat.data, flat.grad, state["s"], h["lr"], h["beta"], h["eps"],
                                                  h["weight_decay"])


class Adam(Optimizer):
    """m ← β₁·m + (1 − β₁)·g;  v ← β₂·v + (1 − β₂)·g²;  p ← p − lr·m̂/(√v̂ + ε)
    with m̂ = m/(1 − β₁ᵗ), v̂ = v/(1 − β₂ᵗ), t the group's step number (1 at its first).

    ``beta1``, ``beta2``: β₁ and β₂, each in [0, 1): the decays of the averages of g and g² (the
    defaults 0.9 and 0.999 average about the last 10 and 1,000 steps; PyTorch's betas).
    ``eps``: ε, a finite number > 0 that is not 0 in the parameters' dtype (it keeps the division
    finite where v̂ is 0).
    ``weight_decay``: wd (0, the default: none), coupled: g ← g + wd·p before the averages (g in the
    formulas is then g + wd·p, so the decay is scaled by 1/(√v̂ + ε) as the gradient is; `AdamW`
    decouples it).
    ``params``, ``lr``, ``check_finite``, ``max_grad_norm``, and ``weight_decay``'s range: as every optimizer's
    (`Optimizer.__init__`).
    The settings after ``lr`` are keywords only (PyTorch's Adam(params, lr, betas, eps) takes the pair
    where beta1 is here, and eps where beta2 is).
    """

    state_names = ("m", "v")
    pytorch_names = {"betas": "beta1 and beta2 here", "amsgrad": "not offered here"}
    keras_names = {"beta_1": "beta1 here", "beta_2": "beta2 here", "epsilon": "eps here"}
    decoupled = False
    pytorch_positional = ("PyTorch's third, Adam(params, lr, betas), is beta1 and beta2 here: give beta1, beta2, "
                          "eps and weight_decay by name")

    def __init__(self, params=None, lr=0.001, *, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0,
                 check_finite=False, max_grad_norm=None):
        super().__init__(params, check_finite, max_grad_norm=max_grad_norm,
                         lr=lr, beta1=beta1, beta2=beta2, eps=eps, weight_decay=weight_decay)

    def check_settings(self, s):
        super().check_settings(s)
        check_beta("beta1", s["beta1"])
        check_beta("beta2", s["beta2"])
        check_positive("eps", s["eps"])

    stacks = True

    def update(self, flat, state, h, step, steps_done=None):
        flat.backend.ops.adam_update(flat.data, flat.grad, state["m"], state["v"], h["lr"], h["beta1"],
                                               h["beta2"], h["eps"], step, h["weight_decay"], self.decoupled,
                                               steps_done)


class AdamW(Adam):
    """Adam with decoupled weight decay: p ← p·(1 − lr·wd) before the Adam step (Loshchilov & Hutter),
    on every parameter of a group, as PyTorch's (``AdamW(param_groups(model, wd))`` decays the
    weights only, not biases or batch norm's γ and β).

    ``weight_decay``: wd (default 0.01; 0 is Adam), decoupled: the weights shrink by lr·wd each step,
    apart from the gradient and its averages (so not scaled by 1/(√v̂ + ε)); with a schedule for
    ``lr`` the decay follows it.
    ``params``, ``lr``, ``beta1``, ``beta2``, ``eps``, ``check_finite``, ``max_grad_norm``: as `Adam`'s.
    """

    decoupled = True
    pytorch_positional = ("PyTorch's third, AdamW(params, lr, betas), is beta1 and beta2 here: give beta1, beta2, "
                          "eps and weight_decay by name")

    def __init__(self, params=None, lr=0.001, *, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.01,
                 check_finite=False, max_grad_norm=None):
        super().__init__(params, lr, beta1=beta1, beta2=beta2, eps=eps, weight_decay=weight_decay,
                         check_finite=check_finite, max_grad_norm=max_grad_norm)
