# Shared by the bench scripts (sourced): a work dir and background processes
# cleaned up on exit, a free loopback port, and waiting for a URL to answer.
WORK=$(mktemp -d)
PIDS=()
# A negative pid is a process group (started with setsid), killed whole.
cleanup() { for p in "${PIDS[@]}"; do kill -- "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_up() { # full URL that answers 2xx once the server is up
  for _ in $(seq 1 600); do curl -fs -o /dev/null "$1" 2>/dev/null && return 0; sleep 0.1; done
  echo "server at $1 did not start" >&2; return 1
}
# ensure_venv DIR REQUIREMENTS MODULE...: a venv at DIR where the modules import,
# (re)installed from REQUIREMENTS when one does not.
ensure_venv() {
  local dir="$1" reqs="$2"; shift 2
  local imports; imports=$(IFS=,; echo "$*")
  if ! "$dir/bin/python" -c "import $imports" 2>/dev/null; then
    python3 -m venv "$dir" && "$dir/bin/pip" install -q -r "$reqs"
  fi
}
# BENCH_PIN=1: the server (SERVER_CPU) on CPU 0 and the load generator (CLIENT_CPU) on CPU 1, with taskset;
# empty otherwise. Use as "${SERVER_CPU[@]}" "$PLINTH" server … and "${CLIENT_CPU[@]}" "$LOADGEN" ….
SERVER_CPU=(); CLIENT_CPU=()
if [ -n "${BENCH_PIN:-}" ]; then SERVER_CPU=(taskset -c 0); CLIENT_CPU=(taskset -c 1); fi
