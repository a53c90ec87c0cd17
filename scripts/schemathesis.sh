#!/usr/bin/env bash
# Fuzz the HTTP API of `scalelab serve` with schemathesis (from PyPI), driven
# by the OpenAPI document the server itself serves. Checks: no server error,
# status codes, content types, headers and bodies as the document says, bad
# data refused, and the token needed (ignored_auth). The event streams that
# never end on their own (/cores; the events of a run that goes) are skipped,
# and so is use_after_free: DELETE cancels a run, which stays in the history
# (and GET answers for it) by design.
#
#   scripts/schemathesis.sh [MAX_EXAMPLES]     (default 200 per operation)
#
# Prints schemathesis's output, then, last, a Markdown summary for
# docs/RELIABILITY.md (scripts/record.py schemathesis docs/RELIABILITY.md);
# writes its JUnit report to target/schemathesis/; exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."
examples="${1:-200}"
command -v schemathesis >/dev/null || python3 -m pip install --quiet schemathesis
cargo build --release --quiet
out=target/schemathesis
mkdir -p "$out"
token="st-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"
target/release/scalelab serve --listen 127.0.0.1:0 --token "$token" 2>"$out/serve.log" &
pid=$!
trap 'kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null || true' EXIT
url=""
for _ in $(seq 100); do
    url=$(grep -o 'http://[0-9.:]*' "$out/serve.log" || true)
    [ -n "$url" ] && break
    sleep 0.1
done
[ -n "$url" ] || { cat "$out/serve.log"; exit 1; }
curl -sf -H "Authorization: Bearer $token" "$url/api/v1/openapi.json" >"$out/openapi.json"
set +e
schemathesis run "$out/openapi.json" --url "$url" \
    -H "Authorization: Bearer $token" \
    --checks not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance,negative_data_rejection,ignored_auth,missing_required_header,unsupported_method \
    --exclude-path /api/v1/cores --exclude-path '/api/v1/runs/{id}/events' \
    --max-examples "$examples" --seed 1 --request-timeout 10 \
    --report junit --report-junit-path "$out/junit.xml" --no-color 2>&1 | tee "$out/run.log"
status=${PIPESTATUS[0]}
set -e
# The server must still be alive and answering after all that.
if ! curl -sf -o /dev/null -H "Authorization: Bearer $token" "$url/api/v1/machine"; then
    echo "schemathesis.sh: the server no longer answers" >&2
    status=1
fi
alive=yes
kill -0 "$pid" || { echo "schemathesis.sh: the server died" >&2; status=1; alive=no; }
python3 - "$out/run.log" "$examples" "$status" "$alive" "$(schemathesis --version)" "$(git rev-parse --short HEAD)" <<'PY'
import re, sys
log, examples, status, alive, version, commit = sys.argv[1:]
text = open(log).read()
cases = re.search(r"(\d+) generated, (\d+) (?:passed|found[^,]*)(?:, (\d+) skipped)?", text)
took = re.search(r"in ([\d.]+)s =+\s*$", text, re.M)
failures = re.findall(r"❌ (ST\d+ [^:]+): (\d+)", text)
print(f"`scripts/schemathesis.sh {examples}` ({version}, at {commit}): "
      f"{cases.group(1) if cases else '?'} generated test cases over the 6 operations it covers, "
      f"{'no failures' if not failures else '; '.join(f'{n}× {w}' for w, n in failures)}, "
      f"in {took.group(1) if took else '?'} s; exit status {status}; the server "
      f"{'still answered afterwards' if alive == 'yes' else 'DIED'}. Checks: no server error, "
      "status codes, content types, headers and bodies as the document says, bad data refused, "
      "the token required (ignored_auth), missing headers, unsupported methods.")
PY
exit "$status"
