#!/usr/bin/env bash
# Prints the hash of every input of the eBPF object: each file as "path\nsha256\n", paths relative to the
# repository root in byte order, hashed together. recorder/tests/ebpf_object.rs computes the same value.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
find ebpf -type f \( -name '*.rs' -o -name 'Cargo.toml' -o -name 'Cargo.lock' -o -name 'config.toml' -o -name '*.sh' \) \
    -not -path '*/target/*' | LC_ALL=C sort | while read -r f; do
    printf '%s\n%s\n' "$f" "$(sha256sum < "$f" | cut -d' ' -f1)"
done | sha256sum | cut -d' ' -f1
