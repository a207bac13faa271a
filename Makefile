# Sluice - build, test, install.  `make help` lists the targets.
#
#   make                  build the worker, every plugin and every tool
#   make test             install missing deps, build, run the whole suite
#   make test SANITIZE=1  the same suite under ASan + UBSan (in build-san/)
#   make test-faults      fault scenarios, FAULT_TRIALS each, then FUZZ_TIME s per fuzz target (docs/faults.md)
#   make run              run the Finnhub -> Kafka -> Snowflake pipeline (see README)
#   make run-example      run the example pipeline (counter -> file)
#   make install PREFIX=/usr/local

PREFIX   ?= /usr/local
SANITIZE ?= 0
ifeq ($(SANITIZE),1)
BUILD    ?= build-san
SANFLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
else
BUILD    ?= build
SANFLAGS :=
endif

CC       ?= cc
PKG_CONFIG ?= pkg-config
# Everything the worker links. Plugins link only what they use (see below).
HOST_PKGS := rdkafka avro-c jansson libmicrohttpd libcurl
TEST_PKGS := cmocka

pkg_cflags = $(shell $(PKG_CONFIG) --cflags $(1) 2>/dev/null)
pkg_libs   = $(shell $(PKG_CONFIG) --libs $(1) 2>/dev/null)

CFLAGS   ?= -O2 -g
CFLAGS   += -DSLUICE_VERSION=\"$(shell cat VERSION)\" -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -Iinclude -Ihost $(SANFLAGS)
LDFLAGS  += $(SANFLAGS)

