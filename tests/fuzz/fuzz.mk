# tests/fuzz/fuzz.mk - libFuzzer targets (clang, with ASan + UBSan), included
# by the Makefile. `make fuzz` builds them in $(FUZZ_BUILD) and runs each for
# FUZZ_TIME seconds on a copy of its corpus (tests/fuzz/corpus/<target>);
# tests/it_fuzz.sh runs a short round in `make test`.
FUZZ_CC     ?= clang
FUZZ_BUILD  ?= build-fuzz
FUZZ_TIME   ?= 120
FUZZ_FLAGS  := -g -O1 -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -Iinclude -Ihost \
               -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
               -DSLUICE_VERSION=\"$(shell cat VERSION)\" -DSLUICE_SCHEMAS_DIR=\"$(CURDIR)/schemas\" \
               -DSLUICE_PLUGIN_DIR=\"$(CURDIR)/build/plugins\"
FUZZ_TARGETS := $(notdir $(basename $(wildcard tests/fuzz/fuzz_*.c)))
FUZZ_BINS    := $(FUZZ_TARGETS:%=$(FUZZ_BUILD)/%)
# What each target compiles in besides itself, and the packages it links.
FUZZ_SRCS_fuzz_finnhub := plugins/source-finnhub/parse.c
FUZZ_INCS_fuzz_finnhub := -Iplugins/source-finnhub
FUZZ_PKGS_fuzz_finnhub := jansson
FUZZ_HOST_OBJS := $(HOST_SRCS:%.c=$(FUZZ_BUILD)/obj/%.o)
FUZZ_SRCS_fuzz_config  := $(FUZZ_HOST_OBJS)
FUZZ_PKGS_fuzz_config  := $(HOST_PKGS)
FUZZ_SRCS_fuzz_avro    := $(FUZZ_HOST_OBJS)
FUZZ_SRCS_fuzz_rest    := $(FUZZ_HOST_OBJS)
FUZZ_PKGS_fuzz_rest    := $(HOST_PKGS)
FUZZ_PKGS_fuzz_avro    := $(HOST_PKGS)

.PHONY: fuzz fuzz-build
# fuzz_rest loads the plugins of the normal build (build/plugins).
fuzz-build: $(FUZZ_BINS)
$(FUZZ_BUILD)/fuzz_rest: $(PLUGINS:%=build/plugins/%.so)

$(FUZZ_BUILD)/obj/%.o: %.c $(wildcard include/sluice/*.h host/*.h)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_FLAGS) $(call pkg_cflags,$(HOST_PKGS)) -c $< -o $@

$(FUZZ_BUILD)/fuzz_%: tests/fuzz/fuzz_%.c $$(FUZZ_SRCS_fuzz_$$*) $(wildcard include/sluice/*.h host/*.h)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_FLAGS) $(FUZZ_INCS_fuzz_$*) $(call pkg_cflags,$(FUZZ_PKGS_fuzz_$*)) -o $@ $< \
	  $(FUZZ_SRCS_fuzz_$*) $(call pkg_libs,$(FUZZ_PKGS_fuzz_$*)) -ldl -lpthread -lm

fuzz: deps
	@$(MAKE) --no-print-directory fuzz-build
	@FUZZ_BUILD=$(FUZZ_BUILD) FUZZ_TIME=$(FUZZ_TIME) ./tests/fuzz/run.sh
