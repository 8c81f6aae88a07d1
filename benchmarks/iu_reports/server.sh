# llm-server on the whole test split: llama.cpp (SmolLM2-135M GGUF, 1 thread) on loopback
cd "$(dirname "$0")/../.."
D=runs/gen2; mkdir -p $D; PY=.venv/bin/python; R=.venv/bin/radscribe
GGUF=$($PY -c "import os; from radscribe.report.llm_lora import base_gguf; print(os.path.join(*base_gguf()))")
$PY -m llama_cpp.server --model $GGUF --host 127.0.0.1 --port 18081 --n_threads 1 --n_ctx 2048 --model_alias smollm2 > $D/llama_server.log 2>&1 &
SRV=$!
for i in $(seq 60); do curl -sf http://127.0.0.1:18081/v1/models >/dev/null && break; sleep 1; done
export RADSCRIBE_LLM_URL=http://127.0.0.1:18081/v1 RADSCRIBE_LLM_MODEL=smollm2
for m in oracle indication; do
  s=$(date +%s)
  $R generate-reports --generator llm-server --findings $m --split test --out $D/llm-server-$m.jsonl 2>&1 | tr '\r' '\n' | grep -a "reports ->"
  echo "GENWALL llm-server-$m $(( $(date +%s) - s )) s"
done
kill $SRV
.venv/bin/python benchmarks/iu_reports/unguard.py $D/llm-server-oracle.jsonl $D/llm-server_unguarded-oracle.jsonl
