# Sourced by scripts/demo and scripts/test: installs the Debian packages the
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
