# Builds libumbra, the C ABI of umbra (package umbra-ffi), and installs it the way C libraries are
# installed. See docs/abi.md, "Building, linking, installing".
#
#   make                                       cargo build --release -p umbra-ffi
#   make install PREFIX=/usr/local             build, then install into PREFIX
#   make install PREFIX=/usr DESTDIR=/stage    stage a package (the files say /usr)
#   make uninstall PREFIX=/usr/local           remove what install installed
#
# Installed, with X.Y.Z the version of ffi/Cargo.toml (which is the ABI version):
#   $(LIBDIR)/libumbra.so.X.Y.Z, libumbra.so.X -> it (the SONAME), libumbra.so -> libumbra.so.X,
#   $(LIBDIR)/libumbra.a, $(INCLUDEDIR)/umbra.h, $(PKGCONFIGDIR)/umbra.pc.
#
# PREBUILT=dir installs the libumbra.so and libumbra.a already built in dir and builds nothing
# (e.g. `make && sudo make install PREBUILT=target/release`: root's PATH seldom has cargo).
# Otherwise the libraries come from $CARGO_TARGET_DIR (default target)/release.

.POSIX:

PREFIX = /usr/local
LIBDIR = $(PREFIX)/lib
INCLUDEDIR = $(PREFIX)/include
PKGCONFIGDIR = $(LIBDIR)/pkgconfig
CARGO = cargo
INSTALL = install
PREBUILT =

# Shell commands printing the package version and the directory holding the built libraries.
VERSION_SH = sed -n '/^\[package\]/,/^\[/s/^version *= *"\([^"]*\)".*/\1/p' ffi/Cargo.toml
BUILT_SH = if [ -n "$(PREBUILT)" ]; then echo "$(PREBUILT)"; \
	else echo "$${CARGO_TARGET_DIR:-target}/release"; fi

all:
	@if [ -z "$(PREBUILT)" ]; then set -x; $(CARGO) build --release -p umbra-ffi; fi

install: all
	@v=`$(VERSION_SH)`; major=$${v%%.*}; built=`$(BUILT_SH)`; \
	[ -n "$$v" ] || { echo "no [package] version in ffi/Cargo.toml" >&2; exit 1; }; \
	set -ex; \
	$(INSTALL) -d "$(DESTDIR)$(LIBDIR)" "$(DESTDIR)$(INCLUDEDIR)" "$(DESTDIR)$(PKGCONFIGDIR)"; \
	$(INSTALL) -m 755 "$$built/libumbra.so" "$(DESTDIR)$(LIBDIR)/libumbra.so.$$v"; \
	ln -sf "libumbra.so.$$v" "$(DESTDIR)$(LIBDIR)/libumbra.so.$$major"; \
	ln -sf "libumbra.so.$$major" "$(DESTDIR)$(LIBDIR)/libumbra.so"; \
	$(INSTALL) -m 644 "$$built/libumbra.a" "$(DESTDIR)$(LIBDIR)/libumbra.a"; \
	$(INSTALL) -m 644 include/umbra.h "$(DESTDIR)$(INCLUDEDIR)/umbra.h"; \
	sed -e '/^##/d' -e "s|@PREFIX@|$(PREFIX)|g" -e "s|@LIBDIR@|$(LIBDIR)|g" \
		-e "s|@INCLUDEDIR@|$(INCLUDEDIR)|g" -e "s|@VERSION@|$$v|g" \
		ffi/umbra.pc.in > "$(DESTDIR)$(PKGCONFIGDIR)/umbra.pc"; \
	chmod 644 "$(DESTDIR)$(PKGCONFIGDIR)/umbra.pc"

uninstall:
	@v=`$(VERSION_SH)`; major=$${v%%.*}; \
	[ -n "$$v" ] || { echo "no [package] version in ffi/Cargo.toml" >&2; exit 1; }; \
	set -x; \
	rm -f "$(DESTDIR)$(LIBDIR)/libumbra.so.$$v" "$(DESTDIR)$(LIBDIR)/libumbra.so.$$major" \
		"$(DESTDIR)$(LIBDIR)/libumbra.so" "$(DESTDIR)$(LIBDIR)/libumbra.a" \
		"$(DESTDIR)$(INCLUDEDIR)/umbra.h" "$(DESTDIR)$(PKGCONFIGDIR)/umbra.pc"

.PHONY: all install uninstall
