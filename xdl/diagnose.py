"""`diagnose`: bias and variance from a training history, and what the course says to try next.

    avoidable bias = train error − base error      (base: the best achievable, e.g. human-level)
    variance       = dev error − train error

Errors are 1 − accuracy (classification) of the epoch whose weights the model ends with.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from xdl.data.validation import check_int, check_number, counted

# Accuracies are ratios of counts: 1 − 0.98 − 0 is 0.020000000000000018 in floats, and one given in
# float32 (a Keras history's, a metric's .item()) is off by up to 6e-8. A gap counts as high only beyond
# the tolerance by more than such rounding, so equal gaps get equal verdicts (1e-6: one example in a million).
ROUNDING = 1e-6

# (said to a run that already stopped early, its weights the lowest dev cost's, it changes nothing: the CLI leaves
# it out there)
STOP_EARLY = "stop early on the dev cost"
NEXT_STEPS = {
    "high bias": [
        "train a bigger network (more hidden units or layers)",
        "train longer, or with a better optimizer (Adam, momentum) and a tuned learning rate",
        "search architectures and hyperparameters",
        "reduce regularization (a smaller L2 or L1 penalty, less dropout)",
    ],
    "high variance": [
        "get more training data, or augment the data you have",
        "add or increase regularization (the L2 or L1 penalty, dropout)",
        STOP_EARLY,
        "search architectures and hyperparameters",
    ],
}
NEXT_STEPS["high bias and high variance"] = NEXT_STEPS["high bias"][:2] + NEXT_STEPS["high variance"][:2]
NEXT_STEPS["good"] = ["check the model on the test set, or lower the base error you aim for"]
# The steps are said in characters every locale's encoding has (no λ): ``print(diagnose(history))`` of a
# script whose output goes to a file or a pipe on Windows writes cp1252, where λ failed the print (a
# UnicodeEncodeError once the training had run), as it failed Windows CI runners
# A history whose train accuracy is the epoch's running average in training mode (eval_train=False):
# dropout on and the weights moving, it overstates the training error (digits, dropout 0.5: 3.8% against
# the trained model's 0.7%), so a model that overfits read as "high bias": a bigger network, less
# regularization — the opposite of what it needs.
RUNNING_TRAIN = ("the training error is the epochs' running average in training mode (eval_train=False: dropout on, "
                 "the weights still moving), which overstates it and so the avoidable bias: measure it with "
                 "trainer.evaluate(X_train, y_train), or fit with eval_train=True, before acting on this verdict")
# One gap is the one to work on first when it is at least this many times the other (the course's
# Bayes 7.5%, train 8%, dev 10%: variance 2% against avoidable bias 0.5%).
CLEARLY_LARGER = 2
# A dev set of n examples measures its error to about ±2 binomial standard errors (95%): a 2-unit network
# on digits (359 dev examples, 58.8% dev error: ±5.2%) read "high variance" (add regularization) at +3.1% and,
# on another split, "dev and train may differ" at −2.8%, gaps that the next split reverses.
RESOLVING_SES = 2


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


def diagnose(history, base_error: float = 0.0, tolerance: float = 0.02, dev_examples: int | None = None) -> Diagnosis:
    """Diagnose a `History` (or a record dict with train/dev accuracy).

    A gap counts as high when it exceeds ``tolerance`` (absolute error; 0.02 = two points; a gap of
    exactly two points is not high, whatever the rounding of the accuracies). The next steps are
    the verdict's. Where both gaps are high, or neither is ("good"), the course's rule says which to
    work on first: the larger gap, when it is at least `CLEARLY_LARGER` (2) times the other (a
    negative gap counting as 0) and, for a "good" model, more than half ``tolerance`` (a gap of a
    few tenths of a point is no work) — named first, its steps first; a "good" model with no such
    gap is to be checked on the test set. A training error below the base error by more than
    ``tolerance`` says the base error is too high where the dev error is below it by as much too, or the
    variance is within ``tolerance``; else (high variance) the model has memorized its training
    examples' noise (a training error below the best achievable is possible on the examples a model
    learned, not on new ones). Given ``dev_examples`` (the dev set's size n), a variance that is
    high (or below −``tolerance``) but no larger than the dev error's sampling error,
    `RESOLVING_SES` (2) binomial standard errors 2·√(p̃(1 − p̃)/(n + 4)), p̃ = (n·dev error + 2)/(n + 4)
    (Agresti–Coull, so that 0 errors of 5 is no certainty) about p̃ — the interval holds the training
    error —, is said to be that first: the dev set cannot tell it from no gap.

    >>> d = diagnose({"train_accuracy": 0.85, "dev_accuracy": 0.84}, base_error=0.01)
    >>> d.verdict, round(d.avoidable_bias, 2)
    ('high bias', 0.14)
    >>> d = diagnose({"train_accuracy": 0.92, "dev_accuracy": 0.90}, base_error=0.075)
    >>> d.verdict, d.next_steps[0]
    ('good', 'work on the variance first: 2.00% against an avoidable bias of 0.50%')
    """
    base_error = check_number(base_error, "base_error", "a number in [0, 1)", lambda b: 0 <= b < 1)
    tolerance = check_number(tolerance, "tolerance", "a number in [0, 1) (an error rate)", lambda t: 0 <= t < 1)
    if dev_examples is not None:
        dev_examples = check_int(dev_examples, "dev_examples", expected="a positive integer (the dev set's size)")
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
    if verdict == "high bias and high variance" or verdict == "good" and max(bias, variance) > tolerance / 2 + ROUNDING:
        steps = _larger_gap_first(bias, variance) or steps
    if bias < -tolerance - ROUNDING:  # the base error is meant to be the best achievable
        # on examples it did not train on too, or nearly as well (no variance beyond tolerance: the model that beat
        # the base error on its training examples is the one measured on the dev set): it is not
        if dev_error < base_error - tolerance - ROUNDING or variance <= tolerance + ROUNDING:
            steps.insert(0, f"the training error is below the base error {base_error:.2%}: the base error should be "
                            "the best any model reaches (e.g. human-level); lower it")
        else:  # on its training examples only: it learned them, label noise and all (20% noise, train 0%, dev 31%)
            # (a dev error below it by no more than tolerance is said so: "is not" beside a dev error of 19% and a
            # base error of 20% said what the report's first line belies)
            dev = "is not" if dev_error >= base_error else f"only by {base_error - dev_error:.2%}, within tolerance"
            steps.insert(0, f"the training error is below the base error {base_error:.2%}, the dev error {dev}: the "
                            "model has learned its training examples, their noise too, rather than beaten the base "
                            "error (keep it); that is variance")
    resolution = None
    if dev_examples is not None:
        p = (dev_examples * dev_error + 2) / (dev_examples + 4)
        resolution = RESOLVING_SES * (p * (1 - p) / (dev_examples + 4)) ** 0.5
    # the interval is centred on p̃, not on the dev error: of 1 dev example, wrong, 60% ± 43.8% holds a training
    # error of 33%, which 100% ± 43.8% left out, and a gap one example measures was read as resolved (2·SE at n = 1)
    unresolved = (high_variance or variance < -tolerance - ROUNDING) and resolution is not None \
        and abs(p - train_error) <= resolution
    if variance < -tolerance - ROUNDING and not unresolved:  # dev better than train by more than chance usually
        # explains (a gap the dev set resolves)
        steps.insert(0, f"the dev error is {-variance:.2%} below the training error: check that dev and train come "
                        "from the same distribution (the dev set may be easier, or overlap the training set), and "
                        "that the training error is measured in evaluation mode (dropout off)")
    if unresolved:
        examples = counted(dev_examples, "dev example")
        steps.insert(0, f"the variance {variance:.2%} is within the dev error's sampling error: its interval on "
                        f"{examples}, {p:.2%} ± {resolution:.2%} (Agresti–Coull), holds the training error "
                        f"{train_error:.2%}; this dev set cannot tell the gap from none; measure on more dev examples "
                        "before acting on it")
    if getattr(history, "train_running", False):  # (a History of a fit with eval_train=False)
        steps.insert(0, RUNNING_TRAIN)
    return Diagnosis(train_error, dev_error, base_error, bias, variance, verdict, steps)


def _larger_gap_first(bias: float, variance: float) -> list[str] | None:
    """The steps for the gap that is at least `CLEARLY_LARGER` times the other, saying so first;
    None when neither is. A negative gap counts as 0 in the comparison, but is named as it is: the
    line above it in the report prints the same gap (−0.67%, not 0.00%)."""
    signed = {"avoidable bias": bias, "variance": variance}
    gaps = {name: max(gap, 0.0) for name, gap in signed.items()}
    (larger, x), (other, y) = sorted(gaps.items(), key=lambda item: -item[1])
    # (rounding: 2 × 5% may read 10.000000000000002%; two gaps of 0 name neither)
    if x + ROUNDING < CLEARLY_LARGER * y or x <= y + ROUNDING:
        return None
    article = {"avoidable bias": "an", "variance": "a"}
    first = f"work on the {larger} first: {x:.2%} against {article[other]} {other} of {signed[other]:.2%}"
    ours, theirs = ("high bias", "high variance") if larger == "avoidable bias" else ("high variance", "high bias")
    return [first] + NEXT_STEPS[ours][:2] + NEXT_STEPS[theirs][:2]
