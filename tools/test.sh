#!/usr/bin/env bash
# The whole test suite from a fresh clone, with nothing installed beforehand: this is the README's test command and
# exactly what .ci/run runs. It installs Debian's tmux, faketime, nodejs, npm, redis-server, chromium and chromium-driver when
# missing, makes .venv, installs the package with its test extras, installs Claude Code from the npm registry (cached
# in ~/.cache/popkit-power), validates the plugin strictly, and runs pytest on every test, those marked slow too
# (pytest's exit code 5, "no tests ran", fails the run like any other failure).
set -euo pipefail
cd "$(dirname "$0")/.."

python=${PYTHON:-python3}
if ! command -v tmux >/dev/null 2>&1; then
  echo "tmux is missing: installing Debian's tmux (tests/e2e/test_wake_idle_agent.py drives an interactive Claude Code in it)" >&2
  apt-get update -qq && apt-get install -y -qq tmux >/dev/null
fi
if ! command -v faketime >/dev/null 2>&1; then
  echo "faketime is missing: installing Debian's faketime (tests/integration/test_clock_steps.py steps machines' clocks)" >&2
  apt-get update -qq && apt-get install -y -qq faketime >/dev/null
fi
if ! command -v npm >/dev/null 2>&1; then
  echo "npm is missing: installing Debian's nodejs and npm" >&2
  apt-get update -qq && apt-get install -y -qq nodejs npm >/dev/null
fi
if [ ! -x /usr/bin/redis-server ]; then
  # tests/integration starts its own redis-server on free loopback ports (never the machine's 6379)
  echo "redis-server is missing: installing Debian's redis-server" >&2
  apt-get update -qq && apt-get install -y -qq redis-server >/dev/null
fi
if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then
  echo "chromium or its driver is missing: installing Debian's chromium and chromium-driver (tests/test_timeline.py)" >&2
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null
fi
if [ ! -x .venv/bin/python ]; then
  "$python" -m venv .venv
fi
.venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip
# compat mode: a plain path in a .pth file. The default editable mode installs an import hook that imports pathlib
# and re in every interpreter start, which would distort the hook's start-up cost (tools/BENCHMARKS.md).
.venv/bin/python -m pip install -q --disable-pip-version-check -e '.[test]' --config-settings editable_mode=compat

# Node.js trusts only the certificates built into it; pip here trusts the system's (/etc/pip.conf), and so does npm
# with this. Behind a proxy that signs with a certificate of the machine's own, an npm without it fails every fetch
# (SELF_SIGNED_CERT_IN_CHAIN) and the install of Claude Code below never ends.
if [ -z "${NODE_EXTRA_CA_CERTS:-}" ] && [ -f /etc/ssl/certs/ca-certificates.crt ]; then
  export NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt
fi
claude=$(.venv/bin/python -c 'import sys; sys.path.insert(0, "tests/e2e"); from claude import ensure_claude; print(ensure_claude())')
echo "Claude Code: $("$claude" --version)"
"$claude" plugin validate --strict . >/tmp/popkit-plugin-validate.log 2>&1 || { cat /tmp/popkit-plugin-validate.log; exit 1; }
echo "claude plugin validate --strict .: passed"

# -m "": everything, the tests marked slow too (a developer's plain `pytest` leaves them out); an -m in "$@" wins.
exec .venv/bin/python -m pytest -m "" "$@"
