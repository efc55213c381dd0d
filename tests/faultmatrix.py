"""The fault matrix: `netdsl train` made to fail in each way a run can, with loader workers and
without, each run a real process whose end is watched.

    python tests/faultmatrix.py CASE train NET --data D --out RUN ...   # one run, CASE injected
    python bench/faults.py                                                # the whole matrix, a table

tests/test_fault_matrix.py holds each case to its outcome; bench/faults.py prints them all. A
case is injected from inside the process (INJECTIONS): this file, run as a script, installs the
case's fault and then runs `netdsl` on the rest of its arguments. Faults land at a chosen step
of epoch 2, when both loaders' persistent workers are alive: the moment at which an exit used to
hang. A run is three epochs of 3 steps (tiny data: 3 classes x 8 images, batches of 8).

Where a case names a rank (`CASE@R`), only that rank of a torchrun job injects it.
"""
from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import errno
import fnmatch
import io
import json
import multiprocessing
import os
import queue
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
EPOCHS = 3
FAULT_EPOCH = 2
BOUND_S = 30.0       # a hang guard: every case must end well within it
KILL_AFTER_S = 120.0  # a run still alive then is killed, and the case fails


def env() -> dict:
    return {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}


# ---------------------------------------------------------------- faults, injected in the process

class FailingDisk:
    """Writes to files named like `pattern` fail as on a full disk (or at fsync), from the
    (after + 1)-th such file opened for writing; the others are written as usual. `patch` sets
    an attribute (setattr, or a pytest monkeypatch's, which undoes it)."""

    def __init__(self, pattern: str, code: int = errno.ENOSPC, after: int = 0, at: str = "write",
                 patch=setattr):
        self.pattern, self.code, self.after, self.at = pattern, code, after, at
        self.opened, self.failing, self.failures = 0, {}, 0
        real_open, real_write, real_fsync, real_close = os.open, os.write, os.fsync, os.close

        def open_(path, flags, mode=0o777, *, dir_fd=None):
            fd = real_open(path, flags, mode, dir_fd=dir_fd)
            writing = flags & (os.O_WRONLY | os.O_RDWR)
            if writing and fnmatch.fnmatch(os.path.basename(os.fspath(path)), pattern):
                self.opened += 1
                if self.opened > self.after:
                    self.failing[fd] = 0  # writes so far
            return fd

        def write(fd, data):
            if fd not in self.failing or self.at != "write":
                return real_write(fd, data)
            self.failing[fd] += 1
            if self.failing[fd] == 1 and len(data) > 1:  # a full disk takes what it still can
                return real_write(fd, memoryview(data)[:len(data) // 2])
            return self._fail()

        def fsync(fd):
            if fd in self.failing and self.at == "fsync":
                return self._fail()
            return real_fsync(fd)

        def close(fd):
            self.failing.pop(fd, None)
            return real_close(fd)

        for name, fn in (("open", open_), ("write", write), ("fsync", fsync), ("close", close)):
            patch(os, name, fn)

    def _fail(self):
        self.failures += 1
        raise OSError(self.code, os.strerror(self.code))


def without_hard_links(pattern: str, patch=setattr) -> None:
    """os.link refused for targets named like `pattern`, as on file systems without links."""
    real_link = os.link

    def link(src, dst, *args, **kwargs):
        if fnmatch.fnmatch(os.path.basename(os.fspath(dst)), pattern):
            raise OSError(errno.EPERM, os.strerror(errno.EPERM))
        return real_link(src, dst, *args, **kwargs)

    patch(os, "link", link)


def fill(disk: Path, leave: int) -> Path:
    """A file taking all the room on `disk`, then cut back to leave `leave` bytes free."""
    filler = disk / "filler"
    with open(filler, "wb", buffering=0) as f:
        while True:
            try:
                f.write(b"\0" * 4096)
            except OSError as err:
                assert err.errno == errno.ENOSPC
                break
    os.truncate(filler, filler.stat().st_size - leave)
    return filler


def at_step(epoch: int, step: int, action) -> None:
    """action(trainer) just before step `step` of epoch `epoch` (counted from 1)."""
    from netdsl.runner import train

    real_train_epoch, real_step = train.Trainer.train_epoch, train.Trainer.step
    now = {}

    def train_epoch(self, epoch_, batches, start):
        now["epoch"] = epoch_
        return real_train_epoch(self, epoch_, batches, start)

    def step_(self, batch, number):
        if (now["epoch"], number) == (epoch, step):
            action(self)
        return real_step(self, batch, number)

    train.Trainer.train_epoch, train.Trainer.step = train_epoch, step_


def _nan_loss() -> None:
    from netdsl.runner import train

    real_loss = train.train_loss
    poisoned = {"on": False}
    at_step(FAULT_EPOCH, 2, lambda trainer: poisoned.update(on=True))
    train.train_loss = lambda *a: real_loss(*a) * (float("nan") if poisoned["on"] else 1.0)


def _signal(signum: int, again_during_save: bool = False) -> None:
    at_step(FAULT_EPOCH, 2, lambda trainer: signal.raise_signal(signum))
    if again_during_save:
        from netdsl.runner import checkpoint

        real_save = checkpoint.save

        def save(state, path):
            if state.get("step"):          # the stop's mid-epoch checkpoint
                signal.raise_signal(signum)
            return real_save(state, path)

        checkpoint.save = save


def _kill_a_worker() -> None:
    def kill(trainer):
        workers = multiprocessing.active_children()
        assert workers, "no loader worker to kill: run with --workers 2"
        os.kill(workers[0].pid, signal.SIGKILL)
        time.sleep(0.5)  # its SIGCHLD arrives while the step runs
    at_step(FAULT_EPOCH, 1, kill)


def _damage(relative: str, content: bytes) -> None:
    """The data file `relative` (to --data) overwritten with `content` before step 1 of epoch 2."""
    def damage(trainer):
        (Path(trainer.train.root).parent / relative).write_bytes(content)
    at_step(FAULT_EPOCH, 1, damage)


def _raise_in_validation() -> None:
    from netdsl.runner import train

    real_evaluate = train.evaluate
    calls = {"n": 0}

    def evaluate(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == FAULT_EPOCH:
            raise RuntimeError("injected fault in validation")
        return real_evaluate(*args, **kwargs)

    train.evaluate = evaluate


def _raise_in_a_batch() -> None:
    from netdsl.runner import data

    real_getitem = data.TrainSet.__getitem__

    def getitem(self, key):
        if key[0] == FAULT_EPOCH:   # (epoch, index): runs in the worker, where there is one
            raise ValueError("injected fault in a batch")
        return real_getitem(self, key)

    data.TrainSet.__getitem__ = getitem


def tiny_png(size: int = 4) -> bytes:
    import io

    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (size, size), (200, 30, 30)).save(out, format="PNG")
    return out.getvalue()


INJECTIONS = {
    "checkpoint.pt full": lambda: FailingDisk("checkpoint.pt.*.tmp", after=1),
    "best.pt full": lambda: (FailingDisk("best.pt.*.tmp"), without_hard_links("best.pt.*.tmp")),
    "metrics.jsonl full": lambda: FailingDisk("metrics.jsonl", after=1),
    "statistics cache full": lambda: FailingDisk(".netdsl-stats-*.tmp"),
    "NaN loss": _nan_loss,
    "training image unreadable": lambda: _damage("train/class0/0.png", b"not an image any more"),
    "validation image too small": lambda: _damage("val/class1/0.png", tiny_png()),
    "exception in validation": _raise_in_validation,
    "exception in a batch": _raise_in_a_batch,
    "SIGTERM": lambda: _signal(signal.SIGTERM),
    "SIGINT": lambda: _signal(signal.SIGINT),
    "SIGINT twice": lambda: _signal(signal.SIGINT, again_during_save=True),
    "loader worker killed": _kill_a_worker,
}


def inject(case: str) -> None:
    """The case's fault, installed in this process (in the named rank alone, for `CASE@R`);
    `-`: none (a fault in the data given)."""
    name, _, rank = case.partition("@")
    if name != "-" and (not rank or os.environ.get("RANK", "0") == rank):
        INJECTIONS[name]()


# ---------------------------------------------------------------- the cases and their outcomes

@dataclasses.dataclass(frozen=True)
class Ending:
    """How one process must end: its exit status and the last line of its stderr, a glob over
    {run}, {data} ("" for nothing printed); `one_line`: that line is all it printed (a bug's
    traceback is not)."""
    status: int
    line: str
    one_line: bool = True


@dataclasses.dataclass(frozen=True)
class Case:
    """A fault (an INJECTIONS key; `@R`: in rank R alone) and what must follow it: how each rank
    ends, the epoch the last checkpoint holds (None: the run went on to its end), and the data
    file to repair before resuming."""
    fault: str
    endings: tuple[Ending, ...]          # rank 0's, rank 1's, ...
    checkpoint_epoch: int | None
    needs_workers: bool = False
    repair: str | None = None

    @property
    def ranks(self) -> int:
        return len(self.endings)

    @property
    def name(self) -> str:
        return self.fault + (" (2 ranks)" if self.ranks > 1 else "")


def full(name: str) -> str:
    return f"{{run}}/{name}: error: cannot write: No space left on device"


LAST_GOOD = "training stopped and {run}/checkpoint.pt (epoch 1) is the last good checkpoint"
NAN = "error: the training loss became nan at epoch 2, step 2; " + LAST_GOOD + "; a smaller --lr may help"
WORKER_DIED = ("error: a data loading worker process died (DataLoader worker (pid*; " + LAST_GOOD
               + ": run the same command with --resume to continue")
STOPPED = ("{run}: stopped by %s in epoch 2 of 3, after step 2 of 3; checkpoint.pt holds it: "
           "run the same command with --resume to continue")
LOST = "error: lost contact with another training process (Connection closed by peer*"
SILENT = Ending(2, "")

CASES = [
    Case("checkpoint.pt full", (Ending(2, full("checkpoint.pt")),), 1),
    Case("best.pt full", (Ending(2, full("best.pt")),), 1),
    Case("metrics.jsonl full", (Ending(2, full("metrics.jsonl")),), 1),
    Case("statistics cache full", (Ending(0, "warning: cannot cache the training set's statistics*"),), None),
    Case("NaN loss", (Ending(2, NAN),), 1),
    Case("training image unreadable", (Ending(0, "warning: skipped {data}/train/class0/0.png: cannot decode it*"),),
         None),
    Case("validation image too small", (Ending(2, "{data}/val/class1/0.png: error: *"),), 1,
         repair="val/class1/0.png"),
    Case("exception in validation", (Ending(1, "RuntimeError: injected fault in validation", False),), 1),
    Case("exception in a batch", (Ending(1, "ValueError: injected fault in a batch", False),), 1),
    Case("SIGTERM", (Ending(143, STOPPED % "SIGTERM"),), 2),
    Case("SIGINT", (Ending(130, STOPPED % "SIGINT"),), 2),
    Case("SIGINT twice", (Ending(130, STOPPED % "SIGINT"),), 2),
    Case("loader worker killed", (Ending(2, WORKER_DIED),), 1, needs_workers=True),
    # two processes as torchrun starts them: a fault in one ends both, rank 0 alone printing
    Case("checkpoint.pt full@0", (Ending(2, full("checkpoint.pt")), SILENT), 1),
    Case("NaN loss@1", (Ending(2, NAN), SILENT), 1),
    Case("SIGTERM@1", (Ending(143, STOPPED % "SIGTERM"), Ending(143, "")), 2),
    Case("loader worker killed@1", (Ending(2, WORKER_DIED), SILENT), 1, needs_workers=True),
    Case("exception in validation@1", (Ending(2, LOST), Ending(1, "*RuntimeError: injected fault in validation",
                                                               False)), 1),
]


@dataclasses.dataclass
class Outcome:
    """What one process of a run with a fault did: its exit status, seconds from the start to its
    exit, what it printed, and the debris left: temporary files, and processes of its session
    still alive after it."""
    status: int
    seconds: float
    stderr: str
    stdout: str
    temporaries: list[str]
    survivors: int

    @property
    def last_line(self) -> str:
        lines = self.stderr.strip().splitlines()
        return lines[-1] if lines else ""


def train_argv(net: Path, data: Path, run: Path, workers: int, *flags) -> list[str]:
    return ["train", str(net), "--data", str(data), "--out", str(run), "--epochs", str(EPOCHS),
            "--workers", str(workers), *map(str, flags)]


def run_case(case: str, argv: list[str], watch: list[Path], ranks: int = 1, launcher=None) -> list[Outcome]:
    """`netdsl argv` with `case` injected, in `ranks` processes started as torchrun starts them
    (each in a session of its own, by `launcher`: Spawn by default), to their end; each one's
    Outcome, with the temporary files left under `watch`. A process still running after
    KILL_AFTER_S is killed: AssertionError."""
    launcher = launcher or Spawn()
    common = {"OMP_NUM_THREADS": "1"}
    if ranks > 1:
        common.update(WORLD_SIZE=str(ranks), LOCAL_WORLD_SIZE=str(ranks), MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(free_port()))
    with tempfile.TemporaryDirectory() as logs:
        started = time.monotonic()
        rank_env = [{"RANK": str(r), "LOCAL_RANK": str(r)} if ranks > 1 else {} for r in range(ranks)]
        processes = [launcher.start(case, argv, {**common, **rank_env[r]}, Path(logs) / f"{r}.out",
                                    Path(logs) / f"{r}.err") for r in range(ranks)]
        ended = {}
        while len(ended) < ranks:
            for r, process in enumerate(processes):
                if r not in ended and process.poll() is not None:
                    ended[r] = time.monotonic() - started
            if time.monotonic() - started > KILL_AFTER_S:
                for process in processes:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(process.pid, signal.SIGKILL)
                raise AssertionError(f"{case}: ranks {sorted(ended)} of {ranks} ended in {KILL_AFTER_S:.0f} s: "
                                     + "".join((Path(logs) / f"{r}.err").read_text() for r in range(ranks)))
            time.sleep(0.02)
        return [Outcome(p.poll(), ended[r], (Path(logs) / f"{r}.err").read_text(),
                        (Path(logs) / f"{r}.out").read_text(), temporaries(*watch), survivors(p.pid))
                for r, p in enumerate(processes)]


class Spawn:
    """Each run a fresh interpreter, as a user starts one: `python tests/faultmatrix.py CASE ...`."""

    def start(self, case: str, argv: list[str], extra_env: dict, out: Path, err: Path) -> subprocess.Popen:
        with open(out, "w") as stdout, open(err, "w") as stderr:  # files: a full pipe could stall it
            return subprocess.Popen([sys.executable, __file__, case, *argv], start_new_session=True,
                                    env={**env(), **extra_env}, stdout=stdout, stderr=stderr)


class Zygote:
    """Each run forked from one process that has imported torch and netdsl already: the runs are
    real processes that exit as any does (every exit handler runs), without the 4 s of imports
    each (torch, and torch._dynamo, which torch.optim imports). serve() is the other end."""

    def __init__(self):
        self.server = subprocess.Popen([sys.executable, __file__, "--zygote"], stdin=subprocess.PIPE,
                                       stdout=subprocess.PIPE, text=True, env={**env(), "OMP_NUM_THREADS": "1"})
        self.ended: dict[int, int] = {}
        self.pids: queue.Queue = queue.Queue()
        self.lock = threading.Lock()   # one job's line, then its pid, at a time
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        for line in self.server.stdout:
            kind, pid, status = line.split()
            if kind == "started":
                self.pids.put(int(pid))
            else:
                self.ended[int(pid)] = int(status)

    def start(self, case: str, argv: list[str], extra_env: dict, out: Path, err: Path) -> "Forked":
        job = {"case": case, "argv": argv, "env": extra_env, "stdout": str(out), "stderr": str(err)}
        with self.lock:
            self.server.stdin.write(json.dumps(job) + "\n")
            self.server.stdin.flush()
            return Forked(self, self.pids.get(timeout=60))

    def close(self) -> None:
        self.server.stdin.close()
        self.server.wait(timeout=60)


@dataclasses.dataclass
class Forked:
    """A run the zygote forked: poll() is its exit status once it has ended (-N: signal N)."""
    zygote: Zygote
    pid: int

    def poll(self) -> int | None:
        return self.zygote.ended.get(self.pid)


def serve() -> None:
    """The zygote's loop: a JSON job a line on stdin, forked; `started PID 0` once forked and
    `ended PID STATUS` once reaped, on stdout."""
    import select

    from netdsl import cli
    from netdsl.runner import train  # noqa: F401  (what every run imports, imported once)
    import torch._dynamo  # noqa: F401

    pending = b""
    while True:
        readable, _, _ = select.select([0], [], [], 0.02)
        if readable:
            chunk = os.read(0, 65536)
            if not chunk:
                return
            pending += chunk
            while b"\n" in pending:
                line, pending = pending.split(b"\n", 1)
                pid = os.fork()
                if pid == 0:
                    sys.exit(_forked(json.loads(line), cli))
                print("started", pid, 0, flush=True)
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            print("ended", pid, os.waitstatus_to_exitcode(status), flush=True)


def _forked(job: dict, cli) -> int:
    """In the forked child: a session, stdout and stderr of its own, the fault, the command. The
    SystemExit it returns to unwinds serve() and the interpreter exits as any does."""
    os.setsid()
    for fd, path in ((1, job["stdout"]), (2, job["stderr"])):
        opened = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(opened, fd)
        os.close(opened)
    os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
    os.environ.update(job["env"])
    inject(job["case"])
    return cli.main(job["argv"])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def temporaries(*folders: Path) -> list[str]:
    return sorted(str(p) for folder in folders for p in Path(folder).rglob("*") if ".tmp" in p.name)


def processes() -> dict[int, tuple[str, int, int]]:
    """Every process alive: pid -> (state, parent pid, session id), from /proc/PID/stat."""
    table = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue  # it has just ended
            table[int(entry.name)] = (fields[0], int(fields[1]), int(fields[3]))
    return table


def survivors(session: int) -> int:
    """How many processes of the session (its leader's pid) are alive: a loader worker outliving
    its run would be one. Orphans are reparented but keep their session."""
    return sum(1 for state, _, sid in processes().values() if sid == session and state != "Z")  # not a zombie


def fresh_copy(template: Path, folder: Path) -> Path:
    """A copy of the data that a case may damage, without its statistics cache."""
    shutil.copytree(template, folder, ignore=shutil.ignore_patterns(".netdsl-stats-*"))
    return folder


# ---------------------------------------------------------------- the whole matrix

@dataclasses.dataclass
class Result:
    """A case run with `workers` loader workers a process: how it ended, against how it must."""
    case: Case
    workers: int
    outcomes: list[Outcome]
    resumed: str = "-"        # equal | resumed | differs | failed: <status> | - (nothing to resume)
    failures: list[str] = dataclasses.field(default_factory=list)

    @property
    def id(self) -> str:
        return f"{self.case.name}, {self.workers} workers"


def jobs(cases=CASES, workers=(0, 2)) -> list[tuple[Case, int]]:
    return [(case, w) for case in cases for w in workers if w or not case.needs_workers]


def run_matrix(root: Path, cases=CASES, workers=(0, 2), parallel: int = 2, launcher=None) -> list[Result]:
    """Every case with each worker count, `parallel` runs at a time (started by `launcher`:
    Spawn by default), then each stopped run resumed in this process (one process, no workers)
    and compared with the run never stopped. Every run takes one thread, as do the runs here."""
    from netdsl import cli
    from test_data import make_folder, tiny_net

    template, net, whole = make_folder(root / "data"), tiny_net(root), root / "whole"
    with one_thread(), contextlib.redirect_stdout(io.StringIO()):
        assert cli.main(train_argv(net, template, whole, 0)) == 0

    def run(index_job):
        index, (case, count) = index_job
        folder = root / f"case{index}"
        data, run_dir = fresh_copy(template, folder / "data"), folder / "run"
        outcomes = run_case(case.fault, train_argv(net, data, run_dir, count), [run_dir, data], case.ranks,
                            launcher)
        return Result(case, count, outcomes), data, run_dir

    with concurrent.futures.ThreadPoolExecutor(parallel) as pool:
        ran = list(pool.map(run, enumerate(jobs(cases, workers))))
    with one_thread():
        for result, data, run_dir in ran:
            result.failures = check(result, run=run_dir, data=data)
            resume(result, template, net, data, run_dir, whole)
    return [result for result, _, _ in ran]


@contextlib.contextmanager
def one_thread():
    """torch on one thread, as in the runs (OMP_NUM_THREADS=1): a convolution's sums, and so the
    weights to the bit, depend on how many threads share them."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def check(result: Result, **names) -> list[str]:
    """How the processes' ends differ from the case's endings: nothing where they agree."""
    failures = []
    for rank, (ending, outcome) in enumerate(zip(result.case.endings, result.outcomes)):
        said = f"rank {rank}: " if result.case.ranks > 1 else ""
        line = ending.line.format(**names)
        if outcome.seconds >= BOUND_S:
            failures.append(f"{said}ended after {outcome.seconds:.1f} s")
        if outcome.status != ending.status:
            failures.append(f"{said}exit status {outcome.status}, not {ending.status}")
        if not fnmatch.fnmatchcase(outcome.last_line, line):
            failures.append(f"{said}its last line is {outcome.last_line!r}, not {line!r}")
        if ending.one_line and ("\n" in outcome.stderr.strip() or "Traceback" in outcome.stderr):
            failures.append(f"{said}it printed more than one line: {outcome.stderr!r}")
        if outcome.temporaries:
            failures.append(f"{said}temporary files left: {outcome.temporaries}")
        if outcome.survivors:
            failures.append(f"{said}{outcome.survivors} of its processes outlived it")
    return failures


def resume(result: Result, template: Path, net: Path, data: Path, run_dir: Path, whole: Path) -> None:
    """The last checkpoint checked, and where the run stopped early, --resume run: `equal` where
    it ends with the weights, optimizer state and schedule of the run never stopped (a run of one
    process; a checkpoint two processes wrote resumes, but their sums' rounding differs)."""
    from netdsl import cli

    case = result.case
    epoch = torch.load(run_dir / "checkpoint.pt", weights_only=True)["epoch"]
    if epoch != (case.checkpoint_epoch or EPOCHS):
        result.failures.append(f"the last checkpoint is epoch {epoch}'s, not {case.checkpoint_epoch or EPOCHS}'s")
    if not case.checkpoint_epoch:
        return
    if case.repair:
        (data / case.repair).write_bytes((template / case.repair).read_bytes())
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()) as err:
        status = cli.main(train_argv(net, data, run_dir, 0, "--resume"))
    if status != 0:
        result.resumed = f"failed: {status}"
        result.failures.append(f"--resume exited {status}: {err.getvalue().strip()}")
    elif case.ranks > 1:
        result.resumed = "resumed"
    else:
        result.resumed = "equal" if same_training(run_dir, whole) else "differs"
        if result.resumed == "differs":
            result.failures.append("--resume did not end with the weights of the run never stopped")


def same_training(run: Path, whole: Path) -> bool:
    """The weights, the optimizer's state and the schedule equal, to the bit."""
    a, b = (torch.load(folder / "checkpoint.pt", weights_only=True) for folder in (run, whole))
    return _equal(a["model"], b["model"]) and _equal(a["optimizer"], b["optimizer"]) and a["schedule"] == b["schedule"]


def _equal(a, b) -> bool:
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.shape == b.shape and torch.equal(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_equal(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return isinstance(b, (list, tuple)) and len(a) == len(b) and all(map(_equal, a, b))
    return a == b


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    if sys.argv[1] == "--zygote":
        serve()
    else:
        inject(sys.argv[1])
        from netdsl import cli

        sys.exit(cli.main(sys.argv[2:]))
