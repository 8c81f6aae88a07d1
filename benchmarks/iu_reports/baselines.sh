# every non-LLM generator on the IU test split, oracle + indication findings (re-run after each labeler/guard change)
cd "$(dirname "$0")/../.."
R=".venv/bin/radscribe"; D=runs/gen2; mkdir -p $D
S=${SCRATCH_RUNS:-runs}  # where scratch seeds 1-2 were trained (radscribe train-scratch --seed S --out $S/scratch-seedS)
T0=$(date +%s)
gen() {  # name mode out [extra args]
  local s=$(date +%s.%N)
  $R generate-reports --generator $1 --findings $2 --split test --out $3 "${@:4}" 2>&1 | tr '\r' '\n' | grep -a "reports ->"
  echo "GENWALL $3 $(echo "$(date +%s.%N) - $s" | bc)"
}
for m in oracle indication; do
  gen structured $m $D/structured-$m.jsonl
  gen most-common $m $D/most-common-$m.jsonl
  gen retrieval $m $D/retrieval-$m.jsonl
  gen scratch $m $D/scratch-$m-seed0.jsonl
  gen scratch $m $D/scratch-$m-seed1.jsonl --seed 1 --weights $S/scratch-seed1
  gen scratch $m $D/scratch-$m-seed2.jsonl --seed 2 --weights $S/scratch-seed2
done
for g in most-common retrieval; do .venv/bin/python benchmarks/iu_reports/unguard.py $D/$g-oracle.jsonl $D/${g}_unguarded-oracle.jsonl; done
for s in 0 1 2; do .venv/bin/python benchmarks/iu_reports/unguard.py $D/scratch-oracle-seed$s.jsonl $D/scratch_unguarded-oracle-seed$s.jsonl; done
echo "GENERATION DONE $(( $(date +%s) - T0 )) s"
