#!/usr/bin/env bash
# Builds the Debian package of flightrec: both binaries (debug info split into a -dbgsym package,
# found by build ID: backtraces keep their function names from the symbol table), man pages and
# shell completions generated from the command lines, the hardened systemd unit and the config
# file. Needs cargo, binutils (objcopy) and dpkg-deb.
#
#   packaging/build-deb.sh [--profile release|dev] [--out DIR] [--compression zstd|xz|none]
set -euo pipefail
cd "$(dirname "$0")/.."
profile=release
out=target/debian
compression=zstd
while [ $# -gt 0 ]; do
    case "$1" in
        --profile) profile="$2"; shift 2 ;;
        --out) out="$2"; shift 2 ;;
        --compression) compression="$2"; shift 2 ;;
        *) echo "build-deb.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done
case "$profile" in
    release) bin=target/release ;;
    dev) bin=target/debug ;;
    *) echo "build-deb.sh: --profile is release or dev" >&2; exit 2 ;;
esac
cargo build --workspace --locked --profile "$profile" >&2
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
arch=$(dpkg --print-architecture)
stage=$(mktemp -d)
dbg=$(mktemp -d)
trap 'rm -rf "$stage" "$dbg"' EXIT

install -d "$stage/usr/bin" "$stage/lib/systemd/system" "$stage/etc/flightrec" \
    "$stage/usr/share/man/man1" "$stage/usr/share/doc/flightrec" \
    "$stage/usr/share/bash-completion/completions" "$stage/usr/share/zsh/vendor-completions" \
    "$stage/usr/share/fish/vendor_completions.d" "$stage/DEBIAN" "$dbg/DEBIAN"
for b in flightrec flightrec-analyze; do
    install -m 0755 "$bin/$b" "$stage/usr/bin/$b"
    # Split debug info: the DWARF goes to /usr/lib/debug/.build-id/xx/rest.debug, the binary keeps
    # its symbol table (readable panics and backtraces) and a link to the debug file.
    id=$(readelf -n "$stage/usr/bin/$b" | sed -n 's/.*Build ID: \([0-9a-f]*\)/\1/p')
    [ -n "$id" ] || { echo "build-deb.sh: $b has no build ID" >&2; exit 1; }
    d="$dbg/usr/lib/debug/.build-id/${id:0:2}"
    install -d "$d"
    objcopy --only-keep-debug "$stage/usr/bin/$b" "$d/${id:2}.debug"
    objcopy --strip-debug --add-gnu-debuglink="$d/${id:2}.debug" "$stage/usr/bin/$b"
done
"$bin/flightrec-package" docs "$dbg/docs"
for m in "$dbg"/docs/man/*.1; do gzip -9n < "$m" > "$stage/usr/share/man/man1/$(basename "$m").gz"; done
install -m 0644 "$dbg"/docs/completions/bash/flightrec.bash "$stage/usr/share/bash-completion/completions/flightrec"
install -m 0644 "$dbg"/docs/completions/bash/flightrec-analyze.bash "$stage/usr/share/bash-completion/completions/flightrec-analyze"
install -m 0644 "$dbg"/docs/completions/zsh/_flightrec* "$stage/usr/share/zsh/vendor-completions/"
install -m 0644 "$dbg"/docs/completions/fish/*.fish "$stage/usr/share/fish/vendor_completions.d/"
rm -rf "$dbg/docs"
install -m 0644 packaging/flightrec.service "$stage/lib/systemd/system/flightrec.service"
install -m 0644 packaging/flightrec.toml "$stage/etc/flightrec/flightrec.toml"
install -m 0644 README.md "$stage/usr/share/doc/flightrec/README.md"
install -m 0755 packaging/debian/postinst packaging/debian/prerm packaging/debian/postrm "$stage/DEBIAN/"
echo /etc/flightrec/flightrec.toml > "$stage/DEBIAN/conffiles"
size=$(du -sk "$stage" | cut -f1)
cat > "$stage/DEBIAN/control" <<CONTROL
Package: flightrec
Version: $version
Architecture: $arch
Maintainer: flightrec developers <flightrec@localhost>
Installed-Size: $size
Depends: libc6, adduser
Section: admin
Priority: optional
Description: flight recorder for Linux: the last minutes of kernel events, always
 flightrec records scheduler switches and wake-ups with stacks, process
 lifecycle, CPU samples, block I/O, syscalls and TCP with eBPF into a rolling
 window of Parquet segments; flightrec-analyze answers the questions of BPF
 Performance Tools from a capture, offline.
CONTROL
cat > "$dbg/DEBIAN/control" <<CONTROL
Package: flightrec-dbgsym
Version: $version
Architecture: $arch
Maintainer: flightrec developers <flightrec@localhost>
Depends: flightrec (= $version)
Section: debug
Priority: optional
Description: debug symbols for flightrec
CONTROL
mkdir -p "$out"
dpkg-deb --root-owner-group -Z"$compression" --build "$stage" "$out/flightrec_${version}_${arch}.deb" >&2
dpkg-deb --root-owner-group -Z"$compression" --build "$dbg" "$out/flightrec-dbgsym_${version}_${arch}.deb" >&2
echo "$out/flightrec_${version}_${arch}.deb"
