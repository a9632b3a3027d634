#!/usr/bin/env bash
# A single-node Ceph cluster with an S3 gateway on loopback, for tests and for developers.
#
#   test/infra/ceph.sh up        start it (idempotent) and print the test environment
#   test/infra/ceph.sh env       print the test environment of a running cluster
#   test/infra/ceph.sh down      stop it and remove its folder
#   test/infra/ceph.sh restart-rgw   stop and start the S3 gateway only (fault tests)
#   test/infra/ceph.sh stop-rgw | start-rgw
#   test/infra/ceph.sh rss       resident memory of each daemon, in KiB
#
#   eval "$(test/infra/ceph.sh up)"   # exports BERTH_TEST_S3_ENDPOINT, keys, bucket, BERTH_TEST_CEPH_DIR
#
# One monitor, one OSD (bluestore on a sparse file), no manager, pools of size 1, one RADOS
# gateway (beast) on 127.0.0.1. Everything lives in $BERTH_CEPH_DIR (default /tmp/berth-ceph):
# config, data, logs, and one pid file per daemon. Daemons run in the foreground of a
# background shell; they are stopped by the pid recorded when they were started, never by name.
# Needs Debian's ceph-mon, ceph-osd, radosgw and ceph-common (16.2), and curl.
set -euo pipefail

DIR=${BERTH_CEPH_DIR:-/tmp/berth-ceph}
MON_PORT=${BERTH_CEPH_MON_PORT:-16789}
MON_PORT2=${BERTH_CEPH_MON_PORT2:-13300}
RGW_PORT=${BERTH_CEPH_RGW_PORT:-17480}
BUCKET=${BERTH_CEPH_BUCKET:-berth}
CONF="$DIR/ceph.conf"
# a running cluster's gateway port wins over the default (restart-rgw from another shell)
[[ -f $DIR/rgw.port ]] && RGW_PORT=$(cat "$DIR/rgw.port")

log() { echo "ceph.sh: $*" >&2; }
die() { log "$*"; exit 1; }

ceph_() { timeout 30 ceph -c "$CONF" "$@"; }

alive() { # alive NAME: the daemon whose pid file is $DIR/run/NAME.pid runs
  local f="$DIR/run/$1.pid"
  [[ -f $f ]] && kill -0 "$(cat "$f")" 2>/dev/null
}

start_daemon() { # start_daemon NAME CMD...: runs CMD in the foreground of a background job, records its pid
  local name=$1; shift
  setsid "$@" >>"$DIR/log/$name.out" 2>&1 </dev/null &
  echo $! >"$DIR/run/$name.pid"
}

stop_daemon() { # stop_daemon NAME: SIGTERM by recorded pid, SIGKILL after 10 s
  local f="$DIR/run/$1.pid" pid
  [[ -f $f ]] || return 0
  pid=$(cat "$f")
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  fi
  rm -f "$f"
}

wait_for() { # wait_for SECONDS DESCRIPTION CMD...
  local secs=$1 what=$2; shift 2
  local end=$((SECONDS + secs))
  until "$@" >/dev/null 2>&1; do
    ((SECONDS < end)) || die "timed out after ${secs}s waiting for $what (logs in $DIR/log)"
    sleep 0.2
  done
}

rgw_answers() { curl -s -o /dev/null --max-time 2 "http://127.0.0.1:$RGW_PORT/"; }

start_rgw() {
  alive rgw && return 0
  start_daemon rgw radosgw -f -c "$CONF" -n client.rgw.a \
    --rgw-frontends "beast endpoint=127.0.0.1:$RGW_PORT"
  wait_for 60 "the S3 gateway on 127.0.0.1:$RGW_PORT" rgw_answers
}

print_env() {
  [[ -f $DIR/s3.env ]] || die "no cluster in $DIR (run: $0 up)"
  cat "$DIR/s3.env"
}

