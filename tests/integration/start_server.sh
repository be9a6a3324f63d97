# Sourced by the end-to-end shell tests: starts compressd with one local
# worker (LOCAL_WORKERS, when set, says how many) on free ports under a fresh
# temp dir and defines:
#   $work  the temp dir (removed on exit, with the server stopped)
#   ctl    compressctl pointed at that server
#   summary JOB      the job's summary JSON into $work/JOB.json ($work/JOB.job.json: the job)
#   field FILE EXPR  a Python expression on the JSON file's content `s` (needs $PY)
#   wait_progress JOB STAGE N [TRIES]
#                    polls every 0.2 s until the job's progress is at STAGE with
#                    current >= N; fails the script (printing the job) if it never is
#   restart_server   kill -9 the server, start it again on the same data and port
# Needs $BIN (the directory with the binaries); extra compressd flags may be
# given in the array SERVER_FLAGS.
work=$(mktemp -d)
server_pid=""
cleanup() {
  [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

start_compressd() {  # $1: the gRPC port (0: a free one)
  : > "$work/server.out"
  "$BIN/compressd" --data-dir "$work/data" --grpc-port "$1" --http-port 0 \
    --local-workers "${LOCAL_WORKERS:-1}" ${SERVER_FLAGS[@]+"${SERVER_FLAGS[@]}"} \
    > "$work/server.out" 2>> "$work/server.err" &
  server_pid=$!
  for _ in $(seq 300); do
    grep -q "^compressd listening" "$work/server.out" 2>/dev/null && break
    sleep 0.1
  done
  addr=$(sed -n 's/^compressd listening grpc=\([^ ]*\) .*/\1/p' "$work/server.out")
  [ -n "$addr" ] || { echo "compressd did not start"; cat "$work/server.err"; exit 1; }
  # compressctl calls are the admin (the key compressd wrote on first start).
  export COMPRESSD_KEY_FILE="$work/data/admin.key"
}
# kill -9 the server and start it again on the same data dir and gRPC port.
restart_server() {
  kill -9 "$server_pid"; wait "$server_pid" 2>/dev/null || true
  start_compressd "${addr##*:}"
}
start_compressd 0
ctl() { "$BIN/compressctl" --server "$addr" "$@"; }
summary() {
  ctl jobs get "$1" --json > "$work/$1.job.json"
  "$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["summary_json"])' \
    "$work/$1.job.json" > "$work/$1.json"
}
field() {
  "$PY" -c "import json,sys; s=json.load(open(sys.argv[1])); print($2)" "$1"
}
wait_progress() {
  local at=0
  for _ in $(seq "${4:-3000}"); do
    ctl jobs get "$1" --json > "$work/$1.poll"
    at=$("$PY" -c 'import json,sys; p=json.load(open(sys.argv[1])).get("progress",{});
print(p.get("current",0) if p.get("stage")==sys.argv[2] else 0)' "$work/$1.poll" "$2")
    [ "$at" -ge "$3" ] && return 0
    sleep 0.2
  done
  echo "job $1 never reached $2 $3"; cat "$work/$1.poll"; exit 1
}
