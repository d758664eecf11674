# strangler: one non-recursive Makefile.
#   make                 build bin/strangler, bin/legacy-stub, bin/function-host
#   make SANITIZE=address,undefined   the same tree with sanitizers, in build/san/
#   make test            unit + integration tests, plain and sanitized
#   make run             the demo: stand-in monolith, function host and proxy
#   make bench           side-by-side benchmark against nginx and HAProxy
#   make bench-match     micro-benchmark of route matching (bench/match_bench.c)
#   make bench-compare   micro-benchmark of the shadow comparison (bench/compare_bench.c)
#   make fuzz            the libFuzzer targets (tests/fuzz/), FUZZ_SECONDS (60) each; needs clang
#   make testssl         testssl.sh against a TLS listener (about a minute; fails on MEDIUM+)
#   make deps            install the Debian packages (skipped when already found)
#
# Libraries (Debian packages): libevent 2.1 (libevent-dev), OpenSSL 3 (libssl-dev),
# libyaml (libyaml-dev), PCRE2 (libpcre2-dev), jansson (libjansson-dev: JSON in the
# admin API, the CLI and the stand-in servers).

CC      ?= cc
PKGS    := libevent libevent_openssl openssl yaml-0.1 libpcre2-8 jansson
WARN    := -std=c11 -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
           -Wpointer-arith -Wcast-qual -Wwrite-strings -Wformat=2 -Wvla \
           -Wimplicit-fallthrough -Werror
OPT     ?= -O2 -g

ifneq ($(SANITIZE),)
B       := build/san
BINDIR  := build/san/bin
SANFLAGS := -fsanitize=$(SANITIZE) -fno-omit-frame-pointer -fno-sanitize-recover=all
OPT     := -O1 -g
else
B       := build/plain
BINDIR  := bin
SANFLAGS :=
endif

PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)
CPPFLAGS   += -D_GNU_SOURCE -Iproxy -Iroutes
CFLAGS     += $(WARN) $(OPT) $(SANFLAGS) $(PKG_CFLAGS) -MMD -MP
LDFLAGS    += $(SANFLAGS)
LDLIBS     += $(PKG_LIBS) -lm

ifeq ($(V),1)
Q :=
else
Q := @
endif

ROUTES_SRC := $(wildcard routes/*.c)
PROXY_SRC  := $(filter-out proxy/main.c,$(wildcard proxy/*.c))
STUB_SRC   := $(filter-out legacy-stub/main.c,$(wildcard legacy-stub/*.c))
FUNC_SRC   := $(wildcard functions/*.c)
UNIT_SRC   := $(wildcard tests/unit/test_*.c)

obj = $(patsubst %.c,$(B)/%.o,$(1))

ROUTES_LIB := $(B)/libsfroutes.a
PROXY_LIB  := $(B)/libsfproxy.a
STUB_LIB   := $(B)/libsfstub.a
UNIT_BINS  := $(patsubst tests/unit/%.c,$(B)/tests/%,$(UNIT_SRC))

PROGS := $(BINDIR)/strangler $(BINDIR)/legacy-stub $(BINDIR)/function-host

.PHONY: all deps test test-plain test-san unit run bench bench-match bench-compare fmt fmt-check clean \
        fuzz fuzz-build fuzz-cc testssl
all: $(PROGS) $(UNIT_BINS)

$(B)/%.o: %.c
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC      $<")
	$(Q)$(CC) $(CPPFLAGS) $(CFLAGS) -c $< -o $@

$(ROUTES_LIB): $(call obj,$(ROUTES_SRC))
	$(Q)rm -f $@ && ar rcs $@ $^
$(PROXY_LIB): $(call obj,$(PROXY_SRC))
	$(Q)rm -f $@ && ar rcs $@ $^
$(STUB_LIB): $(call obj,$(STUB_SRC))
	$(Q)rm -f $@ && ar rcs $@ $^

# The dashboard page (proxy/dashboard.h), embedded in the proxy library: its bytes as octal
# character constants (right whatever the signedness of char), made with od and awk since xxd
# is not in a minimal Debian.
DASH_GEN := $(B)/gen/dashboard_html
$(PROXY_LIB): $(DASH_GEN).o
$(DASH_GEN).c: proxy/dashboard.html
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  GEN     $@")
	$(Q)od -An -v -to1 $< | awk 'BEGIN { print "/* Generated from $< by the Makefile. */"; \
	    print "#include \"dashboard.h\""; print "const char sf_dashboard_html[] = {" } \
	    { for (i = 1; i <= NF; i++) printf "\047\\%s\047,", $$i; n += NF; print "" } \
	    END { print "0};"; printf "const size_t sf_dashboard_html_len = %d;\n", n }' >$@.tmp
	$(Q)mv $@.tmp $@
$(DASH_GEN).o: $(DASH_GEN).c
	@$(if $(Q),echo "  CC      $<")
	$(Q)$(CC) $(CPPFLAGS) $(CFLAGS) -c $< -o $@

$(BINDIR)/strangler: $(B)/proxy/main.o $(PROXY_LIB) $(ROUTES_LIB)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)
$(BINDIR)/legacy-stub: $(B)/legacy-stub/main.o $(STUB_LIB)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)
$(BINDIR)/function-host: $(call obj,$(FUNC_SRC)) $(STUB_LIB)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(CPPFLAGS) -Ilegacy-stub $(LDFLAGS) -o $@ $^ $(LDLIBS)
$(B)/functions/%.o: CPPFLAGS += -Ilegacy-stub