up() {
  command -v ceph-mon ceph-osd radosgw radosgw-admin curl >/dev/null ||
    die "needs ceph-mon ceph-osd radosgw ceph-common curl (apt-get install ceph-mon ceph-osd radosgw ceph-common curl)"
  if alive mon && alive osd && alive rgw && [[ -f $DIR/s3.env ]]; then
    print_env
    return
  fi
  [[ -e $DIR ]] && down
  mkdir -p "$DIR"/{run,log,mon,osd}
  echo "$RGW_PORT" >"$DIR/rgw.port"
  local fsid
  fsid=$(cat /proc/sys/kernel/random/uuid)
  cat >"$CONF" <<EOF
[global]
fsid = $fsid
mon host = [v2:127.0.0.1:$MON_PORT2,v1:127.0.0.1:$MON_PORT]
mon initial members = a
public network = 127.0.0.0/8
run dir = $DIR/run
admin socket = $DIR/run/\$name.asok
log file = $DIR/log/\$name.log
pid file = ""
mon data = $DIR/mon/\$name
osd data = $DIR/osd/\$name
keyring = $DIR/keyring
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
mon allow pool size one = true
mon allow pool delete = true
mon warn on pool no redundancy = false
osd crush chooseleaf type = 0
# The gateway creates six pools at start; each is a paxos round. Proposing every 50 ms
# instead of every second cuts start-up from about 21 s to about 6 s.
paxos propose interval = 0.05
[osd]
osd objectstore = bluestore
bluestore block create = true
bluestore block size = 8589934592
bluestore fsck on mount = false
bluestore cache autotune = false
bluestore cache size = 134217728
osd memory target = 939524096
[client.rgw.a]
rgw data = $DIR/rgw
rgw dns name = 127.0.0.1
rgw enable usage log = false
EOF

  log "monitor"
  # cephx keys for every entity, imported into the monitor's auth database at mkfs
  local k=(ceph-authtool "$DIR/keyring")
  "${k[@]}" --create-keyring --gen-key -n mon. --cap mon 'allow *' >/dev/null
  "${k[@]}" --gen-key -n client.admin --cap mon 'allow *' --cap osd 'allow *' --cap mgr 'allow *' >/dev/null
  "${k[@]}" --gen-key -n osd.0 --cap mon 'allow profile osd' --cap osd 'allow *' >/dev/null
  "${k[@]}" --gen-key -n client.rgw.a --cap mon 'allow rw' --cap osd 'allow rwx' >/dev/null
  monmaptool --create --fsid "$fsid" --addv a "[v2:127.0.0.1:$MON_PORT2,v1:127.0.0.1:$MON_PORT]" "$DIR/monmap" >>"$DIR/log/mkfs.out" 2>&1
  ceph-mon -c "$CONF" --mkfs -i a --monmap "$DIR/monmap" --keyring "$DIR/keyring" >>"$DIR/log/mkfs.out" 2>&1
  start_daemon mon ceph-mon -f -c "$CONF" -i a
  wait_for 30 "the monitor" ceph_ --connect-timeout 2 mon stat

  log "OSD (bluestore on a sparse file)"
  local osd_uuid
  osd_uuid=$(cat /proc/sys/kernel/random/uuid)
  [[ $(ceph_ osd new "$osd_uuid") == 0 ]] || die "expected osd id 0"
  mkdir -p "$DIR/osd/osd.0"
  ceph-osd -c "$CONF" -i 0 --mkfs --osd-uuid "$osd_uuid" >>"$DIR/log/mkfs.out" 2>&1
  start_daemon osd ceph-osd -f -c "$CONF" -i 0
  wait_for 60 "the OSD to come up" bash -c "ceph -c '$CONF' osd dump 2>/dev/null | grep -q '^osd.0 up'"

  log "S3 gateway"
  start_rgw
  local user
  user=$(radosgw-admin -c "$CONF" user create --uid berth-test --display-name "Berth tests" 2>>"$DIR/log/admin.out")
  local key secret
  key=$(printf '%s' "$user" | python3 -c 'import json,sys; print(json.load(sys.stdin)["keys"][0]["access_key"])')
  secret=$(printf '%s' "$user" | python3 -c 'import json,sys; print(json.load(sys.stdin)["keys"][0]["secret_key"])')
  # curl's SigV4 signs the payload hash only when told: the gateway wants the header explicitly.
  local code
  code=$(curl -s -o "$DIR/log/bucket.out" -w '%{http_code}' -X PUT --max-time 30 \
    --aws-sigv4 "aws:amz:us-east-1:s3" --user "$key:$secret" \
    -H 'x-amz-content-sha256: UNSIGNED-PAYLOAD' "http://127.0.0.1:$RGW_PORT/$BUCKET")
  [[ $code == 200 ]] || die "creating bucket $BUCKET answered $code: $(cat "$DIR/log/bucket.out")"

  cat >"$DIR/s3.env" <<EOF
export BERTH_TEST_S3_ENDPOINT=http://127.0.0.1:$RGW_PORT
export BERTH_TEST_S3_ACCESS_KEY_ID=$key
export BERTH_TEST_S3_SECRET_ACCESS_KEY=$secret
export BERTH_TEST_S3_BUCKET=$BUCKET
export BERTH_TEST_CEPH_DIR=$DIR
EOF
  log "ready: S3 on http://127.0.0.1:$RGW_PORT (logs in $DIR/log)"
  print_env
}

down() {
  [[ -d $DIR ]] || return 0
  [[ -f $CONF ]] || die "$DIR is not a cluster folder made by this script; not removing it"
  stop_daemon rgw
  stop_daemon osd
  stop_daemon mon
  rm -rf "$DIR"
}

rss() {
  local name pid
  for name in mon osd rgw; do
    alive "$name" || continue
    pid=$(cat "$DIR/run/$name.pid")
    echo "$name $(awk '/^VmRSS:/ {print $2}' "/proc/$pid/status")"
  done
}

case ${1:-} in
  up) up ;;
  down) down ;;
  env) print_env ;;
  stop-rgw) stop_daemon rgw ;;
  start-rgw) start_rgw ;;
  restart-rgw) stop_daemon rgw; start_rgw ;;
  rss) rss ;;
  *) die "usage: $0 up|down|env|restart-rgw|stop-rgw|start-rgw|rss" ;;
esac
