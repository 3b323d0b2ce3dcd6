# mk/compat.mk — the libfcgi compatibility layer (doc/compat.md), included by the Makefile.
#
# Built into $(BUILD):
#   libfcgikit-compat.{a,so}     FCGX_*/FCGI_*/OS_* on libfcgikit (source compatibility;
#                                link with -lfcgikit too: pkg-config fcgikit-compat)
#   libfcgikit-compat++.{a,so}   fcgio.h's classes (C++ users, as -lfcgi++)
#   fcgikit-compat.pc
#   compat/libfcgi.so.0          the binary drop-in: libfcgi's exports only, libfcgikit inside
#   compat/libfcgi++.so.0        the same for libfcgi++
#   compat/tests/{deb,fk}/*      tests/compat/apps built against Debian's libfcgi (deb) and
#                                against the compat headers and libraries (fk), unchanged
# Targets: test-compat (tests/compat/run.sh), bench-compat (bench/compat/run.sh, also part
# of `make bench`), install-compat (part of `make install`).

CXX ?= g++
COMPAT_DIR := lib/compat/libfcgi
COMPAT_SRC := $(sort $(wildcard $(COMPAT_DIR)/*.c))
COMPAT_HDR := $(wildcard include/fcgikit/compat/*.h) $(COMPAT_DIR)/compat_int.h include/fcgikit.h
COMPAT_OBJ := $(COMPAT_SRC:lib/compat/%.c=$(BUILD)/compat/obj/%.o)
COMPAT_PIC := $(COMPAT_SRC:lib/compat/%.c=$(BUILD)/compat/pic/%.o)
COMPAT_MAP := $(COMPAT_DIR)/libfcgi.map
COMPAT_CFLAGS = $(ALL_CFLAGS) -Iinclude/fcgikit/compat -DFCGIKIT_COMPAT_BUILDING -fvisibility=hidden

COMPAT_A   := $(BUILD)/libfcgikit-compat.a
COMPAT_SO  := $(BUILD)/libfcgikit-compat.so.$(VERSION)
COMPAT_PC  := $(BUILD)/fcgikit-compat.pc
DROPIN_SO  := $(BUILD)/compat/libfcgi.so.0

# C++ (fcgio.h): only where a C++ compiler exists.
COMPAT_HAVE_CXX := $(shell command -v $(CXX) >/dev/null 2>&1 && echo yes)
COMPAT_CXX_SRC := lib/compat/libfcgi++/fcgio.cc
COMPAT_CXX_OBJ := $(BUILD)/compat/obj/libfcgi++/fcgio.o
COMPAT_CXX_PIC := $(BUILD)/compat/pic/libfcgi++/fcgio.o
COMPAT_CXXFLAGS = -std=c++17 -Wall -Wextra -Werror -Iinclude/fcgikit/compat \
    -DFCGIKIT_COMPAT_BUILDING -fvisibility=hidden -pthread $(SAN) $(CFLAGS)
COMPATXX_A  := $(BUILD)/libfcgikit-compat++.a
COMPATXX_SO := $(BUILD)/libfcgikit-compat++.so.$(VERSION)
DROPINXX_SO := $(BUILD)/compat/libfcgi++.so.0

COMPAT_LIBS := $(COMPAT_A) $(COMPAT_SO) $(COMPAT_PC) $(DROPIN_SO)
ifeq ($(COMPAT_HAVE_CXX),yes)
COMPAT_LIBS += $(COMPATXX_A) $(COMPATXX_SO) $(DROPINXX_SO)
endif
EXTRA_ALL += $(COMPAT_LIBS)

# ------------------------------------------------------------------ libraries

$(BUILD)/compat/obj/%.o: lib/compat/%.c $(COMPAT_HDR)
	@mkdir -p $(dir $@)
	@echo "  CC      $<"
	@$(CC) $(COMPAT_CFLAGS) -c $< -o $@

$(BUILD)/compat/pic/%.o: lib/compat/%.c $(COMPAT_HDR)
	@mkdir -p $(dir $@)
	@$(CC) $(COMPAT_CFLAGS) -fPIC -c $< -o $@

$(COMPAT_CXX_OBJ): $(COMPAT_CXX_SRC) $(COMPAT_HDR)
	@mkdir -p $(dir $@)
	@echo "  CXX     $<"
	@$(CXX) $(COMPAT_CXXFLAGS) -c $< -o $@

$(COMPAT_CXX_PIC): $(COMPAT_CXX_SRC) $(COMPAT_HDR)
	@mkdir -p $(dir $@)
	@$(CXX) $(COMPAT_CXXFLAGS) -fPIC -c $< -o $@

$(COMPAT_A): $(COMPAT_OBJ)
	@echo "  AR      $@"
	@rm -f $@ && ar rcs $@ $^

# Needs libfcgikit.so.0 at run time, as the .pc file says.
$(COMPAT_SO): $(COMPAT_PIC) $(LIB_SO)
	@echo "  LD      $@"
	@$(CC) $(ALL_CFLAGS) -shared -Wl,-soname,libfcgikit-compat.so.$(SOVER) -o $@ $(COMPAT_PIC) \
	    -L$(BUILD) -lfcgikit $(LDLIBS)
	@ln -sf libfcgikit-compat.so.$(VERSION) $(BUILD)/libfcgikit-compat.so.$(SOVER)
	@ln -sf libfcgikit-compat.so.$(SOVER) $(BUILD)/libfcgikit-compat.so

$(COMPATXX_A): $(COMPAT_CXX_OBJ)
	@echo "  AR      $@"
	@rm -f $@ && ar rcs $@ $^

$(COMPATXX_SO): $(COMPAT_CXX_PIC) $(COMPAT_SO)
	@echo "  LD      $@"
	@$(CXX) $(COMPAT_CXXFLAGS) -shared -Wl,-soname,libfcgikit-compat++.so.$(SOVER) -o $@ \
	    $(COMPAT_CXX_PIC) -L$(BUILD) -lfcgikit-compat -lfcgikit
	@ln -sf libfcgikit-compat++.so.$(VERSION) $(BUILD)/libfcgikit-compat++.so.$(SOVER)
	@ln -sf libfcgikit-compat++.so.$(SOVER) $(BUILD)/libfcgikit-compat++.so

# The drop-in: self-contained (libfcgikit's objects inside, hidden), libfcgi's exports only.
$(DROPIN_SO): $(COMPAT_PIC) $(LIB_PIC) $(COMPAT_MAP)
	@mkdir -p $(dir $@)
	@echo "  LD      $@"
	@$(CC) $(ALL_CFLAGS) -shared -Wl,-soname,libfcgi.so.0 -Wl,--version-script=$(COMPAT_MAP) \
	    -o $@ $(COMPAT_PIC) $(LIB_PIC) $(LDLIBS)
	@ln -sf libfcgi.so.0 $(BUILD)/compat/libfcgi.so

$(DROPINXX_SO): $(COMPAT_CXX_PIC) $(DROPIN_SO)
	@echo "  LD      $@"
	@$(CXX) $(COMPAT_CXXFLAGS) -shared -Wl,-soname,libfcgi++.so.0 \
	    -Wl,--version-script=lib/compat/libfcgi++/libfcgi++.map -o $@ $(COMPAT_CXX_PIC) \
	    -L$(BUILD)/compat -lfcgi
	@ln -sf libfcgi++.so.0 $(BUILD)/compat/libfcgi++.so

$(COMPAT_PC): fcgikit-compat.pc.in
	@mkdir -p $(dir $@)
	@sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@VERSION@|$(VERSION)|' $< > $@

# ------------------------------------------------------------------ test programs

COMPAT_APPS_C  := $(sort $(wildcard tests/compat/apps/*.c))
COMPAT_APPS_CC := $(sort $(wildcard tests/compat/apps/*.cc))
COMPAT_APP_CFLAGS = -std=gnu17 -O2 -g -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes \
    -Wmissing-prototypes -Wvla -pthread $(SAN)
COMPAT_APP_CXXFLAGS = -std=c++17 -O2 -g -Wall -Wextra -Werror -pthread $(SAN)

COMPAT_FK_APPS := $(COMPAT_APPS_C:tests/compat/apps/%.c=$(BUILD)/compat/tests/fk/%)
COMPAT_DEB_APPS := $(COMPAT_APPS_C:tests/compat/apps/%.c=$(BUILD)/compat/tests/deb/%)
ifeq ($(COMPAT_HAVE_CXX),yes)
COMPAT_FK_APPS += $(COMPAT_APPS_CC:tests/compat/apps/%.cc=$(BUILD)/compat/tests/fk/%)
COMPAT_DEB_APPS += $(COMPAT_APPS_CC:tests/compat/apps/%.cc=$(BUILD)/compat/tests/deb/%)
endif
EXTRA_TESTS += $(COMPAT_FK_APPS)
# Debian's libfcgi-dev (tests/deps.sh installs it) for the side-by-side builds.
ifneq ($(wildcard /usr/include/fcgiapp.h),)
EXTRA_TESTS += $(COMPAT_DEB_APPS)
endif

$(BUILD)/compat/tests/fk/%: tests/compat/apps/%.c $(COMPAT_A) $(LIB_A) $(COMPAT_HDR)
	@mkdir -p $(dir $@)
	@echo "  CC      $@"
	@$(CC) $(COMPAT_APP_CFLAGS) -Iinclude/fcgikit/compat $< -o $@ $(COMPAT_A) $(LIB_A)

$(BUILD)/compat/tests/deb/%: tests/compat/apps/%.c
	@mkdir -p $(dir $@)
	@echo "  CC      $@"
	@$(CC) $(COMPAT_APP_CFLAGS) $< -o $@ -lfcgi

$(BUILD)/compat/tests/fk/%: tests/compat/apps/%.cc $(COMPATXX_A) $(COMPAT_A) $(LIB_A) $(COMPAT_HDR)
	@mkdir -p $(dir $@)
	@echo "  CXX     $@"
	@$(CXX) $(COMPAT_APP_CXXFLAGS) -Iinclude/fcgikit/compat $< -o $@ $(COMPATXX_A) $(COMPAT_A) \
	    $(LIB_A)

$(BUILD)/compat/tests/deb/%: tests/compat/apps/%.cc
	@mkdir -p $(dir $@)
	@echo "  CXX     $@"
	@$(CXX) $(COMPAT_APP_CXXFLAGS) $< -o $@ -lfcgi++ -lfcgi

# ------------------------------------------------------------------ running, installing

.PHONY: test-compat bench-compat install-compat

test-compat: all $(EXTRA_TESTS)
	@tests/compat/run.sh

bench-compat: all $(EXTRA_TESTS)
	@bench/compat/run.sh

bench: bench-compat

install: install-compat

install-compat: all
	install -d $(DESTDIR)$(PREFIX)/include/fcgikit/compat $(DESTDIR)$(PREFIX)/lib/pkgconfig \
	    $(DESTDIR)$(PREFIX)/lib/fcgikit/compat
	install -m 644 include/fcgikit/compat/*.h $(DESTDIR)$(PREFIX)/include/fcgikit/compat/
	install -m 644 $(COMPAT_A) $(DESTDIR)$(PREFIX)/lib/
	install -m 755 $(COMPAT_SO) $(DESTDIR)$(PREFIX)/lib/
	ln -sf libfcgikit-compat.so.$(VERSION) $(DESTDIR)$(PREFIX)/lib/libfcgikit-compat.so.$(SOVER)
	ln -sf libfcgikit-compat.so.$(SOVER) $(DESTDIR)$(PREFIX)/lib/libfcgikit-compat.so
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@VERSION@|$(VERSION)|' fcgikit-compat.pc.in \
	    > $(DESTDIR)$(PREFIX)/lib/pkgconfig/fcgikit-compat.pc
	install -m 755 $(DROPIN_SO) $(DESTDIR)$(PREFIX)/lib/fcgikit/compat/
ifeq ($(COMPAT_HAVE_CXX),yes)
	install -m 644 $(COMPATXX_A) $(DESTDIR)$(PREFIX)/lib/
	install -m 755 $(COMPATXX_SO) $(DESTDIR)$(PREFIX)/lib/
	ln -sf libfcgikit-compat++.so.$(VERSION) $(DESTDIR)$(PREFIX)/lib/libfcgikit-compat++.so.$(SOVER)
	ln -sf libfcgikit-compat++.so.$(SOVER) $(DESTDIR)$(PREFIX)/lib/libfcgikit-compat++.so
	install -m 755 $(DROPINXX_SO) $(DESTDIR)$(PREFIX)/lib/fcgikit/compat/
endif
