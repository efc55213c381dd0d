#!/bin/sh
# docs/results.md's Fashion-MNIST rows, from an empty folder:
#
#     sh docs/fashion-mnist/reproduce.sh OUT [NET ...]        # NET: fashion_tiny fashion_bn (default: both)
#
# Needs `apt-get install dataset-fashion-mnist`. OUT must be empty or missing: the script never
# reuses a result it did not make. For each network: netdsl data (once), netdsl train, then
# netdsl eval on the test split, its JSON record in OUT/<net>/test.json beside the run's
# metrics.jsonl and provenance.jsonl. Run as the committed records were: one run at a time, torch's
# default threads (2 on the 2-core machine), the default loader workers.
#
# Smaller, for tests (environment variables; unset, the published run):
#   FASHION_MNIST_DIR=DIR     the four IDX files (default /usr/share/datasets/fashion-mnist); a
#                             small set still needs 500 training images a class, as 5,000 are held out
#   FASHION_MNIST_EPOCHS=N    train N epochs in place of the .net file's
set -eu
out=${1:?usage: sh docs/fashion-mnist/reproduce.sh OUT [NET ...]}
shift
nets=${*:-fashion_tiny fashion_bn}
if [ -e "$out" ] && [ -n "$(ls -A "$out")" ]; then
    echo "error: $out is not empty; give an empty or new folder" >&2
    exit 2
fi
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
epochs=
[ -z "${FASHION_MNIST_EPOCHS:-}" ] || epochs="--epochs $FASHION_MNIST_EPOCHS"
mkdir -p "$out"
netdsl data fashion-mnist "$out/data" --idx "${FASHION_MNIST_DIR:-/usr/share/datasets/fashion-mnist}"
for net in $nets; do
    # shellcheck disable=SC2086  # $epochs is empty or two words
    netdsl train "$repo/nets/$net.net" --data "$out/data" --out "$out/$net" $epochs
    netdsl eval "$repo/nets/$net.net" --checkpoint "$out/$net/best.pt" --data "$out/data" --split test \
        --json "$out/$net/test.json"
done
