"""`diagnose`: bias and variance from a training history, and what the course says to try next.

    avoidable bias = train error − base error      (base: the best achievable, e.g. human-level)
    variance       = dev error − train error

Errors are 1 − accuracy (classification) of the epoch whose weights the model ends with.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from xdl.data.validation import check_number

# Accuracies are ratios of counts: 1 − 0.98 − 0 is 0.020000000000000018 in floats. A gap counts as
# high only beyond the tolerance by more than such rounding, so equal gaps get equal verdicts.
ROUNDING = 1e-9

NEXT_STEPS = {
    "high bias": [
        "train a bigger network (more hidden units or layers)",
        "train longer, or with a better optimizer (Adam, momentum) and a tuned learning rate",
        "search architectures and hyperparameters",
        "reduce regularization (smaller L2 λ, less dropout)",
    ],
    "high variance": [
        "get more training data, or augment the data you have",
        "add or increase regularization (L2 λ, dropout)",
        "stop early on the dev cost",
        "search architectures and hyperparameters",
    ],
}
NEXT_STEPS["high bias and high variance"] = NEXT_STEPS["high bias"][:2] + NEXT_STEPS["high variance"][:2]
NEXT_STEPS["good"] = ["the dev error is close to the base error: check it on the test set, or lower the "
                      "base error you aim for"]


@dataclass
class Diagnosis:
    train_error: float
    dev_error: float
    base_error: float
    avoidable_bias: float
    variance: float
    verdict: str  # "high bias", "high variance", "high bias and high variance" or "good"
    next_steps: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        steps = "\n".join(f"  - {s}" for s in self.next_steps)
        return (f"train error {self.train_error:.2%}, dev error {self.dev_error:.2%}, base error {self.base_error:.2%}\n"
                f"avoidable bias {self.avoidable_bias:.2%}, variance {self.variance:.2%}: {self.verdict}\n"
                f"next steps:\n{steps}")


def diagnose(history, base_error: float = 0.0, tolerance: float = 0.02) -> Diagnosis:
    """Diagnose a `History` (or a record dict with train/dev accuracy).

    A gap counts as high when it exceeds ``tolerance`` (absolute error; 0.02 = two points; a gap of
    exactly two points is not high, whatever the rounding of the accuracies).

    >>> d = diagnose({"train_accuracy": 0.85, "dev_accuracy": 0.84}, base_error=0.01)
    >>> d.verdict, round(d.avoidable_bias, 2)
    ('high bias', 0.14)
    """
    base_error = check_number(base_error, "base_error", "a number in [0, 1)", lambda b: 0 <= b < 1)
    tolerance = check_number(tolerance, "tolerance", "a number in [0, 1) (an error rate)", lambda t: 0 <= t < 1)
    record = history.final() if hasattr(history, "final") else history
    if not isinstance(record, dict):
        raise TypeError(f"diagnose takes a History or a record dict with train and dev accuracy, got "
                        f"{type(record).__name__}")
    if record.get("train_accuracy") is None or record.get("dev_accuracy") is None:
        raise ValueError("diagnose needs train and dev accuracy: fit a classifier with dev=(X_dev, y_dev)")
    train_accuracy, dev_accuracy = (check_number(record[name], name, "a number in [0, 1]", lambda a: 0 <= a <= 1)
                                    for name in ("train_accuracy", "dev_accuracy"))
    train_error, dev_error = 1 - train_accuracy, 1 - dev_accuracy
    bias, variance = train_error - base_error, dev_error - train_error
    high_bias, high_variance = bias > tolerance + ROUNDING, variance > tolerance + ROUNDING
    verdict = ("high bias and high variance" if high_bias and high_variance else "high bias" if high_bias
               else "high variance" if high_variance else "good")
    steps = list(NEXT_STEPS[verdict])
    if bias < -tolerance:  # the base error is meant to be the best achievable
        steps.insert(0, f"the training error is below the base error {base_error:.2%}: the base error should be the "
                        "best any model reaches (e.g. human-level); lower it")
    if variance < -tolerance - ROUNDING:  # dev better than train by more than chance usually explains
        steps.insert(0, f"the dev error is {-variance:.2%} below the training error: check that dev and train come "
                        "from the same distribution (the dev set may be easier, or overlap the training set), and "
                        "that the training error is measured in evaluation mode (dropout off)")
    return Diagnosis(train_error, dev_error, base_error, bias, variance, verdict, steps)
