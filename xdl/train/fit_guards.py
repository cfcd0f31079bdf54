"""What one fit holds and checks around its run: each callback with state is one run's
(`callbacks_held`, and `load_resumed` for a resume's), each trainer fits once at a time
(`take_fit`), each `Checkpoint` directory is this fit's alone, what the callbacks monitor is
measured (`check_monitored`), callbacks are told of errors (`callbacks_told_of_errors`), and a later
fit goes on only where the run stands known (`check_goes_on`, `check_same_examples`)."""

from __future__ import annotations

import contextlib
import threading
import weakref

from xdl.caller import warn_caller
from xdl.files import check_writable_dir
from xdl.train.callback import Callback, check_monitor
from xdl.train.checkpoint import Checkpoint


# id(callback) -> (a weak reference to it, one to the trainer whose run its state is); whether that run's fit runs
# now is `FITTING`'s to say (a flag here, cleared at the fit's end, stayed set where an interrupt landed first)
_RUNS: dict[int, tuple] = {}
_RUNS_LOCK = threading.Lock()


def keeps_state(cb) -> bool:
    """Whether ``cb`` keeps state of a run (its class has a ``state_dict`` of its own, as
    `EarlyStopping`, `Checkpoint` and `Control` have): state that is one run's."""
    return type(cb).state_dict is not Callback.state_dict


def _run_of(cb) -> tuple | None:
    entry = _RUNS.get(id(cb))
    return entry if entry is not None and entry[0]() is cb else None  # (an id reused by another object: none)


def check_callbacks_own(trainer, continuing: bool) -> None:
    """Each callback of ``trainer`` that keeps state (`keeps_state`) is in no other trainer's fit
    running now, and — for a fit that goes on with the run (``continuing``: a later fit, not a
    resume, which loads the checkpoint's state) — was in no other trainer's fit since this one's
    last: its state (a best, a wait, a best.npz) is then that run's, and this fit would compare with
    it, stop by it, restore its weights into this model, or write over that run's checkpoint. Keras's
    EarlyStopping starts afresh at each fit (its ModelCheckpoint keeps its best); here a later fit
    goes on with the callbacks' state, so one instance given to two trainers is refused, naming it,
    before anything changes."""
    for cb in trainer.callbacks:
        entry = _run_of(cb) if keeps_state(cb) else None
        if entry is None or entry[1]() is trainer:
            continue
        if _in_fit_now(cb, entry[1]()):
            raise RuntimeError(f"callbacks: this {type(cb).__name__} is in the fit of another trainer running now; "
                               "its state (state_dict) is one run's: give each trainer its own callback "
                               "(copy.deepcopy(callback), or make another)")
        if continuing:
            raise ValueError(f"callbacks: this {type(cb).__name__} was in another trainer's fit since this trainer's "
                             "last, so its state (state_dict) is that run's now, not this one's: this fit would go "
                             "on from another run's (its best, its patience, its checkpoint); give each trainer its "
                             "own callback (copy.deepcopy(callback), or make another), or resume this run from its "
                             "checkpoint")


@contextlib.contextmanager
def callbacks_held(trainer, continuing: bool):
    """Within the block, ``trainer``'s callbacks that keep state are its fit's (`check_callbacks_own`,
    checked again here under a lock: two threads starting fits at once); after it, each is known
    as the state of ``trainer``'s run — but one the fit failed before it appended to the list the
    block yields (each callback once its ``on_train_begin`` returned; all of them once a resume
    began loading their state): that one is still the run's it was before."""
    held = [cb for cb in trainer.callbacks if keeps_state(cb)]
    told = []  # the callbacks whose state this fit may have changed (their on_train_begin returned, a resume's load)
    before = None  # each callback's run before this fit took it (inside the try: an interrupt as it takes them is
    # undone below — one between the taking and a try after it left them this trainer's)
    try:
        with _RUNS_LOCK:
            check_callbacks_own(trainer, continuing)
            before = {id(cb): _run_of(cb) for cb in held}
            for cb in held:
                key = id(cb)
                _RUNS[key] = (weakref.ref(cb, lambda _, key=key: _RUNS.pop(key, None)), weakref.ref(trainer))
        yield told
    except BaseException:
        if before is None:  # refused (`check_callbacks_own`), or stopped before it took any
            raise
        # one this fit never changed (a resume's checkpoint missing or another run's, a Checkpoint refusing in its own
        # on_train_begin) is still the run's it was — taken as this trainer's, that run's later fit was refused; one
        # a resume loaded the checkpoint's state into (a later callback's load_state_dict failed) is not: put back,
        # that run's later fit went on from the checkpoint's best and restored its weights into its own model
        with _RUNS_LOCK:
            for cb in held:
                if any(cb is t for t in told):
                    continue
                if before[id(cb)] is None:
                    _RUNS.pop(id(cb), None)
                else:
                    _RUNS[id(cb)] = before[id(cb)]
        raise


