# fcgikit — top-level build. `make` builds the library (shared and static), the examples and
# the fcgikit tool into build/; `make test` runs every suite; see README.md.

CC      ?= cc
CLANG   ?= clang
PREFIX  ?= /usr/local
BUILD   ?= build
OPT     ?= -O2
SAN     ?=
WARN    := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wvla
CFLAGS  ?= $(OPT) -g
ALL_CFLAGS := -std=c17 $(WARN) -D_GNU_SOURCE -Iinclude -Ilib -pthread $(SAN) $(CFLAGS)
LDLIBS  := -pthread

VERSION := 0.1.0
SOVER   := 0

LIB_SRC := $(sort $(wildcard lib/*/*.c))
LIB_OBJ := $(LIB_SRC:%.c=$(BUILD)/obj/%.o)
LIB_PIC := $(LIB_SRC:%.c=$(BUILD)/pic/%.o)
LIB_A   := $(BUILD)/libfcgikit.a
LIB_SO  := $(BUILD)/libfcgikit.so.$(VERSION)

EX_SRC  := $(sort $(wildcard examples/*.c))
EX_BIN  := $(EX_SRC:examples/%.c=$(BUILD)/examples/%)

# The fcgikit program: src/main.c plus every part (src/*.c, src/pm/, src/gateway/, ...). All but
# main.c also go into an internal archive so unit tests and fuzzers reach the parts' code.
TOOL_SRC := $(sort $(wildcard src/*.c src/*/*.c))
TOOL_HDR := $(wildcard src/*.h src/*/*.h)
TOOL_BIN := $(if $(TOOL_SRC),$(BUILD)/fcgikit)
TOOL_PART_SRC := $(filter-out src/main.c,$(TOOL_SRC))
TOOL_OBJ := $(TOOL_PART_SRC:%.c=$(BUILD)/obj/%.o)
TOOL_A   := $(BUILD)/libfcgikit-tools.a

