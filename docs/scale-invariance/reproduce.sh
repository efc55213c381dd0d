#!/usr/bin/env bash
# Everything behind docs/scale-invariance.md, from Fashion-MNIST's IDX files to the tables, into
# an empty folder:
#
#     sudo apt-get install dataset-fashion-mnist       # IDX files in /usr/share/datasets/fashion-mnist
#     bash docs/scale-invariance/reproduce.sh OUT [SPLITS]     # SPLITS: default "0 1 2 3"
#
# OUT must be new or empty (exit 2 otherwise): every step runs, nothing already there is reused,
# and nothing is written outside OUT. It then holds:
#   settings.txt                          the commit, the settings below, the machine, start and end
#   data/fmnist-scale-K/                  `netdsl data mnist-scale` of split K
#   logs/                                 each command's output
#   scale-invariance/runs/NET-splitK/     each run folder as `netdsl train` leaves it: metrics.jsonl,
#                                         provenance.jsonl (commit, seed, threads, workers, host,
#                                         data fingerprint), best.pt, checkpoint.pt; beside them
#                                         test.txt and test.json, `netdsl eval --split test --center`
#   scale-invariance/error-by-scale-splitK.txt, .png    `netdsl eval --scales`, both networks
#   scale-invariance/invariance-splitK.txt, .png        `netdsl invariance`, both networks
#   scale-invariance.md                   the result tables, written by docs/scale-invariance/summarize.py
#                                         from the files above, as in docs/scale-invariance.md
# so that `diff -r` against docs/scale-invariance/ compares like with like (docs/ keeps only each
# run's metrics.jsonl and test.txt).
#
# Run as the committed runs were: every netdsl process on one thread (OMP_NUM_THREADS=1), no
# loader processes (--workers 0), two processes at a time (in order: split 0's two trainings,
# then the next as one ends; then the comparisons, two at a time). Both networks of split K
# train with seed K (--seed K), on split K's data. The SI network trains at about 140 images/s on one core of a 2-core CPU, so one SI
# run of 60 epochs takes 70 minutes or more; the four splits take the best part of a day. A run
# stopped by SIGINT/SIGTERM (the script passes them on) checkpoints; `netdsl train ... --resume`
# continues it by hand, but this script always starts from nothing.
#
# Smaller, for tests (environment variables; the defaults are the published run's):
#   SI_IDX=DIR                the four IDX files (default /usr/share/datasets/fashion-mnist)
#   SI_SIZES=T,V,E            MNIST-scale with T train, V val and E test images (default 10000,2000,50000,
#                             which `netdsl data mnist-scale` writes; other sizes go through
#                             netdsl.datasets.mnist_scale.build, the same code)
#   SI_EPOCHS=N SI_SCHEDULE=S the budget (default 60 and "multistep(42, 54)")
#   SI_SCALE_IMAGES=N         test images of `netdsl eval --scales` (default 5000)
#   SI_INVARIANCE_IMAGES=N    test images of `netdsl invariance` (default 2000)
#   SI_PARALLEL=N             processes at a time (default 2)
set -euo pipefail
usage="usage: bash docs/scale-invariance/reproduce.sh OUT [SPLITS]"
out=${1:?$usage}
splits=${2:-0 1 2 3}
if [ -e "$out" ] && { [ ! -d "$out" ] || [ -n "$(ls -A "$out")" ]; }; then
    echo "error: $out is not empty; give a new or empty folder (this script reuses nothing)" >&2
    exit 2
fi
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
nets=$repo/nets
idx=${SI_IDX:-/usr/share/datasets/fashion-mnist}
sizes=${SI_SIZES:-10000,2000,50000}
epochs=${SI_EPOCHS:-60}
# Kanazawa et al.'s recipe as nets/ carries it (1000 epochs: 700 at lr 0.01, 200 at 0.001, 100
# at 0.0001), on a CPU budget of 60 epochs with the stages in proportion: 42, 12 and 6.
schedule=${SI_SCHEDULE:-multistep(42, 54)}
scale_images=${SI_SCALE_IMAGES:-5000}
invariance_images=${SI_INVARIANCE_IMAGES:-2000}
parallel=${SI_PARALLEL:-2}

mkdir -p "$out"
out=$(cd "$out" && pwd)
si=$out/scale-invariance
logs=$out/logs
mkdir -p "$out/data" "$si/runs" "$logs"

{
    echo "command: bash docs/scale-invariance/reproduce.sh $out $splits"
    echo "commit: $(git -C "$repo" rev-parse HEAD 2>/dev/null || echo unknown)" \
         "($(git -C "$repo" status --porcelain 2>/dev/null | wc -l) paths changed or untracked)"
    echo "netdsl: $(python3 -c 'import importlib.metadata as m; print(m.version("netdsl"))' 2>/dev/null || echo unknown)"
    echo "splits: $splits; seed of split K: K; sizes: $sizes; epochs: $epochs; schedule: $schedule"
    echo "error-by-scale images: $scale_images; invariance images: $invariance_images"
    echo "OMP_NUM_THREADS=1; loader workers: 0; processes at a time: $parallel"
    echo "machine: $(uname -n), $(nproc --all) CPUs, $(lscpu 2>/dev/null | sed -n 's/^Model name: *//p' | head -1)"
    echo "started: $(date -u +%FT%TZ)"
} > "$out/settings.txt"
export OMP_NUM_THREADS=1

