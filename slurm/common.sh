# Sourced by the slurm/*.sbatch scripts: the repository root, the run directory, the launcher
# (srun with PMIx when Slurm has it, else mpirun) and the resume decision, in one place.
# Slurm copies a batch script before running it, so paths come from SLURM_SUBMIT_DIR (submit
# from the repository root) or KILN_ROOT, never from $0.
KILN_ROOT=${KILN_ROOT:-${SLURM_SUBMIT_DIR:-$(pwd)}}
cd "$KILN_ROOT"
read -r -a KILN_CMD <<<"${KILN_PRETRAIN:-$KILN_ROOT/pretrain}"
# run.dir is fixed per job (it survives requeues: the job id does not change).
KILN_RUN_DIR=${KILN_RUN_DIR:-runs/${SLURM_JOB_NAME:-kiln}-${SLURM_JOB_ID:-local}}
KILN_CKPT_DIR=$KILN_RUN_DIR/ckpt

# kiln_launcher: srun --mpi=pmix (Slurm starts and signals every rank itself) when available,
# else mpirun (which reads the Slurm allocation). KILN_LAUNCHER=srun|mpirun forces one.
kiln_launcher() {
  local l=${KILN_LAUNCHER:-auto}
  if [ "$l" = auto ]; then
    if srun --mpi=list 2>&1 | grep -q pmix; then l=srun; else l=mpirun; fi
  fi
  if [ "$l" = srun ]; then
    KILN_LAUNCH=(srun --mpi=pmix --kill-on-bad-exit=1 --cpu-bind=none)
  else
    KILN_LAUNCH=(mpirun --bind-to none)
    [ "$(id -u)" = 0 ] && KILN_LAUNCH+=(--allow-run-as-root)
    # mpirun passes only named variables to remote ranks: the NCCL/OpenMP/kiln settings.
    for v in $(compgen -e | grep -E '^(NCCL_|OMP_|KILN_|CUDA_)' || true); do KILN_LAUNCH+=(-x "$v"); done
  fi
  read -r -a _extra <<<"${KILN_LAUNCH_ARGS:-}"
  KILN_LAUNCH+=("${_extra[@]}")
}

# kiln_args CONFIG [overrides]: the trainer's arguments, --resume when a complete checkpoint exists.
kiln_args() {
  local config=$1; shift
  if compgen -G "$KILN_CKPT_DIR/step_*/DONE" >/dev/null; then
    KILN_ARGS=(--resume "$KILN_CKPT_DIR" "run.dir=$KILN_RUN_DIR" "$@")
  else
    KILN_ARGS=("$config" "run.dir=$KILN_RUN_DIR" "$@")
  fi
}

kiln_log() { printf '[slurm] %s %s\n' "$(date +%H:%M:%S)" "$*"; }
