# llm-lora test generation for one seed: oracle + indication, via the issue's command
# usage: bash runs/gen2/llm.sh SEED WEIGHTS_DIR
cd "$(dirname "$0")/../.."
S=$1; W=$2; D=runs/gen2; R=".venv/bin/radscribe"; mkdir -p $D
for m in oracle indication; do
  s=$(date +%s)
  $R generate-reports --generator llm-lora --seed $S --weights $W --findings $m --split test --out $D/llm-lora-$m-seed$S.jsonl 2>&1 | tr '\r' '\n' | grep -a "reports ->"
  echo "GENWALL llm-lora-$m-seed$S $(( $(date +%s) - s )) s"
done
.venv/bin/python benchmarks/iu_reports/unguard.py $D/llm-lora-oracle-seed$S.jsonl $D/llm-lora_unguarded-oracle-seed$S.jsonl
