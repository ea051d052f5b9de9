#!/usr/bin/env bash
# Sets up Wattson on a bare GPU host that has no package registry: wheels from .whl/ (carried),
# and the package imported from the source tree. Source it: `. bench/device_setup.sh`.
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl >/dev/null 2>&1
mkdir -p /tmp/pkg
# The folder-to-package mapping of pyproject.toml, rebuilt with links (no build backend needed).
ln -sfn "$PWD/server" /tmp/pkg/wattson
ln -sfn "$PWD/profilers" server/profilers
ln -sfn "$PWD/prompts" server/prompts
export PYTHONPATH=/tmp/pkg:/tmp/site
mkdir -p /tmp/bin && printf '#!/bin/sh\nexec python3 -m wattson "$@"\n' > /tmp/bin/wattson && chmod +x /tmp/bin/wattson
export PATH=/tmp/bin:$PATH
export PYTHONUNBUFFERED=1
