#!/bin/sh
# Installs the Debian packages strangler needs to build, test and benchmark,
# and only those that are missing: a no-op on a machine that has them all.
set -e
libs="libevent libevent_openssl openssl yaml-0.1 libpcre2-8 jansson"
pkgs=""
command -v pkg-config >/dev/null 2>&1 || pkgs="$pkgs pkg-config"
command -v cc >/dev/null 2>&1 || pkgs="$pkgs gcc"
command -v make >/dev/null 2>&1 || pkgs="$pkgs make"
for lib in $libs; do
	if ! pkg-config --exists "$lib" 2>/dev/null; then
		case $lib in
		libevent*) pkgs="$pkgs libevent-dev" ;;
		openssl) pkgs="$pkgs libssl-dev" ;;
		yaml-0.1) pkgs="$pkgs libyaml-dev" ;;
		libpcre2-8) pkgs="$pkgs libpcre2-dev" ;;
		jansson) pkgs="$pkgs libjansson-dev" ;;
		esac
	fi
done
# Test and benchmark tools: clients (curl, wrk), TAP runner (prove), Python 3
# for the integration tests, promtool (package prometheus) to check /metrics,
# headless Chromium for the dashboard test, nginx and HAProxy for the
# side-by-side benchmark, testssl.sh (command testssl) for tests/testssl.sh.
for tool in curl:curl wrk:wrk prove:perl python3:python3 nginx:nginx-light \
	haproxy:haproxy openssl:openssl promtool:prometheus chromium:chromium \
	testssl:testssl.sh; do
	cmd=${tool%%:*}
	pkg=${tool#*:}
	command -v "$cmd" >/dev/null 2>&1 || [ -x "/usr/sbin/$cmd" ] || pkgs="$pkgs $pkg"
done
# make fuzz: clang 14 and its libFuzzer runtime (the sanitizer runtimes are in the same
# package).
command -v clang-14 >/dev/null 2>&1 || pkgs="$pkgs clang-14"
if ! ls /usr/lib/llvm-14/lib/clang/*/lib/linux/libclang_rt.fuzzer-*.a >/dev/null 2>&1; then
	pkgs="$pkgs libclang-rt-14-dev"
fi
pkgs=$(echo "$pkgs" | tr ' ' '\n' | sort -u | tr '\n' ' ')
if [ -n "$(echo "$pkgs" | tr -d ' ')" ]; then
	echo "make deps: installing$pkgs"
	if [ "$(id -u)" != 0 ]; then
		echo "make deps: need root to run apt-get (missing:$pkgs)" >&2
		exit 1
	fi
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends $pkgs >/dev/null
fi
