#!/usr/bin/env bash
# Build (or reuse from ~/.cache/noetl-testenv) the test control plane's binaries for CI.
#
# Needs: go (>= 1.24, GOTOOLCHAIN=local), python3 with the `kubernetes` package, openssl,
# util-linux `unshare` (optional: without it pods only get $NOETL_K8S_SERVICEACCOUNT_DIR).
# A cold build of kube-apiserver + kube-controller-manager + kubectl + etcd + helm takes about
# half an hour on 2 cores (see docs/testenv.md); a warm cache takes a second.
set -euo pipefail
cd "$(dirname "$0")/../.."
export GOTOOLCHAIN=local
for tool in go python3 openssl; do
    command -v "$tool" >/dev/null || { echo "testenv: '$tool' is not installed" >&2; exit 1; }
done
echo "testenv: $(go version); cache: ${NOETL_TESTENV_CACHE:-$HOME/.cache/noetl-testenv}"
python3 -m tools.testenv build
