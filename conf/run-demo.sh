#!/bin/bash
# make run: the stand-in monolith, the function host and the proxy, in the foreground.
# Ctrl-C stops all three.
set -u
cd "$(dirname "$0")/.." || exit 1
for port in 8080 8081 8082 9901; do
	if (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null; then
		echo "make run: 127.0.0.1:$port is already in use; stop what listens there first" >&2
		exit 1
	fi
done 2>/dev/null
pids=""
cleanup() {
	trap - INT TERM EXIT
	[ -n "$pids" ] && kill $pids 2>/dev/null
	wait 2>/dev/null
	exit 0
}
trap cleanup INT TERM EXIT
bin/legacy-stub --host 127.0.0.1 --port 8081 & pids="$pids $!"
bin/function-host --host 127.0.0.1 --port 8082 & pids="$pids $!"
sleep 0.3
bin/strangler run -c conf/strangler.yaml & pids="$pids $!"
sleep 0.3
cat <<'MSG'

  strangler is running:
    proxy          http://127.0.0.1:8080   (try: curl localhost:8080/api/orders/1)
    dashboard      http://127.0.0.1:9901/  (open it in a browser; /stats, /metrics)
    legacy-stub    http://127.0.0.1:8081   (the stand-in monolith)
    function-host  http://127.0.0.1:8082   (the new function endpoints)
  From another terminal: send some traffic, e.g.
    for i in $(seq 200); do curl -s -H "x-user-id: u$i" localhost:8080/api/orders/$i; done >/dev/null
  then bin/strangler stats (--watch redraws every second; stats orders-read for one route);
  bin/strangler routes; bin/strangler cutover orders-read 50; bin/strangler rollback
  orders-read; bin/strangler history (cutover and rollback edit conf/routes.yaml).
  Access log lines (JSON) follow below. Ctrl-C stops all three.

MSG
wait