$(B)/tests/%: $(B)/tests/unit/%.o $(PROXY_LIB) $(ROUTES_LIB)
	@mkdir -p $(dir $@)
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)
$(B)/tests/unit/%.o: CPPFLAGS += -Itests/unit

# deps: install what is missing, and only that (a no-op once everything is found).
deps:
	@sh tests/deps.sh

# The suite runs twice: on the plain build, then on the sanitized one.
test: deps
	$(MAKE) --no-print-directory test-plain
	$(MAKE) --no-print-directory test-san

test-plain: all
	SF_BIN=$(CURDIR)/bin prove -j2 --timer $(UNIT_BINS) tests/integration/*.t

test-san:
	$(MAKE) --no-print-directory SANITIZE=address,undefined all
	SF_BIN=$(CURDIR)/build/san/bin SF_SANITIZED=1 \
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:exitcode=86 \
	UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	prove -j2 --timer $(patsubst build/plain/%,build/san/%,$(UNIT_BINS)) tests/integration/*.t

unit: all
	prove $(UNIT_BINS)

# Build in a sub-make: on a fresh machine the pkg-config flags above were computed before
# deps installed the libraries.
run: deps
	@$(MAKE) --no-print-directory all
	@bash conf/run-demo.sh

bench: deps
	@$(MAKE) --no-print-directory all
	@bash bench/run.sh

# bench-match: the routing step alone (normalize + match + decide over 200 routes), on the
# plain -O2 build whatever SANITIZE says.
bench-match:
	@$(MAKE) --no-print-directory SANITIZE= build/plain/bench/match_bench
	@build/plain/bench/match_bench
$(B)/bench/match_bench: $(B)/bench/match_bench.o $(ROUTES_LIB)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# The shadow comparison engine alone: ns per comparison of JSON bodies (bench/compare_bench.c).
bench-compare:
	@$(MAKE) --no-print-directory SANITIZE= build/plain/bench/compare_bench
	@build/plain/bench/compare_bench
$(B)/bench/compare_bench: $(B)/bench/compare_bench.o $(PROXY_LIB) $(ROUTES_LIB)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# testssl: tests/testssl.sh starts the proxy with a test certificate and runs testssl.sh on it;
# not part of make test (it takes about a minute and judges configuration, not behaviour).
testssl: deps
	@$(MAKE) --no-print-directory all
	@bash tests/testssl.sh

# fuzz: the libFuzzer targets in tests/fuzz/ (one per tests/fuzz/fuzz_*.c), built with clang,
# ASan and UBSan from the sources themselves (not the gcc-built libraries) into build/fuzz/,
# each run for FUZZ_SECONDS on a scratch copy of its seed corpus (tests/fuzz/corpus/NAME/, never
# written). A crash, a leak, a timeout or a failed invariant fails the run; the input is left in
# build/fuzz/artifacts/. FUZZ_TARGETS="fuzz_request fuzz_chunked" runs some of them.
FUZZ_CC      ?= clang-14
FUZZ_SECONDS ?= 60
FUZZ_B       := build/fuzz
FUZZ_ALL     := $(patsubst tests/fuzz/%.c,%,$(wildcard tests/fuzz/fuzz_*.c))
FUZZ_TARGETS ?= $(FUZZ_ALL)
FUZZ_LIB_SRC := proxy/http_parse.c proxy/body.c proxy/compare.c $(ROUTES_SRC)
FUZZ_SAN     := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
FUZZ_CFLAGS  := $(WARN) -O1 -g $(FUZZ_SAN) -fsanitize=fuzzer-no-link $(PKG_CFLAGS) -MMD -MP
FUZZ_LIB     := $(FUZZ_B)/libsffuzz.a

$(FUZZ_B)/obj/%.o: %.c | fuzz-cc
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  FUZZCC  $<")
	$(Q)$(FUZZ_CC) $(CPPFLAGS) -Itests/fuzz $(FUZZ_CFLAGS) -c $< -o $@
$(FUZZ_LIB): $(patsubst %.c,$(FUZZ_B)/obj/%.o,$(FUZZ_LIB_SRC))
	$(Q)rm -f $@ && ar rcs $@ $^
$(FUZZ_B)/fuzz_%: $(FUZZ_B)/obj/tests/fuzz/fuzz_%.o $(FUZZ_LIB)
	@$(if $(Q),echo "  FUZZLD  $@")
	$(Q)$(FUZZ_CC) $(FUZZ_SAN) -fsanitize=fuzzer -o $@ $^ $(PKG_LIBS) -lm

# clang and its libFuzzer runtime are not in make deps' list: say what is missing.
fuzz-cc:
	@command -v $(FUZZ_CC) >/dev/null 2>&1 || \
	    { echo "make fuzz: $(FUZZ_CC) not found (Debian: clang-14 libclang-rt-14-dev)"; exit 1; }
	@test -f "$$($(FUZZ_CC) -print-runtime-dir)/libclang_rt.fuzzer-$$(uname -m).a" || \
	    { echo "make fuzz: no libFuzzer runtime for $(FUZZ_CC) (Debian: libclang-rt-14-dev)"; exit 1; }
# the targets' objects are not intermediates to delete: a rebuild would recompile them
.SECONDARY: $(patsubst %,$(FUZZ_B)/obj/tests/fuzz/%.o,$(FUZZ_ALL))
fuzz-build: $(addprefix $(FUZZ_B)/,$(FUZZ_ALL))
fuzz: fuzz-build
	@FUZZ_SECONDS=$(FUZZ_SECONDS) sh tests/fuzz/run.sh $(FUZZ_B) $(FUZZ_TARGETS)

fmt:
	clang-format -i $(wildcard proxy/*.[ch] routes/*.[ch] legacy-stub/*.[ch] functions/*.[ch] tests/unit/*.[ch])
fmt-check:
	clang-format --dry-run -Werror $(wildcard proxy/*.[ch] routes/*.[ch] legacy-stub/*.[ch] functions/*.[ch] tests/unit/*.[ch])

clean:
	rm -rf build bin

-include $(shell find build -name '*.d' 2>/dev/null)
