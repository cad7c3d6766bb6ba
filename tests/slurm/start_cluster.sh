#!/usr/bin/env bash
# A one-node SLURM on localhost (slurmctld + slurmd from Debian's slurm-wlm, munge for auth) for
# tests/test_slurm.py, and for trying the cluster path on a workstation (docs/slurm.md).
# Idempotent: installs the packages when missing (root + apt), writes the config once, starts only
# the daemons that are not running, and returns when the node accepts jobs. No accounting database:
# job status comes from squeue (the profile's `slurm-status-command`, docs/slurm.md).
#   Partitions: `cpu` (default) and `gpu`, both on this node, so the profile's two partition keys
#   are exercised. CPUS: the CPUs the node advertises (default: max(nproc, 4); more than the
#   machine has is allowed, jobs then share cores).
set -euo pipefail

CONF_DIR=/etc/slurm
STATE=/var/lib/pathmoe-slurm
NODE=$(hostname -s)
CPUS=${PATHMOE_SLURM_CPUS:-$(( $(nproc) > 4 ? $(nproc) : 4 ))}
MEM_MB=$(awk '/MemTotal/ {print int($2 / 1024 * 0.9)}' /proc/meminfo)

if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
    echo "start_cluster.sh: slurm-wlm and munge are missing; install them as root: apt-get install -y slurm-wlm munge" >&2
    exit 1
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurm-wlm munge >/dev/null
fi

if [ ! -s /etc/munge/munge.key ]; then
  mkdir -p /etc/munge
  dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key 2>/dev/null
fi
chown munge:munge /etc/munge/munge.key && chmod 400 /etc/munge/munge.key
mkdir -p /run/munge /var/log/munge /var/lib/munge
chown munge:munge /run/munge /var/log/munge /var/lib/munge
if ! munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
  runuser -u munge -- /usr/sbin/munged --force
  for _ in $(seq 50); do munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && break; sleep 0.2; done
fi

mkdir -p "$CONF_DIR" "$STATE/ctld" "$STATE/d" /var/log/slurm /run/slurm
# A slurm.conf this script did not write (a real site's) is never replaced.
if [ -f "$CONF_DIR/slurm.conf" ] && ! grep -q "pathmoe-test" "$CONF_DIR/slurm.conf"; then
  echo "start_cluster.sh: $CONF_DIR/slurm.conf exists and is not ours; using the cluster it describes" >&2
else
  cat > "$CONF_DIR/slurm.conf.new" <<CONF
# written by pathmoe tests/slurm/start_cluster.sh (pathmoe-test)
ClusterName=pathmoe-test
SlurmctldHost=$NODE(127.0.0.1)
SlurmUser=root
AuthType=auth/munge
# a requeued job may start again after cred_expire seconds (default 120)
AuthInfo=cred_expire=5
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/d
SlurmctldPidFile=/run/slurm/slurmctld.pid
SlurmdPidFile=/run/slurm/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
MpiDefault=none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SlurmdParameters=config_overrides
ReturnToService=2
JobRequeue=1
MinJobAge=600
KillWait=10
SchedulerType=sched/backfill
# a requeued job is eligible again after cred_expire; look for it every 2 s (defaults: 60 s, backfill 30 s)
SchedulerParameters=sched_interval=2,bf_interval=2
NodeName=$NODE NodeAddr=127.0.0.1 CPUs=$CPUS RealMemory=$MEM_MB State=UNKNOWN
PartitionName=cpu Nodes=$NODE Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO
PartitionName=gpu Nodes=$NODE MaxTime=INFINITE State=UP
CONF
  if ! cmp -s "$CONF_DIR/slurm.conf.new" "$CONF_DIR/slurm.conf"; then
    mv "$CONF_DIR/slurm.conf.new" "$CONF_DIR/slurm.conf"
    # a changed config: restart the daemons this script started earlier
    for pidfile in /run/slurm/slurmctld.pid /run/slurm/slurmd.pid; do
      pid=$(cat "$pidfile" 2>/dev/null || true)
      [ -n "$pid" ] && kill "$pid" 2>/dev/null || continue
      for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    done
  else
    rm -f "$CONF_DIR/slurm.conf.new"
  fi
fi

pgrep -x slurmctld >/dev/null || slurmctld
pgrep -x slurmd >/dev/null || slurmd
for _ in $(seq 100); do
  state=$(sinfo -h -n "$NODE" -o %t 2>/dev/null | head -n1 || true)
  case "$state" in
    idle|mix|alloc|comp) exit 0 ;;
    down*|drain*) scontrol update nodename="$NODE" state=resume 2>/dev/null || true ;;
  esac
  sleep 0.3
done
echo "start_cluster.sh: node $NODE did not become ready (sinfo state '${state:-none}'); see /var/log/slurm/" >&2
exit 1
