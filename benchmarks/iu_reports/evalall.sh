# evaluate every runs/gen2/*.jsonl that has no .eval.json yet, two at a time
cd "$(dirname "$0")/../.."
R=".venv/bin/radscribe"
ev() { local s=$(date +%s); $R evaluate-reports $1.jsonl --split test --out $1.eval.json > $1.eval.log 2>&1; echo "EVALWALL $1 $(( $(date +%s) - s )) s rc=$?"; }
set -- $(for f in runs/gen2/*.jsonl; do b=${f%.jsonl}; [ -f $b.eval.json ] || echo $b; done)
while [ $# -gt 0 ]; do
  ev $1 & p1=$!
  if [ $# -gt 1 ]; then ev $2 & p2=$!; wait $p2; fi
  wait $p1
  shift; [ $# -gt 0 ] && shift
done
echo "EVAL DONE"
