#!/usr/bin/env bash
# bench/run.sh: strangler side by side with nginx, HAProxy and direct access.
#
#   make bench                  (builds bin/strangler, then runs this script)
#   bash bench/run.sh           (from anywhere; uses the repository it lives in)
#
# Targets, all in front of the SAME upstream (an nginx with one worker that
# serves /100, /64k, a POST sink /post and the JSON documents /json,
# /json-shadow and /json-alt from its own temp prefix):
#   direct     wrk -> upstream
#   strangler  wrk -> bin/strangler run (workers: 1, access log off) -> upstream
#   nginx      wrk -> nginx (1 worker, HTTP/1.1 keepalive pool)    -> upstream
#   haproxy    wrk -> HAProxy (nbthread 1, http-reuse always)      -> upstream
# The proxy under test runs on CPU $BENCH_CPU_PROXY, wrk and the upstream on
# CPU $BENCH_CPU_LOAD (taskset), the same for every proxy. Runs alternate
# between targets (a b c d a b c d ...), each preceded by a short warm-up, and
# every figure is the median over the rounds. The proxy's CPU time comes from
# /proc/PID/stat (utime+stime of the process and its children) before and
# after each run; its peak RSS from VmHWM in /proc/PID/status, reset through
# /proc/PID/clear_refs after the warm-up (nginx: its worker, not the master;
# without clear_refs: the largest VmRSS sampled every 0.1 s). strangler's
# req/s, p99, CPU per request and peak RSS are also given as ratios to the
# better of nginx and HAProxy in the same round, against issue 8's goals.
#
# Shadow cost (DESIGN §4 shadow, §5 step 6): json-c50 GETs a 1.7 KB JSON
# document (bench/data/order.json) through a route with no shadow;
# json-shadow-c50 GETs the same document through a route that also sends every
# request to its function (the same upstream, path rewritten to /json-alt:
# bench/data/order-reordered.json, the same data with keys in another order and
# numbers written differently, 1.0 for 1) and compares the bodies as JSON: not
# byte-identical, so both are parsed every time, and they must come out as a
# match (checked once before measuring). json-paced-c50 and
# json-shadow-paced-c50 are the same with each connection pausing 10 ms on
# average between requests (bench/wrk-paced.lua): the primary's latency with
# the proxy below saturation. These workloads
# alternate within each round. Only strangler shadows: the shadowed and paced
# workloads are n/a for the other targets (their json-c50 row is the plain
# proxying of the same document). The report gives strangler's CPU per request
# with the shadow / without, primary p99, and the route's shadow counters.
# Two more strangler-only workloads take that cost apart: json-shadow-bare-c50
# shadows the same way through route json-shadow-bare, whose compare has
# `body: none` (the function's answer is read and its status compared, its body
# neither kept nor parsed): the cost of the extra exchange alone, so that the
# JSON comparison's share is the difference. json-shadow-isofn-paced-c50 is the
# paced shadowed workload with its function served by a second nginx (the same
# documents) on the proxy's CPU at idle priority (chrt -i 0): it runs only when
# that CPU has nothing else to do, so it never delays legacy, wrk or the proxy,
# and the primary's latency shows what the proxy's shadowing does to it alone.
# (Its proxy CPU per request is not comparable: the function's process shares
# the proxy's CPU and caches.) With the function on the load CPU as in the other
# workloads, its work competes with wrk and legacy for that CPU at the very
# moments a primary is answered: on two cores that, not the proxy, is what
# moves the primary's p99 there.
#
# workers: 1 against workers: auto: workers1-json-shadow-c50 /
# workersauto-json-shadow-c50 (the shadowed JSON route, where the proxy and not
# the load side is the bottleneck) and workers1-get100-c50 /
# workersauto-get100-c50 run against two more strangler processes (targets
# strangler-w1 and strangler-wauto, started when such a workload is selected and
# strangler is a target), with `workers: 1` and `workers: $BENCH_WORKERS_AUTO`.
# These are NOT pinned: the proxy, wrk (one thread per CPU) and, for these
# runs, the upstream may use every CPU. The report gives req/s, CPU µs/req and
# p99 of both, their ratio, and what limited each (proxy, load side, all CPUs).
# A strangler that refuses the setting at start is reported as not measured,
# with its error.
#
# Memory per idle keep-alive client connection: after the runs, strangler,
# nginx and HAProxy are each started afresh and bench/idle_mem.py opens
# $BENCH_IDLE_CONNS connections, one GET /100 on each, keeps them open and
# reads the proxy's VmRSS, RssAnon (heap + anonymous mappings) and [heap]
# before and after: KiB per connection (goal: <= 4 KiB of proxy heap).
#
# Output: a markdown report on stdout, also written to bench/out/latest.md
# (raw per-run figures in bench/out/latest.tsv), headed by the machine's
# description (CPU, cores, RAM, kernel, distro, versions, git commit) and how
# it was run. A run of every default target and workload (with the idle
# measurement) also writes it to bench/RESULTS.md. Progress goes to stderr.
#
# Environment (defaults in brackets):
#   BENCH_DURATION  seconds per measured run [4]
#   BENCH_WARMUP    seconds of warm-up before each measured run, 0 = none [1]
#   BENCH_ROUNDS    rounds; the median is reported [3]
#   BENCH_THREADS   wrk threads [1] (the unpinned workers pair: at least one per CPU)
#   BENCH_TARGETS   subset/order of: direct strangler nginx haproxy [all four]
#   BENCH_WORKLOADS subset of: get100-c50 get100-c200 get64k-c50 get64k-c200
#                   post1m-c50 post1m-c200 json-c50 json-shadow-c50
#                   json-paced-c50 json-shadow-paced-c50 json-shadow-bare-c50
#                   json-shadow-isofn-paced-c50
#                   workers1-json-shadow-c50 workersauto-json-shadow-c50
#                   workers1-get100-c50 workersauto-get100-c50 [all but post1m-c200]
#   BENCH_WORKERS_AUTO  the workers setting of strangler-wauto [auto]
#                   (BENCH_WORKERS_AUTO=1 checks the pair's plumbing on a build without workers)
#   BENCH_IDLE_CONNS    idle keep-alive connections per proxy, 0 = skip that measurement [5000]
#                   (the script raises its open-files limit to 2N+1024 if the hard limit allows)
#   BENCH_CPU_PROXY / BENCH_CPU_LOAD   CPUs for the proxy / for wrk+upstream [1 / 0]
#   BENCH_OTHER_MAX a run during which other processes used more than this
#                   share of a core (%) on the target's CPUs is repeated (twice
#                   at most), keeping the least disturbed attempt [20]
#   BENCH_RETRIES   at most this many such repeats in the whole benchmark [6]
#   BENCH_KEEP=1    keep the temp dir (configs, logs, wrk output) after the run
#   BENCH_OUT       report path [bench/out/latest.md]
#   BENCH_RESULTS   unset: bench/RESULTS.md after a full run only; a path: write the
#                   report there whatever the run covered; none: never
#   STRANGLER NGINX HAPROXY WRK   binaries [bin/strangler /usr/sbin/nginx
#                   /usr/sbin/haproxy wrk]
# With defaults: (6 workloads x 4 targets + 3 strangler-only workloads + 4
# workers-pair runs) x 3 rounds x (4+1) s, plus the idle connections (about 5 s
# per proxy) and start-up: about 9 min (up to 10 with the repeats of disturbed runs).

set -u -o pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH_DIR=$ROOT/bench