HOST_SRCS   := $(filter-out host/main.c,$(wildcard host/*.c))
HOST_OBJS   := $(HOST_SRCS:%.c=$(BUILD)/obj/%.o)
PLUGINS     := $(notdir $(wildcard plugins/*))
PLUGIN_SOS  := $(PLUGINS:%=$(BUILD)/plugins/%.so)
TOOLS       := $(notdir $(basename $(wildcard tools/*.c)))
TOOL_BINS   := $(TOOLS:%=$(BUILD)/tools/%)
UNIT_TESTS  := $(notdir $(basename $(wildcard tests/test_*.c)))
UNIT_BINS   := $(UNIT_TESTS:%=$(BUILD)/tests/%)
FIXTURES    := $(notdir $(basename $(wildcard tests/fixtures/plugins/*.c)))
FIXTURE_SOS := $(FIXTURES:%=$(BUILD)/tests/fixtures/%.so)
# Working plugins that exist for the integration tests only.
TEST_PLUGINS := $(notdir $(basename $(wildcard tests/plugins/*.c)))
TEST_PLUGIN_SOS := $(TEST_PLUGINS:%=$(BUILD)/tests/plugins/%.so)

# Per-plugin and per-tool packages: plugins/<name>/plugin.mk may set
# PKGS_<name> := ... ; tools may set TOOL_PKGS_<name> in tools/tools.mk.
-include $(wildcard plugins/*/plugin.mk)
-include tools/tools.mk

.PHONY: all deps test test-valgrind test-faults unit integration run run-example bench install clean help check-deps
all: $(BUILD)/sluice $(PLUGIN_SOS) $(TOOL_BINS) $(UNIT_BINS) $(FIXTURE_SOS) $(TEST_PLUGIN_SOS)

help:
	@sed -n '1,10p' Makefile

deps:
	@./tools/deps.sh

$(BUILD)/obj/%.o: %.c $(wildcard include/sluice/*.h host/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -fPIC $(call pkg_cflags,$(HOST_PKGS)) -c $< -o $@

$(BUILD)/sluice: $(BUILD)/obj/host/main.o $(HOST_OBJS)
	$(CC) $(LDFLAGS) -rdynamic -o $@ $^ $(call pkg_libs,$(HOST_PKGS)) -ldl -lpthread -lm

# A plugin is every .c file in its folder, linked into one .so with hidden
# visibility: only the entry symbol (SLUICE_EXPORT) is exported.
.SECONDEXPANSION:
$(BUILD)/plugins/%.so: $$(wildcard plugins/%/*.c) $$(wildcard plugins/%/*.h) include/sluice/plugin.h
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -fPIC -shared -fvisibility=hidden -Iplugins/$* \
	  $(call pkg_cflags,avro-c $(PKGS_$*)) -o $@ $(filter %.c,$^) \
	  $(LDFLAGS) $(call pkg_libs,avro-c $(PKGS_$*)) -lm

# Working plugins the integration tests use (tests/plugins/).
$(BUILD)/tests/plugins/%.so: tests/plugins/%.c include/sluice/plugin.h
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -fPIC -shared -fvisibility=hidden $(call pkg_cflags,avro-c) -o $@ $< $(LDFLAGS)

# Deliberately broken plugins for the loader tests.
$(BUILD)/tests/fixtures/%.so: tests/fixtures/plugins/%.c include/sluice/plugin.h
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -fPIC -shared -fvisibility=hidden $(call pkg_cflags,avro-c) -o $@ $< $(LDFLAGS)

$(BUILD)/tools/%: tools/%.c $(HOST_OBJS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(call pkg_cflags,$(HOST_PKGS) $(TOOL_PKGS_$*)) -o $@ $< $(HOST_OBJS) \
	  $(LDFLAGS) $(call pkg_libs,$(HOST_PKGS) $(TOOL_PKGS_$*)) -ldl -lpthread -lm

# A test may compile a plugin's pure sources in (#include "x.c"): it then
# lists them in TEST_SRCS_<test> and their packages in TEST_PKGS_<test>.
$(BUILD)/tests/%: tests/%.c $(HOST_OBJS) $$(TEST_SRCS_$$*)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(call pkg_cflags,$(HOST_PKGS) $(TEST_PKGS) $(TEST_PKGS_$*)) -o $@ $< $(HOST_OBJS) \
	  $(LDFLAGS) $(call pkg_libs,$(HOST_PKGS) $(TEST_PKGS) $(TEST_PKGS_$*)) -ldl -lpthread -lm

test: deps
	@$(MAKE) --no-print-directory all
	@BUILD=$(BUILD) SANITIZE=$(SANITIZE) ./tests/run.sh

# The unit tests under valgrind memcheck (CI runs it after the two suites).
test-valgrind: deps
	@$(MAKE) --no-print-directory all
	@BUILD=$(BUILD) VALGRIND=1 ./tests/run.sh

# The fault scenarios (tests/it_faults.sh, docs/faults.md) with every
# scenario and FAULT_TRIALS (default 3) trials each; `make test` runs them
# once in a short configuration.
test-faults: deps
	@$(MAKE) --no-print-directory all
	@f=0; SLUICE_BUILD=$(CURDIR)/$(BUILD) FAULT_TRIALS=$${FAULT_TRIALS:-3} bash tests/it_faults.sh || f=$$((f + 1)); \
	  SLUICE_BUILD=$(CURDIR)/$(BUILD) FUZZ_TIME=$${FUZZ_TIME:-30} bash tests/it_fuzz.sh || f=$$((f + 1)); \
	  echo "test-faults (fault scenarios, fuzzing): $$((2 - f)) passed, $$f failed"; [ $$f -eq 0 ]

run: deps
	@$(MAKE) --no-print-directory all
	@BUILD=$(BUILD) ./tools/run-pipeline.sh

run-example: deps
	@$(MAKE) --no-print-directory all
	@BUILD=$(BUILD) ./tools/run-example.sh

bench: deps
	@$(MAKE) --no-print-directory all
	@BUILD=$(BUILD) ./tools/bench.sh

install: $(BUILD)/sluice $(PLUGIN_SOS)
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/include/sluice \
	  $(DESTDIR)$(PREFIX)/lib/sluice/plugins $(DESTDIR)$(PREFIX)/lib/pkgconfig \
	  $(DESTDIR)$(PREFIX)/share/sluice/schemas
	install -m 755 $(BUILD)/sluice $(DESTDIR)$(PREFIX)/bin/sluice
	install -m 644 include/sluice/*.h $(DESTDIR)$(PREFIX)/include/sluice/
	install -m 755 $(PLUGIN_SOS) $(DESTDIR)$(PREFIX)/lib/sluice/plugins/
	install -m 644 schemas/*.avsc $(DESTDIR)$(PREFIX)/share/sluice/schemas/ 2>/dev/null || true
	sed -e 's|@PREFIX@|$(PREFIX)|g' -e "s|@VERSION@|$$(cat VERSION)|g" sluice.pc.in \
	  > $(DESTDIR)$(PREFIX)/lib/pkgconfig/sluice.pc

clean:
	rm -rf build build-san build-fuzz
include tests/fuzz/fuzz.mk
