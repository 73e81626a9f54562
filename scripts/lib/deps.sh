# Sourced by scripts/demo, scripts/test and scripts/drill: installs the Debian packages the
# project needs, once, when they are missing. Needs root (CI and the demo run as root).
ensure_packages() {
  local missing=()
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    echo "installing: ${missing[*]}" >&2
    if [ "$(id -u)" -ne 0 ]; then
      echo "error: missing packages ${missing[*]} and not root; install them or run as root" >&2
      return 2
    fi
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
}

# kubectl: the image may ship Google's kubectl package; Debian's is kubernetes-client.
ensure_kubectl() {
  command -v kubectl >/dev/null 2>&1 || ensure_packages kubernetes-client
}

# rust-toolchain.toml pins the release's toolchain by number. A machine whose
# rustup holds that version only as "stable" names it once (rustup toolchain
# link) instead of downloading it again (docs/install.md).
ensure_toolchain() {
  command -v rustup >/dev/null 2>&1 || return 0
  local pinned stable
  pinned=$(sed -n 's/^channel *= *"\(.*\)"/\1/p' rust-toolchain.toml)
  [ -n "$pinned" ] || return 0
  rustup toolchain list | grep -q "^$pinned-" && return 0
  stable=$(RUSTUP_TOOLCHAIN=stable rustc --version 2>/dev/null | awk '{print $2}')
  if [ "$stable" = "$pinned" ]; then
    rustup toolchain link "$pinned" "$(RUSTUP_TOOLCHAIN=stable rustc --print sysroot)"
  fi
}