UNIT_SRC := $(sort $(wildcard tests/unit/test_*.c))
UNIT_BIN := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)
PROTO_SRC := $(sort $(wildcard tests/protocol/test_*.c))
PROTO_BIN := $(PROTO_SRC:tests/protocol/%.c=$(BUILD)/tests/%)
TEST_HELPERS := $(sort $(wildcard tests/helpers/*.c))

# Parts with their own rules (compat library, ...) live in mk/*.mk and add to these.
.DEFAULT_GOAL := all
EXTRA_ALL :=
EXTRA_TESTS :=
-include $(sort $(wildcard mk/*.mk))

.PHONY: all lib examples tests test test-tsan test-unit test-asan test-interop check-symbols run bench \
        fuzz fuzz-build install clean format deps

all: lib examples $(TOOL_BIN) $(EXTRA_ALL)

lib: $(LIB_A) $(LIB_SO)
examples: $(EX_BIN)

$(BUILD)/obj/%.o: %.c $(wildcard include/*.h include/fcgikit/*.h lib/*/*.h)
	@mkdir -p $(dir $@)
	@echo "  CC      $<"
	@$(CC) $(ALL_CFLAGS) -DFCGIKIT_BUILDING -fvisibility=hidden -c $< -o $@

$(BUILD)/pic/%.o: %.c $(wildcard include/*.h include/fcgikit/*.h lib/*/*.h)
	@mkdir -p $(dir $@)
	@$(CC) $(ALL_CFLAGS) -DFCGIKIT_BUILDING -fvisibility=hidden -fPIC -c $< -o $@

$(LIB_A): $(LIB_OBJ)
	@mkdir -p $(dir $@)
	@echo "  AR      $@"
	@rm -f $@ && ar rcs $@ $^

$(LIB_SO): $(LIB_PIC)
	@echo "  LD      $@"
	@$(CC) $(ALL_CFLAGS) -shared -Wl,-soname,libfcgikit.so.$(SOVER) -o $@ $^ $(LDLIBS)
	@ln -sf libfcgikit.so.$(VERSION) $(BUILD)/libfcgikit.so.$(SOVER)
	@ln -sf libfcgikit.so.$(SOVER) $(BUILD)/libfcgikit.so

$(BUILD)/examples/%: examples/%.c $(LIB_A) include/fcgikit.h
	@mkdir -p $(dir $@)
	@echo "  CC      $@"
	@$(CC) $(ALL_CFLAGS) $< -o $@ $(LIB_A) $(LDLIBS)

$(BUILD)/obj/src/%.o: src/%.c $(TOOL_HDR) $(wildcard include/*.h include/fcgikit/*.h lib/*/*.h)
	@mkdir -p $(dir $@)
	@echo "  CC      $<"
	@$(CC) $(ALL_CFLAGS) -Isrc -c $< -o $@

$(TOOL_A): $(TOOL_OBJ)
	@mkdir -p $(dir $@)
	@rm -f $@ && ar rcs $@ $^

$(BUILD)/fcgikit: src/main.c $(TOOL_A) $(LIB_A) $(TOOL_HDR)
	@echo "  CC      $@"
	@$(CC) $(ALL_CFLAGS) -Isrc src/main.c -o $@ $(TOOL_A) $(LIB_A) $(LDLIBS) -lm

# Unit and protocol tests: cmocka, linked with the static library so internals are reachable.
$(BUILD)/tests/%: tests/unit/%.c $(LIB_A) $(TOOL_A) $(TEST_HELPERS) $(wildcard tests/helpers/*.h)
	@mkdir -p $(dir $@)
	@echo "  CC      $@"
	@$(CC) $(ALL_CFLAGS) -Itests -Isrc $< $(TEST_HELPERS) -o $@ $(TOOL_A) $(LIB_A) -lcmocka $(LDLIBS) -lm

$(BUILD)/tests/%: tests/protocol/%.c $(LIB_A) $(TEST_HELPERS) $(wildcard tests/helpers/*.h)
	@mkdir -p $(dir $@)
	@echo "  CC      $@"
	@$(CC) $(ALL_CFLAGS) -Itests $< $(TEST_HELPERS) -o $@ $(LIB_A) -lcmocka $(LDLIBS)

tests: all $(UNIT_BIN) $(PROTO_BIN) $(EXTRA_TESTS)

# The whole suite: dependencies, a normal build (unit, protocol, interop), then the same
# unit and protocol suites built with AddressSanitizer and UndefinedBehaviorSanitizer.
test: deps
	@$(MAKE) --no-print-directory tests
	@$(MAKE) --no-print-directory BUILD=build-san OPT=-O1 \
	    SAN="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all" tests
	@$(MAKE) --no-print-directory fuzz-build
	@tests/run.sh

# ThreadSanitizer run of the suites that exercise threads (not part of make test: slow).
test-tsan:
	@$(MAKE) --no-print-directory BUILD=build-tsan OPT=-O1 SAN=-fsanitize=thread tests
	@TSAN_OPTIONS=halt_on_error=1 FCGIKIT_SAN_BUILD=build-tsan TEST_ONLY=san tests/run.sh

test-unit: tests
	@TEST_ONLY=unit tests/run.sh

test-interop: tests
	@TEST_ONLY=interop tests/run.sh

deps:
	@tests/deps.sh

check-symbols: $(LIB_SO)
	@tests/check-symbols.sh $(LIB_SO)

run: all
	@examples/run-demo.sh

bench: all
	@bench/run.sh

FUZZ_SRC := $(sort $(wildcard tests/fuzz/fuzz_*.c))
FUZZ_BIN := $(FUZZ_SRC:tests/fuzz/%.c=build-fuzz/%)
# A target that needs tool code names it: FUZZ_EXTRA_fuzz_x := src/part/file.c
build-fuzz/%: tests/fuzz/%.c $(LIB_SRC) $(wildcard lib/*/*.h) $(TOOL_HDR) $(TOOL_PART_SRC)
	@mkdir -p $(dir $@)
	@echo "  FUZZ    $@"
	@$(CLANG) -std=c17 -g -O1 -D_GNU_SOURCE -Iinclude -Ilib -Isrc -pthread \
	    -fsanitize=fuzzer,address,undefined $< $(LIB_SRC) $(FUZZ_EXTRA_$*) -o $@ -lm

fuzz-build: $(FUZZ_BIN)
# Long fuzzing runs: FUZZ_SECONDS per target (default 60).
fuzz: fuzz-build
	@tests/fuzz/run.sh $(FUZZ_SECONDS)

install: all
	install -d $(DESTDIR)$(PREFIX)/include/fcgikit $(DESTDIR)$(PREFIX)/lib/pkgconfig \
	    $(DESTDIR)$(PREFIX)/bin
	install -m 644 include/fcgikit.h $(DESTDIR)$(PREFIX)/include/
	install -m 644 include/fcgikit/*.h $(DESTDIR)$(PREFIX)/include/fcgikit/
	install -d $(DESTDIR)$(PREFIX)/share/man/man1
	install -m 644 doc/*.1 $(DESTDIR)$(PREFIX)/share/man/man1/
	install -d $(DESTDIR)$(PREFIX)/share/man/man5
	$(if $(wildcard doc/*.5),install -m 644 doc/*.5 $(DESTDIR)$(PREFIX)/share/man/man5/)
	install -m 644 $(LIB_A) $(DESTDIR)$(PREFIX)/lib/
	install -m 755 $(LIB_SO) $(DESTDIR)$(PREFIX)/lib/
	ln -sf libfcgikit.so.$(VERSION) $(DESTDIR)$(PREFIX)/lib/libfcgikit.so.$(SOVER)
	ln -sf libfcgikit.so.$(SOVER) $(DESTDIR)$(PREFIX)/lib/libfcgikit.so
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@VERSION@|$(VERSION)|' fcgikit.pc.in \
	    > $(DESTDIR)$(PREFIX)/lib/pkgconfig/fcgikit.pc
	$(if $(TOOL_BIN),install -m 755 $(TOOL_BIN) $(DESTDIR)$(PREFIX)/bin/)

format:
	clang-format -i include/*.h lib/*/*.[ch] src/*.[ch] src/*/*.[ch] examples/*.c tests/*/*.c

clean:
	rm -rf build build-san build-tsan build-fuzz