# At most $parallel steps at a time, each in the background; a failed one stops new ones.
running=0 failed=0
reap() { if wait -n; then :; else failed=1; fi; running=$((running - 1)); }
start() {
    while [ "$running" -ge "$parallel" ]; do reap; done
    [ "$failed" = 0 ] || return 0
    "$@" &
    running=$((running + 1))
}
finish() {
    while [ "$running" -gt 0 ]; do reap; done
    if [ "$failed" != 0 ]; then
        echo "error: a step failed; its output is in $logs" >&2
        exit 1
    fi
}
# SIGINT or SIGTERM: each step passes SIGTERM to its netdsl process (a training run checkpoints)
# and the script exits once they have.
trap 'trap - INT TERM; kill -TERM $(jobs -p) 2>/dev/null; wait; exit 143' INT TERM

# "$@" as a child that a SIGTERM to this (background) shell reaches; its exit status.
child() {
    local pid status=0
    "$@" &
    pid=$!
    trap 'kill -TERM $pid 2>/dev/null' TERM
    wait "$pid" || status=$?
    if kill -0 "$pid" 2>/dev/null; then status=0; wait "$pid" || status=$?; fi
    trap - TERM
    return "$status"
}

# A command's output into FILE, its stderr into LOG; FILE is written only if the command succeeds.
into() {
    local file=$1 log=$2; shift 2
    child "$@" > "$file.tmp" 2> "$log" && mv "$file.tmp" "$file"
}

# One network of one split: train, then score best.pt once on the whole test split.
train_and_test() {
    local k=$1 net=$2
    local data=$out/data/fmnist-scale-$k run=$si/runs/$net-split$k
    echo "train $net split $k"
    child netdsl train "$nets/$net.net" --data "$data" --out "$run" --seed "$k" --workers 0 \
        --epochs "$epochs" --schedule "$schedule" > "$logs/$net-split$k.train.log" 2>&1 &&
    into "$run/test.txt" "$logs/$net-split$k.test.log" \
        netdsl eval "$nets/$net.net" --checkpoint "$run/best.pt" --data "$data" --split test --center \
        --workers 0 --json "$run/test.json" &&
    cat "$run/test.txt"
}

# Both networks of one split: error against scale; the invariance score.
error_by_scale() {
    local k=$1
    local data=$out/data/fmnist-scale-$k
    local cnn=$si/runs/mnist_scale_cnn-split$k/best.pt sin=$si/runs/mnist_scale_si-split$k/best.pt
    local both=("$nets/mnist_scale_cnn.net" "$nets/mnist_scale_si.net" --checkpoint "$cnn" --checkpoint "$sin")
    into "$si/error-by-scale-split$k.txt" "$logs/error-by-scale-split$k.log" \
        netdsl eval "${both[@]}" --data "$data" --split test --workers 0 \
        --scales 0.3,0.4,0.5,0.6,0.7,0.8,0.9,1.0 --images "$scale_images" \
        --out "$si/error-by-scale-split$k.png" &&
    cat "$si/error-by-scale-split$k.txt"
}
invariance() {
    local k=$1
    local data=$out/data/fmnist-scale-$k
    local cnn=$si/runs/mnist_scale_cnn-split$k/best.pt sin=$si/runs/mnist_scale_si-split$k/best.pt
    into "$si/invariance-split$k.txt" "$logs/invariance-split$k.log" \
        netdsl invariance "$nets/mnist_scale_cnn.net" "$nets/mnist_scale_si.net" \
        --checkpoint "$cnn" --checkpoint "$sin" --data "$data" --split test --images "$invariance_images" \
        --out "$si/invariance-split$k.png" &&
    cat "$si/invariance-split$k.txt"
}

# The data, one split after another (each uses every core for its images).
for k in $splits; do
    data=$out/data/fmnist-scale-$k
    if [ "$sizes" = 10000,2000,50000 ]; then
        netdsl data mnist-scale "$idx" "$data" --split "$k"
    else
        python3 - "$idx" "$data" "$k" "$sizes" <<'EOF'
import sys
import numpy as np
from netdsl.datasets import idx, mnist_scale
folder, out, fold, sizes = sys.argv[1], sys.argv[2], int(sys.argv[3]), tuple(map(int, sys.argv[4].split(",")))
found = idx.load_idx_set(folder)
written = mnist_scale.build(np.concatenate([found.train_images, found.test_images]),
                            np.concatenate([found.train_labels, found.test_labels]), out, fold, sizes, workers=1)
print(f"MNIST-scale split {fold} from {folder}, sizes {sizes}: {written} in {out}")
EOF
    fi
done

for k in $splits; do
    for net in mnist_scale_cnn mnist_scale_si; do
        start train_and_test "$k" "$net"
    done
done
finish
for k in $splits; do
    start error_by_scale "$k"
    start invariance "$k"
done
finish

# The tables of docs/scale-invariance.md from OUT's files: summarize.py as it is, pointed at OUT.
python3 - "$here/summarize.py" "$si" "$out/scale-invariance.md" "$epochs" <<'EOF'
import importlib.util
import sys
from pathlib import Path
spec = importlib.util.spec_from_file_location("summarize", sys.argv[1])
summarize = importlib.util.module_from_spec(spec)
spec.loader.exec_module(summarize)
summarize.HERE, summarize.DOC, summarize.EPOCHS = Path(sys.argv[2]), Path(sys.argv[3]), int(sys.argv[4])
summarize.DOC.write_text("# Scale invariance, reproduced\n\n<!-- results -->\n<!-- /results -->\n")
summarize.main()
EOF
echo "ended: $(date -u +%FT%TZ)" >> "$out/settings.txt"
echo "wrote $out/scale-invariance.md"
