# The slurm.conf lines every local Slurm test shares (sourced by tests/e2e/slurm.sh, one node,
# and tests/multinode/slurm.sh, two namespace nodes): munge auth through the test's own socket,
# root as SlurmUser, state and controller files under the test's temp dir, no cgroups (linuxproc,
# task/none), a scheduler pass every second, CPUs as the consumable resource.
# slurm_conf_common TMP SOCK PORT: prints them; the caller adds its slurmd paths and nodes.
slurm_conf_common() {
  cat <<CONF
ClusterName=kilntest
SlurmctldPort=$3
SlurmdPort=$(( $3 + 1 ))
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$2,cred_expire=5
SlurmUser=root
SlurmdUser=root
StateSaveLocation=$1/state
SlurmctldPidFile=$1/slurmctld.pid
SlurmctldLogFile=$1/log/slurmctld.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
SchedulerType=sched/builtin
SchedulerParameters=sched_interval=1
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
MpiDefault=none
ReturnToService=2
SlurmdParameters=config_overrides
MinJobAge=600
KillWait=10
CONF
}

# start_munged TMP: munged with its own key and socket under TMP/munge (never the system's);
# prints its pid. Fails (nonzero) if it does not start; its log is TMP/log/munged.log.
start_munged() {
  mkdir -p "$1/munge" "$1/log"
  dd if=/dev/urandom of="$1/munge/munge.key" bs=1024 count=1 status=none
  chmod 700 "$1/munge"; chmod 400 "$1/munge/munge.key"
  munged --force --key-file="$1/munge/munge.key" --socket="$1/munge/munge.sock" --pid-file="$1/munge/munged.pid" \
    --log-file="$1/log/munged.log" --seed-file="$1/munge/seed" || return 1
  cat "$1/munge/munged.pid"
}
