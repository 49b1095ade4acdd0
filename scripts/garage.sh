#!/usr/bin/env bash
# A throwaway S3-compatible server for tests: one Garage node in DIR on free
# loopback ports, a bucket and a key. Never a system service, never a fixed port.
#
#   eval "$(scripts/garage.sh start DIR)"   # exports AWS_* and PLINTH_TEST_S3=s3://plinth-test
#   scripts/garage.sh stop DIR
#
# GARAGE (default $PLINTH_CACHE/tools/bin/garage) is built once by
# scripts/test.sh with `cargo install garage --locked --version 2.5.0`.
set -euo pipefail

cmd="${1:?start|stop}"
dir="${2:?state directory}"
GARAGE="${GARAGE:-${PLINTH_CACHE:-$HOME/.cache/plinth}/tools/bin/garage}"

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

case "$cmd" in
start)
  [ -x "$GARAGE" ] || { echo "garage is not built ($GARAGE); scripts/test.sh builds it" >&2; exit 1; }
  mkdir -p "$dir/meta" "$dir/data"
  rpc="$(free_port)"; s3="$(free_port)"; admin="$(free_port)"
  cat >"$dir/garage.toml" <<EOF
metadata_dir = "$dir/meta"
data_dir = "$dir/data"
db_engine = "sqlite"
replication_factor = 1
rpc_bind_addr = "127.0.0.1:$rpc"
rpc_public_addr = "127.0.0.1:$rpc"
rpc_secret = "$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')"

[s3_api]
s3_region = "garage"
api_bind_addr = "127.0.0.1:$s3"
root_domain = ".s3.garage.localhost"

[admin]
api_bind_addr = "127.0.0.1:$admin"
EOF
  g() { timeout 30 "$GARAGE" -c "$dir/garage.toml" "$@"; }
  nohup "$GARAGE" -c "$dir/garage.toml" server >"$dir/server.log" 2>&1 &
  echo $! >"$dir/pid"
  for _ in $(seq 1 150); do
    g status >/dev/null 2>&1 && break
    sleep 0.2
  done
  node="$(g status 2>/dev/null | grep -Eo '^[0-9a-f]{16}' | head -1)"
  [ -n "$node" ] || { cat "$dir/server.log" >&2; echo "garage did not start" >&2; exit 1; }
  g layout assign -z dc1 -c 1G "$node" >/dev/null
  g layout apply --version 1 >/dev/null
  for _ in $(seq 1 50); do
    g bucket create plinth-test >/dev/null 2>&1 && break
    sleep 0.2
  done
  keys="$(g key create plinth-test)"
  key_id="$(echo "$keys" | awk -F': *' '/Key ID/ {print $2; exit}')"
  secret="$(echo "$keys" | awk -F': *' '/Secret key/ {print $2; exit}')"
  [ -n "$key_id" ] && [ -n "$secret" ] || { echo "$keys" >&2; echo "no garage key" >&2; exit 1; }
  g bucket allow --read --write --owner plinth-test --key "$key_id" >/dev/null
  cat <<EOF
export AWS_ENDPOINT_URL=http://127.0.0.1:$s3
export AWS_REGION=garage
export AWS_ACCESS_KEY_ID=$key_id
export AWS_SECRET_ACCESS_KEY=$secret
export AWS_ALLOW_HTTP=true
export PLINTH_TEST_S3=s3://plinth-test
EOF
  ;;
stop)
  if [ -f "$dir/pid" ]; then
    kill "$(cat "$dir/pid")" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$(cat "$dir/pid")" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$(cat "$dir/pid")" 2>/dev/null || true
  fi
  ;;
*)
  echo "usage: $0 start|stop DIR" >&2
  exit 2
  ;;
esac
