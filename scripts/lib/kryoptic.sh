# Sourced by scripts/test and scripts/kryoptic: builds kryoptic (a PKCS#11
# soft token in Rust, from crates.io) into a cache directory, once. It is not
# a dependency of the ceremony crate: its source is fetched by a throwaway
# cargo project under a temp dir and built there with its own Cargo.lock.
#
# On Debian bookworm (OpenSSL 3.0) it builds with `minimal` (sqlite store,
# AES, ECDSA, hashes, RSA) and kryoptic-lib's `dynamic` (link the system
# libcrypto); it needs libclang-dev (bindgen), libsqlite3-dev and libssl-dev.
# About 50-90 s on 2 cores, paid once per machine: the cache is keyed by the
# version and the features.

KRYOPTIC_VERSION=1.5.4
KRYOPTIC_FEATURES=minimal,kryoptic-lib/dynamic

kryoptic_cache_dir() {
  echo "${KRYOPTIC_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/ceremony/kryoptic-$KRYOPTIC_VERSION-minimal-dynamic}"
}

# Prints the path of libkryoptic_pkcs11.so, building it first if needed.
# Build time is logged to stderr (for docs/reliability.md's CI figures).
ensure_kryoptic() {
  local cache lib tmp src start
  cache=$(kryoptic_cache_dir)
  lib="$cache/libkryoptic_pkcs11.so"
  if [ -f "$lib" ]; then
    echo "$lib"
    return 0
  fi
  ensure_packages libclang-dev libsqlite3-dev libssl-dev pkg-config >&2
  start=$(date +%s)
  tmp=$(mktemp -d /tmp/kryoptic-build.XXXXXX)
  # A throwaway project whose only job is to have cargo fetch the crate source.
  mkdir -p "$tmp/fetch/src"
  cat > "$tmp/fetch/Cargo.toml" <<EOF
[package]
name = "kryoptic-fetch"
version = "0.0.0"
edition = "2021"
publish = false
[dependencies]
kryoptic = { version = "=$KRYOPTIC_VERSION", default-features = false }
[workspace]
EOF
  : > "$tmp/fetch/src/lib.rs"
  (cd "$tmp/fetch" && cargo fetch --quiet) >&2 || { rm -rf "$tmp"; return 1; }
  src=$(find "${CARGO_HOME:-$HOME/.cargo}/registry/src" -maxdepth 2 -type d -name "kryoptic-$KRYOPTIC_VERSION" | head -1)
  if [ -z "$src" ]; then
    echo "error: cargo fetched no kryoptic-$KRYOPTIC_VERSION source" >&2
    rm -rf "$tmp"
    return 1
  fi
  # Build a copy (the registry source is read-only by convention), with the
  # crate's own Cargo.lock, as its own workspace.
  cp -r "$src" "$tmp/kryoptic"
  grep -q '^\[workspace\]' "$tmp/kryoptic/Cargo.toml" || printf '\n[workspace]\n' >> "$tmp/kryoptic/Cargo.toml"
  echo "building kryoptic $KRYOPTIC_VERSION (features $KRYOPTIC_FEATURES) in $tmp" >&2
  (cd "$tmp/kryoptic" && CARGO_TARGET_DIR="$tmp/target" nice cargo build --release --quiet --locked \
      --no-default-features --features "$KRYOPTIC_FEATURES") >&2 || { rm -rf "$tmp"; return 1; }
  mkdir -p "$cache"
  cp "$tmp/target/release/libkryoptic_pkcs11.so" "$lib.new"
  mv "$lib.new" "$lib"
  rm -rf "$tmp"
  echo "kryoptic $KRYOPTIC_VERSION built in $(( $(date +%s) - start )) s: $lib" >&2
  echo "$lib"
}
