# Set-up is idempotent: system packages (apt) and a virtualenv are installed on first use.
VENV    := .venv
PY      := $(VENV)/bin/python
APT_PKGS := espeak-ng sox libsndfile1 asterisk-moh-opsound-wav multimon-ng python3-venv libasound2-dev alsa-utils chromium
STAMP_SYS  := $(VENV)/.system-deps
STAMP_VENV := $(VENV)/.installed

.PHONY: demo test bench soak screenshots lint deps clean

deps: $(STAMP_VENV)

$(STAMP_SYS): Makefile
	@missing=""; for p in $(APT_PKGS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing system packages:$$missing"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing; \
	fi
	@mkdir -p $(VENV) && touch $@

$(STAMP_VENV): $(STAMP_SYS) pyproject.toml
	@[ -x $(PY) ] || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	@touch $@

demo: deps
	$(PY) -m appliance demo

test: deps
	$(PY) -m ruff check appliance tests
	$(PY) -m pytest -n 2 -q

bench: deps
	$(PY) -m tests.bench

# The README's screenshots, taken by the browser tests.
screenshots: deps
	APPLIANCE_SCREENSHOTS=docs/screenshots $(PY) -m pytest -q tests/browser

# An hour of simulated time: four lines on drifting clocks in one conference (not in make test).
soak: deps
	$(PY) -m pytest -m soak -v -s tests/e2e/test_soak.py

lint: deps
	$(PY) -m ruff check appliance tests
	$(PY) -m ruff format --check appliance tests

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache

# The SD image (docs/image.md): needs root, Debian's mmdebstrap and qemu; slow, so not in
# `make test`. The QEMU boot test runs un-niced: the guest's audio runs in real time.
IMAGE_NICE := nice -n 19 ionice -c3

.PHONY: image image-test

image:
	$(IMAGE_NICE) image-build/build-image.sh

image-test: deps
	$(PY) -m pytest -p no:cacheprovider --timeout=2400 -v -s tests/image
