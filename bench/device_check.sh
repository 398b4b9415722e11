#!/usr/bin/env bash
# The CUDA path on one GPU, in one run that fits 8 minutes on one H200 (141 GB):
#   1. a bf16 step of the trainer under torchrun with one rank (FSDP2 on a one-rank NCCL mesh, bf16 parameters with
#      fp32 reduction, a distributed checkpoint), then a resume of it;
#   2. the HF engine's (and, where installed, vLLM's) generation throughput (bench/bench_engines.py);
#   3. bench/bench_rollout.py tree vs flat at a compute-bound batch: 16 prompts x n=8.
#
# The GPU machine reaches no package registry. Its image has torch, transformers, accelerate, safetensors,
# tensorboard, matplotlib, tqdm, pyyaml, requests and sympy; the rest of what aepo imports travels as wheels, and
# the model as its config + tokenizer: the weights are initialised at random there (seeded), since SmolLM2's real
# weights (270 MB in bf16) exceed the 64 MiB a call may carry. The checks measure the CUDA path and its speed, not
# answers; the rollout bench forces a first tool call so every trajectory reaches the sandbox. vLLM's CUDA wheel
# (hundreds of MB) cannot travel either: its rows run only where the image has vllm.
#
#   here (with the registries):  bash bench/device_check.sh prepare        # -> .whl/ and .device_assets/ (ignored)
#   there (the device tool):     run(command="bash bench/device_check.sh", carry=[".whl", ".device_assets"],
#                                    timeout_s=540)                        # the log comes back as $OUT/device_check.log
#   a CPU smoke of the same steps:  DEVICE_CHECK_DEVICE=cpu DEVICE_CHECK_SIZE=tiny bash bench/device_check.sh
#
# DEVICE_CHECK_SIZE: tiny (2 layers) | 135m (SmolLM2-135M's shape) | 1.7b (SmolLM2-1.7B's shape, the default on cuda);
# DEVICE_CHECK_PROMPTS / _N / _TOKENS: the batch (16 prompts x n=8, 256 response tokens; smaller for the CPU smoke).
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD

WHEELS=(gymnasium==1.4.0 farama-notifications==0.0.6 pydantic==2.14.4 pydantic-core==2.50.5 annotated-types==0.8.0
        typing-inspection==0.4.5 math-verify==0.9.0 latex2sympy2-extended==1.11.0 antlr4-python3-runtime==4.13.2)

if [ "${1:-}" = prepare ]; then
  PY=${PYTHON:-python3}
  rm -rf .whl && mkdir -p .whl .device_assets/tokenizer
  $PY -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d .whl "${WHEELS[@]}"
  model=$(${AEPO_PYTHON:-.venv/bin/python} -c "from aepo_agent.models import resolve_model; print(resolve_model('smollm2-135m-instruct'))")
  for f in tokenizer.json tokenizer_config.json chat_template.jinja generation_config.json config.json; do
    [ -f "$model/$f" ] && cp "$model/$f" .device_assets/tokenizer/
  done
  grep -qx '/.device_assets/' .git/info/exclude 2>/dev/null || echo '/.device_assets/' >> .git/info/exclude
  du -sh .whl .device_assets
  echo "prepared: carry .whl and .device_assets to the device machine"
  exit 0
fi

DEVICE=${DEVICE_CHECK_DEVICE:-cuda}
SIZE=${DEVICE_CHECK_SIZE:-$([ "$DEVICE" = cuda ] && echo 1.7b || echo tiny)}
OUT=${OUT:-$(mktemp -d)}
LOG=$OUT/device_check.log
WORK=$(mktemp -d)
PY=${DEVICE_CHECK_PYTHON:-python3}
PROMPTS=${DEVICE_CHECK_PROMPTS:-16} N=${DEVICE_CHECK_N:-8} TOKENS=${DEVICE_CHECK_TOKENS:-256}
exec > >(tee "$LOG") 2>&1

