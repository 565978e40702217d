#!/usr/bin/env bash
# Start vLLM (CPU) on 127.0.0.1:PORT in the background, wait for /health, print its PID on stdout.
# Used by e2e_vllm/test_*.py (through vllm_stack.py) and by hand; setup.sh must have run first.
#
#   serve.sh [extra vllm serve args...]
#   env: PORT (8011), MODEL (/tmp/tinymodel), NAME (tiny), VENV (/tmp/vllmcpu),
#        LOG (/tmp/vllm-serve-$PORT.log), TIMEOUT (240 s), KV_GIB (1),
#        TOOLS (1: --enable-auto-tool-choice --tool-call-parser hermes; 0: off),
#        REASONING (empty, or a parser name such as deepseek_r1; use MODEL=/tmp/tinymodel-think)
#
# Stop it with:  kill <PID>      (the API server; it takes its EngineCore/Worker children down)
# Example:       PID=$(e2e_vllm/serve.sh) && ... && kill $PID
set -euo pipefail
PORT="${PORT:-8011}"
MODEL="${MODEL:-/tmp/tinymodel}"
NAME="${NAME:-tiny}"
VENV="${VENV:-/tmp/vllmcpu}"
LOG="${LOG:-/tmp/vllm-serve-$PORT.log}"
TIMEOUT="${TIMEOUT:-240}"
KV_GIB="${KV_GIB:-1}"
TOOLS="${TOOLS:-1}"
REASONING="${REASONING:-}"

if curl -s -o /dev/null --max-time 2 "http://127.0.0.1:$PORT/health"; then
  echo "port $PORT already answers /health; refusing to start a second server" >&2
  exit 1
fi
[ -x "$VENV/bin/vllm" ] || { echo "no $VENV/bin/vllm: run setup.sh first" >&2; exit 1; }
[ -f "$MODEL/config.json" ] || { echo "no model at $MODEL: run setup.sh first" >&2; exit 1; }

args=(serve "$MODEL" --served-model-name "$NAME" --host 127.0.0.1 --port "$PORT"
      --dtype float32 --max-model-len 8192 --enforce-eager --max-num-seqs 8)
if [ "$TOOLS" = 1 ]; then args+=(--enable-auto-tool-choice --tool-call-parser hermes); fi
if [ -n "$REASONING" ]; then args+=(--reasoning-parser "$REASONING"); fi
args+=("$@")

export VLLM_TARGET_DEVICE=cpu            # belt and braces; the alias dist-info already says +cpu
export VLLM_CPU_KVCACHE_SPACE="$KV_GIB"  # GiB of KV cache (1 GiB = ~1M tokens for this model)
export VLLM_NO_USAGE_STATS=1 DO_NOT_TRACK=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
t0=$(date +%s.%N)
nohup "$VENV/bin/vllm" "${args[@]}" >"$LOG" 2>&1 &
PID=$!
for _ in $(seq 1 $((TIMEOUT * 2))); do
  if ! kill -0 "$PID" 2>/dev/null; then
    echo "vllm exited during startup; last log lines:" >&2; tail -30 "$LOG" >&2; exit 1
  fi
  if [ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "http://127.0.0.1:$PORT/health")" = 200 ]; then
    t1=$(date +%s.%N)
    awk -v a="$t0" -v b="$t1" -v p="$PORT" -v pid="$PID" -v l="$LOG" \
      'BEGIN { printf "vllm healthy on 127.0.0.1:%s after %.1fs (pid %s, log %s)\n", p, b - a, pid, l }' >&2
    echo "$PID"
    exit 0
  fi
  sleep 0.5
done
echo "timeout after ${TIMEOUT}s waiting for /health; killing $PID" >&2
kill "$PID" 2>/dev/null || true
exit 1