DURATION=${BENCH_DURATION:-4}
WARMUP=${BENCH_WARMUP:-1}
ROUNDS=${BENCH_ROUNDS:-3}
THREADS=${BENCH_THREADS:-1}
DEFAULT_TARGETS="direct strangler nginx haproxy"
DEFAULT_WORKLOADS="get100-c50 get100-c200 get64k-c50 get64k-c200 post1m-c50 json-c50 json-shadow-c50 json-paced-c50 json-shadow-paced-c50 json-shadow-bare-c50 json-shadow-isofn-paced-c50 workers1-json-shadow-c50 workersauto-json-shadow-c50 workers1-get100-c50 workersauto-get100-c50"
TARGETS=${BENCH_TARGETS:-$DEFAULT_TARGETS}
WORKLOADS=${BENCH_WORKLOADS:-$DEFAULT_WORKLOADS}
IDLE_CONNS=${BENCH_IDLE_CONNS:-5000}
WORKERS_AUTO=${BENCH_WORKERS_AUTO:-auto}
CPU_PROXY=${BENCH_CPU_PROXY:-1}
CPU_LOAD=${BENCH_CPU_LOAD:-0}
KEEP=${BENCH_KEEP:-0}
OTHER_MAX=${BENCH_OTHER_MAX:-20}
RETRY_BUDGET=${BENCH_RETRIES:-6}
OUT=${BENCH_OUT:-$BENCH_DIR/out/latest.md}
RESULTS=${BENCH_RESULTS-} # unset/empty: bench/RESULTS.md after a full run; a path: always; none: never
STRANGLER=${STRANGLER:-$ROOT/bin/strangler}
NGINX=${NGINX:-/usr/sbin/nginx}
HAPROXY=${HAPROXY:-/usr/sbin/haproxy}
WRK=${WRK:-wrk}
WRK_TIMEOUT=5s    # per-request timeout inside wrk
# The script works in its temp dir: make paths given relative to here absolute.
for v in STRANGLER NGINX HAPROXY WRK OUT RESULTS; do
	[[ ${!v} == */* && ${!v} != /* ]] && printf -v "$v" '%s/%s' "$PWD" "${!v}"
done

say() { printf 'bench: %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }

for v in DURATION WARMUP ROUNDS THREADS CPU_PROXY CPU_LOAD OTHER_MAX RETRY_BUDGET IDLE_CONNS; do
	[[ ${!v} =~ ^[0-9]+$ ]] || die "BENCH_$v must be a non-negative integer (got '${!v}')"
done
((DURATION >= 1)) || die "BENCH_DURATION must be at least 1"
((ROUNDS >= 1)) || die "BENCH_ROUNDS must be at least 1"
((THREADS >= 1)) || die "BENCH_THREADS must be at least 1"
[[ $WORKERS_AUTO =~ ^[A-Za-z0-9]+$ ]] || die "BENCH_WORKERS_AUTO must be a number or auto (got '$WORKERS_AUTO')"
BENCH_START=$SECONDS

# ---------------------------------------------------------------- workloads
JSON_DOC=$BENCH_DIR/data/order.json JSON_ALT=$BENCH_DIR/data/order-reordered.json
[[ -f $JSON_DOC && -f $JSON_ALT ]] || die "missing $JSON_DOC or $JSON_ALT"
JSON_BYTES=$(wc -c <"$JSON_DOC")
declare -A WL_LABEL WL_PATH WL_CONNS WL_BODY WL_EXPECT
def_wl() { WL_LABEL[$1]=$2 WL_PATH[$1]=$3 WL_CONNS[$1]=$4 WL_BODY[$1]=$5 WL_EXPECT[$1]=$6; }
#      name         label                   path  conns body    expected response body bytes
def_wl get100-c50 "GET 100 B, 50 conns" /100 50 0 100
def_wl get100-c200 "GET 100 B, 200 conns" /100 200 0 100
def_wl get64k-c50 "GET 64 KiB, 50 conns" /64k 50 0 65536
def_wl get64k-c200 "GET 64 KiB, 200 conns" /64k 200 0 65536
def_wl post1m-c50 "POST 1 MiB, 50 conns" /post 50 1048576 3
def_wl post1m-c200 "POST 1 MiB, 200 conns" /post 200 1048576 3
def_wl json-c50 "GET JSON 1.7 KB, 50 conns" /json 50 0 "$JSON_BYTES"
def_wl json-shadow-c50 "GET JSON 1.7 KB + shadow, 50 conns" /json-shadow 50 0 "$JSON_BYTES"
def_wl json-paced-c50 "GET JSON 1.7 KB, 50 conns paced" /json 50 0 "$JSON_BYTES"
def_wl json-shadow-paced-c50 "GET JSON 1.7 KB + shadow, 50 conns paced" /json-shadow 50 0 "$JSON_BYTES"
def_wl json-shadow-bare-c50 "GET JSON 1.7 KB + shadow without body compare, 50 conns" /json-shadow-bare 50 0 "$JSON_BYTES"
def_wl json-shadow-isofn-paced-c50 "GET JSON 1.7 KB + shadow to an idle-priority function, 50 conns paced" /json-shadow-iso 50 0 "$JSON_BYTES"
# workers: 1 against workers: auto (BENCH_WORKERS_AUTO): two more strangler processes, the
# targets strangler-w1 and strangler-wauto, NOT pinned (every CPU for the proxy, for wrk and,
# during these runs, for the upstream): workers need cores, and on a machine of two, pinning
# the proxy to one leaves them none. The shadowed JSON route is the workload where the proxy,
# not the load side, is the bottleneck (the proxy spends about three times the load side's CPU
# per request there); GET 100 B is the plain-proxying pair.
def_wl workers1-json-shadow-c50 "GET JSON 1.7 KB + shadow, 50 conns" /json-shadow 50 0 "$JSON_BYTES"
def_wl workersauto-json-shadow-c50 "GET JSON 1.7 KB + shadow, 50 conns" /json-shadow 50 0 "$JSON_BYTES"
def_wl workers1-get100-c50 "GET 100 B, 50 conns" /100 50 0 100
def_wl workersauto-get100-c50 "GET 100 B, 50 conns" /100 50 0 100
WORKERS_PAIRS=("workers1-json-shadow-c50 workersauto-json-shadow-c50" "workers1-get100-c50 workersauto-get100-c50")
# Paced: each connection waits this many ms on average after a response (bench/wrk-paced.lua),
# about 4,500 req/s in all, so that the shadowed route's primary latency is compared with the
# proxy below saturation, not with its queue.
PACE_MS=10
declare -A WL_DELAY=([json-paced-c50]=$PACE_MS [json-shadow-paced-c50]=$PACE_MS [json-shadow-isofn-paced-c50]=$PACE_MS)
# The shadow route (its name in bench/routes.yaml.in), the workload pairs (shadowed,
# baseline), and the targets that can run a workload (default: all).
SHADOW_ROUTE=json-shadow
SHADOW_PAIRS=("json-shadow-c50 json-c50" "json-shadow-paced-c50 json-paced-c50")
# The workloads that take the cost apart (above): the bare exchange's CPU, and the primary's
# latency with a function that never competes for a CPU; each against its baseline.
BARE_PAIR="json-shadow-bare-c50 json-c50"
ISOFN_PAIR="json-shadow-isofn-paced-c50 json-paced-c50"
# Workloads through a shadowed route: the route (checked before measuring: one request, one
# more match).
declare -A WL_SHADOW_ROUTE=([json-shadow-c50]=$SHADOW_ROUTE [json-shadow-paced-c50]=$SHADOW_ROUTE
	[json-shadow-bare-c50]=json-shadow-bare [json-shadow-isofn-paced-c50]=json-shadow-iso
	[workers1-json-shadow-c50]=$SHADOW_ROUTE [workersauto-json-shadow-c50]=$SHADOW_ROUTE)
# A workload runs on the targets of BENCH_TARGETS unless WL_ONLY names others.
declare -A WL_ONLY=([json-shadow-c50]=strangler [json-paced-c50]=strangler [json-shadow-paced-c50]=strangler
	[json-shadow-bare-c50]=strangler [json-shadow-isofn-paced-c50]=strangler
	[workers1-json-shadow-c50]=strangler-w1 [workersauto-json-shadow-c50]=strangler-wauto
	[workers1-get100-c50]=strangler-w1 [workersauto-get100-c50]=strangler-wauto)
# Workloads run unpinned (the workers pair): every CPU for the proxy, wrk (with a thread per
# CPU, at least BENCH_THREADS) and the upstream.
declare -A WL_UNPINNED=([workers1-json-shadow-c50]=1 [workersauto-json-shadow-c50]=1
	[workers1-get100-c50]=1 [workersauto-get100-c50]=1)
declare -A WL_NA=(
	[json-shadow-c50]="only strangler shadows and compares (the ${WL_LABEL[json-c50]} row is this target's plain proxying of the same document)"
	[json-shadow-paced-c50]="only strangler shadows and compares"
	[json-shadow-bare-c50]="only strangler shadows"
	[json-shadow-isofn-paced-c50]="only strangler shadows"
	[json-paced-c50]="the baseline of strangler's paced shadow workload only"
)
# Workloads of one group alternate within each round, so that their ratios compare runs
# seconds apart.
declare -A WL_GROUP=([json-c50]=json [json-shadow-c50]=json [json-paced-c50]=json [json-shadow-paced-c50]=json
	[json-shadow-bare-c50]=json [json-shadow-isofn-paced-c50]=json
	[workers1-json-shadow-c50]=workers-json [workersauto-json-shadow-c50]=workers-json
	[workers1-get100-c50]=workers-get100 [workersauto-get100-c50]=workers-get100)
# Per workload: req/s strangler must reach against the better of nginx and HAProxy (issue 8),
# and whether its p99 must be no worse than that peer's.
declare -A WL_GOAL=([get100-c50]=1.10 [get100-c200]=1.10 [get64k-c50]=1.10 [get64k-c200]=1.10
	[post1m-c50]=1.00 [post1m-c200]=1.00 [json-c50]=1.00)
declare -A WL_GOAL_P99=([get100-c50]=1 [get100-c200]=1 [get64k-c50]=1 [get64k-c200]=1)
for w in $WORKLOADS; do
	[[ -n ${WL_PATH[$w]:-} ]] || die "unknown workload '$w' (known: ${!WL_PATH[*]})"
	((WL_CONNS[$w] >= THREADS)) || die "workload $w: fewer connections than wrk threads"
done
declare -A TARGET_LABEL=([direct]=direct [strangler]=strangler [nginx]=nginx [haproxy]=HAProxy
	[strangler-w1]="strangler, workers: 1" [strangler-wauto]="strangler, workers: $WORKERS_AUTO")
for t in $TARGETS; do
	[[ " $DEFAULT_TARGETS " == *" $t "* ]] || die "unknown target '$t' (known: direct strangler nginx haproxy)"
done
# The workers pair's two strangler processes: started when a workers workload is selected.
WORKER_TARGETS=()
for w in $WORKLOADS; do
	[[ -n ${WL_UNPINNED[$w]:-} && " ${WORKER_TARGETS[*]} " != *" ${WL_ONLY[$w]} "* ]] && WORKER_TARGETS+=("${WL_ONLY[$w]}")
done

# ---------------------------------------------------------------- tools
missing=()
command -v "$WRK" >/dev/null 2>&1 || missing+=("wrk (apt-get install wrk)")
[[ -x $NGINX ]] || missing+=("nginx at $NGINX (apt-get install nginx-light); it is also the upstream")
command -v taskset >/dev/null 2>&1 || missing+=("taskset (apt-get install util-linux)")
command -v curl >/dev/null 2>&1 || missing+=("curl (apt-get install curl)")
command -v timeout >/dev/null 2>&1 || missing+=("timeout (coreutils)")
if ((${#missing[@]})); then
	for m in "${missing[@]}"; do say "missing: $m"; done
	die "cannot run the benchmark without the tools above"
fi
declare -A SKIP # target -> reason it is not measured
if [[ " $TARGETS " == *" haproxy "* && ! -x $HAPROXY ]]; then
	SKIP[haproxy]="HAProxy not found at $HAPROXY (apt-get install haproxy)"
	say "missing: ${SKIP[haproxy]}; skipping that target"
fi
if [[ " $TARGETS " == *" strangler "* && ! -x $STRANGLER ]]; then
	SKIP[strangler]="$STRANGLER not built (make)"
	say "missing: ${SKIP[strangler]}; skipping that target"
fi
PYTHON=$(command -v python3 || true)
IDLE_SKIP= # why the idle-connection memory is not measured
if ((IDLE_CONNS == 0)); then
	IDLE_SKIP="BENCH_IDLE_CONNS=0"
elif [[ -z $PYTHON ]]; then
	IDLE_SKIP="python3 not found (apt-get install python3)"
	say "missing: $IDLE_SKIP; the idle-connection memory is not measured"
fi

NCPU=$(nproc 2>/dev/null || echo 1)
if ((CPU_PROXY >= NCPU || CPU_LOAD >= NCPU)); then
	die "CPU $CPU_PROXY / $CPU_LOAD not available (nproc=$NCPU); set BENCH_CPU_PROXY/BENCH_CPU_LOAD"
fi
[[ $CPU_PROXY != "$CPU_LOAD" ]] || say "warning: proxy and load generator share CPU $CPU_LOAD"
SETSID=$(command -v setsid || true)
PIN_PROXY=(taskset -c "$CPU_PROXY")
PIN_LOAD=(taskset -c "$CPU_LOAD")
ALL_CPUS=0-$((NCPU - 1))
CLK_TCK=$(getconf CLK_TCK)

# Descriptors: each idle connection costs the proxy one and the client one; the proxies
# inherit this limit. Raise the soft limit as far as the hard one allows.
want_nofile=$((2 * IDLE_CONNS + 1024))
if [[ $(ulimit -Sn) != unlimited ]] && (($(ulimit -Sn) < want_nofile)); then
	hard=$(ulimit -Hn)
	[[ $hard != unlimited ]] && ((hard < want_nofile)) && want_nofile=$hard
	ulimit -Sn "$want_nofile" 2>/dev/null || say "warning: could not raise the open-files limit to $want_nofile"
fi

# Peak RSS: writing 5 to /proc/PID/clear_refs resets VmHWM to the current RSS (Linux 4.0+;
# the process's owner or root). Tried on this shell; without it, a sampler polls VmRSS.
CLEAR_REFS=0
if echo 5 2>/dev/null >"/proc/$$/clear_refs"; then
	CLEAR_REFS=1
else
	say "warning: /proc/PID/clear_refs is not writable: peak RSS is the largest VmRSS sampled every 0.1 s"
fi

# ---------------------------------------------------------------- processes
TMP=$(mktemp -d "${TMPDIR:-/tmp}/strangler-bench.XXXXXX") || die "mktemp failed"
cd "$TMP" || die "cannot cd to $TMP" # every path below is absolute; nothing lands in the repo
PIDS=()

descendants() { # PID -> PID and all its descendants, one per line
	local p=$1 c
	echo "$p"
	# shellcheck disable=SC2013 # the file is a list of words (PIDs)
	for c in $(cat /proc/"$p"/task/*/children 2>/dev/null); do descendants "$c"; done
}

kill_tree() { # PID: TERM the process and its descendants, KILL what is left after 3 s
	local pids p i
	pids=$(descendants "$1")
	for p in $pids; do kill -TERM "$p" 2>/dev/null; done
	for ((i = 0; i < 30; i++)); do
		local alive=0
		for p in $pids; do kill -0 "$p" 2>/dev/null && alive=1; done
		((alive)) || return 0
		sleep 0.1
	done
	for p in $pids; do kill -KILL "$p" 2>/dev/null; done
}

WRK_JOB=
cleanup() {
	local i
	trap - EXIT INT TERM
	[[ -n $WRK_JOB ]] && kill_tree "$WRK_JOB"
	[[ -n ${RSS_SAMPLER:-} ]] && kill "$RSS_SAMPLER" 2>/dev/null
	for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do kill_tree "${PIDS[i]}"; done
	if [[ $KEEP == 1 ]]; then say "temp dir kept: $TMP"; else rm -rf "$TMP"; fi
}
trap cleanup EXIT
trap 'say "interrupted"; exit 130' INT TERM

