#!/usr/bin/env bash
# Everything behind docs/scale-invariance.md, from Debian's Fashion-MNIST files to the plots.
#   sudo apt-get install dataset-fashion-mnist       # IDX files in /usr/share/datasets/fashion-mnist
#   bash docs/scale-invariance/reproduce.sh [WORK] [SPLITS]   # WORK: data and runs (default /work/si)
# SPLITS defaults to "0 1 2 3". Rerun it to continue: a finished run is kept, an unfinished one
# resumes from its last checkpoint. The SI network trains at about 140 images/s on one core of
# the 2-core CPU of docs/benchmarks.md, so one SI run of 60 epochs takes 70 minutes or more.
set -euo pipefail
work=${1:-/work/si}
splits=${2:-0 1 2 3}
idx=/usr/share/datasets/fashion-mnist
out=$(dirname "$0")
nets=$out/../../nets
# Kanazawa et al.'s recipe as nets/ carries it (1000 epochs: 700 at lr 0.01, 200 at 0.001, 100
# at 0.0001), on a CPU budget of 60 epochs with the stages in proportion: 42, 12 and 6.
budget=(--epochs 60 --schedule "multistep(42, 54)")

# A command's output into FILE, kept only if the command succeeds, so that a rerun redoes it.
into() { local file=$1; shift; "$@" > "$file.tmp" && mv "$file.tmp" "$file" && cat "$file"; }

for k in $splits; do
  data=$work/data/fmnist-scale-$k
  [ -d "$data" ] || netdsl data mnist-scale $idx "$data" --split $k
  for net in mnist_scale_cnn mnist_scale_si; do
    run=$work/runs/$net-split$k
    if [ ! -f "$run/done" ]; then    # both networks of a split share its seed
      resume=(); [ -f "$run/checkpoint.pt" ] && resume=(--resume)
      netdsl train "$nets/$net.net" --data "$data" --out "$run" --seed $k "${budget[@]}" "${resume[@]}"
      touch "$run/done"
    fi
    mkdir -p "$out/runs/$net-split$k"
    cp "$run/metrics.jsonl" "$out/runs/$net-split$k/metrics.jsonl"
    [ -f "$out/runs/$net-split$k/test.txt" ] || into "$out/runs/$net-split$k/test.txt" \
      netdsl eval "$nets/$net.net" --checkpoint "$run/best.pt" --data "$data" --split test --center
  done
done

# Error against scale and the invariance score, on each split's test images; summarize.py
# averages them over the splits.
for k in $splits; do
  data=$work/data/fmnist-scale-$k
  cnn=$work/runs/mnist_scale_cnn-split$k/best.pt
  si=$work/runs/mnist_scale_si-split$k/best.pt
  [ -f "$out/error-by-scale-split$k.txt" ] || into "$out/error-by-scale-split$k.txt" \
    netdsl eval "$nets/mnist_scale_cnn.net" "$nets/mnist_scale_si.net" --checkpoint $cnn --checkpoint $si \
    --data $data --split test --scales 0.3,0.4,0.5,0.6,0.7,0.8,0.9,1.0 --images 5000 \
    --out "$out/error-by-scale-split$k.png"
  [ -f "$out/invariance-split$k.txt" ] || into "$out/invariance-split$k.txt" \
    netdsl invariance "$nets/mnist_scale_cnn.net" "$nets/mnist_scale_si.net" --checkpoint $cnn --checkpoint $si \
    --data $data --split test --images 2000 --out "$out/invariance-split$k.png"
done
python3 "$out/summarize.py"
