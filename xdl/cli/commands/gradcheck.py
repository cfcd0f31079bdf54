"""``xdl gradcheck``: check backprop's gradients of the model the options build, numerically (`gradcheck`)."""

from __future__ import annotations

import numpy as np

import xdl
from xdl.cli.refused import refuse_config_resume
from xdl.cli.text import model_summary, note
from xdl.config import TrainConfig
from xdl.data import Standardizer
from xdl.data.validation import check_int
from xdl.gradcheck import StepRoundsAway
from xdl.init import starts_symmetric
from xdl.losses import SoftmaxCrossEntropy, l1, l2


GRADCHECK_EXAMPLES = 16
# the options a gradient check reads (the model, its cost, the data, the seed, where it runs); another's
# flag is refused (`GRADCHECK_REFUSES`)
GRADCHECK_READS = ("dataset", "hidden", "activation", "init", "batch_norm", "dropout", "l2", "l1", "seed",
                   "backend")


def gradcheck(config: TrainConfig, args=None) -> int:
    """Gradient-check J = cost (+ L2, + L1) of the configured model on a small batch, in float64 (L1's
    |W| has a kink at W = 0, where backprop gives (λ/m)·sign(0) = 0: the mean of its slopes ∓λ/m
    there, which the central difference computes too, so a weight at exactly 0 checks as agreeing)."""
    refuse_config_resume(config, "gradcheck", "checks")
    elements = getattr(args, "elements", None)
    if elements is not None:
        check_int(elements, "--elements", expected="a positive integer (elements checked per parameter)")
    with xdl.use(config.backend, precision=config.precision) as backend:
        xdl.seed(config.seed)
        X, y = xdl.datasets.load(config.dataset)
        X, y = X[:GRADCHECK_EXAMPLES].astype(np.float64), y[:GRADCHECK_EXAMPLES]
        n_classes = int(y.max()) + 1
        model = config.build_model(X.shape[1], n_classes, Standardizer().fit(X).layer()).astype(np.float64)
        loss = SoftmaxCrossEntropy()

        def cost():
            j = loss(model(X), y)
            j = j + l2(model, config.l2, m=len(X)) if config.l2 else j
            return j + l1(model, config.l1, m=len(X)) if config.l1 else j

        checked = sum(p.size if elements is None else min(p.size, elements) for p in model.parameters())
        print(f"xdl gradcheck: backend {backend.name}; {model_summary(model)}; {len(X)} examples of {config.dataset}; "
              f"two evaluations of J per element checked ({checked:,} "
              + ("elements: every one; --elements N checks a sample)" if elements is None else
                 f"elements: {elements:,} or all of each parameter)"))
        if config.dropout:
            note("note: dropout is off while checking: a random mask would make J another function at every call")
        try:
            # (named parameters: "2.bias", not "bias" thrice)
            result = xdl.gradcheck(cost, dict(model.named_parameters()), elements=elements)
        except StepRoundsAway as e:  # its advice, "give an eps", named a setting this command has none of (its --eps
            # is Adam's, which a check ignores): the weights are the init's draws, so a smaller init is the way
            raise ValueError(f"--init {config.init} drew weights too large to check: {e.label} {e.index} is "
                             f"{e.value:.3g}, where the finite difference's step θ ± {e.eps:g} rounds back to θ in "
                             "float64; give --init a smaller scale") from None
    print(result)
    if result.constant and starts_symmetric(config.init):  # J is the model's own: its start is why, not J
        note(f"note: --init {config.init} starts every weight at 0, where every gradient of J is 0 (each unit of a "
             "layer computes the same, and the output's bias has nothing to move towards on examples balanced "
             "between the classes): check the gradients at a random start, --init he")
    return 0 if result.passed else 1
