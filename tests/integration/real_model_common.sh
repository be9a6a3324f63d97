# Sourced by the real-model e2e scripts run as SCRIPT BIN_DIR PYTHON SOURCE_DIR
# MODEL_GGUF: checks the arguments and the shared text, and sets BIN, PY, SRC,
# MODEL, DATA (the shared text folder), PERSUASION and work (a scratch folder
# removed on exit); field FILE EXPR prints EXPR of the JSON in FILE as `s`;
# run NAME [MODEL] runs `compress-worker run` on NAME.yaml into NAME/ (the summary
# in NAME.json) and requires its reload check to have passed.
BIN=$1 PY=$2 SRC=$3 MODEL=${4:-}
[ -x "$PY" ] || { echo "python not found at '$PY' (run scripts/install-deps.sh)"; exit 1; }
[ -n "$MODEL" ] && [ -s "$MODEL" ] || { echo "COMPRESSD_REAL_MODEL is unset or missing"; exit 1; }
DATA=$SRC/../shared/data/text
PERSUASION=$DATA/austen/persuasion.txt
[ -s "$PERSUASION" ] || { echo "$PERSUASION: the shared text is missing"; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
field() { "$PY" -c "import json,sys; s=json.load(open(sys.argv[1])); print($2)" "$1"; }
run() {
  "$BIN/compress-worker" run --model "${2:-$MODEL}" --recipe "$work/$1.yaml" --out "$work/$1" \
    > "$work/$1.json" 2> "$work/$1.log" || { tail -20 "$work/$1.log"; exit 1; }
  grep -q "reload check passed" "$work/$1.log" || { echo "FAIL: $1: no passed reload check"; exit 1; }
}