# free_ports N: N distinct ports that are free on 127.0.0.1 right now.
free_ports() {
	if command -v python3 >/dev/null 2>&1 && python3 - "$1" <<'EOF' 2>/dev/null; then
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
EOF
		return 0
	fi
	local ports=() p
	while ((${#ports[@]} < $1)); do
		p=$((20000 + RANDOM % 30000))
		[[ " ${ports[*]} " == *" $p "* ]] && continue
		ss -Htan "sport = :$p" 2>/dev/null | grep -q . && continue
		ports+=("$p")
	done
	echo "${ports[*]}"
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# wait_ready PID PORT: until PORT accepts connections (10 s), while PID lives.
wait_ready() {
	local i
	for ((i = 0; i < 100; i++)); do
		kill -0 "$1" 2>/dev/null || return 1
		port_open "$2" && return 0
		sleep 0.1
	done
	return 1
}

# render TEMPLATE OUT KEY=VALUE...: replace @KEY@ with VALUE.
render() {
	local tpl=$1 out=$2 kv args=()
	shift 2
	for kv in "$@"; do args+=(-e "s|@${kv%%=*}@|${kv#*=}|g"); done
	sed "${args[@]}" "$tpl" >"$out"
	if grep -v '^[[:space:]]*#' "$out" | grep -q '@[A-Z_0-9]*@'; then die "unfilled placeholder in $out"; fi
}

# spawn NAME CMD...: start CMD in the background, stdout+stderr to
# $TMP/NAME.log, record its PID; the PID is left in SPAWNED.
spawn() {
	local name=$1
	shift
	# setsid: a Ctrl-C in the terminal reaches this script (whose trap stops
	# everything in order), not the servers directly.
	$SETSID "$@" >"$TMP/$name.log" 2>&1 </dev/null &
	SPAWNED=$!
	disown "$SPAWNED" 2>/dev/null
	PIDS+=("$SPAWNED")
}

log_tail() { sed -n '1,200p' "$TMP/$1.log" 2>/dev/null | tail -n 15 | sed 's/^/    | /' >&2; }

read -r UP_PORT STR_PORT STR_ADMIN NGX_PORT HAP_PORT W1_PORT W1_ADMIN WA_PORT WA_ADMIN FN_PORT <<<"$(free_ports 10)"
[[ -n ${FN_PORT:-} ]] || die "could not find free ports on 127.0.0.1"

declare -A PORT=([direct]=$UP_PORT [strangler]=$STR_PORT [nginx]=$NGX_PORT [haproxy]=$HAP_PORT
	[strangler-w1]=$W1_PORT [strangler-wauto]=$WA_PORT)
declare -A ADMIN=([strangler]=$STR_ADMIN [strangler-w1]=$W1_ADMIN [strangler-wauto]=$WA_ADMIN)
declare -A PID # target -> PID of the proxy process (direct: none)

nginx_dirs() { mkdir -p "$1/tmp" "$1/www"; }

# --- upstream
UPD=$TMP/upstream
nginx_dirs "$UPD"
head -c 65536 /dev/zero | tr '\0' 'x' >"$UPD/www/64k"
: >"$UPD/www/post" # must exist: see the /post location in nginx-upstream.conf.in
cp "$JSON_DOC" "$UPD/www/json"
cp "$JSON_DOC" "$UPD/www/json-shadow"
cp "$JSON_DOC" "$UPD/www/json-shadow-bare"
cp "$JSON_DOC" "$UPD/www/json-shadow-iso"
cp "$JSON_ALT" "$UPD/www/json-alt"
BODY100=$(printf 'strangler bench 100-byte body %070d' 0) # 30 + 70 = 100 bytes
((${#BODY100} == 100)) || die "internal: 100-byte body is ${#BODY100} bytes"
render "$BENCH_DIR/nginx-upstream.conf.in" "$UPD/nginx.conf" DIR="$UPD" PORT="$UP_PORT" BODY100="$BODY100"
"$NGINX" -t -q -p "$UPD" -e "$UPD/error.log" -c "$UPD/nginx.conf" 2>"$TMP/upstream-check.log" ||
	{ cat "$TMP/upstream-check.log" >&2; die "upstream nginx config rejected"; }
spawn upstream "${PIN_LOAD[@]}" "$NGINX" -p "$UPD" -e "$UPD/error.log" -c "$UPD/nginx.conf" -g 'daemon off;'
wait_ready "$SPAWNED" "$UP_PORT" || { log_tail upstream; die "upstream nginx did not start"; }
say "upstream nginx on 127.0.0.1:$UP_PORT (pid $SPAWNED, CPU $CPU_LOAD)"

# --- json-shadow-isofn-paced-c50's function: a second nginx with the same documents on the
# proxy's CPU at idle priority (SCHED_IDLE), started only when that workload runs
FN_PID= FN_SKIP=
if [[ " $WORKLOADS " == *" json-shadow-isofn-paced-c50 "* && " $TARGETS " == *" strangler "* ]]; then
	FND=$TMP/function
	nginx_dirs "$FND"
	cp "$JSON_ALT" "$FND/www/json-alt"
	render "$BENCH_DIR/nginx-upstream.conf.in" "$FND/nginx.conf" DIR="$FND" PORT="$FN_PORT" BODY100="$BODY100"
	if ! command -v chrt >/dev/null 2>&1; then
		FN_SKIP="chrt not found (apt-get install util-linux)"
	else
		spawn function chrt -i 0 "${PIN_PROXY[@]}" "$NGINX" -p "$FND" -e "$FND/error.log" -c "$FND/nginx.conf" -g 'daemon off;'
		if wait_ready "$SPAWNED" "$FN_PORT"; then
			FN_PID=$SPAWNED
			say "idle-priority function nginx on 127.0.0.1:$FN_PORT (pid $FN_PID, CPU $CPU_PROXY, chrt -i 0)"
		else
			log_tail function
			FN_SKIP="the idle-priority function (nginx) did not start"
		fi
	fi
	[[ -z $FN_SKIP ]] || say "json-shadow-isofn-paced-c50: $FN_SKIP; not measured"
fi

upstream_accepts() { # connections the upstream has accepted so far
	curl -s --max-time 2 "http://127.0.0.1:$UP_PORT/_status" | awk 'NR == 3 { print $1 }'
}

# --- proxies
start_target() { # TARGET: start it, set PID[TARGET]; on failure set SKIP[TARGET]
	local t=$1 d=$TMP/$1 cpus=$CPU_PROXY
	[[ $t == strangler-w* ]] && cpus=$ALL_CPUS # the workers pair: not pinned
	case $t in
	direct) return 0 ;;
	nginx)
		nginx_dirs "$d"
		render "$BENCH_DIR/nginx-proxy.conf.in" "$d/nginx.conf" DIR="$d" PORT="$NGX_PORT" UPSTREAM_PORT="$UP_PORT"
		if ! "$NGINX" -t -q -p "$d" -e "$d/error.log" -c "$d/nginx.conf" 2>"$TMP/nginx-check.log"; then
			SKIP[nginx]="config rejected: $(head -c 300 "$TMP/nginx-check.log")"
			return 1
		fi
		spawn nginx "${PIN_PROXY[@]}" "$NGINX" -p "$d" -e "$d/error.log" -c "$d/nginx.conf" -g 'daemon off;'
		;;
	haproxy)
		mkdir -p "$d"
		render "$BENCH_DIR/haproxy.cfg.in" "$d/haproxy.cfg" PORT="$HAP_PORT" UPSTREAM_PORT="$UP_PORT"
		if ! "$HAPROXY" -c -f "$d/haproxy.cfg" >"$TMP/haproxy-check.log" 2>&1; then
			SKIP[haproxy]="config rejected: $(grep -m1 ALERT "$TMP/haproxy-check.log")"
			return 1
		fi
		spawn haproxy "${PIN_PROXY[@]}" "$HAPROXY" -db -f "$d/haproxy.cfg"
		;;
	strangler | strangler-w1 | strangler-wauto)
		local workers=1
		[[ $t == strangler-wauto ]] && workers=$WORKERS_AUTO
		mkdir -p "$d"
		render "$BENCH_DIR/strangler.yaml.in" "$d/strangler.yaml" PORT="${PORT[$t]}" ADMIN_PORT="${ADMIN[$t]}" \
			WORKERS="$workers"
		render "$BENCH_DIR/routes.yaml.in" "$d/routes.yaml" UPSTREAM_PORT="$UP_PORT" FUNCTION_PORT="$FN_PORT"
		spawn "$t" taskset -c "$cpus" "$STRANGLER" run -c "$d/strangler.yaml"
		;;
	esac
	PID[$t]=$SPAWNED
	if ! wait_ready "$SPAWNED" "${PORT[$t]}"; then
		if kill -0 "$SPAWNED" 2>/dev/null; then
			SKIP[$t]="did not listen on 127.0.0.1:${PORT[$t]} within 10 s"
		else
			SKIP[$t]="exited at start"
		fi
		# the error it gave, if any, into the report
		local last
		last=$(grep -v '^[[:space:]]*$' "$TMP/$t.log" 2>/dev/null | tail -n 3 | sed "s|$TMP/||g" | paste -sd'\t' - |
			sed 's/\t/ — /g' | cut -c 1-400)
		[[ -n $last ]] && SKIP[$t]+=": $last"
		say "$t: ${SKIP[$t]}; log:"
		log_tail "$t"
		kill_tree "$SPAWNED"
		return 1
	fi
	say "$t on 127.0.0.1:${PORT[$t]} (pid $SPAWNED, CPU $cpus)"
}

ACTIVE=()
for t in $TARGETS; do
	[[ -n ${SKIP[$t]:-} ]] && continue
	if start_target "$t"; then ACTIVE+=("$t"); else say "skipping $t: ${SKIP[$t]}"; fi
done
for t in "${WORKER_TARGETS[@]}"; do
	if [[ " $TARGETS " != *" strangler "* ]]; then
		SKIP[$t]="strangler is not among the targets (BENCH_TARGETS)"
	elif [[ -n ${SKIP[strangler]:-} ]]; then
		SKIP[$t]=${SKIP[strangler]}
	elif start_target "$t"; then
		ACTIVE+=("$t")
		continue
	fi
	say "skipping $t: ${SKIP[$t]}"
done

# --- correctness check of every (target, workload) before measuring it
POSTBODY=$TMP/post.body
head -c 1048576 /dev/zero | tr '\0' 'x' >"$POSTBODY"
declare -A BAD # "target workload" -> why it is not measured ("n/a: ..." when it cannot be)

# shadow_counters ROUTE [TARGET]: a strangler target's (default strangler) shadow counters
# of ROUTE from its /stats as "requests=N match=N mismatch=N noise=N skipped=N error=N"
# followed by the non-zero reasons (e.g. primary_failed=N); nothing when /stats cannot be read.
shadow_counters() {
	local j sh k v kv fields=()
	j=$(curl -s --max-time 5 "http://127.0.0.1:${ADMIN[${2:-strangler}]}/stats" | tr -d ' \t\r\n')
	[[ $j == *'"name":"'"$1"'"'*'"shadow":{'* ]] || return 0
	# From that route's object on, its first "shadow" object is its own; that object
	# ends where its last member, errors_by, does ("}}").
	j=${j#*'"name":"'"$1"'"'}
	sh=${j#*'"shadow":{'}
	sh=${sh%%'}}'*}
	# requests.legacy is the route's first "legacy" member
	v=$(grep -o '"legacy":[0-9]*' <<<"${j%%'"shadow":{'*}" | head -n 1)
	fields+=("requests=${v#*:}")
	for k in match mismatch noise skipped error; do
		v=$(grep -o "\"$k\":[0-9]*" <<<"$sh" | head -n 1)
		fields+=("$k=${v#*:}")
	done
	for kv in $(grep -o '"[a-z0-9_]*":[1-9][0-9]*' <<<"${sh#*'"skipped_by":{'}" | tr -d '"'); do
		fields+=("${kv/:/=}")
	done
	echo "${fields[*]}"
}
counter() { # NAME "k=v k=v ...": the value of NAME, empty when absent
	local kv
	for kv in $2; do [[ ${kv%%=*} == "$1" ]] && { echo "${kv#*=}"; return; }; done
}

check_pair() { # TARGET WORKLOAD
	local t=$1 w=$2 url got args=() before after i
	if [[ " ${WL_ONLY[$w]:-$TARGETS} " != *" $t "* ]]; then
		BAD["$t $w"]="n/a: ${WL_NA[$w]:-not run for this target}"
		return
	fi
	if [[ $w == json-shadow-isofn-paced-c50 && -n $FN_SKIP ]]; then
		BAD["$t $w"]="not measured: $FN_SKIP"
		return
	fi
	url=http://127.0.0.1:${PORT[$t]}${WL_PATH[$w]}
	((WL_BODY[$w] > 0)) && args=(-H 'Expect:' -H 'Content-Type: application/octet-stream' --data-binary "@$POSTBODY")
	local route=${WL_SHADOW_ROUTE[$w]:-}
	[[ -n $route ]] && before=$(shadow_counters "$route" "$t")
	got=$(curl -s -o /dev/null --max-time 10 -w '%{http_code} %{size_download}' "${args[@]}" "$url")
	if [[ $got != "200 ${WL_EXPECT[$w]}" ]]; then
		BAD["$t $w"]="check failed: expected '200 ${WL_EXPECT[$w]}' (status, body bytes), got '${got:-nothing}'"
		say "$t / $w: ${BAD["$t $w"]}; not measured"
		return
	fi
	[[ -n $route ]] || return
	# The shadow is compared after the client has its answer: wait for the count.
	for ((i = 0; i < 30; i++)); do
		after=$(shadow_counters "$route" "$t")
		[[ $(counter match "$after") != "$(counter match "$before")" ||
			$(counter mismatch "$after") != "$(counter mismatch "$before")" ||
			$(counter error "$after") != "$(counter error "$before")" ]] && break
		sleep 0.1
	done
	if [[ -z $after || $(counter match "$after") != $(($(counter match "$before") + 1)) ]]; then
		BAD["$t $w"]="shadow check failed: one request should add 1 to route $route's shadow match count; counters before '${before:-unreadable}', after '${after:-unreadable}'"
		say "$t / $w: ${BAD["$t $w"]}; not measured"
	fi
}
for t in "${ACTIVE[@]}"; do for w in $WORKLOADS; do check_pair "$t" "$w"; done; done

# ---------------------------------------------------------------- measuring
proc_ticks() { # PID: utime+stime (clock ticks) of PID and its descendants
	local p sum=0 s
	for p in $(descendants "$1"); do
		s=$(cat /proc/"$p"/stat 2>/dev/null) || continue
		s=${s##*) } # drop "pid (comm) ": fields now start at 3 (state)
		read -r -a f <<<"$s"
		sum=$((sum + f[11] + f[12])) # utime, stime (fields 14 and 15)
	done
	echo "$sum"
}
cpu_jiffies() { # CPU|all -> "busy total" jiffies of that CPU (all: every CPU) from /proc/stat (user..steal)
	local c="cpu$1"
	[[ $1 == all ]] && c=cpu
	awk -v c="$c" '$1 == c { t = 0; for (i = 2; i <= 9; i++) t += $i; print t - $5 - $6, t }' /proc/stat
}

# serving_pids TARGET: the processes whose memory is the proxy's: nginx's worker(s) (the
# master, which proxies nothing, is left out); strangler and HAProxy (-db: no master) are
# one process. Comma-separated.
serving_pids() {
	local pid=${PID[$1]:-} ps
	[[ -n $pid ]] || return 0
	ps=$(descendants "$pid")
	[[ $1 == nginx && $(wc -l <<<"$ps") -gt 1 ]] && ps=$(tail -n +2 <<<"$ps")
	echo "$ps" | paste -sd, -
}
status_kib() { # FIELD PID,PID...: the sum of /proc/PID/status FIELD (kB), empty if unreadable
	local p v sum=0 ps
	IFS=, read -r -a ps <<<"$2"
	for p in "${ps[@]}"; do
		v=$(awk -v f="$1:" '$1 == f { print $2 }' "/proc/$p/status" 2>/dev/null)
		[[ -n $v ]] || return 0
		sum=$((sum + v))
	done
	echo "$sum"
}
# peak_reset PIDS: start a peak-RSS interval: VmHWM reset, or (no clear_refs) a sampler in
# the background keeping the largest VmRSS sum in $TMP/rss.max.
RSS_SAMPLER=
peak_reset() {
	local p ps
	IFS=, read -r -a ps <<<"$1"
	if ((CLEAR_REFS)); then
		for p in "${ps[@]}"; do echo 5 2>/dev/null >"/proc/$p/clear_refs"; done
		return
	fi
	(
		max=0
		while :; do
			v=$(status_kib VmRSS "$1")
			[[ -n $v ]] && ((v > max)) && max=$v && echo "$max" >"$TMP/rss.max"
			sleep 0.1
		done
	) &
	RSS_SAMPLER=$!
}
peak_read() { # PIDS: the peak RSS (KiB) since peak_reset
	if ((CLEAR_REFS)); then
		status_kib VmHWM "$1"
		return
	fi
	[[ -n $RSS_SAMPLER ]] && kill "$RSS_SAMPLER" 2>/dev/null && wait "$RSS_SAMPLER" 2>/dev/null
	RSS_SAMPLER=
	cat "$TMP/rss.max" 2>/dev/null
	rm -f "$TMP/rss.max"
}

# pin_upstream CPUS: move the upstream nginx (master, worker, all threads) to CPUS.
pin_upstream() {
	local p
	for p in $(descendants "$UP_PID"); do taskset -a -p -c "$1" "$p" >/dev/null 2>&1; done
}

wrk_threads() { # WORKLOAD: wrk's threads for it (unpinned: one per CPU, at least BENCH_THREADS)
	if [[ -n ${WL_UNPINNED[$1]:-} ]] && ((NCPU > THREADS)); then echo "$NCPU"; else echo "$THREADS"; fi
}

run_wrk() { # TARGET WORKLOAD SECONDS OUTFILE: wrk's output, then "WRKCPU seconds" (user+sys)
	local t=$1 w=$2 d=$3 out=$4 cpus=$CPU_LOAD
	local script=$BENCH_DIR/wrk.lua
	[[ -n ${WL_DELAY[$w]:-} ]] && script=$BENCH_DIR/wrk-paced.lua
	[[ -n ${WL_UNPINNED[$w]:-} ]] && cpus=$ALL_CPUS
	(
		WRK_BODY_BYTES=${WL_BODY[$w]} WRK_DELAY_MS=${WL_DELAY[$w]:-} WRK_BASE_SCRIPT=$BENCH_DIR/wrk.lua \
			timeout -k 2 $((d + 20)) taskset -c "$cpus" "$WRK" \
			-t"$(wrk_threads "$w")" -c"${WL_CONNS[$w]}" -d"${d}s" --timeout "$WRK_TIMEOUT" -s "$script" \
			"http://127.0.0.1:${PORT[$t]}${WL_PATH[$w]}" >"$out" 2>&1
		times >"$out.times" # this subshell's children: timeout -> wrk (no fork in between)
	) </dev/null &
	WRK_JOB=$! # in the background so that a signal's trap runs at once (cleanup kills it)
	wait "$WRK_JOB"
	WRK_JOB=
	awk 'NR == 2 {
		s = 0
		for (i = 1; i <= 2; i++) { split($i, a, /[ms]/); s += a[1] * 60 + a[2] }
		printf "WRKCPU %.3f\n", s }' "$out.times" >>"$out"
}

calc() { awk "BEGIN { printf \"$1\", ($2) }"; } # calc FORMAT EXPR

# results.tsv: one line per kept run; the report's functions address columns by number.
#  1 workload  2 target  3 round  4 req_s  5 p50_us  6 p99_us  7 cpu_us_req (proxy)
#  8 proxy_cpu_pct (of one core)  9 load_cpu_pct (CPU_LOAD busy)  10 errors
# 11 upstream_conns (new)  12 other_cpu_pct  13 peak_rss_kib (proxy)
# 14 load_side_pct (wrk + upstream, of one core)  15 all_cpus_busy_pct (of one core: NCPU*100 = all)
# 16 upstream_pct  17 wrk_pct (both of one core)  18 load_us_req (wrk + upstream CPU per request)
RAW=$TMP/results.tsv
printf '%s\n' "workload	target	round	req_s	p50_us	p99_us	cpu_us_req	proxy_cpu_pct	load_cpu_pct	errors	upstream_conns	other_cpu_pct	peak_rss_kib	load_side_pct	all_cpus_busy_pct	upstream_pct	wrk_pct	load_us_req" >"$RAW"

nruns=0
for w in $WORKLOADS; do for t in "${ACTIVE[@]}"; do [[ -z ${BAD["$t $w"]:-} ]] && nruns=$((nruns + 1)); done; done
nruns=$((nruns * ROUNDS))
nidle=0
if [[ -z $IDLE_SKIP ]]; then
	for t in strangler nginx haproxy; do [[ " ${ACTIVE[*]} " == *" $t "* ]] && nidle=$((nidle + 1)); done
fi
say "$nruns runs of ${DURATION}s (+${WARMUP}s warm-up), wrk -t$THREADS, then idle-connection memory ($nidle targets), about $(((nruns * (DURATION + WARMUP + 1) + nidle * 8 + 59) / 60)) min"

UP_PID=${PIDS[0]}

# measure TARGET WORKLOAD ROUND: one warm-up and one measured run; sets ROW
# (a results.tsv line), SUMMARY (for the progress line) and OTHER (CPU % of
# one core used by processes outside the benchmark during the run). Returns 1
# when wrk produced no result. Unpinned workloads move the upstream to every
# CPU for the time of the run.
measure() {
	local rc
	[[ -n ${WL_UNPINNED[$2]:-} ]] && pin_upstream "$ALL_CPUS"
	measure_run "$@"
	rc=$?
	[[ -n ${WL_UNPINNED[$2]:-} ]] && pin_upstream "$CPU_LOAD"
	return "$rc"
}
measure_run() {
	local t=$1 w=$2 r=$3 pid=${PID[$1]:-} out="$TMP/wrk-$2-$1-$3.txt"
	local a0 a1 c0=0 c1=0 u0 u1 lb0 lt0 lb1 lt1 pb0 pt0 pb1 pt1 ab0 at0 ab1 at1 line kv reqs dur wrk_s errs rps
	local cpu_us=- cpu_pct=- upc=- load_pct peak=- rss_pids=
	((WARMUP > 0)) && run_wrk "$t" "$w" "$WARMUP" "$out.warmup"
	a0=$(upstream_accepts)
	if [[ -n $pid ]]; then
		c0=$(proc_ticks "$pid")
		rss_pids=$(serving_pids "$t")
		peak_reset "$rss_pids"
	fi
	u0=$(proc_ticks "$UP_PID")
	# the idle-priority function on the proxy's CPU: not "other" for its workload
	local fn= f0=0 f1=0
	[[ -n $FN_PID && ${WL_SHADOW_ROUTE[$w]:-} == json-shadow-iso ]] && fn=$FN_PID
	[[ -n $fn ]] && f0=$(proc_ticks "$fn")
	read -r lb0 lt0 <<<"$(cpu_jiffies "$CPU_LOAD")"
	read -r pb0 pt0 <<<"$(cpu_jiffies "$CPU_PROXY")"
	read -r ab0 at0 <<<"$(cpu_jiffies all)"
	run_wrk "$t" "$w" "$DURATION" "$out"
	read -r lb1 lt1 <<<"$(cpu_jiffies "$CPU_LOAD")"
	read -r pb1 pt1 <<<"$(cpu_jiffies "$CPU_PROXY")"
	read -r ab1 at1 <<<"$(cpu_jiffies all)"
	u1=$(proc_ticks "$UP_PID")
	[[ -n $fn ]] && f1=$(proc_ticks "$fn")
	if [[ -n $pid ]]; then
		c1=$(proc_ticks "$pid")
		peak=$(peak_read "$rss_pids")
		[[ -n $peak ]] || peak=-
	fi
	a1=$(upstream_accepts)
	if [[ -n $pid ]] && ! kill -0 "$pid" 2>/dev/null; then
		say "$w $t round $r: the proxy (pid $pid) died during the run; log:"
		log_tail "$t"
		BAD["$t $w"]="process died during a run"
		return 1
	fi
	line=$(grep '^BENCH ' "$out")
	if [[ -z $line ]]; then
		say "$w $t round $r: wrk produced no result:"
		grep -v '^WRKCPU' "$out" | tail -n 5 | sed 's/^/    | /' >&2
		return 1
	fi
	local -A m=()
	for kv in ${line#BENCH }; do m[${kv%%=*}]=${kv#*=}; done
	reqs=${m[requests]} dur=${m[duration_us]}
	wrk_s=$(awk '$1 == "WRKCPU" { print $2 }' "$out")
	errs=$((m[connect] + m[read] + m[write] + m[status] + m[timeout]))
	rps=$(calc %.0f "$dur > 0 ? $reqs * 1e6 / $dur : 0")
	if [[ -n $pid ]]; then
		cpu_us=$(calc %.2f "$reqs > 0 ? $((c1 - c0)) * 1e6 / $CLK_TCK / $reqs : 0")
		cpu_pct=$(calc %.0f "$dur > 0 ? $((c1 - c0)) * 100 / $CLK_TCK / ($dur / 1e6) : 0")
		# new connections the upstream accepted: the proxy's pool at work
		# (minus the /_status request itself)
		[[ -n $a0 && -n $a1 ]] && upc=$((a1 - a0 - 1))
	fi
	load_pct=$(calc %.0f "$((lt1 - lt0)) > 0 ? $((lb1 - lb0)) * 100 / $((lt1 - lt0)) : 0")
	# wrk + upstream: CPU time in % of one core over the run, and per request
	local up_pct wrk_pct side_pct side_us all_pct secs
	secs=$(calc %.6f "$dur > 0 ? $dur / 1e6 : 1")
	up_pct=$(calc %.0f "$((u1 - u0)) * 100 / $CLK_TCK / $secs")
	wrk_pct=$(calc %.0f "${wrk_s:-0} * 100 / $secs")
	side_pct=$(calc %.0f "($((u1 - u0)) / $CLK_TCK + ${wrk_s:-0}) * 100 / $secs")
	side_us=$(calc %.2f "$reqs > 0 ? ($((u1 - u0)) / $CLK_TCK + ${wrk_s:-0}) * 1e6 / $reqs : 0")
	all_pct=$(calc %.0f "$((at1 - at0)) > 0 ? $((ab1 - ab0)) * 100 * $NCPU / $((at1 - at0)) : 0")
	# CPU time used by other processes on the CPUs this target uses, in % of one core:
	# pinned, CPU_LOAD busy minus wrk and the upstream, plus (proxies) CPU_PROXY busy
	# minus the proxy; unpinned, all CPUs busy minus the proxy, wrk and the upstream.
	local other_load other_proxy=0
	if [[ -n ${WL_UNPINNED[$w]:-} ]]; then
		other_load=$(calc %.0f "$((at1 - at0)) > 0 ? ($((ab1 - ab0 - (u1 - u0) - (c1 - c0))) - ${wrk_s:-0} * $CLK_TCK) * 100 * $NCPU / $((at1 - at0)) : 0")
	else
		other_load=$(calc %.0f "$((lt1 - lt0)) > 0 ? ($((lb1 - lb0 - (u1 - u0))) - ${wrk_s:-0} * $CLK_TCK) * 100 / $((lt1 - lt0)) : 0")
		if [[ -n $pid ]]; then
			other_proxy=$(calc %.0f "$((pt1 - pt0)) > 0 ? $((pb1 - pb0 - (c1 - c0) - (f1 - f0))) * 100 / $((pt1 - pt0)) : 0")
		fi
	fi
	((other_load < 0)) && other_load=0
	((other_proxy < 0)) && other_proxy=0
	OTHER=$((other_load + other_proxy))
	ROW=$(printf '%s\t' "$w" "$t" "$r" "$rps" "${m[p50_us]}" "${m[p99_us]}" "$cpu_us" "$cpu_pct" "$load_pct" "$errs" \
		"$upc" "$OTHER" "$peak" "$side_pct" "$all_pct" "$up_pct" "$wrk_pct")
	ROW+=$side_us
	SUMMARY=$(printf '%6s req/s p50 %5s us p99 %6s us | proxy %6s us/req, %3s%% CPU, peak %s KiB | load %3s%% (%s us/req) | CPUs %3s%% | other %2s%% | err %s | new up conns %s' \
		"$rps" "${m[p50_us]}" "${m[p99_us]}" "$cpu_us" "$cpu_pct" "$peak" "$side_pct" "$side_us" "$all_pct" "$OTHER" "$errs" "$upc")
}

# A group's workloads (WL_GROUP) alternate within each round, in the order
# given; every other workload runs all its rounds in turn.
WL_GROUPS=()
declare -A group_seen=()
for w in $WORKLOADS; do
	g=${WL_GROUP[$w]:-}
	if [[ -z $g ]]; then
		WL_GROUPS+=("$w")
	elif [[ -z ${group_seen[$g]:-} ]]; then
		group_seen[$g]=1 members=()
		for m in $WORKLOADS; do [[ ${WL_GROUP[$m]:-} == "$g" ]] && members+=("$m"); done
		WL_GROUPS+=("${members[*]}")
	fi
done

run=0 retries=0 disturbed=0
for group in "${WL_GROUPS[@]}"; do
	for ((r = 1; r <= ROUNDS; r++)); do
		for w in $group; do for t in "${ACTIVE[@]}"; do
			[[ -n ${BAD["$t $w"]:-} ]] && continue
			run=$((run + 1))
			pid=${PID[$t]:-}
			if [[ -n $pid ]] && ! kill -0 "$pid" 2>/dev/null; then
				BAD["$t $w"]="process died during the benchmark"
				say "$t: process $pid died; log:"
				log_tail "$t"
				continue
			fi
			measure "$t" "$w" "$r" || continue
			# Another process took a noticeable share of the CPUs: measure again
			# (within the retry budget) and keep the least disturbed attempt.
			best_row=$ROW best_sum=$SUMMARY best_other=$OTHER
			tries=1
			while ((best_other > OTHER_MAX && retries < RETRY_BUDGET && tries < 3)); do
				retries=$((retries + 1)) tries=$((tries + 1))
				say "$(printf '[%2d/%d] %-21s %-15s #%d: %s  -> disturbed, again' "$run" "$nruns" "$w" "$t" "$r" "$SUMMARY")"
				measure "$t" "$w" "$r" || break
				((OTHER < best_other)) && best_row=$ROW best_sum=$SUMMARY best_other=$OTHER
			done
			((best_other > OTHER_MAX)) && disturbed=$((disturbed + 1))
			printf '%s\n' "$best_row" >>"$RAW"
			say "$(printf '[%2d/%d] %-21s %-15s #%d: %s' "$run" "$nruns" "$w" "$t" "$r" "$best_sum")"
		done; done
	done
done

# The shadowed route's counters over the whole benchmark (check, warm-ups, runs).
SHADOW_STATS="" shadow_ran=0
for pair in "${SHADOW_PAIRS[@]}" "$BARE_PAIR" "$ISOFN_PAIR"; do
	w=${pair%% *}
	[[ " $WORKLOADS " == *" $w "* && " ${ACTIVE[*]} " == *" strangler "* && -z ${BAD["strangler $w"]:-} ]] &&
		shadow_ran=1
done
if ((shadow_ran)); then
	sleep 0.5 # the last shadows finish after their primaries
	SHADOW_STATS=$(shadow_counters "$SHADOW_ROUTE")
	say "route $SHADOW_ROUTE shadow counters: ${SHADOW_STATS:-unreadable}"
fi

# The workers pair's counters of the same route (its json-shadow workloads).
declare -A WORKERS_SHADOW=()
for t in "${WORKER_TARGETS[@]}"; do
	[[ " ${ACTIVE[*]} " == *" $t "* ]] || continue
	for w in $WORKLOADS; do
		[[ ${WL_ONLY[$w]:-} == "$t" && ${WL_PATH[$w]} == /$SHADOW_ROUTE ]] || continue
		((shadow_ran)) || sleep 0.5
		WORKERS_SHADOW[$t]=$(shadow_counters "$SHADOW_ROUTE" "$t")
		say "$t: route $SHADOW_ROUTE shadow counters: ${WORKERS_SHADOW[$t]:-unreadable}"
		break
	done
done

# ---------------------------------------------------------------- idle connections
# Memory per idle keep-alive client connection (bench/idle_mem.py): each proxy is started
# afresh (memory its allocator kept from the runs above would otherwise absorb the new
# connections and hide their cost), then BENCH_IDLE_CONNS connections send one GET /100
# each, at most 50 at a time, and stay open; the proxy's memory before and after.
IDLE_WINDOW=50
declare -A IDLE=() # target -> idle_mem.py's "IDLE k=v ..." line
if [[ -z $IDLE_SKIP ]]; then
	for t in strangler nginx haproxy; do
		[[ " ${ACTIVE[*]} " == *" $t "* ]] || continue
		kill_tree "${PID[$t]}"
		saved=${SKIP[$t]-unset}
		if ! start_target "$t"; then
			IDLE[$t]="IDLE error=could not start it again: ${SKIP[$t]}"
		else
			IDLE[$t]=$(taskset -c "$CPU_LOAD" timeout -k 2 120 "$PYTHON" "$BENCH_DIR/idle_mem.py" --port "${PORT[$t]}" \
				--pids "$(serving_pids "$t")" --conns "$IDLE_CONNS" --window "$IDLE_WINDOW" --timeout 90 2>"$TMP/idle-$t.err" |
				grep '^IDLE ')
			[[ -n ${IDLE[$t]} ]] || IDLE[$t]="IDLE error=bench/idle_mem.py gave no result: $(tail -n 1 "$TMP/idle-$t.err" | cut -c 1-200)"
		fi
		if [[ $saved == unset ]]; then unset 'SKIP[$t]'; else SKIP[$t]=$saved; fi
		say "idle connections, $t: ${IDLE[$t]#IDLE }"
	done
fi

# ---------------------------------------------------------------- report
# stat FUNC WORKLOAD TARGET COLUMN -> median | min | max | count | sum over the rounds
# ("" when there is none); columns as in results.tsv, 1-based.
stat() {
	awk -F'\t' -v f="$1" -v w="$2" -v t="$3" -v c="$4" '
		NR > 1 && $1 == w && $2 == t && $c != "-" { v[n++] = $c + 0; s += $c }
		END {
			if (n == 0) exit
			for (i = 1; i < n; i++) for (j = i; j > 0 && v[j-1] > v[j]; j--) { x = v[j]; v[j] = v[j-1]; v[j-1] = x }
			if (f == "median") print (n % 2) ? v[int(n/2)] : (v[n/2-1] + v[n/2]) / 2
			else if (f == "min") print v[0]
			else if (f == "max") print v[n-1]
			else if (f == "count") print n
			else print s
		}' "$RAW"
}
med() { stat median "$@"; }
join() { # ITEMS... -> "a; b; c"
	local IFS=$'\x1f' j # joined with "; " (items may contain commas)
	j="$*"
	echo "${j//$'\x1f'/; }"
}
fmt_ms() { if [[ -n $1 ]]; then calc "$(awk -v u="$1" 'BEGIN { print (u < 10000) ? "%.2f ms" : "%.1f ms" }')" "$1 / 1000"; else echo "—"; fi; }
fmt_num() { if [[ -n $2 ]]; then calc "$1" "$2"; else echo "—"; fi; }
# ratio WORKLOAD A B COLUMN -> median over the rounds of A's figure / B's figure
# in the same round (runs of one round are seconds apart, so slow drifts of the
# machine cancel out); "—" when no round has both.
ratio() {
	awk -F'\t' -v w="$1" -v a="$2" -v b="$3" -v c="$4" '
		NR > 1 && $1 == w && $c != "-" { if ($2 == a) x[$3] = $c; if ($2 == b) y[$3] = $c }
		END {
			for (r in x) if ((r in y) && y[r] > 0) v[n++] = x[r] / y[r]
			if (n == 0) { print "—"; exit }
			for (i = 1; i < n; i++) for (j = i; j > 0 && v[j-1] > v[j]; j--) { t = v[j]; v[j] = v[j-1]; v[j-1] = t }
			printf "%.2f\n", (n % 2) ? v[int(n/2)] : (v[n/2-1] + v[n/2]) / 2
		}' "$RAW"
}

# ratio_wl WORKLOAD_A WORKLOAD_B TARGET COLUMN -> "MEDIAN LIST": TARGET's figure in
# A / in B, per round (LIST, comma-separated, in round order) and their median;
# "— " when no round has both.
ratio_wl() {
	awk -F'\t' -v a="$1" -v b="$2" -v t="$3" -v c="$4" '
		NR > 1 && $2 == t && $c != "-" { if ($1 == a) x[$3] = $c; if ($1 == b) y[$3] = $c }
		END {
			n = 0 # numeric: v[n] with n unset would be v[""]
			for (r = 1; r <= 1000; r++) if ((r in x) && (r in y) && y[r] > 0) {
				v[n] = x[r] / y[r]; l = l (n ? ", " : "") sprintf("%.2f", v[n]); n++
			}
			if (n == 0) { print "—"; exit }
			for (i = 1; i < n; i++) for (j = i; j > 0 && v[j-1] > v[j]; j--) { s = v[j]; v[j] = v[j-1]; v[j-1] = s }
			m = (n % 2) ? v[int(n/2)] : (v[n/2-1] + v[n/2]) / 2
			printf "%.2f %s\n", m, l
		}' "$RAW"
}
# shadow_parts: the Shadow cost section's lines for the workloads that take the cost apart
# (BARE_PAIR, ISOFN_PAIR), each against its baseline, when both ran.
shadow_parts() {
	local ws wb x per
	read -r ws wb <<<"$BARE_PAIR"
	if [[ " $WORKLOADS " == *" $ws "* && -n $(med "$ws" strangler 7) && -n $(med "$wb" strangler 7) ]]; then
		read -r x per <<<"$(ratio_wl "$ws" "$wb" strangler 7)"
		echo "- ${WL_LABEL[$ws]} (route json-shadow-bare, \`compare: { body: none }\`): the extra exchange" \
			"alone costs ${x}x the CPU per request of the unshadowed route (proxy CPU $(fmt_num %.1f "$(med "$ws" strangler 7)")" \
			"vs $(fmt_num %.1f "$(med "$wb" strangler 7)") µs/req, $(fmt_num %.0f "$(med "$ws" strangler 4)") req/s; per round: ${per:-none});" \
			"the JSON comparison's share is the difference from the first line"
	fi
	read -r ws wb <<<"$ISOFN_PAIR"
	if [[ " $WORKLOADS " == *" $ws "* && -n $(med "$ws" strangler 6) && -n $(med "$wb" strangler 6) ]]; then
		echo "- ${WL_LABEL[$ws]} (route json-shadow-iso: its function a second nginx on CPU $CPU_PROXY at idle" \
			"priority, which never takes a CPU from legacy, wrk or the proxy): primary p50 $(fmt_ms "$(med "$ws" strangler 5)")" \
			"vs $(fmt_ms "$(med "$wb" strangler 5)"), p99 $(fmt_ms "$(med "$ws" strangler 6)") vs $(fmt_ms "$(med "$wb" strangler 6)")" \
			"unshadowed at the same rate ($(fmt_num %.0f "$(med "$ws" strangler 4)") vs $(fmt_num %.0f "$(med "$wb" strangler 4)") req/s):" \
			"what shadowing in the proxy does to the primary's latency (its CPU per request, $(fmt_num %.1f "$(med "$ws" strangler 7)") µs," \
			"is not comparable: the function shares the proxy's CPU and caches)"
	elif [[ " $WORKLOADS " == *" $ws "* && -n ${BAD["strangler $ws"]:-} ]]; then
		echo "- ${WL_LABEL[$ws]}: ${BAD["strangler $ws"]}"
	fi
}

# shadow_line COUNTERS (from shadow_counters) -> a sentence of them
shadow_line() {
	local c=$1 kv extra=()
	for kv in $c; do
		case ${kv%%=*} in requests | match | mismatch | noise | skipped | error) ;; *) extra+=("${kv/=/ }") ;; esac
	done
	printf 'match %s, mismatch %s, noise %s, skipped %s, error %s, of %s requests legacy served on the route' \
		"$(counter match "$c")" "$(counter mismatch "$c")" "$(counter noise "$c")" "$(counter skipped "$c")" \
		"$(counter error "$c")" "$(counter requests "$c")"
	((${#extra[@]})) && printf ' (by reason: %s)' "$(join "${extra[@]}")"
	[[ -n $(counter primary_failed "$c") ]] &&
		printf '; primary_failed: the client left before its answer was complete, as wrk does with the requests in flight when a run ends'
	echo
}

# ratio_best WORKLOAD COLUMN max|min -> median over the rounds of strangler's figure / the
# better peer's in the same round, the better of nginx and HAProxy being the one with the
# larger (max: req/s) or the smaller (min: p99, CPU/req, RSS) figure in that round; "—"
# when no round has strangler and a peer.
ratio_best() {
	awk -F'\t' -v w="$1" -v c="$2" -v f="$3" '
		NR > 1 && $1 == w && $c != "-" {
			if ($2 == "strangler") x[$3] = $c
			else if ($2 == "nginx" || $2 == "haproxy")
				if (!($3 in y) || (f == "max" ? $c + 0 > y[$3] : $c + 0 < y[$3])) y[$3] = $c + 0
		}
		END {
			n = 0
			for (r in x) if ((r in y) && y[r] > 0) v[n++] = x[r] / y[r]
			if (n == 0) { print "—"; exit }
			for (i = 1; i < n; i++) for (j = i; j > 0 && v[j-1] > v[j]; j--) { t = v[j]; v[j] = v[j-1]; v[j-1] = t }
			printf "%.2f\n", (n % 2) ? v[int(n/2)] : (v[n/2-1] + v[n/2]) / 2
		}' "$RAW"
}
better_peer() { # WORKLOAD: the peer (nginx|haproxy) with the larger median req/s, "" if none ran
	local n h
	n=$(med "$1" nginx 4) h=$(med "$1" haproxy 4)
	if [[ -z $n && -z $h ]]; then return; fi
	if [[ -z $h ]] || { [[ -n $n ]] && awk -v a="$n" -v b="$h" 'BEGIN { exit !(a >= b) }'; }; then echo nginx; else echo haproxy; fi
}
# pair_ratio WORKLOAD_A TARGET_A WORKLOAD_B TARGET_B COLUMN -> "MEDIAN LIST" as ratio_wl,
# for two (workload, target) pairs measured in the same rounds.
pair_ratio() {
	awk -F'\t' -v wa="$1" -v ta="$2" -v wb="$3" -v tb="$4" -v c="$5" '
		NR > 1 && $c != "-" { if ($1 == wa && $2 == ta) x[$3] = $c; if ($1 == wb && $2 == tb) y[$3] = $c }
		END {
			n = 0
			for (r = 1; r <= 1000; r++) if ((r in x) && (r in y) && y[r] > 0) {
				v[n] = x[r] / y[r]; l = l (n ? ", " : "") sprintf("%.2f", v[n]); n++
			}
			if (n == 0) { print "—"; exit }
			for (i = 1; i < n; i++) for (j = i; j > 0 && v[j-1] > v[j]; j--) { s = v[j]; v[j] = v[j-1]; v[j-1] = s }
			printf "%.2f %s\n", (n % 2) ? v[int(n/2)] : (v[n/2-1] + v[n/2]) / 2, l
		}' "$RAW"
}
fmt_mib() { if [[ -n $1 ]]; then calc "%.1f MiB" "$1 / 1024"; else echo "—"; fi; } # KiB -> MiB
ge() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a + 0 >= b + 0) }'; } # A >= B (numbers)
# limit_sentence TARGET WORKLOAD THREADS: what limited the throughput of that (unpinned)
# cell, from its medians: the load side (the upstream's one process or wrk's threads
# saturated), the proxy (its threads saturated), every CPU busy (shared), or none.
limit_sentence() {
	local t=$1 w=$2 th=$3 p l u k a o wth
	p=$(med "$w" "$t" 8) l=$(med "$w" "$t" 14) u=$(med "$w" "$t" 16) k=$(med "$w" "$t" 17) a=$(med "$w" "$t" 15)
	o=$(med "$w" "$t" 12)
	[[ -n $p && -n $l && -n $a ]] || return 0
	wth=$(wrk_threads "$w")
	printf 'proxy %s%% of a core (%s thread(s)), load side %s%% (upstream %s%%, wrk %s%% with %s threads), other processes %s%%, all %s CPUs busy %s%% of %s%%: ' \
		"$(calc %.0f "$p")" "$th" "$(calc %.0f "$l")" "$(calc %.0f "$u")" "$(calc %.0f "$k")" "$wth" "$(calc %.0f "${o:-0}")" \
		"$NCPU" "$(calc %.0f "$a")" "$((NCPU * 100))"
	if ge "$u" 90; then
		echo "the load side was the limit (the upstream, one nginx worker, saturated its core)."
	elif ge "$k" "$((90 * wth))"; then
		echo "the load side was the limit (wrk saturated its threads)."
	elif ge "$p" "$((90 * th))"; then
		echo "the proxy was the limit (its thread(s) saturated), not the load side."
	elif ge "$a" "$((90 * NCPU))"; then
		local who="the proxy and the load side"
		ge "${o:-0}" 20 && who="the proxy, the load side and other processes"
		echo "every CPU was busy, shared by $who: the load side was not saturated but took $(calc %.0f "$l")% of a core that the proxy could otherwise have used."
	else
		echo "no CPU was saturated: latency (50 connections in a closed loop) was the limit, not the load side."
	fi
}
# idle_kv TARGET KEY: a field of that target's idle_mem.py line
idle_kv() {
	local l=${IDLE[$1]:-} kv
	l=${l#IDLE }
	if [[ $2 == error ]]; then [[ $l == *"error="* ]] && echo "${l#*error=}"; return; fi
	for kv in ${l%%error=*}; do [[ ${kv%%=*} == "$2" ]] && { echo "${kv#*=}"; return; }; done
}
idle_per_conn() { # TARGET KIND(rss|anon|heap) -> KiB per answered connection, "" without data
	local b a n
	b=$(idle_kv "$1" "$2_before_kib") a=$(idle_kv "$1" "$2_after_kib") n=$(idle_kv "$1" ok)
	[[ -n $b && -n $a && -n $n ]] && ((n > 0)) && calc %.2f "($a - $b) / $n"
}

nrows=$(($(wc -l <"$RAW") - 1))
STRANGLER_VERSION="strangler not built"
if [[ -x $STRANGLER ]]; then
	STRANGLER_VERSION=$(timeout 5 "$STRANGLER" --version 2>/dev/null </dev/null | head -n 1)
	[[ -n $STRANGLER_VERSION ]] || STRANGLER_VERSION="strangler (no --version)"
fi
GIT_DESC="not a git checkout"
if git -C "$ROOT" rev-parse --git-dir >/dev/null 2>&1; then
	GIT_DESC="commit $(git -C "$ROOT" log -1 --format='%h (%cd, "%s")' --date=format:'%Y-%m-%d %H:%M' 2>/dev/null)"
	dirty=$(git -C "$ROOT" status --porcelain -- proxy routes Makefile 2>/dev/null | wc -l)
	((dirty > 0)) && GIT_DESC+=", with $dirty uncommitted change(s) under proxy/, routes/ or the Makefile"
	[[ -x $STRANGLER && $STRANGLER != "$ROOT/bin/strangler" ]] && GIT_DESC+=" (the binary measured is $STRANGLER)"
fi
cpu_model=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
[[ -n $cpu_model ]] || cpu_model=$(lscpu 2>/dev/null | awk -F': *' '/^Model name/ { print $2; exit }')
hyper=$(lscpu 2>/dev/null | awk -F': *' '/^Hypervisor vendor/ { print $2; exit }')
tpc=$(lscpu 2>/dev/null | awk -F': *' '/^Thread\(s\) per core/ { print $2; exit }')
distro=$(awk -F= '$1 == "PRETTY_NAME" { gsub(/"/, "", $2); print $2 }' /etc/os-release 2>/dev/null)
mem_gib=$(awk '/^MemTotal:/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)
# shellcheck disable=SC2016 # the backquotes are markdown
env_set=$(env | grep -E '^(BENCH_[A-Z_]*|STRANGLER|NGINX|HAPROXY|WRK)=' | sort | sed 's/^/`/; s/$/`/' | paste -sd' ' -)
WORKER_THREADS_AUTO=$WORKERS_AUTO
[[ $WORKERS_AUTO == auto ]] && WORKER_THREADS_AUTO=$NCPU
declare -A WORKER_THREADS=([strangler-w1]=1 [strangler-wauto]=$WORKER_THREADS_AUTO)
main_wls=() # the workloads of the main table (all but the workers pair)
for w in $WORKLOADS; do [[ -z ${WL_UNPINNED[$w]:-} ]] && main_wls+=("$w"); done
wall=$((SECONDS - BENCH_START))
{
	echo "# strangler benchmark"
	echo
	echo "## Machine and run"
	echo
	echo "- Date: $(date -u '+%Y-%m-%d %H:%M UTC')"
	echo "- CPU: ${cpu_model:-unknown}, $NCPU CPUs (${tpc:-?} thread(s) per core)${hyper:+, virtual machine ($hyper)}; RAM $mem_gib"
	echo "- OS: ${distro:-unknown}, kernel $(uname -r)"
	echo "- Software: $STRANGLER_VERSION, $GIT_DESC; nginx $("$NGINX" -v 2>&1 | sed 's|.*nginx/||');" \
		"$(if [[ -x $HAPROXY ]]; then "$HAPROXY" -v 2>/dev/null | awk 'NR == 1 { print "HAProxy " $3 }'; else echo "HAProxy missing"; fi);" \
		"$("$WRK" -v 2>&1 | awk 'NR == 1 { print "wrk " $2 }')${PYTHON:+; $("$PYTHON" --version 2>&1) (idle-connection client)}"
	echo "- Run: \`bash bench/run.sh\` ${env_set:-with the defaults}: median of $ROUNDS runs of ${DURATION} s per cell (each after ${WARMUP} s" \
		"of warm-up), targets alternated run by run; wrk -t$THREADS and the upstream (nginx, 1 worker) on CPU $CPU_LOAD, the proxy" \
		"under test (1 worker) on CPU $CPU_PROXY (taskset)$( ((${#WORKER_TARGETS[@]})) && echo "; the workers pair unpinned (below)"). $nrows runs kept;" \
		"the whole benchmark took $((wall / 60)) min $((wall % 60)) s."
	if ((nrows > 0 && disturbed * 10 > nrows)); then
		echo "- **Disturbed:** other processes used more than ${OTHER_MAX}% of a core on the benchmark's CPUs during $disturbed of" \
			"the $nrows kept runs (after $retries repeats): these figures show the benchmark works, they are not the" \
			"machine's; rerun on a quiet machine."
	fi
	echo
	echo "## Throughput, latency, CPU and memory"
	echo
	echo "| workload | target | req/s | req/s range | p50 | p99 | req/s ÷ better of nginx/HAProxy | proxy CPU µs/req | proxy CPU | peak RSS | CPU $CPU_LOAD busy | errors | new upstream conns |"
	echo "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
	for w in "${main_wls[@]}"; do
		for t in $TARGETS; do
			rps=$(med "$w" "$t" 4)
			if [[ -z $rps ]]; then
				why=${SKIP[$t]:-${BAD["$t $w"]:-no successful run}}
				[[ $why == n/a:* ]] || why="not measured: $why"
				echo "| ${WL_LABEL[$w]} | ${TARGET_LABEL[$t]} | ${why//|/\\|} | | | | | | | | | | |"
				continue
			fi
			lo=$(stat min "$w" "$t" 4) hi=$(stat max "$w" "$t" 4) pct=$(med "$w" "$t" 8) n=$(stat count "$w" "$t" 4)
			((n < ROUNDS)) && rps_note=" ($n of $ROUNDS runs)" || rps_note=
			vs="—"
			[[ $t == strangler ]] && vs=$(ratio_best "$w" 4 max)
			[[ $vs != "—" ]] && vs="**$vs**"
			echo "| ${WL_LABEL[$w]} | ${TARGET_LABEL[$t]} | $(fmt_num %.0f "$rps")$rps_note | $(calc %.0f "$rps > 0 ? ($hi - $lo) * 100 / $rps : 0")% |" \
				"$(fmt_ms "$(med "$w" "$t" 5)") | $(fmt_ms "$(med "$w" "$t" 6)") | $vs | $(fmt_num %.1f "$(med "$w" "$t" 7)") |" \
				"$(if [[ -n $pct ]]; then echo "$(fmt_num %.0f "$pct")%"; else echo "—"; fi) | $(fmt_mib "$(med "$w" "$t" 13)") |" \
				"$(fmt_num %.0f "$(med "$w" "$t" 9)")% | $(stat sum "$w" "$t" 10) | $(fmt_num %.0f "$(med "$w" "$t" 11)") |"
		done
	done
	echo
	echo "## strangler against the better of nginx and HAProxy"
	echo
	echo "Each ratio is strangler's figure over the better peer's in the same round (the larger req/s; the smaller"
	echo "p99, CPU per request and peak RSS), median over the rounds. Goals from issue 8: req/s ≥ 1.1× and p99 no"
	echo "worse on the 100 B and 64 KiB workloads, 1 MiB POST at least at par, and leading on every workload."
	echo
	echo "| workload | better peer (req/s) | req/s ratio | p99 ratio | CPU/req ratio (cheaper peer) | peak RSS ratio (smaller peer) | goal | met |"
	echo "| --- | --- | ---: | ---: | ---: | ---: | --- | --- |"
	for w in "${main_wls[@]}"; do
		[[ -n ${WL_ONLY[$w]:-} ]] && continue # nothing to compare it with
		bp=$(better_peer "$w")
		rr=$(ratio_best "$w" 4 max) pr=$(ratio_best "$w" 6 min)
		goal=${WL_GOAL[$w]:-1.00} met="—"
		goal_text="req/s ≥ ${goal}×"
		[[ -n ${WL_GOAL_P99[$w]:-} ]] && goal_text+=", p99 ≤ 1.00×"
		if [[ $rr != "—" ]]; then
			met=yes
			ge "$rr" "$goal" || met="**no**"
			if [[ -n ${WL_GOAL_P99[$w]:-} ]]; then [[ $pr != "—" ]] && ge 1 "$pr" || met="**no**"; fi
		fi
		echo "| ${WL_LABEL[$w]} | $(if [[ -n $bp ]]; then echo "${TARGET_LABEL[$bp]}"; else echo "—"; fi) | $rr | $pr | $(ratio_best "$w" 7 min) | $(ratio_best "$w" 13 min) | $goal_text | $met |"
	done
	echo
	echo "Ratios to each target (req/s: higher is better for strangler; proxy CPU time per request: lower is better),"
	echo "each the median over the rounds of the ratio within one round:"
	echo
	echo "| workload | strangler / nginx | strangler / HAProxy | strangler / direct | nginx / direct | HAProxy / direct | CPU/req strangler / nginx | CPU/req strangler / HAProxy |"
	echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
	for w in "${main_wls[@]}"; do
		[[ -n ${WL_ONLY[$w]:-} ]] && continue # nothing to compare it with
		echo "| ${WL_LABEL[$w]} | $(ratio "$w" strangler nginx 4) | $(ratio "$w" strangler haproxy 4) | $(ratio "$w" strangler direct 4) |" \
			"$(ratio "$w" nginx direct 4) | $(ratio "$w" haproxy direct 4) | $(ratio "$w" strangler nginx 7) | $(ratio "$w" strangler haproxy 7) |"
	done
	if ((${#WORKER_TARGETS[@]})); then
		echo
		echo "## workers: 1 against workers: $WORKERS_AUTO"
		echo
		echo "Two more strangler processes, \`workers: 1\` and \`workers: $WORKERS_AUTO\`$([[ $WORKERS_AUTO == auto ]] && echo " (one event loop per core: $NCPU here)"), in front of the same upstream."
		echo "Not pinned: pinned to one CPU, extra workers would have no core to run on. The proxy, wrk (-t$((NCPU > THREADS ? NCPU : THREADS))) and the upstream"
		echo "(moved to every CPU for these runs and back after) all run on CPUs $ALL_CPUS, so the load side competes with the"
		echo "proxy for the same $NCPU cores; the sentences under the table say what limited each run."
		echo "The two alternate run by run; medians; the ratios are auto / 1 within a round, median over the rounds (per round in brackets)."
		echo
		echo "| workload | workers | req/s | p50 | p99 | proxy CPU µs/req | proxy CPU | load side µs/req | load side CPU | all CPUs busy | peak RSS |"
		echo "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
		for pair in "${WORKERS_PAIRS[@]}"; do
			for w in $pair; do
				[[ " $WORKLOADS " == *" $w "* ]] || continue
				t=${WL_ONLY[$w]} rps=$(med "$w" "${WL_ONLY[$w]}" 4)
				wk=1
				[[ $t == strangler-wauto ]] && wk=$WORKERS_AUTO
				if [[ -z $rps ]]; then
					why=${SKIP[$t]:-${BAD["$t $w"]:-no successful run}}
					echo "| ${WL_LABEL[$w]} | $wk | not measured: ${why//|/\\|} | | | | | | | | |"
					continue
				fi
				echo "| ${WL_LABEL[$w]} | $wk | $(fmt_num %.0f "$rps") | $(fmt_ms "$(med "$w" "$t" 5)") | $(fmt_ms "$(med "$w" "$t" 6)") |" \
					"$(fmt_num %.1f "$(med "$w" "$t" 7)") | $(fmt_num %.0f "$(med "$w" "$t" 8)")% | $(fmt_num %.1f "$(med "$w" "$t" 18)") |" \
					"$(fmt_num %.0f "$(med "$w" "$t" 14)")% | $(fmt_num %.0f "$(med "$w" "$t" 15)")% of $((NCPU * 100))% | $(fmt_mib "$(med "$w" "$t" 13)") |"
			done
		done
		echo
		for pair in "${WORKERS_PAIRS[@]}"; do
			read -r w1 wa <<<"$pair"
			[[ " $WORKLOADS " == *" $w1 "* || " $WORKLOADS " == *" $wa "* ]] || continue
			echo "- ${WL_LABEL[$w1]}:"
			if [[ -n $(med "$w1" strangler-w1 4) && -n $(med "$wa" strangler-wauto 4) ]]; then
				read -r x per <<<"$(pair_ratio "$wa" strangler-wauto "$w1" strangler-w1 4)"
				read -r y perc <<<"$(pair_ratio "$wa" strangler-wauto "$w1" strangler-w1 7)"
				read -r z perp <<<"$(pair_ratio "$wa" strangler-wauto "$w1" strangler-w1 6)"
				flat=no
				ge "$y" 0.9 && ge 1.1 "$y" && flat=yes
				echo "  workers $WORKERS_AUTO / workers 1: req/s **${x}×** ($per), proxy CPU µs/req ${y}× ($perc; flat within 10%: $flat), p99 ${z}× ($perp)."
			fi
			for t in strangler-w1 strangler-wauto; do
				w=$w1
				[[ $t == strangler-wauto ]] && w=$wa
				[[ " $WORKLOADS " == *" $w "* ]] || continue
				if [[ -z $(med "$w" "$t" 4) ]]; then
					echo "  ${TARGET_LABEL[$t]}: not measured: ${SKIP[$t]:-${BAD["$t $w"]:-no successful run}}."
				else
					echo "  ${TARGET_LABEL[$t]}: $(limit_sentence "$t" "$w" "${WORKER_THREADS[$t]}")"
				fi
			done
		done
		for t in "${WORKER_TARGETS[@]}"; do
			c=${WORKERS_SHADOW[$t]:-}
			[[ -n $c ]] && echo "- ${TARGET_LABEL[$t]}, route $SHADOW_ROUTE's shadow counters: $(shadow_line "$c")"
		done
	fi
	echo
	echo "## Memory per idle keep-alive client connection"
	echo
	if [[ -n $IDLE_SKIP ]]; then
		echo "Not measured: $IDLE_SKIP."
	elif ((${#IDLE[@]} == 0)); then
		echo "Not measured: none of strangler, nginx and HAProxy ran."
	else
		echo "bench/idle_mem.py against each proxy started afresh (pinned as above): $IDLE_WINDOW connections one request each and"
		echo "closed (warm-up: lazy allocations, upstream pool), memory read, then $IDLE_CONNS connections each sending one GET /100"
		echo "(HTTP/1.1 keep-alive, at most $IDLE_WINDOW in flight) and staying open, memory read again 1 s later. Per connection:"
		echo "the growth over the connections answered. *Anonymous* is RssAnon (heap, anonymous mappings, thread stacks: the"
		echo "proxy's own memory, the \"proxy heap\" of the ≤ 4 KiB goal); *[heap]* is the brk heap alone; *RSS* adds file pages."
		echo "Kernel socket memory is in none of them. nginx: its worker process; HAProxy (-db) and strangler: the one process."
		echo
		echo "| target | connections answered / still open | RSS before → after | RSS per conn | anonymous per conn | [heap] per conn | ≤ 4 KiB anonymous |"
		echo "| --- | ---: | ---: | ---: | ---: | ---: | --- |"
		for t in strangler nginx haproxy; do
			[[ -n ${IDLE[$t]:-} ]] || continue
			e=$(idle_kv "$t" error) an=$(idle_per_conn "$t" anon)
			if [[ -z $an ]]; then
				echo "| ${TARGET_LABEL[$t]} | not measured: ${e:-no result} | | | | | |"
				continue
			fi
			ok=yes
			ge 4 "$an" || ok="**no**"
			echo "| ${TARGET_LABEL[$t]} | $(idle_kv "$t" ok) / $(idle_kv "$t" open) of $(idle_kv "$t" conns) |" \
				"$(fmt_mib "$(idle_kv "$t" rss_before_kib)") → $(fmt_mib "$(idle_kv "$t" rss_after_kib)") |" \
				"$(idle_per_conn "$t" rss) KiB | **$an KiB** | $(idle_per_conn "$t" heap) KiB | $ok |"
		done
		for t in strangler nginx haproxy; do
			e=$(idle_kv "$t" error)
			[[ -n $e && -n $(idle_per_conn "$t" anon) ]] && echo && echo "${TARGET_LABEL[$t]}: the client reported: $e."
		done
	fi
	if ((shadow_ran)); then
		echo
		echo "## Shadow cost"
		echo
		echo "strangler: route $SHADOW_ROUTE also sends every request legacy serves to its function and"
		echo "compares the two bodies as JSON (the same data, keys in another order, numbers written differently: both"
		echo "are parsed every time); the baseline is the same document through a route without shadow. The ratio is"
		echo "the median over the rounds of the ratio within one round (the workloads alternate), per round in brackets."
		echo
		for pair in "${SHADOW_PAIRS[@]}"; do
			read -r ws wb <<<"$pair"
			[[ " $WORKLOADS " == *" $ws "* ]] || continue
			if [[ -z $(med "$ws" strangler 7) || -z $(med "$wb" strangler 7) ]]; then
				echo "- ${WL_LABEL[$ws]}: no ratio, $(if [[ -z $(med "$ws" strangler 7) ]]; then echo "not measured"; else echo "its baseline $wb was not measured (add it to BENCH_WORKLOADS)"; fi)"
				continue
			fi
			read -r x per <<<"$(ratio_wl "$ws" "$wb" strangler 7)"
			echo "- ${WL_LABEL[$ws]}: shadow + JSON compare costs ${x}x the CPU per request of the unshadowed route" \
				"(target: under 1.7x); primary p99 $(fmt_ms "$(med "$ws" strangler 6)") vs $(fmt_ms "$(med "$wb" strangler 6)")"
			echo "  (proxy CPU $(fmt_num %.1f "$(med "$ws" strangler 7)") vs $(fmt_num %.1f "$(med "$wb" strangler 7)") µs/req" \
				"at $(fmt_num %.0f "$(med "$ws" strangler 8)")% vs $(fmt_num %.0f "$(med "$wb" strangler 8)")% of its core," \
				"$(fmt_num %.0f "$(med "$ws" strangler 4)") vs $(fmt_num %.0f "$(med "$wb" strangler 4)") req/s; per round: ${per:-none})"
		done
		shadow_parts
		if [[ -n $SHADOW_STATS ]]; then
			echo
			echo "Route $SHADOW_ROUTE's shadow counters after all runs (check, warm-ups, measured runs): $(shadow_line "$SHADOW_STATS")"
		fi
	fi
	echo
	echo "## How to read it"
	echo
	echo "Columns: *req/s range*: (max - min) / median over the rounds; *proxy CPU*: utime+stime of the proxy"
	echo "(process and children, /proc/PID/stat) per completed request and as a share of one core; *peak RSS*: the"
	echo "proxy's peak resident memory during the measured run ($(if ((CLEAR_REFS)); then echo "VmHWM of /proc/PID/status, reset through /proc/PID/clear_refs after the warm-up"; else echo "the largest VmRSS sampled every 0.1 s: /proc/PID/clear_refs was not writable"; fi);"
	echo "nginx: its worker, without the master), median over the rounds; *CPU $CPU_LOAD busy*: the load side (wrk +"
	echo "upstream); *load side*: CPU time of wrk and the upstream; *new upstream conns*: connections the upstream"
	echo "accepted during the measured run (0 or a few = the proxy reuses its pool; wrk closing busy connections at"
	echo "the end of the warm-up makes some proxies drop those upstream connections, hence a handful); *errors*: wrk"
	echo "socket errors + non-2xx, all rounds. Raw per-run figures: $(basename "${OUT%.md}").tsv next to $(basename "$OUT")."
	echo
	echo "CPU $CPU_LOAD runs wrk and the upstream for every target, so the *direct* req/s is about the"
	echo "most any proxy can reach here (CPU $CPU_LOAD at 100%). Where a proxy gets close to it, the load side is (also)"
	echo "the limit and req/s ratios understate the differences between proxies: compare *proxy CPU µs/req* then."
	notes=()
	for t in $TARGETS "${WORKER_TARGETS[@]}"; do
		[[ -n ${SKIP[$t]:-} ]] && notes+=("${TARGET_LABEL[$t]} not measured: ${SKIP[$t]}.")
	done
	wide=()
	for w in $WORKLOADS; do
		for t in $TARGETS "${WORKER_TARGETS[@]}"; do
			rps=$(med "$w" "$t" 4)
			[[ -z $rps ]] && continue
			lo=$(stat min "$w" "$t" 4) hi=$(stat max "$w" "$t" 4)
			awk -v a="$lo" -v b="$hi" -v m="$rps" 'BEGIN { exit !(m > 0 && (b - a) / m > 0.2) }' && wide+=("${WL_LABEL[$w]} / ${TARGET_LABEL[$t]}")
		done
	done
	if ((${#wide[@]})); then
		notes+=("req/s varied by more than 20% between rounds for: $(join "${wide[@]}"). A proxy near saturation can run in a cheaper or a costlier regime from one run to the next (compare cpu_us_req per run in $(basename "${OUT%.md}").tsv); BENCH_ROUNDS=5 or more gives firmer medians.")
	fi
	for w in "${main_wls[@]}"; do
		[[ -n ${WL_DELAY[$w]:-} ]] && continue # paced: wrk's pauses set its req/s
		bound=()
		for t in strangler nginx haproxy; do
			pct=$(med "$w" "$t" 8) load=$(med "$w" "$t" 9)
			[[ -z $pct || -z $load ]] && continue
			awk -v p="$pct" -v l="$load" 'BEGIN { exit !(p < 90 && l >= 95) }' &&
				bound+=("${TARGET_LABEL[$t]} (proxy at $(calc %.0f "$pct")% of its core, CPU $CPU_LOAD at $(calc %.0f "$load")%)")
		done
		if ((${#bound[@]})); then
			notes+=("${WL_LABEL[$w]}: the load side (wrk + upstream on CPU $CPU_LOAD), not the proxy, limited req/s for $(join "${bound[@]}"); compare CPU µs/req there, not req/s.")
		fi
	done
	if ((shadow_ran)); then
		notes+=("Shadowed workloads: strangler sends each request to the upstream twice (the primary and its shadow), so the load side (CPU $CPU_LOAD: wrk + upstream) does twice the upstream work per request and closed-loop req/s drops for that alone; the proxy's own CPU µs/req is the figure to compare. Without pacing, 50 connections keep the proxy or the load side saturated, so p99 is mostly queueing (about 50 connections / req/s): with fewer req/s, the shadowed route shows a higher p99 for that alone; the paced pair compares primary latency at the same request rate, below saturation. The function is the same nginx as legacy here, so shadows also double the load of the upstream that serves the primaries. Only strangler shadows: the other targets' rows for the shadowed workloads are n/a, their ${WL_LABEL[json-c50]} row is the plain proxying of the same document.")
		if [[ -z $SHADOW_STATS ]]; then
			notes+=("Route $SHADOW_ROUTE's shadow counters could not be read from strangler's /stats after the runs.")
		elif [[ $(counter mismatch "$SHADOW_STATS") != 0 || $(counter error "$SHADOW_STATS") != 0 || $(counter match "$SHADOW_STATS") == 0 ]]; then
			notes+=("Route $SHADOW_ROUTE's comparisons did not all match ($(shadow_line "$SHADOW_STATS")): mismatches are kept as diffs and errors cut the comparison short, so the shadow cost above is not that of a matching JSON comparison.")
		fi
	fi
	for w in $WORKLOADS; do
		for t in $TARGETS "${WORKER_TARGETS[@]}"; do
			e=$(stat sum "$w" "$t" 10)
			[[ -n $e && $e != 0 ]] && notes+=("${WL_LABEL[$w]} / ${TARGET_LABEL[$t]}: wrk counted $e errors (socket errors or non-2xx answers, which its req/s includes); BENCH_KEEP=1 keeps wrk's output.")
		done
	done
	if ((disturbed > 0 || retries > 0)); then
		notes+=("Other processes on this machine used more than ${OTHER_MAX}% of a core on the benchmark's CPUs: $retries run(s) were repeated, and $disturbed of the $nrows kept runs are still disturbed (column other_cpu_pct of $(basename "${OUT%.md}").tsv). Medians damp this; rerun on a quiet machine for firm figures.")
	fi
	if ((${#notes[@]})); then
		echo
		echo "Notes:"
		echo
		for n in "${notes[@]}"; do echo "- $n"; done
	fi
} >"$TMP/report.md"

mkdir -p "$(dirname "$OUT")"
cp "$TMP/report.md" "$OUT"
cp "$RAW" "${OUT%.md}.tsv"
cat "$TMP/report.md"
say "report written to ${OUT#"$ROOT"/}, raw runs in $(basename "${OUT%.md}").tsv"

# bench/RESULTS.md: the reference figures, only from a run of every target and workload
# (BENCH_RESULTS=path writes there whatever the run covered; BENCH_RESULTS=none never).
full=1 why_not=()
for t in $DEFAULT_TARGETS; do
	[[ " $TARGETS " == *" $t "* ]] || { full=0 why_not+=("target $t not selected"); }
	[[ $t != direct && " ${ACTIVE[*]} " != *" $t "* ]] && { full=0 why_not+=("$t did not run"); }
done
for w in $DEFAULT_WORKLOADS; do
	[[ " $WORKLOADS " == *" $w "* ]] || { full=0 why_not+=("workload $w not selected"); }
done
[[ -n $IDLE_SKIP ]] && { full=0 why_not+=("idle-connection memory not measured ($IDLE_SKIP)"); }
if [[ $RESULTS == none ]]; then
	:
elif [[ -n $RESULTS ]]; then
	mkdir -p "$(dirname "$RESULTS")" && cp "$TMP/report.md" "$RESULTS" && say "also written to $RESULTS"
elif ((full)); then
	cp "$TMP/report.md" "$BENCH_DIR/RESULTS.md" && say "also written to bench/RESULTS.md"
else
	more=
	((${#why_not[@]} > 3)) && more="; ..."
	say "bench/RESULTS.md left as it was: not a full run ($(join "${why_not[@]:0:3}")$more)"
fi
