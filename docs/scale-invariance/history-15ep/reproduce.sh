#!/usr/bin/env bash
# Everything behind docs/scale-invariance.md, from Debian's Fashion-MNIST files to the plots.
#   sudo apt-get install dataset-fashion-mnist      # IDX files in /usr/share/datasets/fashion-mnist
#   bash docs/scale-invariance/history-15ep/reproduce.sh [WORK]  # WORK: data and runs (default /work/si)
# About 45 minutes on a 2-core CPU, most of it the SI network's training.
set -euo pipefail
work=${1:-/work/si}
idx=/usr/share/datasets/fashion-mnist
out=$(dirname "$0")
mkdir -p "$work"

# The networks as the runs were made: the copies in docs/scale-invariance/history-15ep/nets/,
# whose [train] sections hold the recipe of that time (15 epochs, lr 0.001, 0..255 pixels);
# nets/ now carries Kanazawa et al.'s recipe (1000 epochs, 0..1 pixels).
nets=$out/nets

# Three MNIST-scale splits, and both networks trained on each with one recipe, the files'
# identical [train] sections, seeded by the split.
for k in 0 1 2; do
  data=$work/data/fmnist-scale-$k
  [ -d "$data" ] || netdsl data mnist-scale $idx "$data" --split $k
  for net in mnist_scale_cnn mnist_scale_si; do
    run=$work/runs/$net-split$k
    [ -f "$run/checkpoint.pt" ] || netdsl train "$nets/$net.net" --data "$data" --out "$run" --seed $k
    mkdir -p "$out/runs/$net-split$k"
    cp "$run/metrics.jsonl" "$out/runs/$net-split$k/metrics.jsonl"
    netdsl eval "$nets/$net.net" --checkpoint "$run/best.pt" --data "$data" --split test --center \
      | tee "$out/runs/$net-split$k/test.txt"
  done
done

# Error against scale and the invariance score, on split 0's test images.
data=$work/data/fmnist-scale-0
cnn=$work/runs/mnist_scale_cnn-split0/best.pt
si=$work/runs/mnist_scale_si-split0/best.pt
netdsl eval "$nets/mnist_scale_cnn.net" "$nets/mnist_scale_si.net" --checkpoint $cnn --checkpoint $si \
  --data $data --split test --scales 0.3,0.4,0.5,0.6,0.7,0.8,0.9,1.0 --images 5000 \
  --out "$out/error-by-scale.png" | tee "$out/error-by-scale.txt"
netdsl invariance "$nets/mnist_scale_cnn.net" "$nets/mnist_scale_si.net" --checkpoint $cnn --checkpoint $si \
  --data $data --split test --images 2000 --out "$out/invariance.png" | tee "$out/invariance.txt"
