#!/bin/sh
# Runs libFuzzer targets one after the other, each for FUZZ_SECONDS (default 60), on a scratch
# corpus seeded from tests/fuzz/corpus/NAME/ (read, never written: new inputs go to a temporary
# folder that is removed). Fails when any target finds a crash, a leak, a timeout or a failed
# invariant; the input is kept as build/fuzz/artifacts/NAME-crash-* for the report.
#   usage: run.sh BUILD_DIR TARGET...
set -u
seconds=${FUZZ_SECONDS:-60}
bdir=$1
shift
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$bdir/artifacts"
work=$(mktemp -d "${TMPDIR:-/tmp}/sf-fuzz.XXXXXX") || exit 1
trap 'rm -rf "$work"' EXIT INT TERM
# UBSan stops at the first report (the targets are built -fno-sanitize-recover=all); ASan
# reports leaks at the end of each input.
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
failed=""
for t in "$@"; do
	seeds="$here/corpus/$t"
	dict=""
	[ -f "$here/$t.dict" ] && dict="-dict=$here/$t.dict"
	mkdir -p "$work/$t"
	echo "== $t: ${seconds}s, seeds $(find "$seeds" -type f 2>/dev/null | wc -l)"
	# The scratch folder comes first: libFuzzer writes new inputs only into the first corpus.
	# stdin is /dev/null: a config naming /dev/stdin as a file must not wait for a terminal.
	# shellcheck disable=SC2086
	TMPDIR="$work" "$bdir/$t" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=8192 \
		-print_final_stats=1 $dict \
		-artifact_prefix="$bdir/artifacts/$t-" "$work/$t" "$seeds" \
		>"$work/$t.log" 2>&1 </dev/null
	rc=$?
	grep -E '^(#[0-9]+ +DONE|Done [0-9]+ runs|stat::number_of_executed_units|stat::peak_rss_mb)' \
		"$work/$t.log" | sed "s/^/   $t: /"
	if [ $rc -ne 0 ]; then
		echo "FAIL $t (exit $rc): what it found (the input is kept, as below):"
		grep -m1 -A24 -E 'invariant failed|ERROR: |Timeout|out-of-memory' "$work/$t.log" ||
			tail -n 40 "$work/$t.log"
		grep -E 'Test unit written|^Base64' "$work/$t.log"
		failed="$failed $t"
	else
		echo "ok   $t"
	fi
done
if [ -n "$failed" ]; then
	echo "fuzz: failed:$failed (inputs in $bdir/artifacts/)"
	exit 1
fi
echo "fuzz: all $# targets ran ${seconds}s each without a finding"
