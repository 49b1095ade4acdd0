#!/usr/bin/env bash
# A throwaway PostgreSQL server for tests: a fresh cluster in DIR on a free
# loopback port, never a system service, never a fixed port.
#
#   scripts/pg.sh start DIR   # prints the server's URL (postgresql://plinth@127.0.0.1:PORT/postgres)
#   scripts/pg.sh stop DIR
#   scripts/pg.sh start DIR   # again: the same cluster, on the same port (a restart)
#
# Uses Debian's PostgreSQL binaries (package postgresql; scripts/test.sh
# installs it when missing). As root, the cluster belongs to the `postgres`
# user, since initdb refuses to run as root.
set -euo pipefail

cmd="${1:?start|stop}"
dir="${2:?data directory}"

bin="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)"
if [ -z "$bin" ] || [ ! -x "$bin/initdb" ]; then
  echo "PostgreSQL's server binaries are not installed (apt-get install postgresql)" >&2
  exit 1
fi

owner=()
if [ "$(id -u)" -eq 0 ]; then owner=(runuser -u postgres --); fi

case "$cmd" in
start)
  mkdir -p "$dir"
  if [ "$(id -u)" -eq 0 ]; then
    chown postgres "$dir"
    # The cluster's owner must reach it: let it through private temp dirs above.
    up="$(dirname "$(realpath "$dir")")"
    while [ "$up" != "/" ] && [ "$up" != "/tmp" ]; do chmod a+x "$up"; up="$(dirname "$up")"; done
  fi
  if [ -f "$dir/port" ] && [ -d "$dir/data" ]; then
    port="$(cat "$dir/port")"
  else
    port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
    timeout 120 "${owner[@]}" "$bin/initdb" -D "$dir/data" -U plinth --auth=trust -E UTF8 --no-sync >"$dir/initdb.log" 2>&1 \
      || { cat "$dir/initdb.log" >&2; exit 1; }
    echo "$port" >"$dir/port"
  fi
  # fsync off: a test cluster, thrown away after the run.
  timeout 120 "${owner[@]}" "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
    -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200" start >/dev/null \
    || { cat "$dir/server.log" >&2; exit 1; }
  echo "postgresql://plinth@127.0.0.1:$port/postgres"
  ;;
stop)
  if [ -d "$dir/data" ]; then
    timeout 60 "${owner[@]}" "$bin/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null 2>&1 || true
  fi
  ;;
*)
  echo "usage: $0 start|stop DIR" >&2
  exit 2
  ;;
esac
