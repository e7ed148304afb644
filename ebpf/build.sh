#!/usr/bin/env bash
# Rebuilds the committed eBPF object recorder/bpf/flightrec.bpf.o from ebpf/ and records the hash of the
# sources it was built from. Needs: nightly with rust-src, and bpf-linker built against LLVM 22:
#   apt-get install -y llvm-22-dev libpolly-22-dev zlib1g-dev libzstd-dev
#   LLVM_PREFIX=/usr/lib/llvm-22 cargo install bpf-linker --no-default-features --features llvm-22
#   rustup component add rust-src --toolchain nightly
# Paths are remapped so the object is byte-identical wherever it is built.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
registry="${CARGO_HOME:-$HOME/.cargo}/registry"
rustup_home="${RUSTUP_HOME:-$HOME/.rustup}"
export RUSTFLAGS="-Cdebuginfo=2 -Clink-arg=--btf --remap-path-prefix=$root=/flightrec --remap-path-prefix=$registry=/registry --remap-path-prefix=$rustup_home=/rustup"
# The object carries the hash of its sources in its own bytes (FLIGHTREC_SOURCE_HASH).
FLIGHTREC_SOURCE_HASH=$("$here/source-hash.sh")
export FLIGHTREC_SOURCE_HASH
cd "$here/flightrec-ebpf"
cargo +nightly build --release --locked
install -m 0644 target/bpfel-unknown-none/release/flightrec "$root/recorder/bpf/flightrec.bpf.o"
echo "$FLIGHTREC_SOURCE_HASH" > "$root/recorder/bpf/flightrec.bpf.o.source-hash"
echo "wrote recorder/bpf/flightrec.bpf.o ($(wc -c < "$root/recorder/bpf/flightrec.bpf.o") bytes), source hash $(cat "$root/recorder/bpf/flightrec.bpf.o.source-hash")"