def load_resumed(trainer, checkpoint, flags: tuple, told: list) -> None:
    """``trainer.load_checkpoint(checkpoint)`` within a resuming fit (a `Trainer`'s or a
    `ManyTrainer`'s). Refused, it leaves the trainer's ``stop_training`` and ``resumed`` as they were
    (``flags``) and, unless it failed partway (``_mid_step``: some callbacks may hold the
    checkpoint's state), its callbacks their run's; loaded, they hold the checkpoint's state: this
    fit's (``told``, `callbacks_held`'s list)."""
    try:
        trainer.load_checkpoint(checkpoint)
    except BaseException:
        trainer.stop_training, trainer.resumed = flags
        if trainer._mid_step:
            told.extend(trainer.callbacks)
        raise
    told.extend(trainer.callbacks)


class FitClaim:
    """One fit of ``trainer`` (a `Trainer`, a `ManyTrainer`), held in `FITTING` while it runs. A fit
    takes its claim inside a ``try`` whose ``finally`` begins with ``FITTING.discard(claim)``: one C
    call, so no interrupt (Ctrl-C: Python raises it between bytecodes, after a call) lands between
    the fit's end and it — a ``with`` of a context manager runs Python code there (its ``__exit__``),
    and an interrupt in it left the trainer "fitting already" for good. The claim is its own entry (a
    refused fit's removes no other's), and names the trainer by a weak reference (one left behind
    never names a new trainer made at a dead one's address)."""

    __slots__ = ("trainer",)

    def __init__(self, trainer):
        self.trainer = weakref.ref(trainer)


FITTING: set[FitClaim] = set()  # the claim of each fit running now (`take_fit`)


def fitting_now(trainer) -> bool:
    """Whether a fit of ``trainer`` runs now (a claim of it in `FITTING`)."""
    return any(claim.trainer() is trainer for claim in tuple(FITTING))  # (a copy: a fit's end discards unlocked)


def _in_fit_now(cb, owner) -> bool:
    """Whether ``cb`` is in a fit running now of ``owner``, the trainer whose run its state is (None: one gone)."""
    return owner is not None and fitting_now(owner) and any(c is cb for c in owner.callbacks)


def take_fit(claim: FitClaim, who: str, maker: str) -> None:
    """``claim`` taken into `FITTING`: its fit (of ``claim.trainer``, ``who``: "trainer" or "batch",
    made by ``maker``) is that trainer's only one — a second fit of it meanwhile, from another thread
    (a notebook's cell run again while a background thread trains) or from one of its callbacks, is
    refused before it checks or changes anything. Two fits of one trainer at once interleaved their
    steps over one model, optimizer and position: the second was told the first "was stopped inside a
    step (a second Ctrl-C …)", or both trained, one failing at a backward through weights the other
    had written, and the run's history held both fits' epochs (26 records for 20 epochs)."""
    with _RUNS_LOCK:
        if fitting_now(claim.trainer()):
            raise RuntimeError(f"fit: this {who} is fitting already (a fit of it in another thread, or called from "
                               "its own callback); a run trains in one fit at a time: wait for that fit to end "
                               "(a callback's trainer.stop_training = True, or a Control file's stop = true, ends it "
                               f"early), or make a new {maker}")
        FITTING.add(claim)


@contextlib.contextmanager
def callbacks_told_of_errors(trainer):
    """Within the block, an exception is told to each callback the block lists as begun (the list it
    yields: those whose ``on_train_begin`` returned, `Callback.on_exception`, in their order) before
    it goes on to the caller. Every one is told though one's hook raises (as an ExitStack's exits):
    the first such error then goes instead, the training's error as its context."""
    begun = []
    try:
        yield begun
    except BaseException as error:
        failed = None
        for cb in begun:
            try:
                cb.on_exception(trainer, error)
            except Exception as hook_error:  # (a logger's bug in its clean-up left a later finder's weights out)
                failed = failed or hook_error
        if failed is not None:
            raise failed
        raise


