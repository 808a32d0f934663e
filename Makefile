# The two commands a fresh machine needs: `make run` (serve on the embedded SQLite default) and
# `make test` (the whole suite on SQLite, then on PostgreSQL). Both install what they need first.
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp
PYTEST := $(PY) -m pytest -q

.PHONY: install run test test-sqlite test-postgresql check bench clean

install: $(STAMP)

# Provisioning over MQTT runs against Debian's Mosquitto (its tests, demo and benchmark start
# their own broker); installed here when it is missing.
DEBIAN_PACKAGES := mosquitto mosquitto-clients

$(STAMP): pyproject.toml
	@command -v mosquitto >/dev/null && command -v mosquitto_ctrl >/dev/null || \
		(apt-get update -qq && apt-get install -y -qq $(DEBIAN_PACKAGES))
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $(STAMP)

run: install
	$(VENV)/bin/zerotouch serve

test: test-sqlite test-postgresql

test-sqlite: install
	ZEROTOUCH_TEST_DATABASE=sqlite $(PYTEST)

# A fresh database per run on the machine's PostgreSQL; with CI set, an unreachable server fails.
test-postgresql: install
	ZEROTOUCH_TEST_DATABASE=postgresql $(PYTEST)

check: install
	$(VENV)/bin/ruff check zerotouch tests bench
	$(VENV)/bin/ruff format --check zerotouch tests bench
	$(VENV)/bin/mypy --strict

bench: install
	$(PY) bench/claims.py
	$(PY) bench/provision.py
	$(PY) bench/ovms.py
	$(PY) bench/factory.py
	$(PY) bench/mqtt.py

clean:
	rm -rf $(VENV) zerotouch-data *.egg-info
