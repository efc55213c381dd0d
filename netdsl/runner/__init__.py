"""The runner: a compiled network trained and evaluated on image folders. It knows no
experiment (netdsl/scale_invariance/ builds on it, never the reverse).

    data.py        image folders, crops, reflections, lighting, the cached mean and covariance
    train.py       the training loop and resume; netdsl.train's Options
    schedule.py    the learning rate an epoch: plateau, step, multistep, cosine, warm-up
    run_folder.py  one run a folder, locked; the checks of a resumed run; metrics.jsonl
    precision.py   autocast to bf16 or fp16, fp16's loss scaler, torch.compile
    optim.py       the paper's SGD update, with each layer's lr_mult and decay_mult
    checkpoint.py  checkpoints written atomically and read back with weights_only
    runlock.py     one run a folder: RUN/.lock
    provenance.py  where a run or an evaluation came from: versions, commit, command, data
    preemption.py  SIGTERM and SIGINT stop a run after the step under way
    workers.py     data loader worker processes ended on every way out of a command
    model.py       the model on its devices: devices checked, the network built, a checkpoint's weights loaded
    evaluate.py    top-1 and top-5 error of a model, and of checkpoints (one, or an ensemble) on a split
    activations.py any layer's output, the generated forward run one layer at a time
    ensemble.py    several checkpoints of one network scored together, probabilities averaged
    timing.py      a training step timed layer by layer, and the memory each layer keeps
    runs.py        run folders read back for `netdsl runs`: epochs, best and test error, time, commit
"""