@contextlib.contextmanager
def checkpoint_directories_held(callbacks):
    """Within the block, the directory of each `Checkpoint` among ``callbacks`` is held by this fit
    alone (`xdl.lock.RUN`, as ``xdl train`` holds its ``--out``): a second fit into it — in another
    thread or process, resumed or not — is refused before it reads or writes anything, naming the
    holder; two would each write their checkpoints over the other's."""
    import errno

    from xdl.lock import RUN, DirectoryLock

    directories = [cb.directory for cb in callbacks if isinstance(cb, Checkpoint)]
    resolved = [d.resolve() for d in directories]
    if len(set(resolved)) < len(resolved):  # they would write over each other's files
        twice = next(d for d, r in zip(directories, resolved) if resolved.count(r) > 1)
        raise ValueError(f"callbacks: two Checkpoint callbacks write into {str(twice)!r}; give each its own directory")
    with contextlib.ExitStack() as held:
        for directory in directories:
            check_writable_dir(directory, "Checkpoint directory")
            try:
                held.enter_context(DirectoryLock(directory, "Checkpoint directory", RUN))
            except OSError as e:
                if e.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOTSUP):  # (in use: refused, as meant)
                    raise
                warn_caller(f"Checkpoint directory {str(directory)!r}: its file system takes no locks ({e.strerror}); "
                            "this fit goes on without holding it, so make sure no other fit writes there")
        yield


def check_monitored(callbacks, dev, accuracy: bool) -> None:
    """What the callbacks monitor is measured by the run, checked before any epoch: one that reads
    its ``monitor`` (`Callback.reads_monitor`) names one of `MONITORED`; an
    `EarlyStopping` (or an `xdl.tune.OptunaPruning`) on a dev metric needs ``dev`` (it would fail at
    the first epoch's end, that epoch trained for nothing), and an accuracy needs a loss that has one
    (``accuracy``: a classification's; a `Checkpoint` would keep the best train cost instead, saying
    nothing)."""
    for cb in callbacks:
        reads = getattr(cb, "reads_monitor", False) is True  # (`Callback.reads_monitor`)
        if reads:  # (a callback of one's own: a typo, Keras's "val_loss", or none at all read None at every
            # epoch's end, or failed there as an AttributeError)
            check_monitor(getattr(cb, "monitor", None), f"{type(cb).__name__} (reads_monitor True)")
        if (reads or isinstance(cb, Checkpoint)) and "accuracy" in cb.monitor and not accuracy:
            raise ValueError(f"{type(cb).__name__} monitors {cb.monitor!r}, but this run's loss measures no "
                             "accuracy (it is not a classification's: an xdl Loss whose predicts is 'classes' or "
                             "'labels', as SoftmaxCrossEntropy and its subclasses): monitor dev_cost or train_cost")
        if dev is None and reads and cb.monitor.startswith("dev_"):
            raise ValueError(f"{type(cb).__name__} monitors {cb.monitor!r}, which this run does not measure: pass "
                             "dev=(X_dev, y_dev) to fit for dev metrics (or monitor a train one)")


def check_goes_on(trainer, who: str, maker: str) -> None:
    """A later fit of ``trainer`` (``who``: "trainer" or "batch", made by ``maker``) refused where
    its last one stopped inside a step or an epoch's end: its update may or may not have been
    applied, so where the run is cannot be known."""
    if trainer._mid_step:
        raise RuntimeError(f"fit: this {who}'s last fit was stopped inside a step or an epoch's end (a second Ctrl-C, "
                           "or an error raised there, a callback's too), its resume failed partway, or it is a copy "
                           "taken during a fit (copy.deepcopy or pickle in a callback: copy between fits), so where its "
                           "run is cannot be known: resume from its last checkpoint (fit(..., resume=its directory)), "
                           f"or make a new {maker}")


def check_same_examples(trainer, examples: int, who: str, maker: str) -> None:
    """A later fit of ``trainer`` that finishes an epoch a stop cut short takes as many examples as
    that epoch had, in batches of its size (its shuffle and its steps are of those: with another
    ``trainer.batch_size`` the epoch went on from its step number in other batches, skipping examples
    it had not trained on — or failed with NumPy's broadcast error where it had fewer steps now)."""
    partial = trainer._partial
    if partial is not None and partial.get("examples", examples) != examples:
        raise ValueError(f"fit: this {who}'s last fit stopped in epoch {trainer.epoch + 1} after step {trainer.step} "
                         f"of an epoch over {partial['examples']} examples, and X has {examples}: give it the same "
                         f"data to finish that epoch, or make a new {maker}")
    size = getattr(trainer, "batch_size", None)
    if partial is not None and partial.get("batch_size", size) != size:
        raise ValueError(f"fit: this {who}'s last fit stopped in epoch {trainer.epoch + 1} after step {trainer.step} "
                         f"of an epoch in batches of {partial['batch_size']}, and its batch_size is {size} now: "
                         f"set it back to {partial['batch_size']} to finish that epoch (another batch size may be "
                         f"set once the epoch is over), or make a new {maker}")
