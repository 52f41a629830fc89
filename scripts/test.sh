#!/usr/bin/env bash
# Install everything the test suite needs, then run it: the README's second command.
# .ci/run calls this same script. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages: docker-compose lets a test check docker/compose.yml without a Docker engine;
# postgresql gives the tests a real PostgreSQL server (they start their own on a free port);
# chromium and chromium-driver run the browser tests headless (tests/browser.py drives /usr/bin/chromium
# through /usr/bin/chromedriver, so Selenium never downloads a browser or a driver).
packages=()
command -v docker-compose >/dev/null 2>&1 || packages+=(docker-compose)
compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || packages+=(postgresql)
[ -x /usr/bin/chromium ] || packages+=(chromium)
[ -x /usr/bin/chromedriver ] || packages+=(chromium-driver)
if [ ${#packages[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
fi

python3 -m pip install -q --disable-pip-version-check -e '.[test]'
# The layers and their rules (setup.cfg's [importlinter] contracts): a wrong import fails here.
lint-imports --no-cache
# Every shipped template must load and fit the simulator's node catalogue.
python3 -m comfyq templates check --no-live
exec python3 -m pytest "$@"
