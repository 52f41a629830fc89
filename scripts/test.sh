#!/usr/bin/env bash
# Install everything the test suite needs, then run it: the README's second command.
# .ci/run calls this same script. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."

# docker-compose (Debian's package) lets a test check docker/compose.yml without a Docker engine.
if ! command -v docker-compose >/dev/null 2>&1; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends docker-compose >/dev/null
fi

python3 -m pip install -q --disable-pip-version-check -e '.[test]'
# Every shipped template must load and fit the simulator's node catalogue.
python3 -m comfyq templates check --no-live
exec python3 -m pytest "$@"
