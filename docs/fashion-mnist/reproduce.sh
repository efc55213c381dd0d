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
set -eu
out=${1:?usage: sh docs/fashion-mnist/reproduce.sh OUT [NET ...]}
shift
nets=${*:-fashion_tiny fashion_bn}
if [ -e "$out" ] && [ -n "$(ls -A "$out")" ]; then
    echo "error: $out is not empty; give an empty or new folder" >&2
    exit 2
fi
mkdir -p "$out"
netdsl data fashion-mnist "$out/data"
for net in $nets; do
    netdsl train "nets/$net.net" --data "$out/data" --out "$out/$net"
    netdsl eval "nets/$net.net" --checkpoint "$out/$net/best.pt" --data "$out/data" --split test \
        --json "$out/$net/test.json"
done