if ! $PY -c "import gymnasium, pydantic, math_verify" 2>/dev/null && ls .whl/*.whl >/dev/null 2>&1; then
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
  export PYTHONPATH=/tmp/site:$REPO${PYTHONPATH:+:$PYTHONPATH}
else
  export PYTHONPATH=$REPO${PYTHONPATH:+:$PYTHONPATH}
fi
export AEPO_CACHE_DIR=$WORK/cache PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
DTYPE=$([ "$DEVICE" = cuda ] && echo bfloat16 || echo float32)
echo "== device_check: device=$DEVICE size=$SIZE dtype=$DTYPE ($(date -u +%FT%TZ))"
[ "$DEVICE" = cuda ] && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
$PY -c "import torch, transformers; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), 'transformers', transformers.__version__)"

step() { local name=$1; shift; local t0=$SECONDS; echo; echo "== $name"; if "$@"; then echo "== $name: ok in $((SECONDS - t0)) s"; else echo "== $name: FAILED (rc $?) after $((SECONDS - t0)) s"; FAILED=1; fi; }
FAILED=0

# The model: SmolLM2's tokenizer and a seeded random Llama of the chosen shape.
MODEL=$WORK/model
$PY - "$MODEL" "$SIZE" <<'EOF'
import shutil, sys
from pathlib import Path
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig
out, size = Path(sys.argv[1]), sys.argv[2]
assets = Path(".device_assets/tokenizer")
if not assets.is_dir():
    from aepo_agent.models import resolve_model
    assets = Path(resolve_model("smollm2-135m-instruct"))
shapes = {"tiny": dict(hidden_size=256, intermediate_size=512, num_hidden_layers=2, num_attention_heads=4,
                       num_key_value_heads=2),
          "135m": dict(hidden_size=576, intermediate_size=1536, num_hidden_layers=30, num_attention_heads=9,
                       num_key_value_heads=3),
          "1.7b": dict(hidden_size=2048, intermediate_size=8192, num_hidden_layers=24, num_attention_heads=32,
                       num_key_value_heads=32)}
cfg = LlamaConfig(vocab_size=49152, max_position_embeddings=8192, rope_theta=100000.0, tie_word_embeddings=True,
                  bos_token_id=1, eos_token_id=2, pad_token_id=2, **shapes[size])
torch.manual_seed(0)
model = AutoModelForCausalLM.from_config(cfg, dtype=torch.float32)
model.save_pretrained(out)
AutoTokenizer.from_pretrained(assets).save_pretrained(out)
if (assets / "chat_template.jinja").is_file():
    shutil.copy(assets / "chat_template.jinja", out / "chat_template.jinja")
print(f"model: {sum(p.numel() for p in model.parameters()) / 1e6:.0f}M parameters ({size}) -> {out}")
EOF

RUN=$WORK/run
TRAIN=(-m aepo_agent.cli train examples/distributed/device_check.yaml --set "model.name=$MODEL"
       --set "model.device=$DEVICE" --set "model.dtype=$DTYPE" --set "run_dir=$RUN"
       --set "train.prompts_per_step=$PROMPTS" --set "train.mini_batch_prompts=$((PROMPTS > 1 ? PROMPTS / 2 : 1))"
       --set "rollout.n=$N" --set "rollout.initial_rollouts=$((N > 1 ? N / 2 : 1))"
       --set "rollout.max_response_tokens=$TOKENS")
step "trainer: 1 step under torchrun, 1 rank ($DTYPE, FSDP2)" \
  $PY -m torch.distributed.run --standalone --nproc-per-node 1 "${TRAIN[@]}" --set train.steps=1
step "trainer: resume from the distributed checkpoint, 1 more step" \
  $PY -m torch.distributed.run --standalone --nproc-per-node 1 "${TRAIN[@]}" --set train.steps=2
[ -f "$RUN/metrics.jsonl" ] && cp "$RUN/metrics.jsonl" "$OUT/train_metrics.jsonl" && tail -n 2 "$RUN/metrics.jsonl" | cut -c1-600

ENGINES=hf
$PY -c "import vllm" 2>/dev/null && ENGINES=hf,vllm || echo "(vllm is not installed on this machine: its rows are skipped)"
step "engines: generation throughput ($ENGINES)" \
  $PY bench/bench_engines.py --model "$MODEL" --device "$DEVICE" --dtype "$DTYPE" --engines "$ENGINES" \
    --vllm-python "$PY" --prompts "$PROMPTS" --n "$N" --max-tokens "$TOKENS" --reps 3
step "rollout: tree vs flat, $PROMPTS prompts x n=$N" \
  $PY bench/bench_rollout.py --model "$MODEL" --device "$DEVICE" --dtype "$DTYPE" --prompts "$PROMPTS" --n "$N" \
    --max-response-tokens "$TOKENS" --reps 1 --threads 8 --schedules rounds --max-batch 128
echo
echo "== device_check finished in $SECONDS s; failed steps: $FAILED; log: $LOG"
exit "$FAILED"
