"""Each command's run, ``run(config, args) -> exit status``: train.py (``xdl train``), gradcheck.py,
lr_find.py, tune.py, bench.py (``xdl bench optimizers`` and ``kernels``); stopped_run.py: how a stopped
``xdl train`` run goes on."""
