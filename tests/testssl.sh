#!/usr/bin/env bash
# tests/testssl.sh: testssl.sh (Debian package testssl.sh, command testssl) against a TLS
# listener of bin/strangler with a test certificate, as an operator would deploy it: EC P-256
# from a test CA given to testssl with --add-ca, 90 days, CRL and OCSP addresses (names under
# .invalid, never fetched). Exits 0 when testssl reports no finding of severity MEDIUM or
# above, 1 when it does (each printed), 2 when the run itself failed. Takes about a minute;
# not part of make test.
#
# testssl also judges the HTTP response at "/" (security headers, HSTS, cookies). Those are the
# application's headers, which the proxy forwards unchanged: the backend here is a small one
# that answers with the headers a production application sends (X-Frame-Options,
# X-Content-Type-Options, Content-Security-Policy, Referrer-Policy), so that part of the report
# checks that they reach the client through the proxy. Behind legacy-stub, which sends none,
# testssl reports "security_headers: --" (MEDIUM) for the missing application headers.
#
#   bash tests/testssl.sh            (from anywhere; uses the repository it lives in)
#
# Environment: SF_BIN (binaries, default <repo>/bin), TESTSSL (default testssl),
# TESTSSL_KEEP=1 keeps the temp dir (configs, logs, testssl's full output and JSON).
set -u
REPO=$(cd "$(dirname "$0")/.." && pwd)
BIN=${SF_BIN:-$REPO/bin}
TESTSSL=${TESTSSL:-testssl}
for cmd in "$TESTSSL" openssl python3 curl; do
	if ! command -v "$cmd" >/dev/null 2>&1; then
		echo "testssl.sh: $cmd not found (make deps installs it)" >&2
		exit 2
	fi
done
if [ ! -x "$BIN/strangler" ]; then
	echo "testssl.sh: $BIN/strangler not built (make)" >&2
	exit 2
fi

DIR=$(mktemp -d /tmp/sf-testssl-XXXXXX)
PIDS=()
cleanup() {
	for pid in "${PIDS[@]}"; do
		kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
	done
	if [ "${TESTSSL_KEEP:-0}" = 1 ]; then
		echo "testssl.sh: kept $DIR" >&2
	else
		rm -rf "$DIR"
	fi
}
trap cleanup EXIT

free_port() {
	python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

wait_port() {
	for _ in $(seq 1 100); do
		if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then
			return 0
		fi
		sleep 0.1
	done
	echo "testssl.sh: nothing listening on 127.0.0.1:$1" >&2
	return 1
}

# ---- the certificates ----
cd "$DIR" || exit 2
EC=(-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes)
{
	openssl req -x509 -new "${EC[@]}" -keyout ca.key -out ca.pem -days 90 \
		-subj "/CN=strangler testssl CA" \
		-addext "basicConstraints=critical,CA:TRUE" \
		-addext "keyUsage=critical,keyCertSign,cRLSign" &&
		openssl req -new "${EC[@]}" -keyout server.key -out server.csr -subj "/CN=localhost" &&
		printf '%s\n' "basicConstraints = critical, CA:FALSE" \
			"keyUsage = critical, digitalSignature" \
			"extendedKeyUsage = serverAuth" \
			"subjectAltName = DNS:localhost, IP:127.0.0.1" \
			"crlDistributionPoints = URI:http://crl.strangler-test.invalid/ca.crl" \
			"authorityInfoAccess = OCSP;URI:http://ocsp.strangler-test.invalid/" >server.ext &&
		openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -days 90 \
			-set_serial "0x$(openssl rand -hex 8)" -extfile server.ext -out server.pem
} >certs.log 2>&1 || {
	cat certs.log >&2
	exit 2
}

# ---- the proxy ----
LEGACY=$(free_port)
PORT=$(free_port)
TLS_PORT=$(free_port)
ADMIN=$(free_port)
cat >backend.py <<'EOF'
import http.server, sys
class App(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        body = b"<!doctype html><title>app</title>\n"
        self.send_response(200)
        for k, v in (("Content-Type", "text/html; charset=utf-8"),
                     ("Content-Length", str(len(body))),
                     ("X-Frame-Options", "DENY"), ("X-Content-Type-Options", "nosniff"),
                     ("Content-Security-Policy", "default-src 'none'"),
                     ("Referrer-Policy", "no-referrer"), ("Cache-Control", "no-store")):
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)
    do_HEAD = do_GET
    def log_message(self, *args):
        pass
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), App).serve_forever()
EOF
python3 backend.py "$LEGACY" >backend.log 2>&1 &
PIDS+=($!)
cat >strangler.yaml <<EOF
listen:
  - address: 127.0.0.1:$PORT
  - address: 127.0.0.1:$TLS_PORT
    tls: { cert: server.pem, key: server.key }
admin:
  address: 127.0.0.1:$ADMIN
routes_file: routes.yaml
log: { level: warn, access: off }
EOF
echo "legacy: http://127.0.0.1:$LEGACY" >routes.yaml
"$BIN/strangler" run -c strangler.yaml >strangler.log 2>&1 &
PIDS+=($!)
if ! wait_port "$LEGACY" || ! wait_port "$TLS_PORT"; then
	cat strangler.log >&2
	exit 2
fi
if ! curl -sS --cacert ca.pem -o /dev/null "https://localhost:$TLS_PORT/"; then
	echo "testssl.sh: the TLS listener does not answer" >&2
	exit 2
fi

# ---- testssl ----
echo "testssl.sh: $TESTSSL against strangler on 127.0.0.1:$TLS_PORT (about a minute)" >&2
"$TESTSSL" --quiet --color 0 --warnings batch --add-ca "$DIR/ca.pem" \
	--jsonfile "$DIR/testssl.json" --severity LOW "127.0.0.1:$TLS_PORT" >testssl.txt 2>&1
rc=$?
if [ ! -s testssl.json ]; then
	echo "testssl.sh: testssl produced no JSON (exit $rc):" >&2
	tail -30 testssl.txt >&2
	exit 2
fi

# testssl's report, every finding of LOW and above, then the verdict on MEDIUM and above; a
# problem testssl had scanning (scanProblem, severity WARN) fails the run too: its results
# would be incomplete.
grep -v '^[[:space:]]*$' testssl.txt
python3 - "$DIR/testssl.json" <<'EOF'
import json, sys
order = {"LOW": 1, "MEDIUM": 2, "HIGH": 3, "CRITICAL": 4}
findings = json.load(open(sys.argv[1]))
problems = [f for f in findings if f.get("severity") == "WARN" or f.get("id") == "scanProblem"]
shown = [f for f in findings if f.get("severity") in order]
for f in shown:
    print(f"testssl: {f['severity']:8} {f['id']}: {f['finding']}")
bad = [f for f in shown if order[f["severity"]] >= order["MEDIUM"]]
for f in problems:
    print(f"testssl: scan problem {f.get('id')}: {f.get('finding')}")
print(f"testssl: {len(bad)} finding(s) of MEDIUM or above, {len(shown) - len(bad)} LOW"
      f"{', %d scan problem(s)' % len(problems) if problems else ''}")
sys.exit(2 if problems else 1 if bad else 0)
EOF
